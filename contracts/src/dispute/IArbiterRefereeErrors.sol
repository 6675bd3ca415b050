// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {RulingPhase} from "./DisputeTypes.sol";

/// @title IArbiterRefereeErrors
/// @notice The errors of the staked arbiter committee (ArbiterReferee), one sentence each on
///         when it is raised (OpenZeppelin draft-IERC6093 style). chain/errors.py turns each
///         into a Python exception of the same name, enum arguments decoded to the IntEnum.
interface IArbiterRefereeErrors {
    /// @dev The caller is not the deployer, the only account that may bind the game.
    /// @param caller The account that called.
    error NotOwner(address caller);

    /// @dev The referee is bound to a game contract once; it already is.
    /// @param game The bound game.
    error GameAlreadySet(address game);

    /// @dev Only the bound game may request rulings.
    /// @param caller The account that called.
    error NotGame(address caller);

    /// @dev A constructor parameter is out of range.
    /// @param name Which parameter.
    /// @param value The value given.
    error InvalidRefereeParameter(string name, uint256 value);

    /// @dev The membership delay must outlast the longest game the bound DisputeGame allows,
    ///      or a member who joined during a game could vote on it.
    /// @param delay MEMBERSHIP_DELAY.
    /// @param longestGame The longest the game can run before it asks for a ruling.
    error MembershipDelayTooShort(uint64 delay, uint64 longestGame);

    /// @dev `account` is already a member (or has not withdrawn its exit).
    /// @param account The account.
    error AlreadyMember(address account);

    /// @dev The committee already has MAX_ARBITERS members.
    /// @param max MAX_ARBITERS.
    error CommitteeFull(uint256 max);

    /// @dev `account` is not a member with a stake.
    /// @param account The account.
    error NotArbiter(address account);

    /// @dev `account` may not vote on this game: it was not an active member when the ruling
    ///      was requested (joined later, exited before, or was slashed since).
    /// @param gameId The game.
    /// @param account The account.
    error NotEligible(uint256 gameId, address account);

    /// @dev `account` already voted on this game (votes are final).
    /// @param gameId The game.
    /// @param account The account.
    error AlreadyVoted(uint256 gameId, address account);

    /// @dev No ruling was requested for the game, or it was already settled.
    /// @param gameId The game.
    error NoPendingRuling(uint256 gameId);

    /// @dev The call needs the ruling in `expected` but it is in `actual`.
    /// @param gameId The game.
    /// @param expected The phase the call needs.
    /// @param actual The phase the ruling is in.
    error WrongRulingPhase(uint256 gameId, RulingPhase expected, RulingPhase actual);

    /// @dev The member already asked to leave; it may withdraw at `exitAt` plus the
    ///      settlement bound.
    /// @param account The member.
    /// @param exitAt When its membership ends.
    error ExitPending(address account, uint64 exitAt);

    /// @dev The stake can be withdrawn only from `availableAt` (every game the member could
    ///      vote on is settled by then, so it can still be slashed until then).
    /// @param account The member.
    /// @param availableAt First timestamp at which the stake may be withdrawn.
    error StakeLocked(address account, uint64 availableAt);

    /// @dev `account` has no credit to withdraw from the referee.
    /// @param account The account.
    error NoRefereeCredit(address account);
}
