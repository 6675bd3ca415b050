// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {MerkleLib} from "../src/lib/MerkleLib.sol";

/// @title MerkleHarness
/// @notice Test-only: exposes MerkleLib so Python can cross-check repops/merkle.py on random inputs.
contract MerkleHarness {
    /// @notice MerkleLib.computeRoot.
    function root(bytes32[] calldata leaves) external pure returns (bytes32) {
        return MerkleLib.computeRoot(leaves);
    }

    /// @notice MerkleLib.verify.
    function verify(bytes32 root_, uint256 leafCount, bytes32 leaf, uint256 index, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        return MerkleLib.verify(root_, leafCount, leaf, index, proof);
    }
}
