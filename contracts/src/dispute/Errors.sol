// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {GameKind, GameStatus, Level, Party} from "./DisputeTypes.sol";

/// @title DisputeGame errors (the referee's are in IArbiterRefereeErrors.sol)
/// @notice chain/errors.py turns each into a Python exception of the same name.

/// @notice `gameId` does not name a game.
error UnknownGame(uint256 gameId);
/// @notice The game is in `actual`; the call needs `expected`.
error WrongGameStatus(uint256 gameId, GameStatus expected, GameStatus actual);
/// @notice The game is at `actual`; the call needs `expected`.
error WrongLevel(uint256 gameId, Level expected, Level actual);
/// @notice It is `turn`'s turn, so `caller` may not move now.
error NotYourTurn(uint256 gameId, Party turn, address caller);
/// @notice Only `party` of the game may make this move; `caller` is not it.
error NotParty(uint256 gameId, Party party, address caller);
/// @notice `party`'s clock ran out; the game can only be ended by timeout.
error ClockExpired(uint256 gameId, Party party);
/// @notice `party` still has `remaining` seconds: no timeout yet.
error ClockNotExpired(uint256 gameId, Party party, uint64 remaining);
/// @notice Arity must be within [min, max].
error InvalidArity(uint8 arity, uint8 min, uint8 max);
/// @notice A dissection must post `expected` hashes (and proofs at CHECKPOINT level).
error WrongHashCount(uint256 gameId, uint256 expected, uint256 actual);
/// @notice The hashes passed to select are not the ones the solver posted.
error RoundMismatch(uint256 gameId);
/// @notice The chosen part is not below the number of parts.
error InvalidPart(uint256 gameId, uint256 part, uint256 parts);
/// @notice A Merkle proof for checkpoint `index` does not match the trace root.
error InvalidProof(uint256 gameId, uint256 index);
/// @notice A targeted opening must name adjacent committed checkpoints.
error InvalidCheckpointIndex(uint256 jobId, uint256 index, uint256 count);
/// @notice A dissection point's hash contradicts a value the solver already committed to.
error InconsistentHash(uint256 gameId, uint64 position);
/// @notice The operator count must be between 1 and MAX_OPS.
error InvalidOpCount(uint64 opCount, uint64 maxOps);
/// @notice The OP level was already opened (opCount is set).
error OpLevelAlreadyOpen(uint256 gameId);
/// @notice The OP level must be opened (opCount set) before dissecting it.
error OpLevelNotOpen(uint256 gameId);
/// @notice The operand bundle CID must not be empty.
error EmptyBundle(uint256 gameId);
/// @notice Only the referee may report a ruling.
error NotReferee(address caller);
/// @notice A challenger may not challenge its own result.
error SelfChallenge(uint256 jobId, address solver);
/// @notice Each party's clock budget must be positive.
error ZeroClockBudget();
/// @notice The move belongs to games of kind `expected`; this game is `actual`.
error WrongKind(uint256 gameId, GameKind expected, GameKind actual);
/// @notice The revealed length and chunk root do not hash to the revealed file root.
error FileRootMismatch(uint256 gameId, bytes32 fileRoot);
/// @notice The posted chunk is not chunk `chunk` of the committed file.
error InvalidChunk(uint256 gameId, uint64 chunk);
/// @notice The proven last leaf equals the result's finalStateHash: nothing to prove.
error FinalStateMatches(uint256 jobId, bytes32 lastLeaf);
