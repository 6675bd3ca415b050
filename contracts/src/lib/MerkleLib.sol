// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @title MerkleLib
/// @notice The positional binary Merkle tree over a result's state hashes (DESIGN.md §5),
///         mirrored bit for bit by repops/merkle.py:
///         - leaves are 32-byte values, padded with bytes32(0) to the next power of two;
///           a single leaf is its own root (depth 0);
///         - an internal node is keccak256(left ‖ right) over the 64 raw bytes;
///         - a proof lists the siblings from the leaf level upward; bit i of the leaf index
///           says whether the node at level i is a right child.
/// @dev The depth is fixed by the leaf count, so a proof of the wrong length is rejected and an
///      internal node can never be passed off as a leaf.
library MerkleLib {
    /// @notice Tree depth for `leafCount` leaves: ceil(log2(leafCount)), 0 for one leaf.
    /// @param leafCount Number of leaves before padding (at least 1).
    function depthFor(uint256 leafCount) internal pure returns (uint256 depth) {
        uint256 width = 1;
        while (width < leafCount) {
            width <<= 1;
            depth += 1;
        }
    }

    /// @notice Fold `leaf` at `index` up through `proof` to the root it implies.
    /// @param leaf The leaf value.
    /// @param index The leaf's position.
    /// @param proof Sibling hashes, leaf level first.
    function rootFrom(bytes32 leaf, uint256 index, bytes32[] memory proof) internal pure returns (bytes32 node) {
        node = leaf;
        for (uint256 i = 0; i < proof.length; i++) {
            if ((index >> i) & 1 == 1) {
                node = _hashPair(proof[i], node);
            } else {
                node = _hashPair(node, proof[i]);
            }
        }
    }

    /// @notice Whether `leaf` sits at `index` of the `leafCount`-leaf tree with root `root`.
    /// @param committedRoot The committed root.
    /// @param leafCount Number of leaves the root was built over (before padding).
    /// @param leaf The claimed leaf value.
    /// @param index The claimed position (must be < leafCount).
    /// @param proof Sibling hashes, leaf level first (length must equal depthFor(leafCount)).
    function verify(bytes32 committedRoot, uint256 leafCount, bytes32 leaf, uint256 index, bytes32[] memory proof)
        internal
        pure
        returns (bool)
    {
        if (index >= leafCount) return false;
        if (proof.length != depthFor(leafCount)) return false;
        return rootFrom(leaf, index, proof) == committedRoot;
    }

    /// @notice The root over `leaves` (zero-padded to a power of two). For tests and tooling.
    /// @param leaves The leaves (at least one).
    function computeRoot(bytes32[] memory leaves) internal pure returns (bytes32) {
        uint256 width = 1 << depthFor(leaves.length);
        bytes32[] memory level = new bytes32[](width);
        for (uint256 i = 0; i < leaves.length; i++) {
            level[i] = leaves[i];
        }
        while (width > 1) {
            width >>= 1;
            for (uint256 i = 0; i < width; i++) {
                level[i] = _hashPair(level[2 * i], level[2 * i + 1]);
            }
        }
        return level[0];
    }

    function _hashPair(bytes32 left, bytes32 right) private pure returns (bytes32 out) {
        assembly ("memory-safe") {
            mstore(0x00, left)
            mstore(0x20, right)
            out := keccak256(0x00, 0x40)
        }
    }
}
