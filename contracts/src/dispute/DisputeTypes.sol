// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Which trace a game is bisecting. Positions at each level (DESIGN.md §5-§6):
///   CHECKPOINT: position 0 is the job's specHash (agreed by definition), position p >= 1 is
///               the solver's state hash after (p-1)*K steps, proven against traceRoot.
///               A one-wide interval [0,1] disputes the initial state itself (ruled directly);
///               [p, p+1] with p >= 1 descends to STEP between checkpoints p-1 and p.
///   STEP:       position s in [0, K] is the state hash after s steps from the agreed
///               checkpoint; [s, s+1] descends to OP for global step t = checkpoint*K + s.
///   OP:         position 0 is stateHash_t, position j+1 is the operator-chain link h_j
///               (j = 0..M), position M+2 is sha256(h_M ‖ stateHash_{t+1}); [p, p+1] is one
///               link the referee re-executes from the solver's operand bundle.
enum Level {
    // bisecting committed checkpoints (values bound by traceRoot)
    CHECKPOINT,
    // bisecting the K steps between two adjacent checkpoints
    STEP,
    // bisecting the operator chain of a single step
    OP
}

/// @notice What a game disputes (docs/protocol.md §6).
enum GameKind {
    // 0: the training trace, bisected CHECKPOINT -> STEP -> OP down to one link
    Trace,
    // 1: availability of one chunk of one committed checkpoint file: the solver must post
    //    the chunk with Merkle proofs against filesRoot, or lose
    Availability,
    // 2: whether checkpoint i's committed file loads to its committed state hash: the solver
    //    reveals both (with proofs) and the CID holding the file; the referee rules
    File,
    // 3: leaf m of traceRoot differs from finalStateHash, proven on-chain at creation
    Final
}

/// @notice Where a game stands.
enum GameStatus {
    // 0: no game with this id
    Absent,
    // 1: dissection under way; `turn` says who must move
    InProgress,
    // 2: narrowed to one link; the solver must post the operand bundle
    AwaitingBundle,
    // 3: the referee is re-executing the disputed link
    AwaitingRuling,
    // 4: terminal: the solver won (challenger's bond split solver/burn)
    SolverWon,
    // 5: terminal: the challenger won (solver's stake split challenger/burn)
    ChallengerWon,
    // 6: terminal: no ruling came in time; bond returned, nobody slashed
    Void
}

/// @notice A party to a game.
enum Party {
    // posts dissections and the operand bundle
    Solver,
    // selects the part it disagrees with
    Challenger
}

/// @notice One dispute: a challenger against a job's committed result.
struct Game {
    uint256 jobId;
    // what the game disputes (Trace for dissection games)
    GameKind kind;
    address solver;
    address challenger;
    GameStatus status;
    Level level;
    Party turn;
    // d: parts per dissection, chosen by the challenger at creation
    uint8 arity;
    // CHECKPOINT: unused; STEP: agreed checkpoint index; OP: global step index t
    uint64 base;
    // current interval [lo, hi] at `level`; the parties agree at lo and disagree at hi
    uint64 lo;
    uint64 hi;
    // OP level: the solver's operator count M (0 until it opens the level)
    uint64 opCount;
    // chess clocks: seconds left to each party, and when the current turn began
    uint64 solverClock;
    uint64 challengerClock;
    uint64 turnStartedAt;
    // dissection rounds played so far (each: one dissect + one select)
    uint32 rounds;
    // Trace: agreed value at lo, and the solver's value at hi. File: the revealed file root
    // (hashLo) and state hash (hashHi), which the referee's load of the file must reproduce.
    // Final: the result's finalStateHash (hashLo) and the proven leaf m (hashHi).
    bytes32 hashLo;
    bytes32 hashHi;
    // OP level: the solver's h_M (position M+1)
    bytes32 lastOpHash;
    // keccak256(abi.encode(hashes)) of the solver's pending dissection (0 when none)
    bytes32 roundHash;
    // CID of the solver's operand bundle; File games: the CID of the checkpoint file
    string bundleCid;
}

/// @notice What an Availability or File game asks for (kind Trace/Final: unused).
struct ArtifactClaim {
    // the checkpoint index (leaf of traceRoot and of filesRoot)
    uint64 checkpoint;
    // Availability: the requested chunk index (ArtifactLib.CHUNK_SIZE bytes each)
    uint64 chunk;
}

/// @notice Where the committee's ruling on one game stands (ArbiterReferee).
enum RulingPhase {
    // 0: no ruling requested for this game
    Unrequested,
    // 1: members vote the link value their re-execution computed; QUORUM equal votes propose
    Voting,
    // 2: a ruling is proposed; anyone may appeal it with APPEAL_BOND until the appeal deadline
    AppealOpen,
    // 3: the full committee decides by strict majority (after an appeal, or a silent first round)
    Escalated,
    // 4: terminal: reported to the game (ruling or void)
    Settled
}
