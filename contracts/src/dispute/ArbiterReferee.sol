// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ZeroAddress} from "../market/Errors.sol";
import {DisputeGame} from "./DisputeGame.sol";
import "./Errors.sol";
import {IOperatorReferee} from "./IOperatorReferee.sol";

/// @title ArbiterReferee
/// @notice A committee of registered arbiters rules on single-link disputes. Any registered
///         arbiter may rule within RULING_WINDOW of the request; the ruling carries the hash
///         the arbiter computed, so anyone can re-execute the link from the public bundle and
///         prove a false ruling. If nobody rules in time, anyone may void the game: the
///         challenger's bond is returned and nobody is slashed (an honest party never loses
///         for the referee's silence).
contract ArbiterReferee is IOperatorReferee {
    /// @notice Manages the arbiter registry and binds the game, once.
    address public immutable OWNER;
    /// @notice Seconds an arbiter has to rule after a request.
    uint64 public immutable RULING_WINDOW;

    /// @notice The game whose rulings this referee gives (set once).
    DisputeGame public game;
    /// @notice Registered arbiters.
    mapping(address account => bool registered) public isArbiter;
    /// @notice Ruling deadline per game awaiting a ruling (0: none pending).
    mapping(uint256 gameId => uint64 deadline) public rulingDeadline;

    /// @notice The referee was bound to `game`.
    event GameSet(address indexed game);
    /// @notice `arbiter` joined the committee.
    event ArbiterRegistered(address indexed arbiter);
    /// @notice `arbiter` left the committee.
    event ArbiterRemoved(address indexed arbiter);
    /// @notice A ruling on `gameId` is due by `deadline`.
    event RulingPending(uint256 indexed gameId, uint64 deadline);
    /// @notice `arbiter` ruled; `computedHash` is the link value its re-execution produced.
    event Ruled(uint256 indexed gameId, address indexed arbiter, bool solverWon, bytes32 computedHash);
    /// @notice No ruling came in time; the game was voided.
    event RulingExpired(uint256 indexed gameId);

    /// @param owner Manages arbiters and binds the game.
    /// @param rulingWindow Seconds arbiters have per ruling (> 0).
    constructor(address owner, uint64 rulingWindow) {
        if (owner == address(0)) revert ZeroAddress();
        if (rulingWindow == 0) revert ZeroClockBudget();
        OWNER = owner;
        RULING_WINDOW = rulingWindow;
    }

    /// @notice Bind the game contract. Once, by the owner.
    /// @param game_ The DisputeGame using this referee.
    function setGame(DisputeGame game_) external {
        if (msg.sender != OWNER) revert NotOwner(msg.sender);
        if (address(game) != address(0)) revert GameAlreadySet(address(game));
        if (address(game_) == address(0)) revert ZeroAddress();
        game = game_;
        emit GameSet(address(game_));
    }

    /// @notice Add an arbiter. Only the owner.
    /// @param arbiter The account.
    function registerArbiter(address arbiter) external {
        if (msg.sender != OWNER) revert NotOwner(msg.sender);
        if (arbiter == address(0)) revert ZeroAddress();
        isArbiter[arbiter] = true;
        emit ArbiterRegistered(arbiter);
    }

    /// @notice Remove an arbiter. Only the owner.
    /// @param arbiter The account.
    function removeArbiter(address arbiter) external {
        if (msg.sender != OWNER) revert NotOwner(msg.sender);
        if (!isArbiter[arbiter]) revert NotArbiter(arbiter);
        isArbiter[arbiter] = false;
        emit ArbiterRemoved(arbiter);
    }

    /// @inheritdoc IOperatorReferee
    function requestRuling(uint256 gameId) external {
        if (msg.sender != address(game)) revert NotGame(msg.sender);
        uint64 deadline = uint64(block.timestamp) + RULING_WINDOW;
        rulingDeadline[gameId] = deadline;
        emit RulingPending(gameId, deadline);
    }

    /// @notice Rule on a pending game. Only a registered arbiter, before the deadline.
    /// @param gameId The game.
    /// @param solverWon Whether re-executing the link reproduced the solver's value.
    /// @param computedHash The link value the re-execution produced.
    function rule(uint256 gameId, bool solverWon, bytes32 computedHash) external {
        if (!isArbiter[msg.sender]) revert NotArbiter(msg.sender);
        uint64 deadline = rulingDeadline[gameId];
        if (deadline == 0) revert NoPendingRuling(gameId);
        if (block.timestamp > deadline) revert RulingWindowClosed(gameId, deadline);
        delete rulingDeadline[gameId];
        emit Ruled(gameId, msg.sender, solverWon, computedHash);
        game.reportRuling(gameId, solverWon);
    }

    /// @notice Void a game whose ruling deadline passed with no ruling. Anyone may call.
    /// @param gameId The game.
    function expireRuling(uint256 gameId) external {
        uint64 deadline = rulingDeadline[gameId];
        if (deadline == 0) revert NoPendingRuling(gameId);
        if (block.timestamp <= deadline) revert RulingWindowOpen(gameId, deadline);
        delete rulingDeadline[gameId];
        emit RulingExpired(gameId);
        game.reportVoid(gameId);
    }
}
