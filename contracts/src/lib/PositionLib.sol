// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title PositionLib
/// @notice The level and position arithmetic of the dispute game (DisputeTypes.sol, Level),
///         mirrored exactly by arbiter/dissection.py:
///         - CHECKPOINT position 0 is the spec hash; position p >= 1 is trace leaf p - 1;
///         - a CHECKPOINT game narrowed to [p, p + 1] with p >= 1 continues at STEP over
///           [0, K] between checkpoints base = p - 1 and p;
///         - a STEP game narrowed to [s, s + 1] continues at OP for global step
///           t = base * K + s;
///         - the OP level of a step with M operators spans [0, M + 2]: position 0 is
///           stateHash_t, j + 1 is link h_j (so h_M sits at M + 1), and M + 2 is the end
///           link sha256(h_M ‖ stateHash_{t+1}).
library PositionLib {
    /// @notice The trace leaf at CHECKPOINT position `position` (>= 1).
    /// @param position A CHECKPOINT position, at least 1.
    function leafIndex(uint64 position) internal pure returns (uint64) {
        return position - 1;
    }

    /// @notice The agreed checkpoint index of the STEP level entered from CHECKPOINT [lo, lo + 1].
    /// @param lo The CHECKPOINT interval's start, at least 1.
    function stepBase(uint64 lo) internal pure returns (uint64) {
        return lo - 1;
    }

    /// @notice The global step index of STEP [offset, offset + 1] after checkpoint `checkpoint`.
    /// @param checkpoint The agreed checkpoint index.
    /// @param offset The STEP interval's start (< stepsPerCheckpoint).
    /// @param stepsPerCheckpoint K.
    function globalStep(uint64 checkpoint, uint64 offset, uint64 stepsPerCheckpoint) internal pure returns (uint64) {
        return checkpoint * stepsPerCheckpoint + offset;
    }

    /// @notice The OP level's end position for M operators (the interval is [0, M + 2]).
    /// @param opCount M.
    function opEnd(uint64 opCount) internal pure returns (uint64) {
        return opCount + 2;
    }

    /// @notice The OP position of h_M, the last operator-chain link.
    /// @param opCount M.
    function lastOpPosition(uint64 opCount) internal pure returns (uint64) {
        return opCount + 1;
    }

    /// @notice The OP level's end value: sha256(h_M ‖ stateHash_{t+1}).
    /// @param lastOpHash h_M.
    /// @param nextStateHash stateHash_{t+1}.
    function endLink(bytes32 lastOpHash, bytes32 nextStateHash) internal pure returns (bytes32) {
        return sha256(abi.encodePacked(lastOpHash, nextStateHash));
    }
}
