// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {GameKind, GameStatus, Level, Party} from "./DisputeTypes.sol";

/// @title IDisputeGameErrors
/// @notice Every revert of DisputeGame (the referee's are in IArbiterRefereeErrors, the market's
///         in IJobMarketErrors), in the style of OpenZeppelin's draft-IERC6093. chain/errors.py
///         turns each into a Python exception of the same name, enum arguments decoded to the
///         generated IntEnum.
interface IDisputeGameErrors {
    /// @dev `gameId` does not name a game.
    /// @param gameId The game id asked for.
    error UnknownGame(uint256 gameId);

    /// @dev The game is in `actual`; the call needs it in `expected`.
    /// @param gameId The game.
    /// @param expected The status the call needs.
    /// @param actual The status the game is in.
    error WrongGameStatus(uint256 gameId, GameStatus expected, GameStatus actual);

    /// @dev The game is bisecting at `actual`; the move belongs to `expected`.
    /// @param gameId The game.
    /// @param expected The level the move needs.
    /// @param actual The level the game is at.
    error WrongLevel(uint256 gameId, Level expected, Level actual);

    /// @dev It is the other party's turn.
    /// @param gameId The game.
    /// @param turn The party whose turn it is.
    /// @param caller The account that tried to move.
    error NotYourTurn(uint256 gameId, Party turn, address caller);

    /// @dev Only one party of the game may make this move, and the caller is not it.
    /// @param gameId The game.
    /// @param party The party that may make the move.
    /// @param caller The account that tried to move.
    error NotParty(uint256 gameId, Party party, address caller);

    /// @dev The mover's clock ran out; the game can only be ended by timeout.
    /// @param gameId The game.
    /// @param party The party whose clock ran out.
    error ClockExpired(uint256 gameId, Party party);

    /// @dev No timeout yet: the party to move still has time on its clock.
    /// @param gameId The game.
    /// @param party The party to move.
    /// @param remaining The seconds it has left.
    error ClockNotExpired(uint256 gameId, Party party, uint64 remaining);

    /// @dev A dissection's arity (parts per round) must be within [min, max].
    /// @param arity The arity asked for.
    /// @param min MIN_ARITY.
    /// @param max MAX_ARITY.
    error InvalidArity(uint8 arity, uint8 min, uint8 max);

    /// @dev A dissection posts the wrong number of hashes (or of Merkle proofs at CHECKPOINT
    ///      level).
    /// @param gameId The game.
    /// @param expected How many the round needs.
    /// @param actual How many were posted.
    error WrongHashCount(uint256 gameId, uint256 expected, uint256 actual);

    /// @dev The hashes passed to select are not the ones the solver posted this round.
    /// @param gameId The game.
    error RoundMismatch(uint256 gameId);

    /// @dev The chosen part is not below the number of parts.
    /// @param gameId The game.
    /// @param part The part chosen.
    /// @param parts The number of parts of the round.
    error InvalidPart(uint256 gameId, uint256 part, uint256 parts);

    /// @dev A Merkle proof does not match the root it must open (the trace root or the files
    ///      root).
    /// @param gameId The game.
    /// @param index The leaf (checkpoint) the proof was for.
    error InvalidProof(uint256 gameId, uint256 index);

    /// @dev A checkpoint index is outside the job's committed checkpoints (or a targeted
    ///      opening names no adjacent pair of them).
    /// @param jobId The job.
    /// @param index The checkpoint index given.
    /// @param count The job's checkpointCount.
    error InvalidCheckpointIndex(uint256 jobId, uint256 index, uint256 count);

    /// @dev A dissection point's hash contradicts a value the solver already committed to.
    /// @param gameId The game.
    /// @param position The position whose hash contradicts.
    error InconsistentHash(uint256 gameId, uint64 position);

    /// @dev The operator count of a step must be between 1 and MAX_OPS.
    /// @param opCount The count given.
    /// @param maxOps MAX_OPS.
    error InvalidOpCount(uint64 opCount, uint64 maxOps);

    /// @dev The OP level was already opened (its operator count is set).
    /// @param gameId The game.
    error OpLevelAlreadyOpen(uint256 gameId);

    /// @dev The OP level must be opened (operator count set) before it is dissected.
    /// @param gameId The game.
    error OpLevelNotOpen(uint256 gameId);

    /// @dev The operand bundle CID (or the revealed file CID) must not be empty.
    /// @param gameId The game.
    error EmptyBundle(uint256 gameId);

    /// @dev Only the referee may report a ruling or a void.
    /// @param caller The account that called.
    error NotReferee(address caller);

    /// @dev A solver may not challenge its own result.
    /// @param jobId The job.
    /// @param solver The job's solver (the caller).
    error SelfChallenge(uint256 jobId, address solver);

    /// @dev Each party's clock budget must be positive.
    error ZeroClockBudget();

    /// @dev The move belongs to games of another kind.
    /// @param gameId The game.
    /// @param expected The kind the move needs.
    /// @param actual The game's kind.
    error WrongKind(uint256 gameId, GameKind expected, GameKind actual);

    /// @dev The revealed length and chunk root do not hash to the revealed file root.
    /// @param gameId The game.
    /// @param fileRoot The file root revealed.
    error FileRootMismatch(uint256 gameId, bytes32 fileRoot);

    /// @dev The posted chunk is not the chunk the game asks for in the committed file.
    /// @param gameId The game.
    /// @param chunk The chunk index the game asks for.
    error InvalidChunk(uint256 gameId, uint64 chunk);

    /// @dev The proven last leaf equals the result's finalStateHash: nothing to prove.
    /// @param jobId The job.
    /// @param lastLeaf The last leaf of the trace root, as proven.
    error FinalStateMatches(uint256 jobId, bytes32 lastLeaf);
}
