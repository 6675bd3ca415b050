// SPDX-License-Identifier: MIT
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20Burnable} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Burnable.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";

import {Payout, PayoutLib} from "../lib/PayoutLib.sol";
import {IJobMarketErrors} from "./IJobMarketErrors.sol";
import {DisputeTerms, Job, JobStatus, JobTerms, PermitSig} from "./JobTypes.sol";

/// @title JobMarket
/// @notice Escrows training rewards, holds solver stakes and challenger bonds, and settles them.
/// @dev Every token the market holds is in exactly one bucket: a live job's escrowed reward, a
///      claimed job's solver stake, an open dispute's bond, a job's bond winnings held for its
///      solver or unpaid winners' pool (`payoutOf`, rules in PayoutLib), or an account's
///      withdrawable credit (`totalCredits`). Tokens leave only by `withdraw` or by burning (`totalBurned`).
///      Disputes are played by a separate game contract (registered once) which opens them here
///      (the bond is pulled into the market) and reports each outcome back.
///      A submitter without gas can sign an EIP-712 JobOrder plus an EIP-2612 permit and let
///      any relayer post it (`postJobFor`); the job is then the signer's, not the relayer's.
contract JobMarket is IJobMarketErrors, ReentrancyGuard, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice Longest submit or challenge window accepted (bounds timestamp arithmetic).
    uint64 public constant MAX_WINDOW = 365 days;
    /// @notice Basis-point denominator.
    uint256 public constant BPS = 10_000;
    /// @notice EIP-712 type of a signed job order (JobTerms + submitter, nonce, deadline).
    bytes32 public constant JOB_ORDER_TYPEHASH = keccak256(
        "JobOrder(bytes32 specHash,string specCid,uint256 reward,uint256 solverStake,uint256 challengerBond,"
        "uint64 claimDeadline,uint64 submitWindow,uint64 challengeWindow,uint32 stepsPerCheckpoint,"
        "uint32 checkpointCount,address submitter,uint256 nonce,uint256 deadline)"
    );

    /// @notice The ERC-20 every amount is denominated in.
    ERC20Burnable public immutable TOKEN;
    /// @notice Share (bps) of a loser's stake or bond paid to the winner; the rest is burned so
    ///         that a cheater cannot recover its own stake by challenging itself through a sybil.
    uint256 public immutable WINNER_SHARE_BPS;
    /// @notice Share (bps) of a late solver's stake paid to the submitter; the rest is burned.
    uint256 public immutable LATE_SHARE_BPS;
    /// @notice May register the dispute game, once.
    address public immutable DEPLOYER;
    /// @notice Smallest challenger bond a job may ask: at least what an honest solver spends
    ///         defending one full game (gas of every move at the deployment's gas price), so a
    ///         griefer's lost bond always covers the solver's cost (its winner share is paid).
    uint256 public immutable MIN_CHALLENGER_BOND;
    /// @notice Most times voids may reopen a job's challenge window: the referee's silence
    ///         delays settlement by at most MAX_REOPENINGS challenge windows.
    uint32 public constant MAX_REOPENINGS = 2;

    /// @notice The dispute game allowed to open and resolve disputes (zero until registered).
    address public disputeGame;
    /// @notice Number of jobs posted; job ids run from 1 to jobCount.
    uint256 public jobCount;
    /// @notice Sum of all withdrawable credits.
    uint256 public totalCredits;
    /// @notice Tokens this market has burned.
    uint256 public totalBurned;
    /// @notice Withdrawable balance of each account (pull payments).
    mapping(address account => uint256 amount) public credits;
    /// @notice Next job-order nonce of each submitter (an order is valid for one post).
    mapping(address submitter => uint256 nonce) public orderNonces;

    mapping(uint256 jobId => Job) internal _jobs;
    mapping(uint256 jobId => Payout) internal _payouts;
    /// @notice Games `challenger` won on `jobId` and has not yet been paid its pool part for.
    mapping(uint256 jobId => mapping(address challenger => uint32 games)) public unclaimedWins;

    /// @notice A job was posted and its reward escrowed.
    event JobPosted(
        uint256 indexed jobId,
        address indexed submitter,
        bytes32 specHash,
        string specCid,
        uint256 reward,
        uint256 solverStake,
        uint256 challengerBond,
        uint64 claimDeadline
    );
    /// @notice The submitter withdrew an unclaimed job.
    event JobCancelled(uint256 indexed jobId);
    /// @notice A solver staked on the job.
    event JobClaimed(uint256 indexed jobId, address indexed solver, uint64 submitDeadline);
    /// @notice The solver committed its result.
    event ResultSubmitted(
        uint256 indexed jobId,
        address indexed solver,
        bytes32 traceRoot,
        uint32 checkpointCount,
        string manifestCid,
        bytes32 finalStateHash,
        bytes32 filesRoot,
        uint64 challengeDeadline
    );
    /// @notice A solver missed its submit deadline and lost its stake.
    event SolverTimedOut(uint256 indexed jobId, address indexed solver, uint256 toSubmitter, uint256 burned);
    /// @notice A job whose solver timed out is open for claims again.
    event JobReopened(uint256 indexed jobId);
    /// @notice Nobody delivered in time; the reward went back to the submitter.
    event JobExpired(uint256 indexed jobId);
    /// @notice The result stood through its challenge window; the solver was paid.
    event JobFinalized(uint256 indexed jobId, address indexed solver, uint256 payout);
    /// @notice A voided dispute reopened the challenge window until `challengeDeadline`.
    event ChallengeWindowReopened(uint256 indexed jobId, uint64 challengeDeadline);
    /// @notice A dispute ended with no ruling; the bond went back to the challenger.
    event DisputeVoided(uint256 indexed jobId, address indexed challenger);
    /// @notice A challenger locked its bond against the job's result.
    event DisputeOpened(uint256 indexed jobId, address indexed challenger, uint256 bond);
    /// @notice A dispute ended; `solverWon` says who won.
    event DisputeResolved(uint256 indexed jobId, address indexed challenger, bool solverWon);
    /// @notice The solver lost a dispute: its stake was split and the reward refunded.
    event SolverSlashed(uint256 indexed jobId, address indexed solver, address indexed winner, uint256 toWinner, uint256 burned);
    /// @notice `amount` became withdrawable by `account`.
    event Credited(address indexed account, uint256 amount);
    /// @notice `account` withdrew `amount`.
    event Withdrawn(address indexed account, uint256 amount);
    /// @notice `submitter` revoked its unrelayed orders signed with nonce `nonce`.
    event OrdersRevoked(address indexed submitter, uint256 nonce);
    /// @notice The dispute game was registered.
    event DisputeGameSet(address indexed game);
    /// @notice The solver won a dispute; `amount` of the bond is held for it until finalize.
    event WinningsHeld(uint256 indexed jobId, address indexed solver, uint256 amount);
    /// @notice `challenger` was paid `amount`, its part of the slashed job's winners' pool for
    ///         `games` winning games.
    event RewardClaimed(uint256 indexed jobId, address indexed challenger, uint32 games, uint256 amount);

    /// @param token The WorkToken (must support burn).
    /// @param winnerShareBps Share of a loser's stake/bond paid to the dispute winner.
    /// @param lateShareBps Share of a late solver's stake paid to the submitter.
    /// @param minChallengerBond Smallest challenger bond a job may ask (> 0).
    constructor(ERC20Burnable token, uint256 winnerShareBps, uint256 lateShareBps, uint256 minChallengerBond)
        EIP712("Assay JobMarket", "1")
    {
        if (address(token) == address(0)) revert ZeroAddress();
        if (winnerShareBps > BPS) revert InvalidBps(winnerShareBps);
        if (lateShareBps > BPS) revert InvalidBps(lateShareBps);
        if (minChallengerBond == 0) revert ZeroChallengerBond();
        TOKEN = token;
        WINNER_SHARE_BPS = winnerShareBps;
        LATE_SHARE_BPS = lateShareBps;
        MIN_CHALLENGER_BOND = minChallengerBond;
        DEPLOYER = msg.sender;
    }

    // ------------------------------------------------------------------ admin

    /// @notice Register the dispute game contract. Once only, by the deployer.
    /// @param game The contract allowed to call openDispute/resolveDispute.
    function setDisputeGame(address game) external {
        if (msg.sender != DEPLOYER) revert NotDeployer(msg.sender);
        if (disputeGame != address(0)) revert DisputeGameAlreadySet(disputeGame);
        if (game == address(0)) revert ZeroAddress();
        disputeGame = game;
        emit DisputeGameSet(game);
    }

    // --------------------------------------------------------------- submitter

    /// @notice Post a job and escrow its reward (the caller must have approved the reward).
    /// @param terms The spec commitment and the market terms.
    /// @return jobId The new job's id.
    function postJob(JobTerms calldata terms) external nonReentrant returns (uint256 jobId) {
        jobId = _post(terms, msg.sender);
    }

    /// @notice Post a job, approving the reward with an EIP-2612 permit in the same transaction.
    /// @dev The permit call may fail if someone front-ran it with the same signature; the post
    ///      then succeeds as long as the allowance is in place.
    /// @param terms The spec commitment and the market terms.
    /// @param permitDeadline Deadline of the permit signature.
    /// @param v Permit signature v.
    /// @param r Permit signature r.
    /// @param s Permit signature s.
    /// @return jobId The new job's id.
    function postJobWithPermit(JobTerms calldata terms, uint256 permitDeadline, uint8 v, bytes32 r, bytes32 s)
        external
        nonReentrant
        returns (uint256 jobId)
    {
        try IERC20Permit(address(TOKEN)).permit(msg.sender, address(this), terms.reward, permitDeadline, v, r, s) {}
            catch {}
        jobId = _post(terms, msg.sender);
    }

    /// @notice Post a job for `submitter`, who signed the order (EIP-712) and a permit for the
    ///         reward; the caller (a relayer) pays only gas. The order's nonce is consumed.
    /// @param terms The spec commitment and the market terms, as signed.
    /// @param submitter The order's signer; owns the job and pays the reward.
    /// @param orderDeadline Last moment the order may be posted.
    /// @param orderSignature The submitter's EIP-712 signature (EOA or ERC-1271 wallet).
    /// @param permit The submitter's EIP-2612 permit for the reward (skipped if it fails and
    ///        the allowance is already in place).
    /// @return jobId The new job's id.
    function postJobFor(
        JobTerms calldata terms,
        address submitter,
        uint256 orderDeadline,
        bytes calldata orderSignature,
        PermitSig calldata permit
    ) external nonReentrant returns (uint256 jobId) {
        if (block.timestamp > orderDeadline) revert OrderExpired(orderDeadline, block.timestamp);
        bytes32 digest = _hashTypedDataV4(_orderStructHash(terms, submitter, orderNonces[submitter], orderDeadline));
        if (!SignatureChecker.isValidSignatureNow(submitter, digest, orderSignature)) {
            revert InvalidOrderSignature(submitter);
        }
        orderNonces[submitter] += 1;
        try IERC20Permit(address(TOKEN)).permit(
            submitter, address(this), terms.reward, permit.deadline, permit.v, permit.r, permit.s
        ) {} catch {}
        jobId = _post(terms, submitter);
    }

    /// @notice Revoke every job order the caller has signed and nobody has relayed yet: they
    ///         all carry the current nonce, which this moves past.
    function revokeOrders() external {
        uint256 nonce = orderNonces[msg.sender];
        orderNonces[msg.sender] = nonce + 1;
        emit OrdersRevoked(msg.sender, nonce);
    }

    /// @notice The EIP-712 digest a submitter signs for `terms` with its current nonce.
    /// @param terms The job terms.
    /// @param submitter The signer.
    /// @param orderDeadline The order's deadline.
    function orderDigest(JobTerms calldata terms, address submitter, uint256 orderDeadline)
        external
        view
        returns (bytes32)
    {
        return _hashTypedDataV4(_orderStructHash(terms, submitter, orderNonces[submitter], orderDeadline));
    }

    /// @notice Withdraw an unclaimed job; its reward is credited back to the submitter.
    /// @param jobId The job.
    function cancel(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Open);
        if (msg.sender != job.submitter) revert NotSubmitter(jobId, msg.sender);
        job.status = JobStatus.Cancelled;
        emit JobCancelled(jobId);
        _credit(job.submitter, job.reward);
    }

    // ------------------------------------------------------------------ solver

    /// @notice Claim an open job, locking the solver stake (the caller must have approved it).
    /// @param jobId The job.
    function claim(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Open);
        if (block.timestamp > job.claimDeadline) revert ClaimDeadlinePassed(jobId, job.claimDeadline);
        uint64 submitDeadline = uint64(block.timestamp) + job.submitWindow;
        job.status = JobStatus.Claimed;
        job.solver = msg.sender;
        job.submitDeadline = submitDeadline;
        emit JobClaimed(jobId, msg.sender, submitDeadline);
        IERC20(address(TOKEN)).safeTransferFrom(msg.sender, address(this), job.solverStake);
    }

    /// @notice Commit the training result. Only the solver, before its submit deadline.
    /// @param jobId The job.
    /// @param traceRoot Merkle root (keccak256, positional, zero-padded) over the state hashes.
    /// @param checkpointCount Number of committed state hashes (initial state included).
    /// @param manifestCid CID of the manifest listing every checkpoint's CID, state hash and
    ///        file root.
    /// @param finalStateHash The last committed state hash (leaf checkpointCount-1 of
    ///        traceRoot; a mismatch is provable on-chain by DisputeGame.proveFinalMismatch).
    /// @param filesRoot Merkle root over the checkpoint files' roots (ArtifactLib.fileRoot),
    ///        leaf i for checkpoint i; what availability challenges are answered against.
    function submitResult(
        uint256 jobId,
        bytes32 traceRoot,
        uint32 checkpointCount,
        string calldata manifestCid,
        bytes32 finalStateHash,
        bytes32 filesRoot
    ) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Claimed);
        if (msg.sender != job.solver) revert NotSolver(jobId, msg.sender);
        if (block.timestamp > job.submitDeadline) revert SubmitDeadlinePassed(jobId, job.submitDeadline);
        if (checkpointCount != job.checkpointCount) {
            revert CheckpointCountMismatch(jobId, job.checkpointCount, checkpointCount);
        }
        if (
            traceRoot == bytes32(0) || finalStateHash == bytes32(0) || filesRoot == bytes32(0)
                || bytes(manifestCid).length == 0
        ) {
            revert EmptyCommitment();
        }
        uint64 challengeDeadline = uint64(block.timestamp) + job.challengeWindow;
        job.status = JobStatus.Submitted;
        job.traceRoot = traceRoot;
        job.manifestCid = manifestCid;
        job.finalStateHash = finalStateHash;
        job.filesRoot = filesRoot;
        job.challengeDeadline = challengeDeadline;
        emit ResultSubmitted(
            jobId, msg.sender, traceRoot, checkpointCount, manifestCid, finalStateHash, filesRoot, challengeDeadline
        );
    }

    // ----------------------------------------------------------------- anyone

    /// @notice Act on a missed deadline. Open past claimDeadline: refund the reward. Claimed past
    ///         submitDeadline: slash the stake (share to the submitter, rest burned), then reopen
    ///         the job if its claim deadline is still ahead, else refund the reward.
    /// @param jobId The job.
    function expire(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        if (job.status == JobStatus.Open && block.timestamp > job.claimDeadline) {
            job.status = JobStatus.Expired;
            emit JobExpired(jobId);
            _credit(job.submitter, job.reward);
        } else if (job.status == JobStatus.Claimed && block.timestamp > job.submitDeadline) {
            address solver = job.solver;
            uint256 toSubmitter = job.solverStake * LATE_SHARE_BPS / BPS;
            uint256 burned = job.solverStake - toSubmitter;
            job.solver = address(0);
            job.submitDeadline = 0;
            emit SolverTimedOut(jobId, solver, toSubmitter, burned);
            if (block.timestamp <= job.claimDeadline) {
                job.status = JobStatus.Open;
                emit JobReopened(jobId);
            } else {
                job.status = JobStatus.Expired;
                emit JobExpired(jobId);
                _credit(job.submitter, job.reward);
            }
            _credit(job.submitter, toSubmitter);
            _burn(burned);
        } else {
            revert NotExpired(jobId, job.status);
        }
    }

    /// @notice Pay the solver once the challenge window has closed with no dispute open.
    /// @param jobId The job.
    function finalize(uint256 jobId) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Submitted);
        if (block.timestamp <= job.challengeDeadline) revert ChallengeWindowOpen(jobId, job.challengeDeadline);
        // INVARIANT: a result is final only when every game on it was won by the solver.
        if (job.openDisputes != 0) revert DisputesOpen(jobId, job.openDisputes);
        job.status = JobStatus.Finalized;
        uint256 payout = job.reward + job.solverStake + PayoutLib.release(_payouts[jobId]);
        emit JobFinalized(jobId, job.solver, payout);
        _credit(job.solver, payout);
    }

    /// @notice Transfer the caller's whole credit to it.
    function withdraw() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw(msg.sender);
        // SAFETY: zero the credit before the transfer (checks-effects-interactions).
        credits[msg.sender] = 0;
        totalCredits -= amount;
        emit Withdrawn(msg.sender, amount);
        IERC20(address(TOKEN)).safeTransfer(msg.sender, amount);
    }

    // ------------------------------------------------------------ dispute game

    /// @notice Lock `challenger`'s bond against the job's result (the challenger must have
    ///         approved this market for the bond). Only the dispute game, inside the window.
    /// @param jobId The job.
    /// @param challenger Who pays the bond and plays the game.
    function openDispute(uint256 jobId, address challenger) external nonReentrant {
        if (msg.sender != disputeGame) revert NotDisputeGame(msg.sender);
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Submitted);
        if (block.timestamp > job.challengeDeadline) revert ChallengeWindowClosed(jobId, job.challengeDeadline);
        job.openDisputes += 1;
        emit DisputeOpened(jobId, challenger, job.challengerBond);
        IERC20(address(TOKEN)).safeTransferFrom(challenger, address(this), job.challengerBond);
    }

    /// @notice Close a dispute with no winner (the referee could not decide): the bond goes
    ///         back to the challenger, nobody is slashed, and the challenge window is reopened
    ///         for a full window from now, at most MAX_REOPENINGS times per job, so that the
    ///         referee's silence can delay a result by a bounded time only. Only the dispute game.
    /// @param jobId The job.
    /// @param challenger The dispute's challenger.
    function voidDispute(uint256 jobId, address challenger) external nonReentrant {
        if (msg.sender != disputeGame) revert NotDisputeGame(msg.sender);
        Job storage job = _job(jobId);
        if (job.status != JobStatus.Submitted && job.status != JobStatus.Slashed) {
            revert WrongStatus(jobId, JobStatus.Submitted, job.status);
        }
        if (job.openDisputes == 0) revert NoOpenDispute(jobId);
        job.openDisputes -= 1;
        uint64 reopenedUntil = uint64(block.timestamp) + job.challengeWindow;
        Payout storage payout = _payouts[jobId];
        // INVARIANT: voids reopen the window at most MAX_REOPENINGS times (bounded delay).
        if (
            job.status == JobStatus.Submitted && reopenedUntil > job.challengeDeadline
                && payout.reopenings < MAX_REOPENINGS
        ) {
            payout.reopenings += 1;
            job.challengeDeadline = reopenedUntil;
            emit ChallengeWindowReopened(jobId, reopenedUntil);
        }
        emit DisputeVoided(jobId, challenger);
        _credit(challenger, job.challengerBond);
    }

    /// @notice Settle one dispute. Solver won: the bond is split solver/burn, the solver's share
    ///         held until its job finalizes. Challenger won: the bond is returned; the first
    ///         such game slashes the solver (reward refunded, stake split winners/burn, held
    ///         shares forfeited to the winners' pool) and every game that ends ChallengerWon on
    ///         the job owns an equal part of that pool, paid once no game is open
    ///         (`claimReward`; the challenger of the closing game is paid at once). Once the
    ///         solver is slashed, a game it wins only returns the bond.
    /// @param jobId The job.
    /// @param challenger The dispute's challenger.
    /// @param solverWon Whether the solver won the game.
    function resolveDispute(uint256 jobId, address challenger, bool solverWon) external nonReentrant {
        if (msg.sender != disputeGame) revert NotDisputeGame(msg.sender);
        Job storage job = _job(jobId);
        // INVARIANT: games opened on a result that another game has since slashed still settle.
        if (job.status != JobStatus.Submitted && job.status != JobStatus.Slashed) {
            revert WrongStatus(jobId, JobStatus.Submitted, job.status);
        }
        if (job.openDisputes == 0) revert NoOpenDispute(jobId);
        job.openDisputes -= 1;
        emit DisputeResolved(jobId, challenger, solverWon);
        Payout storage payout = _payouts[jobId];
        uint256 bond = job.challengerBond;
        // What the challenger gets back now: its bond unless it lost to a solver not yet slashed.
        uint256 owed = bond;
        if (solverWon) {
            if (job.status == JobStatus.Submitted) {
                owed = 0;
                uint256 burnedBond = PayoutLib.solverWon(payout, bond, WINNER_SHARE_BPS);
                emit WinningsHeld(jobId, job.solver, bond - burnedBond);
                _burn(burnedBond);
            }
        } else {
            if (job.status == JobStatus.Submitted) {
                job.status = JobStatus.Slashed;
                (uint256 pool, uint256 burned) = PayoutLib.slash(payout, job.solverStake, WINNER_SHARE_BPS);
                emit SolverSlashed(jobId, job.solver, challenger, pool, burned);
                _credit(job.submitter, job.reward);
                _burn(burned);
            }
            payout.winningGames += 1;
            unclaimedWins[jobId][challenger] += 1;
        }
        if (job.status == JobStatus.Slashed && job.openDisputes == 0) owed += _claim(jobId, challenger);
        _credit(challenger, owed);
    }

    /// @notice Pay `challenger` its part of a slashed job's winners' pool, once no game on the
    ///         job is open. Anyone may call; the part is credited to the challenger.
    /// @param jobId The job.
    /// @param challenger A challenger that won games on it.
    function claimReward(uint256 jobId, address challenger) external nonReentrant {
        Job storage job = _job(jobId);
        _requireStatus(jobId, job, JobStatus.Slashed);
        if (job.openDisputes != 0) revert DisputesOpen(jobId, job.openDisputes);
        if (unclaimedWins[jobId][challenger] == 0) revert NothingToWithdraw(challenger);
        _credit(challenger, _claim(jobId, challenger));
    }

    // ------------------------------------------------------------------- views

    /// @notice The stored job (status Absent for an unknown id).
    /// @param jobId The job.
    function getJob(uint256 jobId) external view returns (Job memory) {
        return _jobs[jobId];
    }

    /// @notice What a dispute game needs about a job's committed result.
    /// @param jobId The job.
    function disputeTerms(uint256 jobId) external view returns (DisputeTerms memory) {
        Job storage job = _job(jobId);
        return DisputeTerms({
            status: job.status,
            solver: job.solver,
            specHash: job.specHash,
            traceRoot: job.traceRoot,
            filesRoot: job.filesRoot,
            finalStateHash: job.finalStateHash,
            checkpointCount: job.checkpointCount,
            stepsPerCheckpoint: job.stepsPerCheckpoint
        });
    }

    /// @notice The job's held winnings, winners' pool and reopenings.
    /// @param jobId The job.
    function payoutOf(uint256 jobId) external view returns (Payout memory) {
        return _payouts[jobId];
    }

    /// @notice The status of a job (Absent for an unknown id).
    /// @param jobId The job.
    function statusOf(uint256 jobId) external view returns (JobStatus) {
        return _jobs[jobId].status;
    }

    // ---------------------------------------------------------------- internal

    function _orderStructHash(JobTerms calldata terms, address submitter, uint256 nonce, uint256 deadline)
        internal
        pure
        returns (bytes32)
    {
        // Two encodes keep the stack shallow; the bytes are exactly abi.encode of all fields.
        bytes memory head = abi.encode(
            JOB_ORDER_TYPEHASH,
            terms.specHash,
            keccak256(bytes(terms.specCid)),
            terms.reward,
            terms.solverStake,
            terms.challengerBond,
            terms.claimDeadline
        );
        bytes memory tail = abi.encode(
            terms.submitWindow,
            terms.challengeWindow,
            terms.stepsPerCheckpoint,
            terms.checkpointCount,
            submitter,
            nonce,
            deadline
        );
        return keccak256(bytes.concat(head, tail));
    }

    function _post(JobTerms calldata terms, address submitter) internal returns (uint256 jobId) {
        if (terms.reward == 0) revert ZeroReward();
        if (terms.solverStake == 0) revert ZeroSolverStake();
        if (terms.challengerBond == 0) revert ZeroChallengerBond();
        if (terms.challengerBond < MIN_CHALLENGER_BOND) {
            revert BondBelowMinimum(terms.challengerBond, MIN_CHALLENGER_BOND);
        }
        if (terms.specHash == bytes32(0) || bytes(terms.specCid).length == 0) revert EmptySpec();
        if (terms.claimDeadline <= block.timestamp) revert DeadlineInPast(terms.claimDeadline, block.timestamp);
        if (terms.submitWindow == 0 || terms.submitWindow > MAX_WINDOW) revert InvalidWindow(terms.submitWindow, MAX_WINDOW);
        if (terms.challengeWindow == 0 || terms.challengeWindow > MAX_WINDOW) {
            revert InvalidWindow(terms.challengeWindow, MAX_WINDOW);
        }
        if (terms.checkpointCount < 2) revert InvalidCheckpointCount(terms.checkpointCount);
        if (terms.stepsPerCheckpoint == 0) revert InvalidStepsPerCheckpoint(terms.stepsPerCheckpoint);
        jobId = ++jobCount;
        Job storage job = _jobs[jobId];
        job.submitter = submitter;
        job.checkpointCount = terms.checkpointCount;
        job.stepsPerCheckpoint = terms.stepsPerCheckpoint;
        job.status = JobStatus.Open;
        job.claimDeadline = terms.claimDeadline;
        job.submitWindow = terms.submitWindow;
        job.challengeWindow = terms.challengeWindow;
        job.reward = terms.reward;
        job.solverStake = terms.solverStake;
        job.challengerBond = terms.challengerBond;
        job.specHash = terms.specHash;
        job.specCid = terms.specCid;
        emit JobPosted(
            jobId,
            submitter,
            terms.specHash,
            terms.specCid,
            terms.reward,
            terms.solverStake,
            terms.challengerBond,
            terms.claimDeadline
        );
        IERC20(address(TOKEN)).safeTransferFrom(submitter, address(this), terms.reward);
    }

    function _claim(uint256 jobId, address challenger) internal returns (uint256 amount) {
        uint32 games = unclaimedWins[jobId][challenger];
        if (games == 0) return 0;
        unclaimedWins[jobId][challenger] = 0;
        amount = PayoutLib.claim(_payouts[jobId], games);
        emit RewardClaimed(jobId, challenger, games, amount);
    }

    function _job(uint256 jobId) internal view returns (Job storage job) {
        job = _jobs[jobId];
        if (job.status == JobStatus.Absent) revert UnknownJob(jobId);
    }

    function _requireStatus(uint256 jobId, Job storage job, JobStatus expected) internal view {
        if (job.status != expected) revert WrongStatus(jobId, expected, job.status);
    }

    function _credit(address account, uint256 amount) internal {
        if (amount == 0) return;
        credits[account] += amount;
        totalCredits += amount;
        emit Credited(account, amount);
    }

    function _burn(uint256 amount) internal {
        if (amount == 0) return;
        totalBurned += amount;
        TOKEN.burn(amount);
    }
}
