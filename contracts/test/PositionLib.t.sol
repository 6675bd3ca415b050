// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {PositionLib} from "../src/lib/PositionLib.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the level arithmetic: a game's descent CHECKPOINT -> STEP -> OP maps
///         every (checkpoint pair, step offset) to a distinct global step inside the run, and
///         the OP level always has room for h_M strictly before its end link.
contract PositionLibTest is TestBase {
    function testFuzz_descentLandsOnTheRightStep(uint32 rawM, uint32 rawK, uint32 rawP, uint32 rawS) public pure {
        uint64 m = uint64(rawM % 4096) + 1; // checkpoints after the initial state
        uint64 k = uint64(rawK % 4096) + 1;
        uint64 p = uint64(rawP) % m + 1; // CHECKPOINT [p, p + 1] with p >= 1 ... p <= m
        uint64 s = uint64(rawS) % k;
        uint64 base = PositionLib.stepBase(p);
        assertEq(uint256(base), uint256(PositionLib.leafIndex(p)));
        uint64 t = PositionLib.globalStep(base, s, k);
        assertTrue(t < m * k, "inside the run");
        assertEq(uint256(t / k), uint256(base));
        assertEq(uint256(t % k), uint256(s));
    }

    function testFuzz_opLevelOrdersItsPositions(uint40 rawOps) public pure {
        uint64 ops = uint64(rawOps) + 1;
        uint64 last = PositionLib.lastOpPosition(ops);
        uint64 end = PositionLib.opEnd(ops);
        assertTrue(0 < last && last < end, "h_M before the end link");
        assertEq(uint256(end - last), 1);
    }

    function testFuzz_endLinkBindsBothHalves(bytes32 h, bytes32 s, bytes32 other) public pure {
        vm.assume(other != s && other != h);
        bytes32 link = PositionLib.endLink(h, s);
        assertTrue(link != PositionLib.endLink(h, other), "binds the next state");
        assertTrue(link != PositionLib.endLink(other, s), "binds h_M");
    }
}
