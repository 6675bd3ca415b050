// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {DissectionLib} from "../src/lib/DissectionLib.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the d-ary interval split every dispute level uses: the boundaries
///         start at lo, end at hi, strictly increase (every part is non-empty), there are
///         min(d, width) parts, and the parts are balanced (widths differ by at most one).
contract DissectionLibTest is TestBase {
    uint8 internal constant MIN_ARITY = 2;
    uint8 internal constant MAX_ARITY = 16;

    /// An interval [lo, lo + width] that fits in uint64, with width >= 1 and d in [2, 16].
    function _interval(uint64 rawLo, uint64 rawWidth, uint8 rawArity)
        internal
        pure
        returns (uint64 lo, uint64 hi, uint8 arity)
    {
        lo = rawLo;
        uint64 room = type(uint64).max - lo;
        vm.assume(room >= 1);
        uint64 width = rawWidth % room + 1;
        hi = lo + width;
        arity = uint8(uint256(rawArity) % (MAX_ARITY - MIN_ARITY + 1)) + MIN_ARITY;
    }

    function testFuzz_partsIsMinOfArityAndWidth(uint64 rawLo, uint64 rawWidth, uint8 rawArity) public pure {
        (uint64 lo, uint64 hi, uint8 arity) = _interval(rawLo, rawWidth, rawArity);
        uint256 width = hi - lo;
        uint256 expected = width < arity ? width : arity;
        assertEq(DissectionLib.parts(lo, hi, arity), expected);
    }

    function testFuzz_boundariesStartAtLoEndAtHiAndStrictlyIncrease(uint64 rawLo, uint64 rawWidth, uint8 rawArity)
        public
        pure
    {
        (uint64 lo, uint64 hi, uint8 arity) = _interval(rawLo, rawWidth, rawArity);
        uint256 count = DissectionLib.parts(lo, hi, arity);
        assertEq(DissectionLib.boundary(lo, hi, count, 0), lo);
        assertEq(DissectionLib.boundary(lo, hi, count, count), hi);
        uint64 previous = lo;
        for (uint256 k = 1; k <= count; k++) {
            uint64 point = DissectionLib.boundary(lo, hi, count, k);
            assertTrue(point > previous, "every part is non-empty");
            assertTrue(point <= hi, "no boundary beyond hi");
            previous = point;
        }
    }

    function testFuzz_partsAreBalanced(uint64 rawLo, uint64 rawWidth, uint8 rawArity) public pure {
        (uint64 lo, uint64 hi, uint8 arity) = _interval(rawLo, rawWidth, rawArity);
        uint256 count = DissectionLib.parts(lo, hi, arity);
        uint256 width = hi - lo;
        uint256 floorWidth = width / count;
        uint256 ceilWidth = (width + count - 1) / count;
        uint256 total = 0;
        for (uint256 k = 0; k < count; k++) {
            uint256 part = DissectionLib.boundary(lo, hi, count, k + 1) - DissectionLib.boundary(lo, hi, count, k);
            assertTrue(part >= floorWidth && part <= ceilWidth, "part width within one of width / parts");
            total += part;
        }
        assertEq(total, width);
    }

    /// Small intervals, where min(d, width) = width: every part is exactly one wide, so the
    /// next round descends (the game's `newHi - newLo == 1` case).
    function testFuzz_narrowIntervalSplitsIntoUnitParts(uint64 rawLo, uint8 rawWidth, uint8 rawArity) public pure {
        uint8 arity = uint8(uint256(rawArity) % (MAX_ARITY - MIN_ARITY + 1)) + MIN_ARITY;
        uint64 width = uint64(rawWidth % arity) + 1;
        uint64 lo = rawLo % (type(uint64).max - width);
        uint64 hi = lo + width;
        uint256 count = DissectionLib.parts(lo, hi, arity);
        assertEq(count, width);
        for (uint256 k = 0; k <= count; k++) {
            assertEq(DissectionLib.boundary(lo, hi, count, k), lo + k);
        }
    }

    /// The extreme interval [0, 2^64 - 1] with the largest arity: no overflow in the product.
    function test_fullRangeWithMaxArityDoesNotOverflow() public pure {
        uint64 hi = type(uint64).max;
        uint256 count = DissectionLib.parts(0, hi, MAX_ARITY);
        assertEq(count, MAX_ARITY);
        assertEq(DissectionLib.boundary(0, hi, count, count), hi);
        assertEq(DissectionLib.boundary(0, hi, count, 1), uint256(hi) / MAX_ARITY);
    }
}
