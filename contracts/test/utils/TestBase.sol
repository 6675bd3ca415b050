// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice The few forge cheatcodes these tests use (forge-std is not installable offline).
interface Vm {
    function assume(bool condition) external pure;
    function expectRevert(bytes4 selector) external;
    function expectRevert(bytes calldata revertData) external;
    function warp(uint256 timestamp) external;
    function prank(address sender) external;
}

/// @notice Minimal assertions for forge tests; a failed one reverts with what differed.
abstract contract TestBase {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    error AssertionFailed(string what);
    error NotEqualBytes32(bytes32 left, bytes32 right);
    error NotEqualUint(uint256 left, uint256 right);

    function assertTrue(bool condition, string memory what) internal pure {
        if (!condition) revert AssertionFailed(what);
    }

    function assertEq(bytes32 left, bytes32 right) internal pure {
        if (left != right) revert NotEqualBytes32(left, right);
    }

    function assertEq(uint256 left, uint256 right) internal pure {
        if (left != right) revert NotEqualUint(left, right);
    }
}
