// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title DissectionLib
/// @notice The d-ary split of an interval [lo, hi] that every dispute level uses.
///         With parts = min(d, hi - lo), boundary k (0 <= k <= parts) sits at
///         lo + (hi - lo) * k / parts (integer division): boundary 0 is lo, boundary `parts`
///         is hi, and boundaries strictly increase because hi - lo >= parts. A dissection
///         posts the parts - 1 interior boundaries' hashes. Python mirrors this exactly in
///         arbiter/dissection.py.
library DissectionLib {
    /// @notice Number of parts an interval of width hi - lo (>= 2) splits into.
    /// @param lo Interval start.
    /// @param hi Interval end.
    /// @param arity The game's d.
    function parts(uint64 lo, uint64 hi, uint8 arity) internal pure returns (uint256) {
        uint256 width = uint256(hi - lo);
        return width < arity ? width : arity;
    }

    /// @notice Position of boundary k of [lo, hi] split into `count` parts.
    /// @param lo Interval start.
    /// @param hi Interval end.
    /// @param count Number of parts (from `parts`).
    /// @param k Boundary index, 0..count.
    function boundary(uint64 lo, uint64 hi, uint256 count, uint256 k) internal pure returns (uint64) {
        return lo + uint64(uint256(hi - lo) * k / count);
    }
}
