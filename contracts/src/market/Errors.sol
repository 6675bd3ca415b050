// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {JobStatus} from "./JobTypes.sol";

/// @title JobMarket errors
/// @notice Every revert of JobMarket, each with the data a caller needs to act on it.
///         chain/errors.py turns each into a Python exception of the same name.

/// @notice `jobId` does not name a posted job.
error UnknownJob(uint256 jobId);
/// @notice The job is in `actual` but the call needs `expected`.
error WrongStatus(uint256 jobId, JobStatus expected, JobStatus actual);
/// @notice A posted job must offer a reward.
error ZeroReward();
/// @notice A posted job must require a solver stake (it is what a cheater loses).
error ZeroSolverStake();
/// @notice A posted job must require a challenger bond (it is what a false accuser loses).
error ZeroChallengerBond();
/// @notice A job's challenger bond `bond` is below the market's minimum `minimum` (the cost
///         of defending one game).
error BondBelowMinimum(uint256 bond, uint256 minimum);
/// @notice The spec hash and the spec CID must both be given.
error EmptySpec();
/// @notice The claim deadline `deadline` is not after the current time `nowTs`.
error DeadlineInPast(uint64 deadline, uint256 nowTs);
/// @notice A submit or challenge window must be between 1 second and MAX_WINDOW.
error InvalidWindow(uint64 window, uint64 maxWindow);
/// @notice Only the job's submitter may do this.
error NotSubmitter(uint256 jobId, address caller);
/// @notice Only the job's solver may do this.
error NotSolver(uint256 jobId, address caller);
/// @notice Only the registered dispute game may do this.
error NotDisputeGame(address caller);
/// @notice Only the deployer may do this.
error NotDeployer(address caller);
/// @notice The dispute game is set once; it already is `current`.
error DisputeGameAlreadySet(address current);
/// @notice An address argument was zero.
error ZeroAddress();
/// @notice A basis-point share must be at most 10000.
error InvalidBps(uint256 bps);
/// @notice The claim deadline `deadline` has passed.
error ClaimDeadlinePassed(uint256 jobId, uint64 deadline);
/// @notice The submit deadline `deadline` has passed.
error SubmitDeadlinePassed(uint256 jobId, uint64 deadline);
/// @notice The challenge window closed at `deadline`.
error ChallengeWindowClosed(uint256 jobId, uint64 deadline);
/// @notice The challenge window is open until `deadline`.
error ChallengeWindowOpen(uint256 jobId, uint64 deadline);
/// @notice `count` disputes on the job are still being played.
error DisputesOpen(uint256 jobId, uint32 count);
/// @notice The job has no missed deadline to act on (status `status`).
error NotExpired(uint256 jobId, JobStatus status);
/// @notice No dispute is open on the job.
error NoOpenDispute(uint256 jobId);
/// @notice A job must commit to at least two states (initial and one checkpoint).
error InvalidCheckpointCount(uint32 count);
/// @notice A job must have at least one step per checkpoint.
error InvalidStepsPerCheckpoint(uint32 steps);
/// @notice The result commits to `actual` states; the job's terms say `expected`.
error CheckpointCountMismatch(uint256 jobId, uint32 expected, uint32 actual);
/// @notice The job order's deadline `deadline` has passed.
error OrderExpired(uint256 deadline, uint256 nowTs);
/// @notice The job order was not signed by `submitter` (or its nonce was already used).
error InvalidOrderSignature(address submitter);
/// @notice The trace root and final state hash must be non-zero.
error EmptyCommitment();
/// @notice `account` has no credit to withdraw.
error NothingToWithdraw(address account);
