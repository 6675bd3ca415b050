// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MerkleLib} from "../src/lib/MerkleLib.sol";
import {MerkleRef} from "./utils/MerkleRef.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the positional Merkle tree: every leaf's proof verifies, and any
///         change to the leaf, the index, a sibling or the proof length is rejected.
contract MerkleLibTest is TestBase {
    function _leaves(uint256 seed, uint256 count) internal pure returns (bytes32[] memory leaves) {
        leaves = new bytes32[](count);
        for (uint256 i = 0; i < count; i++) {
            leaves[i] = keccak256(abi.encode(seed, i));
        }
    }

    function testFuzz_everyLeafProofVerifies(uint256 seed, uint8 rawCount, uint8 rawIndex) public pure {
        uint256 count = uint256(rawCount) % 70 + 1;
        uint256 index = uint256(rawIndex) % count;
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        assertTrue(MerkleLib.verify(root, count, leaves[index], index, MerkleRef.proof(leaves, index)), "valid proof");
    }

    function testFuzz_tamperedLeafRejected(uint256 seed, uint8 rawCount, uint8 rawIndex, bytes32 other) public pure {
        uint256 count = uint256(rawCount) % 70 + 1;
        uint256 index = uint256(rawIndex) % count;
        bytes32[] memory leaves = _leaves(seed, count);
        vm.assume(other != leaves[index]);
        bytes32 root = MerkleLib.computeRoot(leaves);
        assertTrue(!MerkleLib.verify(root, count, other, index, MerkleRef.proof(leaves, index)), "tampered leaf");
    }

    function testFuzz_wrongIndexRejected(uint256 seed, uint8 rawCount, uint8 rawIndex, uint8 rawOther) public pure {
        uint256 count = uint256(rawCount) % 70 + 2;
        uint256 index = uint256(rawIndex) % count;
        uint256 other = uint256(rawOther) % count;
        vm.assume(other != index);
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        assertTrue(!MerkleLib.verify(root, count, leaves[index], other, MerkleRef.proof(leaves, index)), "wrong index");
    }

    function testFuzz_indexBeyondCountRejected(uint256 seed, uint8 rawCount) public pure {
        uint256 count = uint256(rawCount) % 70 + 1;
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        // A padding position: the zero leaf there must not be provable.
        uint256 width = 1 << MerkleLib.depthFor(count);
        vm.assume(width > count);
        bytes32[] memory padded = new bytes32[](width);
        for (uint256 i = 0; i < count; i++) {
            padded[i] = leaves[i];
        }
        assertTrue(!MerkleLib.verify(root, count, bytes32(0), count, MerkleRef.proof(padded, count)), "padding leaf");
    }

    function testFuzz_tamperedSiblingRejected(uint256 seed, uint8 rawCount, uint8 rawIndex, uint8 rawLevel) public pure {
        uint256 count = uint256(rawCount) % 70 + 2;
        uint256 index = uint256(rawIndex) % count;
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        bytes32[] memory proof = MerkleRef.proof(leaves, index);
        proof[uint256(rawLevel) % proof.length] ^= bytes32(uint256(1));
        assertTrue(!MerkleLib.verify(root, count, leaves[index], index, proof), "tampered sibling");
    }

    function testFuzz_wrongProofLengthRejected(uint256 seed, uint8 rawCount, uint8 rawIndex) public pure {
        uint256 count = uint256(rawCount) % 70 + 2;
        uint256 index = uint256(rawIndex) % count;
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        bytes32[] memory proof = MerkleRef.proof(leaves, index);
        bytes32[] memory longer = new bytes32[](proof.length + 1);
        for (uint256 i = 0; i < proof.length; i++) {
            longer[i] = proof[i];
        }
        assertTrue(!MerkleLib.verify(root, count, leaves[index], index, longer), "long proof");
    }

    function testFuzz_internalNodeAsLeafRejected(uint256 seed, uint8 rawCount, uint8 rawIndex) public pure {
        // Second-preimage attempt: present a level-1 node as a leaf with the shorter proof
        // that really does fold to the root. Only the fixed depth stops it.
        uint256 count = uint256(rawCount) % 70 + 3;
        uint256 index = uint256(rawIndex) % count;
        bytes32[] memory leaves = _leaves(seed, count);
        bytes32 root = MerkleLib.computeRoot(leaves);
        bytes32[] memory proof = MerkleRef.proof(leaves, index);
        bytes32 left = (index & 1 == 0) ? leaves[index] : proof[0];
        bytes32 right = (index & 1 == 0) ? proof[0] : leaves[index];
        bytes32 node = keccak256(abi.encodePacked(left, right));
        bytes32[] memory shorter = new bytes32[](proof.length - 1);
        for (uint256 i = 1; i < proof.length; i++) {
            shorter[i - 1] = proof[i];
        }
        assertEq(MerkleLib.rootFrom(node, index >> 1, shorter), root);
        assertTrue(!MerkleLib.verify(root, count, node, index >> 1, shorter), "internal node as leaf");
    }

    function test_singleLeafIsItsOwnRoot() public pure {
        bytes32[] memory leaves = _leaves(7, 1);
        assertEq(MerkleLib.computeRoot(leaves), leaves[0]);
        assertTrue(MerkleLib.verify(leaves[0], 1, leaves[0], 0, new bytes32[](0)), "depth 0");
    }

    function test_depthForMatchesCeilLog2() public pure {
        assertEq(MerkleLib.depthFor(1), 0);
        assertEq(MerkleLib.depthFor(2), 1);
        assertEq(MerkleLib.depthFor(3), 2);
        assertEq(MerkleLib.depthFor(4), 2);
        assertEq(MerkleLib.depthFor(5), 3);
        assertEq(MerkleLib.depthFor(1025), 11);
    }
}
