// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MerkleLib} from "../../src/lib/MerkleLib.sol";

/// @notice The reference Merkle proof for the fuzz tests: built by materialising each padded
///         level, independently of MerkleLib's own folding.
library MerkleRef {
    function proof(bytes32[] memory leaves, uint256 index) internal pure returns (bytes32[] memory siblings) {
        uint256 depth = MerkleLib.depthFor(leaves.length);
        uint256 width = 1 << depth;
        bytes32[] memory level = new bytes32[](width);
        for (uint256 i = 0; i < leaves.length; i++) {
            level[i] = leaves[i];
        }
        siblings = new bytes32[](depth);
        for (uint256 d = 0; d < depth; d++) {
            siblings[d] = level[index ^ 1];
            width >>= 1;
            for (uint256 i = 0; i < width; i++) {
                level[i] = keccak256(abi.encodePacked(level[2 * i], level[2 * i + 1]));
            }
            index >>= 1;
        }
    }
}
