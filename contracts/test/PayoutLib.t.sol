// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {Payout, PayoutLib} from "../src/lib/PayoutLib.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the dispute payouts: every split conserves; the burn is never below
///         its fraction; held winnings are released once or forfeited whole to the pool; and
///         the winners' pool is paid exactly, in equal parts up to rounding, in any claim order.
contract PayoutLibTest is TestBase {
    Payout internal p;

    function testFuzz_splitConservesAndBurnsAtLeastItsFraction(uint128 amount, uint16 bps) public pure {
        vm.assume(bps <= PayoutLib.BPS);
        (uint256 toWinner, uint256 burned) = PayoutLib.split(amount, bps);
        assertEq(toWinner + burned, amount);
        assertTrue(toWinner * PayoutLib.BPS <= uint256(amount) * bps, "winner never more than its share");
        assertTrue(burned * PayoutLib.BPS >= uint256(amount) * (PayoutLib.BPS - bps), "burn at least its fraction");
    }

    function testFuzz_heldWinningsAreReleasedOnceOrForfeitedToThePool(
        uint96 bond,
        uint96 stake,
        uint16 bps,
        uint8 wins,
        bool slashed
    ) public {
        vm.assume(bps <= PayoutLib.BPS);
        uint256 burnedTotal;
        for (uint256 i = 0; i < wins; i++) {
            burnedTotal += PayoutLib.solverWon(p, bond, bps);
        }
        uint256 held = p.heldForSolver;
        assertEq(held + burnedTotal, uint256(bond) * wins);
        if (!slashed) {
            assertEq(PayoutLib.release(p), held);
            assertEq(PayoutLib.release(p), 0);
            return;
        }
        (uint256 pool, uint256 burned) = PayoutLib.slash(p, stake, bps);
        assertEq(pool + burned, uint256(stake) + held);
        assertEq(p.heldForSolver, 0);
        assertEq(p.rewardPool, pool);
        assertEq(PayoutLib.release(p), 0);
    }

    function testFuzz_poolIsPaidExactlyInEqualPartsInAnyOrder(uint96 pool, uint8[8] memory gamesOf, uint8 rotate)
        public
    {
        uint32 total;
        for (uint256 i = 0; i < 8; i++) {
            gamesOf[i] = gamesOf[i] % 4;
            total += gamesOf[i];
        }
        vm.assume(total > 0);
        p.rewardPool = pool;
        p.winningGames = total;
        uint256 paid;
        for (uint256 k = 0; k < 8; k++) {
            uint8 games = gamesOf[(k + rotate) % 8];
            uint256 amount = PayoutLib.claim(p, games);
            paid += amount;
            if (games == 0) {
                assertEq(amount, 0);
                continue;
            }
            // Each claimant gets its games' fair share, the last one the rounding remainder
            // (never more than one wei per winning game).
            uint256 fair = uint256(pool) * games / total;
            assertTrue(amount >= fair, "at least the fair share");
            assertTrue(amount <= fair + total, "rounding only");
        }
        assertEq(paid, pool);
        assertEq(p.claimedAmount, pool);
        assertEq(p.claimedGames, total);
    }

    function testFuzz_sybilGamesTakeOnlyTheirParts(uint96 pool, uint8 sybils) public {
        // The honest whistleblower's one game against k sybil games: it gets pool/(k+1).
        uint32 total = uint32(sybils) + 1;
        p.rewardPool = pool;
        p.winningGames = total;
        uint256 sybilTake = sybils == 0 ? 0 : PayoutLib.claim(p, sybils);
        uint256 honest = PayoutLib.claim(p, 1);
        assertEq(sybilTake + honest, pool);
        assertTrue(honest >= uint256(pool) / total, "the honest part is never diluted beyond 1/(k+1)");
    }
}
