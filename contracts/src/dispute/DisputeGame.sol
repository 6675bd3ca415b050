// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {ArtifactLib} from "../lib/ArtifactLib.sol";
import {ClockLib} from "../lib/ClockLib.sol";
import {DissectionLib} from "../lib/DissectionLib.sol";
import {MerkleLib} from "../lib/MerkleLib.sol";
import {PositionLib} from "../lib/PositionLib.sol";
import {IJobMarketErrors} from "../market/IJobMarketErrors.sol";
import {DisputeTerms, JobMarket} from "../market/JobMarket.sol";
import {JobStatus} from "../market/JobTypes.sol";
import {ArtifactClaim, Game, GameKind, GameStatus, Level, Party} from "./DisputeTypes.sol";
import {IDisputeGameErrors} from "./IDisputeGameErrors.sol";
import {IOperatorReferee} from "./IOperatorReferee.sol";

/// @title DisputeGame
/// @notice Refereed delegation over a committed training trace (DESIGN.md §6). One game per
///         challenge, any number of concurrent games per result. The solver dissects the
///         disputed interval into d parts; the challenger picks the first part it disagrees
///         with; CHECKPOINT -> STEP -> OP until one operator-chain link is left, which the
///         referee re-executes from the solver's operand bundle. Chess clocks bound every
///         turn; anyone may end a game whose mover ran out of time. Outcomes are reported to
///         JobMarket, which holds and moves all the tokens.
/// @dev Only hashes and interval bounds are stored; a dissection's hashes travel in calldata
///      and are pinned by `roundHash` until the challenger selects.
contract DisputeGame is IDisputeGameErrors, ReentrancyGuard {
    /// @notice Smallest and largest d a challenger may choose.
    uint8 public constant MIN_ARITY = 2;
    uint8 public constant MAX_ARITY = 16;
    /// @notice Largest operator count per step the OP level accepts.
    uint64 public constant MAX_OPS = 1 << 40;

    /// @notice The market whose results are disputed and which settles outcomes.
    JobMarket public immutable MARKET;
    /// @notice Rules on the single disputed link.
    IOperatorReferee public immutable REFEREE;
    /// @notice Seconds each party may spend over the whole game.
    uint64 public immutable CLOCK_BUDGET;
    /// @notice Seconds added to both clocks on entering a new level (replaying takes compute).
    uint64 public immutable LEVEL_EXTENSION;

    /// @notice Number of games created; ids run from 1.
    uint256 public gameCount;
    mapping(uint256 gameId => Game) internal _games;
    mapping(uint256 gameId => ArtifactClaim) internal _claims;

    /// @notice A challenger opened a game against a job's result.
    event GameCreated(
        uint256 indexed gameId,
        uint256 indexed jobId,
        address indexed challenger,
        GameKind kind,
        Level level,
        uint64 base,
        uint64 lo,
        uint64 hi,
        uint8 arity
    );
    /// @notice The solver split [lo, hi] and posted the interior boundaries' hashes.
    event Dissected(uint256 indexed gameId, Level level, uint64 lo, uint64 hi, bytes32[] hashes);
    /// @notice The challenger picked part `part`; the game now disputes [lo, hi].
    event Selected(uint256 indexed gameId, uint256 part, uint64 lo, uint64 hi);
    /// @notice The game descended to `level` over [lo, hi] (base: checkpoint or step index).
    event LevelEntered(uint256 indexed gameId, Level level, uint64 base, uint64 lo, uint64 hi);
    /// @notice The solver opened the OP level with M operators and its h_M.
    event OpLevelOpened(uint256 indexed gameId, uint64 opCount, bytes32 lastOpHash, bytes32 endHash);
    /// @notice The game is down to one link; the solver must post its operand bundle.
    event BundleRequested(uint256 indexed gameId, Level level, uint64 base, uint64 position);
    /// @notice The solver posted the operand bundle.
    event BundlePosted(uint256 indexed gameId, string bundleCid);
    /// @notice The referee was asked to rule on [lo, lo+1] at `level`.
    event RulingRequested(uint256 indexed gameId, Level level, uint64 base, uint64 position);
    /// @notice Availability game: the solver must post chunk `chunk` of checkpoint `checkpoint`.
    event AvailabilityRequested(uint256 indexed gameId, uint64 checkpoint, uint64 chunk);
    /// @notice The solver posted the chunk (empty when `chunk` lies past the file's end).
    event AvailabilityAnswered(
        uint256 indexed gameId, uint64 checkpoint, uint64 chunk, uint64 length, bytes32 chunkRoot, bytes data
    );
    /// @notice File game: checkpoint `checkpoint`'s file is said not to load to its state hash.
    event FileChallenged(uint256 indexed gameId, uint64 checkpoint);
    /// @notice The solver revealed checkpoint `checkpoint`'s state hash, file root and CID.
    event FileRevealed(uint256 indexed gameId, uint64 checkpoint, bytes32 stateHash, bytes32 fileRoot, string fileCid);
    /// @notice Leaf m of the trace root was shown to differ from the result's finalStateHash.
    event FinalMismatchProven(uint256 indexed gameId, bytes32 lastLeaf, bytes32 finalStateHash);
    /// @notice `party` ran out of time and lost.
    event TimedOut(uint256 indexed gameId, Party party);
    /// @notice The game ended with `status`.
    event GameResolved(uint256 indexed gameId, uint256 indexed jobId, GameStatus status);

    /// @param market The JobMarket (must register this contract as its dispute game).
    /// @param referee The referee for single-link rulings.
    /// @param clockBudget Seconds per party for the whole game (> 0).
    /// @param levelExtension Seconds added to both clocks at each level boundary.
    constructor(JobMarket market, IOperatorReferee referee, uint64 clockBudget, uint64 levelExtension) {
        if (address(market) == address(0) || address(referee) == address(0)) revert IJobMarketErrors.ZeroAddress();
        if (clockBudget == 0) revert ZeroClockBudget();
        MARKET = market;
        REFEREE = referee;
        CLOCK_BUDGET = clockBudget;
        LEVEL_EXTENSION = levelExtension;
    }

    // ------------------------------------------------------------------ opening

    /// @notice Challenge a submitted result from the top, with nothing from the solver: a
    ///         CHECKPOINT-level game over the whole trace, from the spec hash (position 0) to
    ///         the result's finalStateHash (position checkpointCount). Every value the game needs
    ///         later is the solver's to reveal, with proofs, under its clock. Locks the job's
    ///         challenger bond (approve JobMarket first).
    /// @param jobId The job.
    /// @param arity d, the number of parts per dissection.
    /// @return gameId The new game.
    function challenge(uint256 jobId, uint8 arity) external nonReentrant returns (uint256 gameId) {
        _checkArity(arity);
        DisputeTerms memory terms = _openTerms(jobId);
        gameId = ++gameCount;
        Game storage g = _create(gameId, jobId, terms.solver, GameKind.Trace, arity);
        g.level = Level.CHECKPOINT;
        g.hi = uint64(terms.checkpointCount);
        g.hashLo = terms.specHash;
        g.hashHi = terms.finalStateHash;
        _emitCreated(gameId, g);
        MARKET.openDispute(jobId, msg.sender);
    }

    /// @notice Challenge one checkpoint interval directly at STEP level: the challenger agrees
    ///         with checkpoint `index` and disagrees with checkpoint `index + 1`.
    /// @param jobId The job.
    /// @param arity d, the number of parts per dissection.
    /// @param index The agreed checkpoint (0-based leaf index).
    /// @param leaves The solver's state hashes at checkpoints index and index + 1.
    /// @param proofA Merkle proof of leaves[0].
    /// @param proofB Merkle proof of leaves[1].
    /// @return gameId The new game.
    function challengeAt(
        uint256 jobId,
        uint8 arity,
        uint64 index,
        bytes32[2] calldata leaves,
        bytes32[] calldata proofA,
        bytes32[] calldata proofB
    ) external nonReentrant returns (uint256 gameId) {
        _checkArity(arity);
        DisputeTerms memory terms = _openTerms(jobId);
        if (uint256(index) + 1 >= terms.checkpointCount) {
            revert InvalidCheckpointIndex(jobId, index, terms.checkpointCount);
        }
        gameId = ++gameCount;
        _verifyLeaf(gameId, terms, leaves[0], index, proofA);
        _verifyLeaf(gameId, terms, leaves[1], uint256(index) + 1, proofB);
        Game storage g = _create(gameId, jobId, terms.solver, GameKind.Trace, arity);
        g.level = Level.STEP;
        g.base = index;
        g.hi = terms.stepsPerCheckpoint;
        g.hashLo = leaves[0];
        g.hashHi = leaves[1];
        _emitCreated(gameId, g);
        MARKET.openDispute(jobId, msg.sender);
        if (g.hi == 1) _descend(gameId, g, terms.stepsPerCheckpoint);
    }

    /// @notice Ask the solver to post chunk `chunk` of checkpoint `checkpoint`'s committed file
    ///         (ArtifactLib), on-chain, before its clock runs out; silence loses its stake. An
    ///         answer wins the bond's winner share for the solver (its gas compensation).
    /// @dev The challenger names the chunk: it asks for what it could not fetch. An honest
    ///      solver can answer every index, so the choice cannot hurt it; an index past the
    ///      file's end is answered by revealing the length alone.
    /// @param jobId The job.
    /// @param checkpoint The checkpoint index (0..checkpointCount-1).
    /// @param chunk The chunk index.
    /// @return gameId The new game.
    function challengeAvailability(uint256 jobId, uint64 checkpoint, uint64 chunk)
        external
        nonReentrant
        returns (uint256 gameId)
    {
        DisputeTerms memory terms = _openTerms(jobId);
        _checkCheckpoint(jobId, checkpoint, terms.checkpointCount);
        gameId = ++gameCount;
        Game storage g = _create(gameId, jobId, terms.solver, GameKind.Availability, 0);
        _claims[gameId].checkpoint = checkpoint;
        _claims[gameId].chunk = chunk;
        _emitCreated(gameId, g);
        emit AvailabilityRequested(gameId, checkpoint, chunk);
        MARKET.openDispute(jobId, msg.sender);
    }

    /// @notice Claim that checkpoint `checkpoint`'s committed file does not load to its
    ///         committed state hash. The solver must reveal both (with proofs) and a CID holding
    ///         the file; the referee then fetches it, checks it against the file root, loads it
    ///         and compares the state hash. Silence, an unfetchable or mismatching file lose.
    /// @param jobId The job.
    /// @param checkpoint The checkpoint index (0..checkpointCount-1).
    /// @return gameId The new game.
    function challengeFile(uint256 jobId, uint64 checkpoint) external nonReentrant returns (uint256 gameId) {
        DisputeTerms memory terms = _openTerms(jobId);
        _checkCheckpoint(jobId, checkpoint, terms.checkpointCount);
        gameId = ++gameCount;
        Game storage g = _create(gameId, jobId, terms.solver, GameKind.File, 0);
        _claims[gameId].checkpoint = checkpoint;
        _emitCreated(gameId, g);
        emit FileChallenged(gameId, checkpoint);
        MARKET.openDispute(jobId, msg.sender);
    }

    /// @notice Prove that the result's finalStateHash is not leaf checkpointCount-1 of its trace
    ///         root: the solver's commitments disagree, so it loses at once. The caller's bond
    ///         is locked and returned in the same call with the winner's share.
    /// @param jobId The job.
    /// @param lastLeaf Leaf checkpointCount-1 of the trace root.
    /// @param proof Its Merkle proof.
    /// @return gameId The (already resolved) game.
    function proveFinalMismatch(uint256 jobId, bytes32 lastLeaf, bytes32[] calldata proof)
        external
        nonReentrant
        returns (uint256 gameId)
    {
        DisputeTerms memory terms = _openTerms(jobId);
        gameId = ++gameCount;
        _verifyLeaf(gameId, terms, lastLeaf, terms.checkpointCount - 1, proof);
        // INVARIANT: only a proven disagreement between the two commitments slashes here.
        if (lastLeaf == terms.finalStateHash) revert FinalStateMatches(jobId, lastLeaf);
        Game storage g = _create(gameId, jobId, terms.solver, GameKind.Final, 0);
        g.hashLo = terms.finalStateHash;
        g.hashHi = lastLeaf;
        _emitCreated(gameId, g);
        emit FinalMismatchProven(gameId, lastLeaf, terms.finalStateHash);
        MARKET.openDispute(jobId, msg.sender);
        _finish(gameId, g, false);
    }

    // ------------------------------------------------------------------- moves

    /// @notice The solver splits the disputed interval and posts the interior boundaries'
    ///         hashes (with Merkle proofs at CHECKPOINT level, none below).
    /// @param gameId The game.
    /// @param hashes One hash per interior boundary, in order.
    /// @param proofs CHECKPOINT level: a Merkle proof per hash; otherwise empty.
    function dissect(uint256 gameId, bytes32[] calldata hashes, bytes32[][] calldata proofs) external {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.Trace);
        _requireMove(gameId, g, GameStatus.InProgress, Party.Solver);
        if (g.level == Level.OP && g.opCount == 0) revert OpLevelNotOpen(gameId);
        uint256 count = DissectionLib.parts(g.lo, g.hi, g.arity);
        if (hashes.length != count - 1) revert WrongHashCount(gameId, count - 1, hashes.length);
        if (g.level == Level.CHECKPOINT) {
            _checkCheckpointProofs(gameId, g, count, hashes, proofs);
        } else {
            if (proofs.length != 0) revert WrongHashCount(gameId, 0, proofs.length);
            if (g.level == Level.OP) _checkLastOpHash(gameId, g, count, hashes);
        }
        _charge(gameId, g);
        g.roundHash = keccak256(abi.encode(hashes));
        g.turn = Party.Challenger;
        g.rounds += 1;
        emit Dissected(gameId, g.level, g.lo, g.hi, hashes);
    }

    /// @notice The challenger picks the first part it disagrees with: it agrees with the
    ///         part's start and disagrees with its end.
    /// @param gameId The game.
    /// @param part Index of the part, 0..parts-1.
    /// @param hashes The solver's dissection hashes, exactly as posted.
    function select(uint256 gameId, uint256 part, bytes32[] calldata hashes) external nonReentrant {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.Trace);
        _requireMove(gameId, g, GameStatus.InProgress, Party.Challenger);
        if (keccak256(abi.encode(hashes)) != g.roundHash) revert RoundMismatch(gameId);
        uint256 count = DissectionLib.parts(g.lo, g.hi, g.arity);
        if (part >= count) revert InvalidPart(gameId, part, count);
        _charge(gameId, g);
        uint64 newLo = DissectionLib.boundary(g.lo, g.hi, count, part);
        uint64 newHi = DissectionLib.boundary(g.lo, g.hi, count, part + 1);
        if (part > 0) g.hashLo = hashes[part - 1];
        if (part + 1 < count) g.hashHi = hashes[part];
        g.lo = newLo;
        g.hi = newHi;
        g.roundHash = bytes32(0);
        g.turn = Party.Solver;
        emit Selected(gameId, part, newLo, newHi);
        if (newHi - newLo == 1) _descend(gameId, g, MARKET.disputeTerms(g.jobId).stepsPerCheckpoint);
    }

    /// @notice The solver opens the OP level of the disputed step: its operator count M and
    ///         its last link h_M. The level's end value becomes sha256(h_M ‖ stateHash_{t+1}).
    /// @param gameId The game.
    /// @param opCount M, the number of operators in one training step.
    /// @param lastOpHash h_M, the solver's last operator-chain link.
    function openOpLevel(uint256 gameId, uint64 opCount, bytes32 lastOpHash) external {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.Trace);
        _requireMove(gameId, g, GameStatus.InProgress, Party.Solver);
        if (g.level != Level.OP) revert WrongLevel(gameId, Level.OP, g.level);
        if (g.opCount != 0) revert OpLevelAlreadyOpen(gameId);
        if (opCount == 0 || opCount > MAX_OPS) revert InvalidOpCount(opCount, MAX_OPS);
        _charge(gameId, g);
        bytes32 endHash = PositionLib.endLink(lastOpHash, g.hashHi);
        g.opCount = opCount;
        g.lastOpHash = lastOpHash;
        g.lo = 0;
        g.hi = PositionLib.opEnd(opCount);
        g.hashHi = endHash;
        emit OpLevelOpened(gameId, opCount, lastOpHash, endHash);
    }

    /// @notice The solver publishes the operand bundle for the single disputed link; the
    ///         referee is asked to rule.
    /// @param gameId The game.
    /// @param bundleCid IPFS CID of the operand bundle.
    function postBundle(uint256 gameId, string calldata bundleCid) external nonReentrant {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.Trace);
        _requireMove(gameId, g, GameStatus.AwaitingBundle, Party.Solver);
        if (bytes(bundleCid).length == 0) revert EmptyBundle(gameId);
        _charge(gameId, g);
        g.bundleCid = bundleCid;
        emit BundlePosted(gameId, bundleCid);
        _requestRuling(gameId, g);
    }

    /// @notice Answer an availability game: reveal the checkpoint's file root (proven against
    ///         filesRoot) and post the requested chunk (proven against the file root). A chunk
    ///         index past the file's end is answered with an empty chunk and no chunk proof.
    /// @param gameId The game.
    /// @param fileRoot The checkpoint's committed file root.
    /// @param filesProof MerkleLib proof of fileRoot at the checkpoint's index under filesRoot.
    /// @param length The file's size in bytes.
    /// @param chunkRoot The file's chunk-tree root.
    /// @param data The chunk's bytes.
    /// @param chunkProof MerkleLib proof of keccak256(data) under chunkRoot.
    function answerAvailability(
        uint256 gameId,
        bytes32 fileRoot,
        bytes32[] calldata filesProof,
        uint64 length,
        bytes32 chunkRoot,
        bytes calldata data,
        bytes32[] calldata chunkProof
    ) external nonReentrant {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.Availability);
        _requireMove(gameId, g, GameStatus.InProgress, Party.Solver);
        ArtifactClaim storage c = _claims[gameId];
        DisputeTerms memory terms = MARKET.disputeTerms(g.jobId);
        if (!MerkleLib.verify(terms.filesRoot, terms.checkpointCount, fileRoot, c.checkpoint, filesProof)) {
            revert InvalidProof(gameId, c.checkpoint);
        }
        if (ArtifactLib.fileRoot(length, chunkRoot) != fileRoot) revert FileRootMismatch(gameId, fileRoot);
        if (c.chunk < ArtifactLib.chunkCount(length)) {
            if (!ArtifactLib.verifyChunk(fileRoot, length, chunkRoot, c.chunk, data, chunkProof)) {
                revert InvalidChunk(gameId, c.chunk);
            }
        } else if (data.length != 0) {
            revert InvalidChunk(gameId, c.chunk);
        }
        _charge(gameId, g);
        emit AvailabilityAnswered(gameId, c.checkpoint, c.chunk, length, chunkRoot, data);
        _finish(gameId, g, true);
    }

    /// @notice Answer a file game: reveal the checkpoint's state hash (proven against traceRoot)
    ///         and file root (proven against filesRoot) and name a CID holding the file; the
    ///         referee is asked to rule.
    /// @param gameId The game.
    /// @param stateHash The checkpoint's committed state hash.
    /// @param stateProof Its Merkle proof under traceRoot.
    /// @param fileRoot The checkpoint's committed file root.
    /// @param filesProof Its Merkle proof under filesRoot.
    /// @param fileCid IPFS CID of the checkpoint file.
    function revealFile(
        uint256 gameId,
        bytes32 stateHash,
        bytes32[] calldata stateProof,
        bytes32 fileRoot,
        bytes32[] calldata filesProof,
        string calldata fileCid
    ) external nonReentrant {
        Game storage g = _game(gameId);
        _requireKind(gameId, g, GameKind.File);
        _requireMove(gameId, g, GameStatus.InProgress, Party.Solver);
        ArtifactClaim storage c = _claims[gameId];
        DisputeTerms memory terms = MARKET.disputeTerms(g.jobId);
        _verifyLeaf(gameId, terms, stateHash, c.checkpoint, stateProof);
        if (!MerkleLib.verify(terms.filesRoot, terms.checkpointCount, fileRoot, c.checkpoint, filesProof)) {
            revert InvalidProof(gameId, c.checkpoint);
        }
        if (bytes(fileCid).length == 0) revert EmptyBundle(gameId);
        _charge(gameId, g);
        g.hashLo = fileRoot;
        g.hashHi = stateHash;
        g.bundleCid = fileCid;
        emit FileRevealed(gameId, c.checkpoint, stateHash, fileRoot, fileCid);
        _requestRuling(gameId, g);
    }

    /// @notice End a game whose mover ran out of time; the mover loses. Callable by anyone.
    /// @param gameId The game.
    function timeout(uint256 gameId) external nonReentrant {
        Game storage g = _game(gameId);
        if (g.status != GameStatus.InProgress && g.status != GameStatus.AwaitingBundle) {
            revert WrongGameStatus(gameId, GameStatus.InProgress, g.status);
        }
        Party mover = g.turn;
        uint64 remaining = mover == Party.Solver ? g.solverClock : g.challengerClock;
        (bool expired,) = ClockLib.charge(remaining, g.turnStartedAt, block.timestamp);
        if (!expired) {
            revert ClockNotExpired(gameId, mover, remaining - uint64(block.timestamp - g.turnStartedAt));
        }
        emit TimedOut(gameId, mover);
        _finish(gameId, g, mover == Party.Challenger);
    }

    // ------------------------------------------------------------------ referee

    /// @notice The referee's ruling on a game awaiting one.
    /// @param gameId The game.
    /// @param solverWon Whether re-execution reproduced the solver's value.
    function reportRuling(uint256 gameId, bool solverWon) external nonReentrant {
        if (msg.sender != address(REFEREE)) revert NotReferee(msg.sender);
        Game storage g = _game(gameId);
        if (g.status != GameStatus.AwaitingRuling) {
            revert WrongGameStatus(gameId, GameStatus.AwaitingRuling, g.status);
        }
        _finish(gameId, g, solverWon);
    }

    /// @notice The referee could not rule in time: the game ends with no loser.
    /// @param gameId The game.
    function reportVoid(uint256 gameId) external nonReentrant {
        if (msg.sender != address(REFEREE)) revert NotReferee(msg.sender);
        Game storage g = _game(gameId);
        if (g.status != GameStatus.AwaitingRuling) {
            revert WrongGameStatus(gameId, GameStatus.AwaitingRuling, g.status);
        }
        g.status = GameStatus.Void;
        emit GameResolved(gameId, g.jobId, GameStatus.Void);
        MARKET.voidDispute(g.jobId, g.challenger);
    }

    // -------------------------------------------------------------------- views

    /// @notice The stored game (status Absent for an unknown id).
    /// @param gameId The game.
    function getGame(uint256 gameId) external view returns (Game memory) {
        return _games[gameId];
    }

    /// @notice What an Availability or File game asks for (zero for other kinds).
    /// @param gameId The game.
    function artifactClaim(uint256 gameId) external view returns (ArtifactClaim memory) {
        return _claims[gameId];
    }

    /// @notice The positions of the current dissection's boundaries (lo, interior..., hi).
    /// @param gameId The game.
    function boundaries(uint256 gameId) external view returns (uint64[] memory points) {
        Game storage g = _game(gameId);
        if (g.level == Level.OP && g.opCount == 0) revert OpLevelNotOpen(gameId);
        uint256 count = DissectionLib.parts(g.lo, g.hi, g.arity);
        points = new uint64[](count + 1);
        for (uint256 k = 0; k <= count; k++) {
            points[k] = DissectionLib.boundary(g.lo, g.hi, count, k);
        }
    }

    // ----------------------------------------------------------------- internal

    function _checkArity(uint8 arity) internal pure {
        if (arity < MIN_ARITY || arity > MAX_ARITY) revert InvalidArity(arity, MIN_ARITY, MAX_ARITY);
    }

    function _checkCheckpoint(uint256 jobId, uint64 checkpoint, uint32 checkpointCount) internal pure {
        if (checkpoint >= checkpointCount) revert InvalidCheckpointIndex(jobId, checkpoint, checkpointCount);
    }

    function _requireKind(uint256 gameId, Game storage g, GameKind kind) internal view {
        if (g.kind != kind) revert WrongKind(gameId, kind, g.kind);
    }

    function _openTerms(uint256 jobId) internal view returns (DisputeTerms memory terms) {
        terms = MARKET.disputeTerms(jobId);
        // A result can only be challenged once submitted (no trace root to prove against before).
        if (terms.status != JobStatus.Submitted) revert IJobMarketErrors.WrongStatus(jobId, JobStatus.Submitted, terms.status);
        if (msg.sender == terms.solver) revert SelfChallenge(jobId, terms.solver);
    }

    function _create(uint256 gameId, uint256 jobId, address solver, GameKind kind, uint8 arity)
        internal
        returns (Game storage g)
    {
        g = _games[gameId];
        g.jobId = jobId;
        g.kind = kind;
        g.solver = solver;
        g.challenger = msg.sender;
        g.status = GameStatus.InProgress;
        g.turn = Party.Solver;
        g.arity = arity;
        g.solverClock = CLOCK_BUDGET;
        g.challengerClock = CLOCK_BUDGET;
        g.turnStartedAt = uint64(block.timestamp);
    }

    function _verifyLeaf(
        uint256 gameId,
        DisputeTerms memory terms,
        bytes32 leaf,
        uint256 index,
        bytes32[] calldata proof
    ) internal pure {
        if (!MerkleLib.verify(terms.traceRoot, terms.checkpointCount, leaf, index, proof)) {
            revert InvalidProof(gameId, index);
        }
    }

    function _emitCreated(uint256 gameId, Game storage g) internal {
        emit GameCreated(gameId, g.jobId, g.challenger, g.kind, g.level, g.base, g.lo, g.hi, g.arity);
    }

    function _game(uint256 gameId) internal view returns (Game storage g) {
        g = _games[gameId];
        if (g.status == GameStatus.Absent) revert UnknownGame(gameId);
    }

    function _requireMove(uint256 gameId, Game storage g, GameStatus status, Party party) internal view {
        if (g.status != status) revert WrongGameStatus(gameId, status, g.status);
        address expected = party == Party.Solver ? g.solver : g.challenger;
        // SAFETY: the caller check and the turn check together stop a party from moving for the
        // other side or moving twice.
        if (msg.sender != expected) revert NotParty(gameId, party, msg.sender);
        if (g.turn != party) revert NotYourTurn(gameId, g.turn, msg.sender);
    }

    function _charge(uint256 gameId, Game storage g) internal {
        bool expired;
        if (g.turn == Party.Solver) {
            (expired, g.solverClock) = ClockLib.charge(g.solverClock, g.turnStartedAt, block.timestamp);
        } else {
            (expired, g.challengerClock) = ClockLib.charge(g.challengerClock, g.turnStartedAt, block.timestamp);
        }
        if (expired) revert ClockExpired(gameId, g.turn);
        g.turnStartedAt = uint64(block.timestamp);
    }

    function _checkCheckpointProofs(
        uint256 gameId,
        Game storage g,
        uint256 count,
        bytes32[] calldata hashes,
        bytes32[][] calldata proofs
    ) internal view {
        if (proofs.length != count - 1) revert WrongHashCount(gameId, count - 1, proofs.length);
        DisputeTerms memory terms = MARKET.disputeTerms(g.jobId);
        for (uint256 k = 1; k < count; k++) {
            // Position p >= 1 is leaf p - 1 (position 0 is the spec hash).
            uint64 leafIndex = PositionLib.leafIndex(DissectionLib.boundary(g.lo, g.hi, count, k));
            if (!MerkleLib.verify(terms.traceRoot, terms.checkpointCount, hashes[k - 1], leafIndex, proofs[k - 1])) {
                revert InvalidProof(gameId, leafIndex);
            }
        }
    }

    function _checkLastOpHash(uint256 gameId, Game storage g, uint256 count, bytes32[] calldata hashes)
        internal
        view
    {
        uint64 lastOpPosition = PositionLib.lastOpPosition(g.opCount);
        for (uint256 k = 1; k < count; k++) {
            uint64 position = DissectionLib.boundary(g.lo, g.hi, count, k);
            if (position == lastOpPosition && hashes[k - 1] != g.lastOpHash) {
                revert InconsistentHash(gameId, position);
            }
        }
    }

    /// Called when [lo, hi] is one wide: move down a level, or ask for the bundle/ruling.
    function _descend(uint256 gameId, Game storage g, uint64 stepsPerCheckpoint) internal {
        if (g.level == Level.CHECKPOINT) {
            if (g.lo == 0) {
                // The initial state itself is disputed: the referee rebuilds it from the spec.
                _requestRuling(gameId, g);
                return;
            }
            g.level = Level.STEP;
            g.base = PositionLib.stepBase(g.lo);
            g.lo = 0;
            g.hi = stepsPerCheckpoint;
            _extendClocks(g);
            emit LevelEntered(gameId, Level.STEP, g.base, 0, g.hi);
            if (g.hi > 1) return;
        }
        if (g.level == Level.STEP) {
            g.level = Level.OP;
            g.base = PositionLib.globalStep(g.base, g.lo, stepsPerCheckpoint);
            g.lo = 0;
            g.hi = 0;
            _extendClocks(g);
            emit LevelEntered(gameId, Level.OP, g.base, 0, 0);
            return;
        }
        g.status = GameStatus.AwaitingBundle;
        _extendClocks(g);
        emit BundleRequested(gameId, Level.OP, g.base, g.lo);
    }

    function _extendClocks(Game storage g) internal {
        g.solverClock += LEVEL_EXTENSION;
        g.challengerClock += LEVEL_EXTENSION;
    }

    function _requestRuling(uint256 gameId, Game storage g) internal {
        g.status = GameStatus.AwaitingRuling;
        emit RulingRequested(gameId, g.level, g.base, g.lo);
        REFEREE.requestRuling(gameId);
    }

    function _finish(uint256 gameId, Game storage g, bool solverWon) internal {
        GameStatus result = solverWon ? GameStatus.SolverWon : GameStatus.ChallengerWon;
        g.status = result;
        emit GameResolved(gameId, g.jobId, result);
        MARKET.resolveDispute(g.jobId, g.challenger, solverWon);
    }
}
