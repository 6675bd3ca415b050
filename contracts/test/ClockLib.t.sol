// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ClockLib} from "../src/lib/ClockLib.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the chess clocks: a charge never underflows, leaves exactly
///         remaining - elapsed, expires exactly when elapsed > remaining, and charging a turn
///         in two pieces is the same as charging it at once.
contract ClockLibTest is TestBase {
    function testFuzz_chargeLeavesRemainingMinusElapsedOrExpires(uint64 remaining, uint64 startedAt, uint64 elapsed)
        public
        pure
    {
        uint256 nowTs = uint256(startedAt) + elapsed;
        (bool expired, uint64 left) = ClockLib.charge(remaining, startedAt, nowTs);
        if (elapsed > remaining) {
            assertTrue(expired, "expired once elapsed > remaining");
            assertEq(left, 0);
        } else {
            assertTrue(!expired, "not expired while elapsed <= remaining");
            assertEq(left, uint256(remaining) - elapsed);
            assertTrue(left <= remaining, "never more time than before");
        }
    }

    function testFuzz_expiresExactlyOneSecondAfterTheBudget(uint64 remaining, uint64 startedAt) public pure {
        vm.assume(remaining < type(uint64).max);
        uint256 atBudget = uint256(startedAt) + remaining;
        (bool expiredAt, uint64 leftAt) = ClockLib.charge(remaining, startedAt, atBudget);
        assertTrue(!expiredAt, "a move at exactly the budget is in time");
        assertEq(leftAt, 0);
        (bool expiredAfter, uint64 leftAfter) = ClockLib.charge(remaining, startedAt, atBudget + 1);
        assertTrue(expiredAfter, "one second past the budget is out of time");
        assertEq(leftAfter, 0);
    }

    function testFuzz_chargingInTwoPiecesEqualsChargingOnce(
        uint64 remaining,
        uint64 startedAt,
        uint32 first,
        uint32 second
    ) public pure {
        uint256 midTs = uint256(startedAt) + first;
        uint256 endTs = midTs + second;
        // Timestamps are stored as uint64 (Game.turnStartedAt).
        vm.assume(endTs <= type(uint64).max);
        (bool expiredMid, uint64 leftMid) = ClockLib.charge(remaining, startedAt, midTs);
        (bool expiredOnce, uint64 leftOnce) = ClockLib.charge(remaining, startedAt, endTs);
        if (expiredMid) {
            assertTrue(expiredOnce, "a clock that ran out stays out");
            return;
        }
        (bool expiredTwice, uint64 leftTwice) = ClockLib.charge(leftMid, uint64(midTs), endTs);
        assertTrue(expiredTwice == expiredOnce, "same expiry");
        assertEq(leftTwice, leftOnce);
    }

    function testFuzz_zeroElapsedCostsNothing(uint64 remaining, uint64 startedAt) public pure {
        (bool expired, uint64 left) = ClockLib.charge(remaining, startedAt, startedAt);
        assertTrue(!expired, "no time spent");
        assertEq(left, remaining);
    }
}
