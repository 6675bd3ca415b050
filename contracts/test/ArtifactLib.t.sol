// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ArtifactLib} from "../src/lib/ArtifactLib.sol";
import {MerkleLib} from "../src/lib/MerkleLib.sol";
import {MerkleRef} from "./utils/MerkleRef.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Fuzz tests of the checkpoint-file commitment: every chunk of every file verifies
///         against its root, and a changed byte, a wrong length or an index past the end fails.
contract ArtifactLibTest is TestBase {
    function _file(uint256 seed, uint256 length) internal pure returns (bytes memory data) {
        data = new bytes(length);
        for (uint256 i = 0; i < length; i++) {
            data[i] = bytes1(uint8(uint256(keccak256(abi.encode(seed, i / 32))) >> (8 * (i % 32))));
        }
    }

    function _slice(bytes memory data, uint256 start, uint256 end) internal pure returns (bytes memory out) {
        out = new bytes(end - start);
        for (uint256 i = start; i < end; i++) {
            out[i - start] = data[i];
        }
    }

    function _leaves(bytes memory data) internal pure returns (bytes32[] memory leaves) {
        uint64 length = uint64(data.length);
        uint256 count = ArtifactLib.chunkCount(length);
        leaves = new bytes32[](count);
        for (uint256 k = 0; k < count; k++) {
            uint256 start = k * ArtifactLib.CHUNK_SIZE;
            leaves[k] = keccak256(_slice(data, start, start + ArtifactLib.chunkLength(length, k)));
        }
    }

    /// External so that the library sees calldata, as in DisputeGame.answerAvailability.
    function verify(
        bytes32 root,
        uint64 length,
        bytes32 chunkRoot,
        uint256 index,
        bytes calldata data,
        bytes32[] calldata proof
    ) external pure returns (bool) {
        return ArtifactLib.verifyChunk(root, length, chunkRoot, index, data, proof);
    }

    function testFuzz_everyChunkVerifiesAndTamperingFails(uint256 seed, uint16 rawLength, uint8 rawIndex, uint16 at)
        public
        view
    {
        uint64 length = uint64(rawLength % (5 * ArtifactLib.CHUNK_SIZE));
        bytes memory data = _file(seed, length);
        bytes32[] memory leaves = _leaves(data);
        uint256 index = uint256(rawIndex) % leaves.length;
        bytes32 chunkRoot = MerkleLib.computeRoot(leaves);
        bytes32 root = ArtifactLib.fileRoot(length, chunkRoot);
        uint256 start = index * ArtifactLib.CHUNK_SIZE;
        bytes memory part = _slice(data, start, start + ArtifactLib.chunkLength(length, index));
        bytes32[] memory proof = MerkleRef.proof(leaves, index);
        assertTrue(this.verify(root, length, chunkRoot, index, part, proof), "valid chunk");
        assertTrue(!this.verify(root, length + 1, chunkRoot, index, part, proof), "wrong length");
        assertTrue(!this.verify(root, length, chunkRoot, leaves.length, part, proof), "index past the end");
        if (part.length > 0) {
            part[uint256(at) % part.length] ^= 0x01;
            assertTrue(!this.verify(root, length, chunkRoot, index, part, proof), "flipped byte");
        }
    }

    function testFuzz_chunkCountCoversTheFileExactly(uint64 length) public pure {
        vm.assume(length < type(uint64).max - ArtifactLib.CHUNK_SIZE);
        uint256 count = ArtifactLib.chunkCount(length);
        uint256 total = 0;
        for (uint256 k = 0; k < count && k < 4; k++) {
            assertTrue(ArtifactLib.chunkLength(length, k) <= ArtifactLib.CHUNK_SIZE, "chunk too long");
        }
        total = (count - 1) * ArtifactLib.CHUNK_SIZE + ArtifactLib.chunkLength(length, count - 1);
        assertEq(total, uint256(length));
        if (length > 0) assertTrue(ArtifactLib.chunkLength(length, count - 1) > 0, "no empty tail");
    }
}
