// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ArtifactLib} from "../src/lib/ArtifactLib.sol";

/// @title ArtifactHarness
/// @notice Test-only: exposes ArtifactLib so Python can cross-check repops/artifact.py.
contract ArtifactHarness {
    /// @notice ArtifactLib.chunkCount.
    function chunkCount(uint64 length) external pure returns (uint256) {
        return ArtifactLib.chunkCount(length);
    }

    /// @notice ArtifactLib.fileRoot.
    function fileRoot(uint64 length, bytes32 chunkRoot) external pure returns (bytes32) {
        return ArtifactLib.fileRoot(length, chunkRoot);
    }

    /// @notice ArtifactLib.verifyChunk.
    function verifyChunk(
        bytes32 root,
        uint64 length,
        bytes32 chunkRoot,
        uint256 index,
        bytes calldata data,
        bytes32[] calldata proof
    ) external pure returns (bool) {
        return ArtifactLib.verifyChunk(root, length, chunkRoot, index, data, proof);
    }
}
