// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MerkleLib} from "./MerkleLib.sol";

/// @title ArtifactLib
/// @notice The commitment that makes a checkpoint file checkable on-chain, one chunk at a time
///         (docs/protocol.md §5), mirrored bit for bit by market/artifact.py:
///         - a file of `length` bytes is cut into chunkCount(length) chunks of CHUNK_SIZE bytes,
///           the last one shorter (an empty file is one empty chunk);
///         - chunk k's leaf is keccak256(chunk bytes); chunkRoot is MerkleLib's positional tree
///           over those leaves;
///         - fileRoot = keccak256(uint64 length (8 bytes, big-endian) ‖ chunkRoot);
///         - a result's filesRoot is MerkleLib's tree over the checkpoints' fileRoots, leaf i
///           for checkpoint i (the same order as traceRoot's state hashes).
/// @dev The length is bound into fileRoot, so a proof can neither invent a chunk past the end
///      nor pass off a short tail as a full chunk.
library ArtifactLib {
    /// @notice Bytes per chunk. 4 KiB keeps an answer's calldata near 70 k gas.
    uint256 internal constant CHUNK_SIZE = 4096;

    /// @notice Number of chunks of a file of `length` bytes (1 for the empty file).
    /// @param length File size in bytes.
    function chunkCount(uint64 length) internal pure returns (uint256) {
        if (length == 0) return 1;
        return (uint256(length) + CHUNK_SIZE - 1) / CHUNK_SIZE;
    }

    /// @notice Size of chunk `index` of a `length`-byte file (index < chunkCount(length)).
    /// @param length File size in bytes.
    /// @param index Chunk index.
    function chunkLength(uint64 length, uint256 index) internal pure returns (uint256) {
        uint256 start = index * CHUNK_SIZE;
        uint256 end = start + CHUNK_SIZE;
        if (end > length) end = length;
        return end - start;
    }

    /// @notice The file root for a length and a chunk-tree root.
    /// @param length File size in bytes.
    /// @param chunkRoot MerkleLib root over the chunk leaves.
    function fileRoot(uint64 length, bytes32 chunkRoot) internal pure returns (bytes32) {
        return keccak256(abi.encodePacked(length, chunkRoot));
    }

    /// @notice Whether `chunk` is chunk `index` of the file committed as `root`.
    /// @param root The committed file root.
    /// @param length The file's size, as revealed.
    /// @param chunkRoot The file's chunk-tree root, as revealed.
    /// @param index The chunk index (must be below chunkCount(length)).
    /// @param chunk The chunk's bytes.
    /// @param proof MerkleLib proof of keccak256(chunk) at `index` under chunkRoot.
    function verifyChunk(
        bytes32 root,
        uint64 length,
        bytes32 chunkRoot,
        uint256 index,
        bytes calldata chunk,
        bytes32[] calldata proof
    ) internal pure returns (bool) {
        if (fileRoot(length, chunkRoot) != root) return false;
        uint256 count = chunkCount(length);
        if (index >= count) return false;
        if (chunk.length != chunkLength(length, index)) return false;
        return MerkleLib.verify(chunkRoot, count, keccak256(chunk), index, proof);
    }
}
