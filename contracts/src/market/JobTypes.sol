// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

/// @notice Where a job stands. Transitions (anything else reverts with WrongStatus):
///   Absent -> Open (postJob)
///   Open -> Claimed (claim) | Cancelled (cancel) | Expired (expire after claimDeadline)
///   Claimed -> Submitted (submitResult) | Open (expire after submitDeadline, claim window left)
///            | Expired (expire after submitDeadline, claim window gone)
///   Submitted -> Finalized (finalize) | Slashed (a dispute ruled against the solver)
enum JobStatus {
    // 0: no job with this id
    Absent,
    // 1: posted with its reward escrowed; waiting for a solver to claim
    Open,
    // 2: a solver staked and is training; it must submit before submitDeadline
    Claimed,
    // 3: a result is committed; challenges allowed until challengeDeadline
    Submitted,
    // 4: terminal: reward and stake credited to the solver
    Finalized,
    // 5: terminal: the submitter withdrew the job before any claim; reward refunded
    Cancelled,
    // 6: terminal: nobody delivered in time; reward refunded to the submitter
    Expired,
    // 7: terminal: the solver lost a dispute; stake split winner/burn, reward refunded
    Slashed
}

/// @notice What a submitter offers; the spec itself (pinned to IPFS) fixes the training bits.
struct JobTerms {
    // sha256 of the canonical job-spec JSON
    bytes32 specHash;
    // CID of that JSON on IPFS
    string specCid;
    // paid to the solver on finalization (escrowed at post time)
    uint256 reward;
    // what a solver locks on claim and loses if it cheats or misses its deadline
    uint256 solverStake;
    // what a challenger locks per dispute and loses if its challenge fails
    uint256 challengerBond;
    // last moment (unix seconds) at which the job can be claimed
    uint64 claimDeadline;
    // seconds from claim to the submit deadline
    uint64 submitWindow;
    // seconds from submission during which challenges may be opened
    uint64 challengeWindow;
    // K: training steps between two committed checkpoints (the spec's checkpoint_interval)
    uint32 stepsPerCheckpoint;
    // m + 1 = steps / K + 1: state hashes a result must commit to (initial state included)
    uint32 checkpointCount;
}

/// @notice An EIP-2612 permit signature, passed through to the token.
struct PermitSig {
    uint256 deadline;
    uint8 v;
    bytes32 r;
    bytes32 s;
}

/// @notice What a dispute game needs to know about a submitted result.
struct DisputeTerms {
    JobStatus status;
    address solver;
    bytes32 specHash;
    bytes32 traceRoot;
    // Merkle root over the checkpoint files' roots (ArtifactLib), same leaf order as traceRoot
    bytes32 filesRoot;
    // the solver's claimed last state hash (must equal leaf checkpointCount-1 of traceRoot)
    bytes32 finalStateHash;
    uint32 checkpointCount;
    uint32 stepsPerCheckpoint;
}

/// @notice A job as JobMarket stores it.
struct Job {
    address submitter;
    JobStatus status;
    uint32 openDisputes;
    uint32 checkpointCount;
    uint32 stepsPerCheckpoint;
    address solver;
    uint64 claimDeadline;
    uint64 submitDeadline;
    uint64 challengeDeadline;
    uint64 submitWindow;
    uint64 challengeWindow;
    uint256 reward;
    uint256 solverStake;
    uint256 challengerBond;
    bytes32 specHash;
    bytes32 traceRoot;
    bytes32 finalStateHash;
    // Merkle root over the checkpoint files' roots (ArtifactLib.fileRoot), one per state hash
    bytes32 filesRoot;
    string specCid;
    string manifestCid;
}
