// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title WorkToken
/// @notice The ERC-20 (with EIP-2612 permit) in which Assay escrows rewards, stakes and bonds.
/// @dev Only holders of MINTER_ROLE (the deployer on a devnet, acting as faucet) can mint.
///      Burning is open to any holder: JobMarket burns the slashed share of a loser's stake,
///      and `totalMinted` lets anyone check that minted = supply + burned.
contract WorkToken is ERC20, ERC20Burnable, ERC20Permit, AccessControl {
    /// @notice Role allowed to mint new tokens (a devnet faucet or the deployer).
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice Every token ever minted; with totalSupply() this gives the total burned.
    uint256 public totalMinted;

    /// @param admin Receives DEFAULT_ADMIN_ROLE and MINTER_ROLE.
    constructor(address admin) ERC20("Assay Work Token", "WORK") ERC20Permit("Assay Work Token") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(MINTER_ROLE, admin);
    }

    /// @notice Mint `amount` tokens to `to`. Only MINTER_ROLE.
    /// @param to Recipient.
    /// @param amount Amount in the smallest unit.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        totalMinted += amount;
        _mint(to, amount);
    }

    /// @notice Tokens destroyed so far (minted minus current supply).
    function totalBurned() external view returns (uint256) {
        return totalMinted - totalSupply();
    }
}
