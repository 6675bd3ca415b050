// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title ClockLib
/// @notice Chess clocks: each party has a budget of seconds for the whole game; only the
///         party to move spends it. A move made after the budget ran out is refused, and the
///         game can then only end by timeout, which that party loses.
library ClockLib {
    /// @notice Spend the time since `startedAt` from `remaining`.
    /// @param remaining Seconds the mover had when its turn began.
    /// @param startedAt When the turn began.
    /// @param nowTs The current timestamp.
    /// @return expired Whether the mover ran out of time.
    /// @return left Seconds left after this turn (0 if expired).
    function charge(uint64 remaining, uint64 startedAt, uint256 nowTs)
        internal
        pure
        returns (bool expired, uint64 left)
    {
        uint256 elapsed = nowTs - startedAt;
        if (elapsed > remaining) return (true, 0);
        return (false, remaining - uint64(elapsed));
    }
}
