// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {PositionLib} from "../src/lib/PositionLib.sol";

/// @title PositionHarness
/// @notice Test-only: exposes PositionLib so Python can cross-check arbiter/dissection.py.
contract PositionHarness {
    /// @notice Every PositionLib function at once, for one set of inputs.
    function all(
        uint64 position,
        uint64 checkpoint,
        uint64 offset,
        uint64 stepsPerCheckpoint,
        uint64 opCount,
        bytes32 lastOpHash,
        bytes32 nextStateHash
    ) external pure returns (uint64, uint64, uint64, uint64, uint64, bytes32) {
        return (
            PositionLib.leafIndex(position),
            PositionLib.stepBase(position),
            PositionLib.globalStep(checkpoint, offset, stepsPerCheckpoint),
            PositionLib.opEnd(opCount),
            PositionLib.lastOpPosition(opCount),
            PositionLib.endLink(lastOpHash, nextStateHash)
        );
    }
}
