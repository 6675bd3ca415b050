// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {JobStatus} from "./JobTypes.sol";

/// @title IJobMarketErrors
/// @notice Every revert of JobMarket, each with the data a caller needs to act on it (in the
///         style of OpenZeppelin's draft-IERC6093). chain/errors.py turns each into a Python
///         exception of the same name, enum arguments decoded to the generated IntEnum.
interface IJobMarketErrors {
    /// @dev `jobId` does not name a posted job.
    /// @param jobId The job id asked for.
    error UnknownJob(uint256 jobId);

    /// @dev The job is in `actual` but the call needs it in `expected`.
    /// @param jobId The job.
    /// @param expected The status the call needs.
    /// @param actual The status the job is in.
    error WrongStatus(uint256 jobId, JobStatus expected, JobStatus actual);

    /// @dev A posted job must offer a reward.
    error ZeroReward();

    /// @dev A posted job must require a solver stake (it is what a cheater loses).
    error ZeroSolverStake();

    /// @dev A posted job must require a challenger bond (it is what a false accuser loses).
    error ZeroChallengerBond();

    /// @dev A job's challenger bond is below the market's minimum, the cost of defending one
    ///      game (MIN_CHALLENGER_BOND).
    /// @param bond The bond the job's terms ask for.
    /// @param minimum MIN_CHALLENGER_BOND.
    error BondBelowMinimum(uint256 bond, uint256 minimum);

    /// @dev The spec hash and the spec CID must both be given.
    error EmptySpec();

    /// @dev The claim deadline is not after the current time.
    /// @param deadline The claim deadline of the terms.
    /// @param nowTs The block timestamp.
    error DeadlineInPast(uint64 deadline, uint256 nowTs);

    /// @dev A submit or challenge window must be between 1 second and MAX_WINDOW.
    /// @param window The window given, in seconds.
    /// @param maxWindow MAX_WINDOW.
    error InvalidWindow(uint64 window, uint64 maxWindow);

    /// @dev Only the job's submitter may do this.
    /// @param jobId The job.
    /// @param caller The account that called.
    error NotSubmitter(uint256 jobId, address caller);

    /// @dev Only the job's solver may do this.
    /// @param jobId The job.
    /// @param caller The account that called.
    error NotSolver(uint256 jobId, address caller);

    /// @dev Only the registered dispute game may do this.
    /// @param caller The account that called.
    error NotDisputeGame(address caller);

    /// @dev Only the deployer may do this.
    /// @param caller The account that called.
    error NotDeployer(address caller);

    /// @dev The dispute game is set once; it already is.
    /// @param current The dispute game already set.
    error DisputeGameAlreadySet(address current);

    /// @dev An address argument was zero (JobMarket, DisputeGame and ArbiterReferee raise it).
    error ZeroAddress();

    /// @dev A basis-point share must be at most 10000.
    /// @param bps The share given.
    error InvalidBps(uint256 bps);

    /// @dev The job can no longer be claimed: its claim deadline has passed.
    /// @param jobId The job.
    /// @param deadline Its claim deadline.
    error ClaimDeadlinePassed(uint256 jobId, uint64 deadline);

    /// @dev The result comes too late: the submit deadline has passed.
    /// @param jobId The job.
    /// @param deadline Its submit deadline.
    error SubmitDeadlinePassed(uint256 jobId, uint64 deadline);

    /// @dev No dispute can be opened any more: the challenge window has closed.
    /// @param jobId The job.
    /// @param deadline When the challenge window closed.
    error ChallengeWindowClosed(uint256 jobId, uint64 deadline);

    /// @dev The job cannot be finalized yet: its challenge window is still open.
    /// @param jobId The job.
    /// @param deadline When the challenge window closes.
    error ChallengeWindowOpen(uint256 jobId, uint64 deadline);

    /// @dev The call needs every dispute on the job settled (finalize, claimReward), but some
    ///      are still being played.
    /// @param jobId The job.
    /// @param count How many disputes are open.
    error DisputesOpen(uint256 jobId, uint32 count);

    /// @dev The job has no missed deadline to act on.
    /// @param jobId The job.
    /// @param status The status the job is in.
    error NotExpired(uint256 jobId, JobStatus status);

    /// @dev The dispute game reported on a job with no dispute open.
    /// @param jobId The job.
    error NoOpenDispute(uint256 jobId);

    /// @dev A job must commit to at least two states (the initial one and one checkpoint).
    /// @param count The checkpoint count given.
    error InvalidCheckpointCount(uint32 count);

    /// @dev A job must have at least one step per checkpoint.
    /// @param steps The steps per checkpoint given.
    error InvalidStepsPerCheckpoint(uint32 steps);

    /// @dev The result commits to a number of states other than the job's terms say.
    /// @param jobId The job.
    /// @param expected The job's checkpointCount.
    /// @param actual The count the result commits to.
    error CheckpointCountMismatch(uint256 jobId, uint32 expected, uint32 actual);

    /// @dev The signed job order's deadline has passed.
    /// @param deadline The order's deadline.
    /// @param nowTs The block timestamp.
    error OrderExpired(uint256 deadline, uint256 nowTs);

    /// @dev The job order was not signed by its submitter, or its nonce was already used.
    /// @param submitter The account the order names as submitter.
    error InvalidOrderSignature(address submitter);

    /// @dev A result's trace root and final state hash must be non-zero.
    error EmptyCommitment();

    /// @dev The account has no credit to withdraw.
    /// @param account The account that asked.
    error NothingToWithdraw(address account);
}
