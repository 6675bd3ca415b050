"""A Hypothesis state machine driving JobMarket on a real anvil against a Python model.

Random accounts post (directly, with a permit, or through a relayer carrying their signed
EIP-712 order), cancel, claim, submit, expire, finalize, withdraw, approve, and (as the
registered dispute game) open, resolve and void disputes, with random and deadline-hugging
jumps of the clock.  A void on a job still Submitted reopens its challenge window for a
full window from the void (emitting ChallengeWindowReopened when the deadline moves), at
most MAX_REOPENINGS times per job.  PayoutLib's rules: a game the solver wins holds its bond
share until finalize; the first game it loses slashes it and forfeits the held shares into
the winners' pool; every game ending ChallengerWon owns an equal part of that pool, paid to
the closing game's challenger at once and to the others by anyone's claimReward; once a
job is Slashed, a game the solver wins only returns the bond.  Bonds below the market's
minimum are refused.  Relayed
orders are signed, stashed, and relayed later (again), so replays, stale and future nonces,
tampered terms, wrong signers, wrong domains and expired orders all occur next to the valid
ones.  Many of the actions are invalid on purpose (wrong account, wrong status, too late,
too early, no allowance, unknown id): the model predicts the exact named error and its
arguments, and that nothing changes.

Next to that market, on the same token and with the same accounts, a second JobMarket is
played through a real DisputeGame ruled by the staked ArbiterReferee committee
(docs/protocol.md §6.5; three founding members, arbiter keys and actors may join).  Members
join (active at once while no game exists, else MEMBERSHIP_DELAY later), leave, withdraw
their stake once the exit plus settlementBound has passed, and withdraw referee credit.  A
committee round posts, claims and submits a one-step job (an honest solver, or one lying
at an op link), plays the real game with the honest strategy to its ruling request (which
counts the members active then) and runs one of SCENARIOS: rogue members vote the
outcome-flipping hash, honest ones the re-executed one; a majority decides at once, QUORUM
votes short of it propose; the harmed party appeals a wrong proposal, and the whole
committee's majority overturns it and slashes its voters (half to the appellant, half
burned); a silent ruling window escalates by itself; settle lets a proposal stand, decides
by plurality, or voids the game (the market reopens its window).  The same actions also
occur at random, by anyone (members, strangers), on any ruling, with jumps to around the
referee's deadlines.  The model predicts every outcome and named error here too (vote and
settle carry a fixed gas limit and are not simulated, so their reverts are mined); only the
game's own events are left to tests/dispute.  After every step everything is read back in
JSON-RPC batches and checked against the model and against DESIGN.md §1.4:

(a) tokens are conserved: holders (the committee's market, the referee and its members
    among them) + market = totalSupply, totalSupply + burned = minted, and the token's
    burned amount is both markets' totalBurned + the referee's;
(b) each market holds exactly its buckets: live rewards + live stakes + open bonds + held
    solver winnings + unpaid winners' pools + credits (a voided dispute moves its bond from
    the open-bond bucket to a credit), and each job's payout record is the model's;
(c) every job's status is the model's, and every observed transition is one JobTypes.sol
    allows; what disputeTerms reports (status first) is the stored job itself;
(d) the referee's committee, member records, rulings, credits and totalBurned are the
    model's, and it holds exactly the members' stakes + open appeal bonds + its credits.

Timing.  anvil runs with a one-second block interval, so a transaction mined now lands at
`latest + 1`.  ChainClient simulates on the latest block; the model therefore decides the
outcome twice: at the simulation's clock (a revert there raises the named error, nothing is
mined) and at the mined clock (a revert only there is mined; ChainClient replays it at its
block and raises the same named error, carrying the mined transaction's hash).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pytest
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from arbiter.actor import GameActor
from arbiter.referee import TraceOracle, decide
from arbiter.strategy import PostBundle, honest_move
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import Receipt
from chain.contracts import (
    JobMarketClient,
    JobTerms,
    PermitSignature,
    SignedJobOrder,
    WorkTokenClient,
)
from chain.deploy import deploy
from chain.dispute import ArbiterRefereeClient, GameId
from chain.errors import ContractRevert
from chain.generated import (
    AlreadyMember,
    AlreadyVoted,
    Approval,
    ArbiterJoined,
    ArbiterSlashed,
    BondBelowMinimum,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    ChallengeWindowReopened,
    CheckpointCountMismatch,
    ClaimDeadlinePassed,
    CommitteeFull,
    ContractEvent,
    Credited,
    DeadlineInPast,
    DisputeGameAlreadySet,
    DisputeOpened,
    DisputeResolved,
    DisputesOpen,
    DisputeVoided,
    EmptyCommitment,
    EmptySpec,
    ERC20InsufficientAllowance,
    ERC20InsufficientBalance,
    Escalated,
    ExitPending,
    ExitRequested,
    GameResolved,
    GameStatus,
    InvalidCheckpointCount,
    InvalidOrderSignature,
    InvalidStepsPerCheckpoint,
    InvalidWindow,
    JobCancelled,
    JobClaimed,
    JobExpired,
    JobFinalized,
    JobPosted,
    JobReopened,
    JobStatus,
    NoOpenDispute,
    NoRefereeCredit,
    NotArbiter,
    NotDeployer,
    NotDisputeGame,
    NotEligible,
    NotExpired,
    NothingToWithdraw,
    NotSolver,
    NotSubmitter,
    OrderExpired,
    Party,
    RefereeCredited,
    RefereeWithdrawn,
    ResultSubmitted,
    RewardClaimed,
    Ruled,
    Ruling,
    RulingExpired,
    RulingPending,
    RulingPhase,
    RulingProposed,
    SolverSlashed,
    SolverTimedOut,
    StakeLocked,
    StakeWithdrawn,
    SubmitDeadlinePassed,
    Transfer,
    UnknownJob,
    Voted,
    WinningsHeld,
    Withdrawn,
    WrongRulingPhase,
    WrongStatus,
    ZeroChallengerBond,
    ZeroReward,
    ZeroSolverStake,
)
from chain.types import Address, Cid, Hash32, JobId, Wei
from tests.chain.support import (
    BPS,
    FILES_ROOT,
    FINAL_STATE,
    LEGAL_TRANSITIONS,
    MANIFEST_CID,
    MAX_REOPENINGS,
    MAX_UINT256,
    MAX_WINDOW,
    SPEC_CID,
    SPEC_HASH,
    TRACE_ROOT,
    ZERO_ADDRESS,
    ZERO_HASH,
    BatchReader,
    DisputeTermsView,
    MarketSnapshot,
    PayoutView,
    mine_at,
    rpc,
)
from tests.dispute.play import actors as game_actors
from tests.fixtures.anvil import MarketEnv
from tests.fixtures.dispute import DisputeEnv, arbiter_accounts

# ASSAY_MARKET_SM_EXAMPLES raises the count for a deeper (nightly) run.
MAX_EXAMPLES = int(os.environ.get("ASSAY_MARKET_SM_EXAMPLES", "200"))
STEPS = 20
ACTORS = range(9)  # 0 is the deployer (holds no WORK); 1..8 are funded
GAME = 9
LIVE = (JobStatus.Open, JobStatus.Claimed, JobStatus.Submitted)
STAKED = (JobStatus.Claimed, JobStatus.Submitted)
# The committee's deployment: short clocks and windows, so that the machine's jumps cross them.
# (The model reads them back from the referee.)
COMMITTEE_TERMS: dict[str, int] = {
    "clock_budget": 60,
    "level_extension": 15,
    "ruling_window": 120,
    "appeal_window": 60,
    "escalation_window": 120,
    "quorum": 2,
    "arbiter_stake": 20 * 10**18,
    "appeal_bond": 5 * 10**18,
}
MAX_ARBITERS = 32  # ArbiterReferee.MAX_ARBITERS
APPELLANT_SHARE_BPS = 5_000  # ArbiterReferee.APPELLANT_SHARE_BPS
FOUNDING = 3  # founding members; then spare keys that may join
KEYS = 6
KEY0 = 10  # a referee `who` at or above this is arbiter key `who - KEY0`; below, an actor


@dataclass(frozen=True)
class Scenario:
    """How committee_round's ruling goes: `rogues` members vote the outcome-flipping hash
    first; `silent`: the ruling window passes with no vote; `appeal`: the harmed party
    appeals a proposal; `turnout` honest members vote (None: all); `stop` early (after
    "opened" or "rogues"); `late_joiner`: a spare key joins after the request and tries
    to vote; `leaver`: the first honest member leaves before it votes."""

    rogues: int = 0
    silent: bool = False
    appeal: bool = False
    turnout: int | None = None
    stop: str | None = None
    late_joiner: bool = False
    leaver: bool = False


OVERTURN = Scenario(rogues=2, appeal=True, late_joiner=True, leaver=True)
SILENT = Scenario(rogues=1, silent=True, leaver=True)
SILENT_VOID = Scenario(silent=True, turnout=0)
# Sampled with these weights; one example in ROUND_ODDS runs a round (each is ~15 blocks).
# (Hypothesis draws early entries more often than late ones: the rarest outcome comes first.)
SCENARIOS = [
    SILENT_VOID,
    OVERTURN,
    SILENT,
    SILENT_VOID,
    OVERTURN,
    SILENT,
    Scenario(rogues=2),  # unappealed: the wrong proposal stands
    Scenario(silent=True, turnout=2),  # a plurality of QUORUM votes decides at settle
    Scenario(),
    Scenario(turnout=0, stop="opened"),
    Scenario(rogues=2, stop="rogues"),
]
ROUND_ODDS = 4
NO_PERMIT = PermitSignature(
    owner=Address(ZERO_ADDRESS),
    spender=Address(ZERO_ADDRESS),
    value=Wei(0),
    deadline=0,
    v=0,
    r=bytes(32),
    s=bytes(32),
)


class Revert(Exception):
    """The model's prediction that a call reverts with `error(**args)`."""

    def __init__(self, error: type[ContractRevert], **args: Any) -> None:
        super().__init__(error.__name__)
        self.error = error
        self.args_by_name = args


@dataclass
class ModelJob:
    submitter: str
    status: JobStatus
    reward: int
    stake: int
    bond: int
    claim_deadline: int
    submit_window: int
    challenge_window: int
    checkpoint_count: int
    steps_per_checkpoint: int
    solver: str = ZERO_ADDRESS
    submit_deadline: int = 0
    challenge_deadline: int = 0
    # The deadline submitResult set; a void may later move challenge_deadline past it.
    submitted_deadline: int = 0
    disputes: list[str] = field(default_factory=list)
    # PayoutLib's record: bond shares held for the solver, the winners' pool of a slash
    held: int = 0
    pool: int = 0
    claimed_amount: int = 0
    winning_games: int = 0
    claimed_games: int = 0
    reopenings: int = 0
    unclaimed: Counter[str] = field(default_factory=Counter)

    def claim(self, challenger: str) -> tuple[int, int]:
        """PayoutLib.claim for `challenger`'s unpaid winning games: (games, amount)."""
        games = self.unclaimed.pop(challenger, 0)
        if games == 0:
            return 0, 0
        if self.claimed_games + games == self.winning_games:
            amount = self.pool - self.claimed_amount
        else:
            amount = self.pool * games // self.winning_games
        self.claimed_games += games
        self.claimed_amount += amount
        return games, amount


@dataclass(frozen=True)
class OrderRecord:
    """A job order as relayed (`order`) and what its signature actually covers."""

    order: SignedJobOrder
    signed_by: str
    signed_submitter: str
    signed_terms: JobTerms
    signed_deadline: int
    signed_nonce: int
    domain_ok: bool

    def signs(self, order: SignedJobOrder, nonce: int) -> bool:
        """Whether this signature is good for `order` when the submitter's nonce is `nonce`."""
        return (
            self.domain_ok
            and self.signed_by == self.signed_submitter == order.submitter
            and self.signed_terms == order.terms
            and self.signed_deadline == order.deadline
            and self.signed_nonce == nonce
        )


@dataclass
class Model:
    """What the market and the token should hold. `now` is the latest block's timestamp."""

    now: int
    market: str
    game: str
    winner_bps: int
    late_bps: int
    balances: dict[str, int]
    credits: dict[str, int]
    allowances: dict[str, int]
    burned: int
    order_nonces: dict[str, int]
    min_bond: int
    jobs: dict[int, ModelJob] = field(default_factory=dict)
    # The committee's market and referee (None in the side market's own model).
    side: Committee | None = None

    @property
    def committee(self) -> Committee:
        assert self.side is not None
        return self.side

    # ------------------------------------------------------------- token mechanics

    def pull(self, owner: str, amount: int) -> list[ContractEvent]:
        """ERC20.transferFrom(owner -> market) as OpenZeppelin 5 does it."""
        allowance = self.allowances[owner]
        if allowance != MAX_UINT256:
            if allowance < amount:
                raise Revert(
                    ERC20InsufficientAllowance,
                    spender=self.market,
                    allowance=allowance,
                    needed=amount,
                )
            self.allowances[owner] = allowance - amount
        if self.balances[owner] < amount:
            raise Revert(
                ERC20InsufficientBalance, sender=owner, balance=self.balances[owner], needed=amount
            )
        self.balances[owner] -= amount
        self.balances[self.market] += amount
        return [Transfer(from_=owner, to=self.market, value=amount)]

    def credit(self, account: str, amount: int) -> list[ContractEvent]:
        if amount == 0:
            return []
        self.credits[account] += amount
        return [Credited(account=account, amount=amount)]

    def burn(self, amount: int) -> list[ContractEvent]:
        if amount == 0:
            return []
        self.burned += amount
        self.balances[self.market] -= amount
        return [Transfer(from_=self.market, to=ZERO_ADDRESS, value=amount)]

    def job(self, job_id: int) -> ModelJob:
        if job_id not in self.jobs:
            raise Revert(UnknownJob, jobId=job_id)
        return self.jobs[job_id]

    @staticmethod
    def require(job_id: int, job: ModelJob, expected: JobStatus) -> None:
        if job.status != expected:
            raise Revert(WrongStatus, jobId=job_id, expected=expected, actual=job.status)

    # ------------------------------------------------------------------ actions

    def approve(self, owner: str, amount: int) -> list[ContractEvent]:
        self.allowances[owner] = amount
        return [Approval(owner=owner, spender=self.market, value=amount)]

    def post(
        self, ts: int, who: str, terms: JobTerms, permit_ok: bool = False
    ) -> list[ContractEvent]:
        events: list[ContractEvent] = []
        if permit_ok:
            events += self.approve(who, terms.reward)
        if terms.reward == 0:
            raise Revert(ZeroReward)
        if terms.solver_stake == 0:
            raise Revert(ZeroSolverStake)
        if terms.challenger_bond == 0:
            raise Revert(ZeroChallengerBond)
        if terms.challenger_bond < self.min_bond:
            raise Revert(BondBelowMinimum, bond=terms.challenger_bond, minimum=self.min_bond)
        if terms.spec_hash == ZERO_HASH or not terms.spec_cid:
            raise Revert(EmptySpec)
        if terms.claim_deadline <= ts:
            raise Revert(DeadlineInPast, deadline=terms.claim_deadline, nowTs=ts)
        for window in (terms.submit_window, terms.challenge_window):
            if window == 0 or window > MAX_WINDOW:
                raise Revert(InvalidWindow, window=window, maxWindow=MAX_WINDOW)
        if terms.checkpoint_count < 2:
            raise Revert(InvalidCheckpointCount, count=terms.checkpoint_count)
        if terms.steps_per_checkpoint == 0:
            raise Revert(InvalidStepsPerCheckpoint, steps=terms.steps_per_checkpoint)
        job_id = len(self.jobs) + 1
        self.jobs[job_id] = ModelJob(
            submitter=who,
            status=JobStatus.Open,
            reward=terms.reward,
            stake=terms.solver_stake,
            bond=terms.challenger_bond,
            claim_deadline=terms.claim_deadline,
            submit_window=terms.submit_window,
            challenge_window=terms.challenge_window,
            checkpoint_count=terms.checkpoint_count,
            steps_per_checkpoint=terms.steps_per_checkpoint,
        )
        events.append(
            JobPosted(
                job_id=job_id,
                submitter=who,
                spec_hash=terms.spec_hash,
                spec_cid=terms.spec_cid,
                reward=terms.reward,
                solver_stake=terms.solver_stake,
                challenger_bond=terms.challenger_bond,
                claim_deadline=terms.claim_deadline,
            )
        )
        return events + self.pull(who, terms.reward)

    def post_for(self, ts: int, record: OrderRecord, permit_ok: bool) -> list[ContractEvent]:
        """postJobFor: the order must be unexpired and signed, by its submitter, over exactly
        the relayed terms and deadline with the submitter's current nonce, for this market."""
        order = record.order
        if ts > order.deadline:
            raise Revert(OrderExpired, deadline=order.deadline, nowTs=ts)
        if not record.signs(order, self.order_nonces[order.submitter]):
            raise Revert(InvalidOrderSignature, submitter=order.submitter)
        self.order_nonces[order.submitter] += 1
        return self.post(ts, order.submitter, order.terms, permit_ok)

    def cancel(self, ts: int, who: str, job_id: int) -> list[ContractEvent]:
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Open)
        if who != job.submitter:
            raise Revert(NotSubmitter, jobId=job_id, caller=who)
        job.status = JobStatus.Cancelled
        return [JobCancelled(job_id=job_id), *self.credit(job.submitter, job.reward)]

    def claim(self, ts: int, who: str, job_id: int) -> list[ContractEvent]:
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Open)
        if ts > job.claim_deadline:
            raise Revert(ClaimDeadlinePassed, jobId=job_id, deadline=job.claim_deadline)
        job.status = JobStatus.Claimed
        job.solver = who
        job.submit_deadline = ts + job.submit_window
        claimed = JobClaimed(job_id=job_id, solver=who, submit_deadline=job.submit_deadline)
        return [claimed, *self.pull(who, job.stake)]

    def submit(
        self,
        ts: int,
        who: str,
        job_id: int,
        root: bytes,
        count: int,
        cid: str,
        final: bytes,
        files: bytes,
    ) -> list[ContractEvent]:
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Claimed)
        if who != job.solver:
            raise Revert(NotSolver, jobId=job_id, caller=who)
        if ts > job.submit_deadline:
            raise Revert(SubmitDeadlinePassed, jobId=job_id, deadline=job.submit_deadline)
        if count != job.checkpoint_count:
            raise Revert(
                CheckpointCountMismatch, jobId=job_id, expected=job.checkpoint_count, actual=count
            )
        if root == ZERO_HASH or final == ZERO_HASH or files == ZERO_HASH or not cid:
            raise Revert(EmptyCommitment)
        job.status = JobStatus.Submitted
        job.challenge_deadline = ts + job.challenge_window
        job.submitted_deadline = job.challenge_deadline
        return [
            ResultSubmitted(
                job_id=job_id,
                solver=who,
                trace_root=root,
                checkpoint_count=count,
                manifest_cid=cid,
                final_state_hash=final,
                files_root=files,
                challenge_deadline=job.challenge_deadline,
            )
        ]

    def expire(self, ts: int, who: str, job_id: int) -> list[ContractEvent]:
        job = self.job(job_id)
        if job.status == JobStatus.Open and ts > job.claim_deadline:
            job.status = JobStatus.Expired
            return [JobExpired(job_id=job_id), *self.credit(job.submitter, job.reward)]
        if job.status == JobStatus.Claimed and ts > job.submit_deadline:
            to_submitter = job.stake * self.late_bps // BPS
            burned = job.stake - to_submitter
            events: list[ContractEvent] = [
                SolverTimedOut(
                    job_id=job_id, solver=job.solver, to_submitter=to_submitter, burned=burned
                )
            ]
            job.solver = ZERO_ADDRESS
            job.submit_deadline = 0
            if ts <= job.claim_deadline:
                job.status = JobStatus.Open
                events.append(JobReopened(job_id=job_id))
            else:
                job.status = JobStatus.Expired
                events.append(JobExpired(job_id=job_id))
                events += self.credit(job.submitter, job.reward)
            return events + self.credit(job.submitter, to_submitter) + self.burn(burned)
        raise Revert(NotExpired, jobId=job_id, status=job.status)

    def finalize(self, ts: int, who: str, job_id: int) -> list[ContractEvent]:
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Submitted)
        if ts <= job.challenge_deadline:
            raise Revert(ChallengeWindowOpen, jobId=job_id, deadline=job.challenge_deadline)
        if job.disputes:
            raise Revert(DisputesOpen, jobId=job_id, count=len(job.disputes))
        job.status = JobStatus.Finalized
        payout = job.reward + job.stake + job.held
        job.held = 0
        return [
            JobFinalized(job_id=job_id, solver=job.solver, payout=payout),
            *self.credit(job.solver, payout),
        ]

    def withdraw(self, ts: int, who: str) -> list[ContractEvent]:
        amount = self.credits[who]
        if amount == 0:
            raise Revert(NothingToWithdraw, account=who)
        self.credits[who] = 0
        self.balances[self.market] -= amount
        self.balances[who] += amount
        return [
            Withdrawn(account=who, amount=amount),
            Transfer(from_=self.market, to=who, value=amount),
        ]

    def open_dispute(self, ts: int, caller: str, job_id: int, challenger: str) -> list[Any]:
        if caller != self.game:
            raise Revert(NotDisputeGame, caller=caller)
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Submitted)
        if ts > job.challenge_deadline:
            raise Revert(ChallengeWindowClosed, jobId=job_id, deadline=job.challenge_deadline)
        job.disputes.append(challenger)
        opened = DisputeOpened(job_id=job_id, challenger=challenger, bond=job.bond)
        return [opened, *self.pull(challenger, job.bond)]

    def take_dispute(self, ts: int, caller: str, job_id: int, challenger: str) -> ModelJob:
        """The checks and the bookkeeping resolveDispute and voidDispute share."""
        if caller != self.game:
            raise Revert(NotDisputeGame, caller=caller)
        job = self.job(job_id)
        if job.status not in (JobStatus.Submitted, JobStatus.Slashed):
            raise Revert(WrongStatus, jobId=job_id, expected=JobStatus.Submitted, actual=job.status)
        if not job.disputes:
            raise Revert(NoOpenDispute, jobId=job_id)
        # The market counts disputes; it trusts the game to name the right challenger.
        if challenger in job.disputes:
            job.disputes.remove(challenger)
        else:
            job.disputes.pop()
        return job

    def void_dispute(
        self, ts: int, caller: str, job_id: int, challenger: str
    ) -> list[ContractEvent]:
        job = self.take_dispute(ts, caller, job_id, challenger)
        events: list[ContractEvent] = []
        # Referee silence must not let a result finalize unchallenged: a void on a job still
        # Submitted gives challengers a full window from now (never a shorter one).
        # ... at most MAX_REOPENINGS times, so silence delays settlement by a bounded time.
        reopened = ts + job.challenge_window
        if (
            job.status == JobStatus.Submitted
            and reopened > job.challenge_deadline
            and job.reopenings < MAX_REOPENINGS
        ):
            job.reopenings += 1
            job.challenge_deadline = reopened
            events.append(ChallengeWindowReopened(job_id=job_id, challenge_deadline=reopened))
        return [
            *events,
            DisputeVoided(job_id=job_id, challenger=challenger),
            *self.credit(challenger, job.bond),
        ]

    def resolve_dispute(
        self, ts: int, caller: str, job_id: int, challenger: str, solver_won: bool
    ) -> list[ContractEvent]:
        job = self.take_dispute(ts, caller, job_id, challenger)
        events: list[ContractEvent] = [
            DisputeResolved(job_id=job_id, challenger=challenger, solver_won=solver_won)
        ]
        owed = job.bond
        if solver_won:
            if job.status == JobStatus.Submitted:
                # The solver's share is held until it finalizes (forfeited if slashed).
                owed = 0
                to_solver = job.bond * self.winner_bps // BPS
                job.held += to_solver
                events.append(WinningsHeld(job_id=job_id, solver=job.solver, amount=to_solver))
                events += self.burn(job.bond - to_solver)
            # After a slash a game the solver wins only returns the bond.
        else:
            if job.status == JobStatus.Submitted:
                job.status = JobStatus.Slashed
                to_winners = job.stake * self.winner_bps // BPS
                burned = job.stake - to_winners
                job.pool = to_winners + job.held
                job.held = 0
                events.append(
                    SolverSlashed(
                        job_id=job_id,
                        solver=job.solver,
                        winner=challenger,
                        to_winner=job.pool,
                        burned=burned,
                    )
                )
                events += self.credit(job.submitter, job.reward)
                events += self.burn(burned)
            # Every game proving the result false owns an equal part of the pool.
            job.winning_games += 1
            job.unclaimed[challenger] += 1
        if job.status == JobStatus.Slashed and not job.disputes:
            # The closing game pays its challenger's pool part at once.
            claimed, amount = self.claim_events(job_id, job, challenger)
            events += claimed
            owed += amount
        return events + self.credit(challenger, owed)

    @staticmethod
    def claim_events(
        job_id: int, job: ModelJob, challenger: str
    ) -> tuple[list[ContractEvent], int]:
        games, amount = job.claim(challenger)
        if games == 0:
            return [], 0
        claimed = RewardClaimed(job_id=job_id, challenger=challenger, games=games, amount=amount)
        return [claimed], amount

    def claim_reward(self, ts: int, who: str, job_id: int, challenger: str) -> list[ContractEvent]:
        job = self.job(job_id)
        self.require(job_id, job, JobStatus.Slashed)
        if job.disputes:
            raise Revert(DisputesOpen, jobId=job_id, count=len(job.disputes))
        if job.unclaimed[challenger] == 0:
            raise Revert(NothingToWithdraw, account=challenger)
        events, amount = self.claim_events(job_id, job, challenger)
        return events + self.credit(challenger, amount)


# ------------------------------------------------------------------ the committee


@dataclass
class ModelMember:
    """ArbiterReferee's Member record."""

    stake: int
    active_from: int
    exit_at: int = 0

    def active(self, at: int) -> bool:
        return (
            self.stake != 0 and self.active_from <= at and (self.exit_at == 0 or self.exit_at > at)
        )


@dataclass
class ModelRuling:
    """ArbiterReferee's Ruling on one game, with the votes cast on it."""

    job_id: int
    challenger: str
    requested_at: int
    committee_size: int
    solver_hash: bytes
    # What re-executing the link gives: the test's knowledge (an honest member's vote).
    honest_hash: bytes = ZERO_HASH
    proposed_at: int = 0
    appealed_at: int = 0
    settled: bool = False
    appellant: str = ZERO_ADDRESS
    proposed_hash: bytes = ZERO_HASH
    votes: list[tuple[str, bytes]] = field(default_factory=list)

    def tally(self, computed: bytes) -> int:
        return sum(1 for _, vote in self.votes if vote == computed)

    def solver_won(self, computed: bytes) -> bool:
        return computed != ZERO_HASH and computed == self.solver_hash

    @property
    def wrong_hash(self) -> bytes:
        """The hash that flips the honest outcome (a rogue member's vote)."""
        if self.solver_won(self.honest_hash):
            return ZERO_HASH
        return self.solver_hash if self.solver_hash != ZERO_HASH else b"\x0b" * 32


@dataclass
class Committee:
    """ArbiterReferee (docs/protocol.md §6.5), its DisputeGame, and the market that game
    plays on: `market` is a Model of that second JobMarket whose token ledger (`balances`)
    is the main model's own dict, so both markets and the referee move one token."""

    referee: str
    game: str
    market: Model
    stake: int
    quorum: int
    ruling_window: int
    appeal_window: int
    escalation_window: int
    appeal_bond: int
    membership_delay: int
    members: dict[str, ModelMember]
    order: list[str]  # ArbiterReferee.committee(), in storage order
    credits: Counter[str] = field(default_factory=Counter)
    burned: int = 0
    game_count: int = 0
    rulings: dict[int, ModelRuling] = field(default_factory=dict)

    # ------------------------------------------------------------- token mechanics

    @property
    def balances(self) -> dict[str, int]:
        return self.market.balances

    def pull(self, owner: str, amount: int) -> list[ContractEvent]:
        """transferFrom(owner -> referee) (every account approved the referee in full)."""
        if self.balances[owner] < amount:
            raise Revert(
                ERC20InsufficientBalance, sender=owner, balance=self.balances[owner], needed=amount
            )
        self.balances[owner] -= amount
        self.balances[self.referee] += amount
        return [Transfer(from_=owner, to=self.referee, value=amount)]

    def pay(self, to: str, amount: int) -> list[ContractEvent]:
        self.balances[self.referee] -= amount
        self.balances[to] += amount
        return [Transfer(from_=self.referee, to=to, value=amount)]

    def credit(self, account: str, amount: int) -> list[ContractEvent]:
        if amount == 0:
            return []
        self.credits[account] += amount
        return [RefereeCredited(account=account, amount=amount)]

    def burn(self, amount: int) -> list[ContractEvent]:
        if amount == 0:
            return []
        self.burned += amount
        self.balances[self.referee] -= amount
        return [Transfer(from_=self.referee, to=ZERO_ADDRESS, value=amount)]

    def remove(self, arbiter: str) -> None:
        """_removeMember: the last member takes the leaver's slot."""
        i = self.order.index(arbiter)
        self.order[i] = self.order[-1]
        self.order.pop()

    # -------------------------------------------------------------------- clock

    def phase(self, game_id: int, ts: int) -> RulingPhase:
        r = self.rulings.get(game_id)
        if r is None:
            return RulingPhase.Unrequested
        if r.settled:
            return RulingPhase.Settled
        if r.appealed_at:
            return RulingPhase.Escalated
        if r.proposed_at:
            return RulingPhase.AppealOpen
        if ts <= r.requested_at + self.ruling_window:
            return RulingPhase.Voting
        return RulingPhase.Escalated

    def escalation_deadline(self, r: ModelRuling) -> int:
        start = r.appealed_at or r.requested_at + self.ruling_window
        return start + self.escalation_window

    @property
    def settlement_bound(self) -> int:
        return self.ruling_window + self.appeal_window + self.escalation_window

    def eligible(self, game_id: int, account: str) -> bool:
        r = self.rulings.get(game_id)
        member = self.members.get(account)
        return r is not None and member is not None and member.active(r.requested_at)

    # --------------------------------------------------------------- membership

    def join(self, ts: int, payer: str, arbiter: str) -> list[ContractEvent]:
        member = self.members.get(arbiter)
        if member is not None and member.stake != 0:
            raise Revert(AlreadyMember, account=arbiter)
        if len(self.order) >= MAX_ARBITERS:
            raise Revert(CommitteeFull, max=MAX_ARBITERS)
        # The founding committee (no game ever opened) is active at once.
        active_from = ts + (self.membership_delay if self.game_count else 0)
        self.members[arbiter] = ModelMember(self.stake, active_from)
        self.order.append(arbiter)
        joined = ArbiterJoined(
            arbiter=arbiter, payer=payer, stake=self.stake, active_from=active_from
        )
        return [joined, *self.pull(payer, self.stake)]

    def member_of(self, account: str) -> ModelMember:
        member = self.members.get(account)
        if member is None or member.stake == 0:
            raise Revert(NotArbiter, account=account)
        return member

    def leave(self, ts: int, who: str) -> list[ContractEvent]:
        member = self.member_of(who)
        if member.exit_at:
            raise Revert(ExitPending, account=who, exitAt=member.exit_at)
        member.exit_at = ts + self.membership_delay
        return [ExitRequested(arbiter=who, exit_at=member.exit_at)]

    def withdraw_stake(self, ts: int, who: str) -> list[ContractEvent]:
        member = self.member_of(who)
        if member.exit_at == 0:
            raise Revert(StakeLocked, account=who, availableAt=2**64 - 1)
        available_at = member.exit_at + self.settlement_bound
        if ts < available_at:
            raise Revert(StakeLocked, account=who, availableAt=available_at)
        amount, member.stake = member.stake, 0
        self.remove(who)
        return [StakeWithdrawn(arbiter=who, amount=amount), *self.pay(who, amount)]

    def withdraw(self, ts: int, who: str) -> list[ContractEvent]:
        amount = self.credits.pop(who, 0)
        if amount == 0:
            raise Revert(NoRefereeCredit, account=who)
        return [RefereeWithdrawn(account=who, amount=amount), *self.pay(who, amount)]

    # ------------------------------------------------------------------ rulings

    def open_game(self, ts: int, job_id: int, challenger: str) -> list[ContractEvent]:
        """DisputeGame.challengeAt: a game id, then the market locks the bond (the game's
        own events are not modelled)."""
        self.game_count += 1
        return self.market.open_dispute(ts, self.game, job_id, challenger)

    def request(
        self, ts: int, game_id: int, job_id: int, challenger: str, solver_hash: bytes
    ) -> list[ContractEvent]:
        """requestRuling: the committee is the members active now; they vote until the
        ruling window closes."""
        size = sum(1 for a in self.order if self.members[a].active(ts))
        self.rulings[game_id] = ModelRuling(job_id, challenger, ts, size, solver_hash)
        deadline = ts + self.ruling_window
        return [RulingPending(game_id=game_id, committee_size=size, deadline=deadline)]

    def vote(self, ts: int, who: str, game_id: int, computed: bytes) -> list[ContractEvent]:
        p = self.phase(game_id, ts)
        if p not in (RulingPhase.Voting, RulingPhase.Escalated):
            raise Revert(WrongRulingPhase, gameId=game_id, expected=RulingPhase.Voting, actual=p)
        r = self.rulings[game_id]
        if p == RulingPhase.Escalated and ts > self.escalation_deadline(r):
            raise Revert(
                WrongRulingPhase,
                gameId=game_id,
                expected=RulingPhase.Escalated,
                actual=RulingPhase.Settled,
            )
        if not self.eligible(game_id, who):
            raise Revert(NotEligible, gameId=game_id, account=who)
        if any(voter == who for voter, _ in r.votes):
            raise Revert(AlreadyVoted, gameId=game_id, account=who)
        r.votes.append((who, computed))
        votes = r.tally(computed)
        events: list[ContractEvent] = [
            Voted(game_id=game_id, arbiter=who, computed_hash=computed, votes=votes)
        ]
        if votes * 2 > r.committee_size:  # a strict majority is final at once
            return events + self.decide(ts, game_id, r, computed, by_majority=True)
        if p == RulingPhase.Voting and votes >= self.quorum:
            r.proposed_at, r.proposed_hash = ts, computed
            appeal_deadline = ts + self.appeal_window
            proposed = RulingProposed(
                game_id=game_id,
                computed_hash=computed,
                solver_won=r.solver_won(computed),
                appeal_deadline=appeal_deadline,
            )
            events.append(proposed)
        return events

    def appeal(self, ts: int, who: str, game_id: int) -> list[ContractEvent]:
        p = self.phase(game_id, ts)
        if p != RulingPhase.AppealOpen:
            raise Revert(
                WrongRulingPhase, gameId=game_id, expected=RulingPhase.AppealOpen, actual=p
            )
        r = self.rulings[game_id]
        if ts > r.proposed_at + self.appeal_window:
            raise Revert(
                WrongRulingPhase,
                gameId=game_id,
                expected=RulingPhase.AppealOpen,
                actual=RulingPhase.Settled,
            )
        r.appealed_at, r.appellant = ts, who
        escalated = Escalated(game_id=game_id, appellant=who, deadline=self.escalation_deadline(r))
        events: list[ContractEvent] = [escalated, *self.pull(who, self.appeal_bond)]
        if r.tally(r.proposed_hash) * 2 > r.committee_size:
            events += self.decide(ts, game_id, r, r.proposed_hash, by_majority=True)
        return events

    def settle(self, ts: int, who: str, game_id: int) -> list[ContractEvent]:
        p = self.phase(game_id, ts)
        r = self.rulings.get(game_id)
        if p == RulingPhase.AppealOpen:
            assert r is not None
            if ts <= r.proposed_at + self.appeal_window:
                raise Revert(
                    WrongRulingPhase, gameId=game_id, expected=RulingPhase.Settled, actual=p
                )
            return self.decide(ts, game_id, r, r.proposed_hash, by_majority=False)
        if p != RulingPhase.Escalated or ts <= self.escalation_deadline(r):  # type: ignore[arg-type]
            raise Revert(WrongRulingPhase, gameId=game_id, expected=RulingPhase.Settled, actual=p)
        assert r is not None
        if r.proposed_at:
            return self.decide(ts, game_id, r, r.proposed_hash, by_majority=False)
        top, decisive = self.plurality(r)
        if decisive:
            return self.decide(ts, game_id, r, top, by_majority=False)
        r.settled = True
        return [
            RulingExpired(game_id=game_id),
            GameResolved(game_id=game_id, job_id=r.job_id, status=GameStatus.Void),
            *self.market.void_dispute(ts, self.game, r.job_id, r.challenger),
        ]

    def plurality(self, r: ModelRuling) -> tuple[bytes, bool]:
        """ArbiterReferee._plurality, step for step (over the voters in voting order)."""
        top, best, second = ZERO_HASH, 0, 0
        for _, computed in r.votes:
            votes = r.tally(computed)
            if computed == top and best != 0:
                continue
            if votes > best:
                second, best, top = best, votes, computed
            elif votes > second:
                second = votes
        return top, best >= self.quorum and best > second

    def decide(
        self, ts: int, game_id: int, r: ModelRuling, computed: bytes, by_majority: bool
    ) -> list[ContractEvent]:
        """Report `computed`: settle an appeal (an overturn slashes the proposal's voters,
        half to the appellant), then the game resolves and the market pays."""
        r.settled = True
        overturned = r.proposed_at != 0 and computed != r.proposed_hash
        events: list[ContractEvent] = []
        if r.appealed_at:
            if overturned:
                slashed = 0
                for voter, vote in r.votes:
                    member = self.members[voter]
                    if vote != r.proposed_hash or member.stake == 0:
                        continue
                    slashed += member.stake
                    events.append(
                        ArbiterSlashed(game_id=game_id, arbiter=voter, amount=member.stake)
                    )
                    member.stake = 0
                    self.remove(voter)
                to_appellant = slashed * APPELLANT_SHARE_BPS // BPS
                events += self.credit(r.appellant, self.appeal_bond + to_appellant)
                events += self.burn(slashed - to_appellant)
            elif by_majority:
                events += self.burn(self.appeal_bond)
            else:
                events += self.credit(r.appellant, self.appeal_bond)
        solver_won = r.solver_won(computed)
        status = GameStatus.SolverWon if solver_won else GameStatus.ChallengerWon
        return [
            *events,
            Ruled(
                game_id=game_id,
                computed_hash=computed,
                solver_won=solver_won,
                overturned=overturned,
            ),
            GameResolved(game_id=game_id, job_id=r.job_id, status=status),
            *self.market.resolve_dispute(ts, self.game, r.job_id, r.challenger, solver_won),
        ]


@dataclass
class CommitteeSession:
    """The committee's deployment: a second JobMarket on the same token with a real
    DisputeGame and ArbiterReferee (as a DisputeEnv, for tests/dispute's game actors)."""

    env: DisputeEnv
    reader: BatchReader
    markets: list[JobMarketClient]  # as ACTORS
    referees: dict[int, ArbiterRefereeClient]  # as ACTORS, and as arbiter key KEY0 + i
    keys: list[str]  # the arbiter keys' addresses


@dataclass
class Session:
    """What every example shares: the deployed market, per-account clients, the reader."""

    env: MarketEnv
    markets: list[JobMarketClient]
    tokens: list[WorkTokenClient]
    reader: BatchReader
    base: Model
    sim_lag: int
    side: CommitteeSession
    stats: Counter[str] = field(default_factory=Counter)
    examples: int = 0


job_refs = st.integers(min_value=0, max_value=40)
EXACT = 1_000  # a job ref at or above this names job `ref - EXACT` exactly
actors = st.sampled_from(list(ACTORS))
amounts = st.integers(min_value=1, max_value=10**21)
windows = st.integers(min_value=1, max_value=3_000)
counts = st.integers(min_value=2, max_value=12)
steps_k = st.integers(min_value=1, max_value=1_000)
BAD_TERMS = [None] * 8 + [
    "reward",
    "stake",
    "bond",
    "spec",
    "deadline",
    "submit",
    "challenge",
    "checkpoints",
    "steps",
]
COMMITS = ["ok"] * 5 + ["count", "root", "manifest", "final", "files"]
# How a relayed order is made: mostly fresh and valid; else one of the ways it can be wrong
# (or an earlier stashed order relayed again, which may be stale, early, or just in time).
ORDER_VARIANTS = ["fresh"] * 5 + [
    "stashed",
    "stashed",
    "wrong_signer",
    "tampered",
    "deadline",
    "future_nonce",
    "other_chain",
    "other_market",
]
ORDER_BAD_TERMS = [None] * 8 + ["reward", "checkpoints", "steps", "deadline"]


CHAOS: dict[str, dict[str, st.SearchStrategy[Any]]] = {}


def chaos_args(**strategies: st.SearchStrategy[Any]) -> Callable[[Any], Any]:
    """Register an action for the `chaos` rule, with the strategies of its arguments."""

    def mark(fn: Any) -> Any:
        CHAOS[fn.__name__] = strategies
        return fn

    return mark


class MarketMachine(RuleBasedStateMachine):
    session: ClassVar[Session]

    def __init__(self) -> None:
        super().__init__()
        s = self.session
        self.snapshot = s.env.devnet.snapshot()
        self.model = copy.deepcopy(s.base)
        self.model.now = s.env.devnet.timestamp()
        self.seen: dict[int, JobStatus] = {}
        self.seen_side: dict[int, JobStatus] = {}
        self.side_dirty = False  # a committee action since the side was last read
        self.orders: list[OrderRecord] = []

    def teardown(self) -> None:
        self.session.env.devnet.revert(self.snapshot)
        self.session.examples += 1

    # ------------------------------------------------------------------ plumbing

    def acct(self, index: int) -> LocalAccount:
        return self.session.env.accounts[index]

    def addr(self, index: int) -> str:
        return str(self.acct(index).address)

    def job_id(self, ref: int) -> int:
        n = len(self.model.jobs)
        if ref >= EXACT:
            return ref - EXACT
        if ref == 0:
            return 0
        if ref == 40 or n == 0:
            return n + 1
        # Favour recent jobs: they are the ones with a lifecycle left to run.
        return max(1, n - (ref - 1) % min(n, 4)) if ref % 2 else 1 + (ref - 1) % n

    def act(
        self,
        name: str,
        send: Callable[[], Receipt],
        plan: Callable[[Model, int], list[ContractEvent]],
        tag: str | tuple[str, ...] | None = None,
        *,
        unmodeled: str | None = None,
        simulated: bool = True,
    ) -> None:
        """Predict at the simulation's clock and at the mined clock, send, compare.

        `tag` names a situation the coverage checks want reached: counted as `tag:ok` when
        the call succeeds. Every event of a successful call is counted as `event:Name`;
        events emitted by `unmodeled` (the DisputeGame's own) are not compared.
        `simulated=False`: the client sends with a fixed gas limit and no simulation (the
        referee's vote and settle), so every revert is mined.
        """
        sim_ts = self.model.now + self.session.sim_lag
        exec_ts = self.model.now + 1
        try:
            if simulated:
                plan(copy.deepcopy(self.model), sim_ts)
        except Revert as expected:
            with pytest.raises(ContractRevert) as info:
                send()
            assert type(info.value) is expected.error, (name, info.value, expected)
            assert dict(info.value.args_by_name) == expected.args_by_name, name
            # Reverted in the simulation: nothing was broadcast, so no transaction hash.
            assert getattr(info.value, "tx_hash", None) is None, name
            self.session.stats[f"{name}:{expected.error.__name__}"] += 1
            return
        mined = copy.deepcopy(self.model)
        try:
            events = plan(mined, exec_ts)
        except Revert as expected:
            # Mined and reverted: the client replays it and raises the same named error.
            with pytest.raises(ContractRevert) as info:
                send()
            assert type(info.value) is expected.error, (name, "mined", info.value, expected)
            assert dict(info.value.args_by_name) == expected.args_by_name, (name, "mined")
            assert getattr(info.value, "tx_hash", None), (name, "mined revert without tx hash")
            self.model.now = exec_ts  # a reverted transaction still fills a block
            self.session.stats[f"{name}:mined-revert:{expected.error.__name__}"] += 1
            return
        receipt = send()
        seen = [
            log.event
            for log in receipt.logs
            if unmodeled is None or log.address.lower() != unmodeled.lower()
        ]
        assert seen == events, name
        mined.now = exec_ts
        self.model = mined
        self.session.stats[f"{name}:ok"] += 1
        for reached in (tag,) if isinstance(tag, str) else tag or ():
            self.session.stats[f"{reached}:ok"] += 1
        for event in events:
            self.session.stats[f"event:{type(event).__name__}"] += 1
            if isinstance(event, Ruled) and event.overturned:
                self.session.stats["event:Ruled:overturned"] += 1

    # --------------------------------------------------------------------- rules

    @chaos_args(
        who=actors,
        bad=st.sampled_from(BAD_TERMS),
        reward=amounts,
        stake=amounts,
        bond=amounts,
        claim_in=st.integers(min_value=1, max_value=6_000),
        submit_window=windows,
        challenge_window=windows,
        permit=st.sampled_from(["none", "none", "valid", "expired", "forged"]),
        count=counts,
        steps=steps_k,
    )
    def post(
        self,
        who: int,
        bad: str | None,
        reward: int,
        stake: int,
        bond: int,
        claim_in: int,
        submit_window: int,
        challenge_window: int,
        permit: str,
        count: int = 5,
        steps: int = 25,
    ) -> None:
        now = self.model.now
        terms = JobTerms(
            spec_hash=Hash32(ZERO_HASH if bad == "spec" else SPEC_HASH),
            spec_cid=SPEC_CID,
            reward=0 if bad == "reward" else reward,  # type: ignore[arg-type]
            solver_stake=0 if bad == "stake" else stake,  # type: ignore[arg-type]
            challenger_bond=0 if bad == "bond" else bond,  # type: ignore[arg-type]
            claim_deadline=now - claim_in % 3 if bad == "deadline" else now + claim_in,
            submit_window=MAX_WINDOW + 1 if bad == "submit" else submit_window,
            challenge_window=0 if bad == "challenge" else challenge_window,
            steps_per_checkpoint=0 if bad == "steps" else steps,
            checkpoint_count=count % 2 if bad == "checkpoints" else count,
        )
        account = self.acct(who)
        market = self.session.markets[who]
        if permit == "none":
            self.act(
                "post",
                lambda: market.post_job(terms)[1],
                lambda m, ts: m.post(ts, account.address, terms),
            )
            return
        signer = self.acct((who + 1) % 9) if permit == "forged" else account
        deadline = now - 1 if permit == "expired" else now + 1_000
        signature = self.session.tokens[0].sign_permit(
            signer, self.model.market, terms.reward, deadline
        )
        ok = permit == "valid"
        self.act(
            f"post_permit_{permit}",
            lambda: market.post_job_with_permit(terms, signature)[1],
            lambda m, ts: m.post(ts, account.address, terms, permit_ok=ok),
        )

    @chaos_args(who=st.one_of(st.just(-1), actors), ref=job_refs)
    def cancel(self, who: int, ref: int) -> None:
        job_id = self.job_id(ref)
        if who == -1:
            job = self.model.jobs.get(job_id)
            who = self.index_of(job.submitter) if job else 1
        address = self.addr(who)
        self.act(
            "cancel",
            lambda: self.session.markets[who].cancel(JobId(job_id)),
            lambda m, ts: m.cancel(ts, address, job_id),
        )

    @chaos_args(who=actors, ref=job_refs)
    def claim(self, who: int, ref: int) -> None:
        job_id = self.job_id(ref)
        address = self.addr(who)
        self.act(
            "claim",
            lambda: self.session.markets[who].claim(JobId(job_id)),
            lambda m, ts: m.claim(ts, address, job_id),
        )

    @chaos_args(
        who=st.one_of(st.just(-1), st.just(-1), actors),
        ref=job_refs,
        commit=st.sampled_from(COMMITS),
    )
    def submit(self, who: int, ref: int, commit: str) -> None:
        job_id = self.job_id(ref)
        if who == -1:
            job = self.model.jobs.get(job_id)
            who = self.index_of(job.solver) if job and job.solver != ZERO_ADDRESS else 3
        address = self.addr(who)
        root = Hash32(ZERO_HASH if commit == "root" else TRACE_ROOT)
        job = self.model.jobs.get(job_id)
        expected = job.checkpoint_count if job else 8
        count = expected - 1 if commit == "count" else expected
        cid = Cid("" if commit == "manifest" else MANIFEST_CID)
        final = Hash32(ZERO_HASH if commit == "final" else FINAL_STATE)
        files = Hash32(ZERO_HASH if commit == "files" else FILES_ROOT)
        self.act(
            "submit",
            lambda: self.session.markets[who].submit_result(
                JobId(job_id), root, count, cid, final, files
            ),
            lambda m, ts: m.submit(ts, address, job_id, root, count, cid, final, files),
        )

    @chaos_args(who=actors, ref=job_refs)
    def expire(self, who: int, ref: int) -> None:
        job_id = self.job_id(ref)
        address = self.addr(who)
        self.act(
            "expire",
            lambda: self.session.markets[who].expire(JobId(job_id)),
            lambda m, ts: m.expire(ts, address, job_id),
        )

    @chaos_args(who=actors, ref=job_refs)
    def finalize(self, who: int, ref: int) -> None:
        job_id = self.job_id(ref)
        address = self.addr(who)
        self.act(
            "finalize",
            lambda: self.session.markets[who].finalize(JobId(job_id)),
            lambda m, ts: m.finalize(ts, address, job_id),
        )

    @chaos_args(who=actors)
    def withdraw(self, who: int) -> None:
        address = self.addr(who)
        self.act(
            "withdraw",
            lambda: self.session.markets[who].withdraw(),
            lambda m, ts: m.withdraw(ts, address),
        )

    @rule(who=actors, amount=st.sampled_from([0, MAX_UINT256, 10**20, 10**21 + 7]))
    def approve(self, who: int, amount: int) -> None:
        address = self.addr(who)
        self.act(
            "approve",
            lambda: self.session.tokens[who].approve(self.model.market, amount),
            lambda m, ts: m.approve(address, amount),
        )

    @chaos_args(
        caller=st.sampled_from([GAME, GAME, GAME, *ACTORS]),
        ref=job_refs,
        challenger=st.integers(min_value=1, max_value=8),
    )
    def open_dispute(self, caller: int, ref: int, challenger: int) -> None:
        job_id = self.job_id(ref)
        caller_address, challenger_address = self.addr(caller), self.addr(challenger)
        job = self.model.jobs.get(job_id)
        # A dispute opened after the original deadline, in a window a void reopened.
        reopened = job is not None and self.model.now + 1 > job.submitted_deadline > 0
        self.act(
            "open_dispute",
            lambda: self.session.markets[caller].open_dispute(JobId(job_id), challenger_address),
            lambda m, ts: m.open_dispute(ts, caller_address, job_id, challenger_address),
            tag="open_dispute:reopened-window" if reopened else None,
        )

    @chaos_args(
        caller=st.sampled_from([GAME, GAME, GAME, *ACTORS]),
        ref=job_refs,
        pick=st.one_of(
            st.integers(min_value=0, max_value=3), st.integers(min_value=-8, max_value=-1)
        ),
        solver_won=st.booleans(),
    )
    def resolve_dispute(self, caller: int, ref: int, pick: int, solver_won: bool) -> None:
        job_id = self.job_id(ref)
        job = self.model.jobs.get(job_id)
        if pick >= 0 and job and job.disputes:
            challenger_address = job.disputes[pick % len(job.disputes)]
        else:
            challenger_address = self.addr(-pick)
        caller_address = self.addr(caller)
        slashed = job is not None and job.status == JobStatus.Slashed
        winner = "solver" if solver_won else "challenger"
        self.act(
            "resolve_dispute",
            lambda: self.session.markets[caller].resolve_dispute(
                JobId(job_id), challenger_address, solver_won
            ),
            lambda m, ts: m.resolve_dispute(
                ts, caller_address, job_id, challenger_address, solver_won
            ),
            tag=f"resolve_dispute:after-slash:{winner}-won" if slashed else None,
        )

    @chaos_args(
        caller=st.sampled_from([GAME, GAME, GAME, *ACTORS]),
        ref=job_refs,
        pick=st.one_of(
            st.integers(min_value=0, max_value=3), st.integers(min_value=-8, max_value=-1)
        ),
    )
    def void_dispute(self, caller: int, ref: int, pick: int) -> None:
        job_id = self.job_id(ref)
        job = self.model.jobs.get(job_id)
        if pick >= 0 and job and job.disputes:
            challenger_address = job.disputes[pick % len(job.disputes)]
        else:
            challenger_address = self.addr(-pick)
        caller_address = self.addr(caller)
        self.act(
            "void_dispute",
            lambda: self.session.markets[caller].void_dispute(JobId(job_id), challenger_address),
            lambda m, ts: m.void_dispute(ts, caller_address, job_id, challenger_address),
        )

    @chaos_args(
        caller=st.sampled_from(ACTORS),
        ref=job_refs,
        pick=st.one_of(
            st.integers(min_value=0, max_value=3), st.integers(min_value=-8, max_value=-1)
        ),
    )
    def claim_reward(self, caller: int, ref: int, pick: int) -> None:
        """Anyone credits a winning challenger its part of a slashed job's pool."""
        job_id = self.job_id(ref)
        job = self.model.jobs.get(job_id)
        owed = sorted(a for a, n in job.unclaimed.items() if n) if job else []
        challenger_address = owed[pick % len(owed)] if pick >= 0 and owed else self.addr(-pick)
        caller_address = self.addr(caller)
        self.act(
            "claim_reward",
            lambda: self.session.markets[caller].claim_reward(JobId(job_id), challenger_address),
            lambda m, ts: m.claim_reward(ts, caller_address, job_id, challenger_address),
        )

    def sign_order(
        self,
        signer: int,
        submitter: int,
        terms: JobTerms,
        deadline: int,
        nonce: int,
        domain: str = "ok",
    ) -> OrderRecord:
        """`signer` signs a JobOrder naming `submitter`; the record says what it covers."""
        market = self.session.markets[0]
        typed = market.job_order_typed_data(terms, self.addr(submitter), nonce, deadline)
        if domain == "other_chain":
            typed["domain"]["chainId"] += 1
        elif domain == "other_market":
            typed["domain"]["verifyingContract"] = self.session.env.token.address
        signed = self.acct(signer).sign_message(encode_typed_data(full_message=typed))
        order = SignedJobOrder(
            terms=terms,
            submitter=Address(self.addr(submitter)),
            nonce=nonce,
            deadline=deadline,
            signature=bytes(signed.signature),
        )
        record = OrderRecord(
            order=order,
            signed_by=self.addr(signer),
            signed_submitter=self.addr(submitter),
            signed_terms=terms,
            signed_deadline=deadline,
            signed_nonce=nonce,
            domain_ok=domain == "ok",
        )
        self.orders.append(record)
        return record

    @rule(
        who=actors,
        relayer=st.sampled_from([0, 0, 8, GAME, *ACTORS]),
        variant=st.sampled_from(ORDER_VARIANTS),
        permit=st.sampled_from(["none", "none", "valid", "forged"]),
        deadline_in=st.one_of(st.integers(min_value=-2, max_value=2), st.just(1_000)),
        bad=st.sampled_from(ORDER_BAD_TERMS),
        pick=st.integers(min_value=0, max_value=7),
        reward=amounts,
        count=counts,
    )
    def post_for(
        self,
        who: int,
        relayer: int,
        variant: str,
        permit: str,
        deadline_in: int,
        bad: str | None,
        pick: int,
        reward: int,
        count: int,
    ) -> None:
        """A relayer posts `who`'s signed order (postJobFor)."""
        now = self.model.now
        if variant == "stashed" and self.orders:
            record = self.orders[pick % len(self.orders)]
        else:
            terms = JobTerms(
                SPEC_HASH,
                SPEC_CID,
                0 if bad == "reward" else reward,  # type: ignore[arg-type]
                10**17 + pick,  # type: ignore[arg-type]
                10**16 + who,  # type: ignore[arg-type]
                now - pick % 2 if bad == "deadline" else now + 3_000,
                500 + pick,
                600,
                0 if bad == "steps" else 10 + pick,
                1 if bad == "checkpoints" else count,
            )
            deadline = now + deadline_in
            nonce = self.model.order_nonces[self.addr(who)] + (variant == "future_nonce")
            signer = (who + 1 + pick % 8) % 9 if variant == "wrong_signer" else who
            domain = variant if variant in ("other_chain", "other_market") else "ok"
            record = self.sign_order(signer, who, terms, deadline, nonce, domain)
            if variant == "tampered":
                tampered = replace(terms, reward=terms.reward + 1 + pick)
                record = replace(record, order=replace(record.order, terms=tampered))
            elif variant == "deadline":
                record = replace(record, order=replace(record.order, deadline=deadline + 1))
        order = record.order
        owner = self.index_of(order.submitter)
        permit_signer = self.acct((owner + 1) % 9 if permit == "forged" else owner)
        signature = (
            self.session.tokens[0].sign_permit(
                permit_signer, self.model.market, order.terms.reward, now + 1_000
            )
            if permit != "none"
            else NO_PERMIT
        )
        ok = permit == "valid"
        market = self.session.markets[relayer]
        self.act(
            "post_for",
            lambda: market.post_job_for(order, signature)[1],
            lambda m, ts: m.post_for(ts, record, ok),
        )

    @chaos_args(who=actors)
    def set_dispute_game(self, who: int) -> None:
        address = self.addr(who)

        def plan(m: Model, ts: int) -> list[ContractEvent]:
            if who != 0:
                raise Revert(NotDeployer, caller=address)
            raise Revert(DisputeGameAlreadySet, current=m.game)

        self.act(
            "set_dispute_game",
            lambda: self.session.markets[who].set_dispute_game(address),
            plan,
        )

    @rule(data=st.data(), kind=st.sampled_from(sorted(CHAOS)))
    def chaos(self, data: st.DataObject, kind: str) -> None:
        """Any action by any account on any id, valid or not (one rule, so that it does not
        crowd out the lifecycle rules below)."""
        kwargs = {name: data.draw(strategy, label=name) for name, strategy in CHAOS[kind].items()}
        getattr(self, kind)(**kwargs)

    # Lifecycle-driving rules: the right actor on a job in the right status, so that
    # examples get deep into the lifecycle (they can still fail on a deadline or allowance,
    # and the model still predicts which way).

    def jobs_in(self, *statuses: JobStatus) -> list[int]:
        return [j for j, job in self.model.jobs.items() if job.status in statuses]

    @rule(
        who=st.integers(min_value=1, max_value=8),
        reward=amounts,
        stake=amounts,
        bond=amounts,
        claim_in=st.integers(min_value=1, max_value=6_000),
        submit_window=windows,
        challenge_window=windows,
        count=counts,
        steps=steps_k,
    )
    def post_valid(
        self,
        who: int,
        reward: int,
        stake: int,
        bond: int,
        claim_in: int,
        submit_window: int,
        challenge_window: int,
        count: int = 5,
        steps: int = 25,
    ) -> None:
        terms = JobTerms(
            SPEC_HASH,
            SPEC_CID,
            reward,  # type: ignore[arg-type]
            stake,  # type: ignore[arg-type]
            bond,  # type: ignore[arg-type]
            self.model.now + claim_in,
            submit_window,
            challenge_window,
            steps,
            count,
        )
        address = self.addr(who)
        market = self.session.markets[who]
        self.act(
            "post", lambda: market.post_job(terms)[1], lambda m, ts: m.post(ts, address, terms)
        )

    @rule(
        pick=st.integers(min_value=0, max_value=7),
        who=st.integers(min_value=1, max_value=8),
        choice=st.integers(min_value=0, max_value=9),
        wait=st.booleans(),
    )
    def advance(self, pick: int, who: int, choice: int, wait: bool) -> None:
        """Take the next lifecycle step of a live or disputed job, as its rightful actor.

        One rule for the whole pipeline, so that swarm testing cannot switch half of it off.
        The step can still fail (a deadline passed, an allowance was revoked): the model
        predicts that too.
        """
        active = [j for j, job in self.model.jobs.items() if job.status in LIVE or job.disputes]
        if not active:
            if choice < 3:  # a relayed, signed order
                self.post_for(who, 0, "fresh", "none", 1_000, None, pick, 10**18 + pick, 2 + choice)
            else:
                self.post_valid(
                    who, 10**18 + pick, 10**17 + choice, 10**16 + who, 2_000, 500, 500, 2 + pick
                )
            return
        job_id = active[pick % len(active)]
        job = self.model.jobs[job_id]
        ref = self.ref_of(job_id)
        if job.status == JobStatus.Open and choice < 7:
            self.claim(who, ref)
        elif job.status == JobStatus.Open and choice < 8:
            self.cancel(-1, ref)
        elif job.status == JobStatus.Open:
            self.wait_past(job.claim_deadline, wait)
            self.expire(who, ref)
        elif job.status == JobStatus.Claimed and choice < 7:
            # Now and then the solver commits to the wrong number of checkpoints.
            self.submit(-1, ref, "count" if choice == 6 and not wait else "ok")
        elif job.status == JobStatus.Claimed:
            self.wait_past(job.submit_deadline, wait)
            self.expire(who, ref)
        elif job.disputes and choice < 5:
            challenger = self.index_of(job.disputes[choice % len(job.disputes)])
            if choice in (3, 4):  # the referee gave no ruling in time
                self.void_dispute(GAME, ref, -challenger)
            else:
                self.resolve_dispute(GAME, ref, -challenger, choice % 2 == 0)
        elif job.status == JobStatus.Submitted and choice < 8:
            self.open_dispute(GAME, ref, who)
        else:
            self.wait_past(job.challenge_deadline, wait)
            self.finalize(who, ref)

    # The pipeline twice: Hypothesis' swarm testing switches rules off per example, and the
    # lifecycle must stay the common case.
    advance_again = advance

    @rule(
        who=st.integers(min_value=1, max_value=8),
        window=st.integers(min_value=4, max_value=600),
        challengers=st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=3),
        outcomes=st.lists(
            st.sampled_from(["solver", "challenger", "void"]), min_size=4, max_size=4
        ),
        late=st.booleans(),
        miscount=st.booleans(),
    )
    def dispute_round(
        self,
        who: int,
        window: int,
        challengers: list[int],
        outcomes: list[str],
        late: bool,
        miscount: bool,
    ) -> None:
        """One submitted job through a whole dispute round, every step model-checked and
        followed by the invariants (as if each were a rule of its own):

        post, claim and submit a job unless one is ready (now and then the submitter first
        posts a layout the market refuses and the solver first miscounts its checkpoints);
        open 1-3 disputes; maybe let the original challenge window pass; settle each dispute
        (solver won, challenger won or voided, in any mix: so resolutions after a slash and
        voids that reopen the window occur); dispute once more, which after the original
        deadline only a reopened window allows, and settle that too; then, if nobody proved
        the solver wrong, finalize: refused in the last second of the (possibly reopened)
        window, accepted the second after.

        The lifecycle rules reach disputes only now and then (a job needs post, claim and
        submit first, and clock jumps close small windows); this rule makes the dispute
        outcomes a common case, and leaves its job settled so that it does not crowd the
        lifecycle rules. Any step may still fail (an allowance revoked by `approve`, a
        balance spent): the model predicts that too, and the round goes on accordingly.
        """

        def then(action: Callable[[], None]) -> None:
            action()
            self.market_matches_model_and_conserves_tokens()

        def job() -> ModelJob:  # self.act replaces the model on every success
            return self.model.jobs[job_id]

        n = len(challengers)
        fresh = [
            j
            for j, mj in self.model.jobs.items()
            if mj.status == JobStatus.Submitted
            and not mj.disputes
            and mj.challenge_deadline > self.model.now + n
        ]
        if fresh:
            job_id = fresh[-1]
        else:
            terms = (who, 10**18 + who, 10**17 + window, 10**16 + n, 2_000, 600, window)
            if miscount:  # a layout the market refuses: < 2 checkpoints, or K = 0
                layout = (1, 25) if who % 2 else (5, 0)
                then(lambda: self.post_valid(*terms, *layout))
            posted = len(self.model.jobs)
            then(lambda: self.post_valid(*terms))
            job_id = len(self.model.jobs)
            if job_id == posted:  # the post itself failed (say, its allowance was revoked)
                return
            if job().status == JobStatus.Open:
                then(lambda: self.claim(who, self.ref_of(job_id)))
            if job().status == JobStatus.Claimed and miscount:
                then(lambda: self.submit(-1, self.ref_of(job_id), "count"))
            if job().status == JobStatus.Claimed:
                then(lambda: self.submit(-1, self.ref_of(job_id), "ok"))
            if job().status != JobStatus.Submitted:
                return
        ref = self.ref_of(job_id)

        def settle(outcome: str, challenger: str) -> None:
            pick = -self.index_of(challenger)
            if outcome == "void":
                then(lambda: self.void_dispute(GAME, ref, pick))
            else:
                then(lambda: self.resolve_dispute(GAME, ref, pick, outcome == "solver"))

        for challenger in challengers:
            then(lambda c=challenger: self.open_dispute(GAME, ref, c))
        if late:
            self.wait_past(job().challenge_deadline, True)
        for outcome, challenger in zip(outcomes, list(job().disputes), strict=False):
            settle(outcome, challenger)
        if job().status == JobStatus.Submitted:
            then(lambda: self.open_dispute(GAME, ref, challengers[0]))
        for challenger in list(job().disputes):
            settle(outcomes[-1], challenger)
        if job().status != JobStatus.Submitted or job().disputes:
            return
        deadline = job().challenge_deadline
        if deadline - 1 > self.model.now:  # the finalize lands in the window's last second
            self.model.now = deadline - 1
            mine_at(self.session.env.devnet, self.model.now)
            then(lambda: self.finalize(who, ref))
        self.wait_past(deadline, True)
        then(lambda: self.finalize(who, ref))

    # ---------------------------------------------------------------- the committee

    def side_act(self, *args: Any, **kwargs: Any) -> None:
        """act() on the committee's contracts: the next invariant check reads them too."""
        self.side_dirty = True
        self.act(*args, **kwargs)

    def side_addr(self, who: int) -> str:
        """An actor's address, or arbiter key `who - KEY0`'s."""
        return self.session.side.keys[who - KEY0] if who >= KEY0 else self.addr(who)

    def who_of(self, address: str) -> int:
        """side_addr's inverse (members may be actors too)."""
        keys = self.session.side.keys
        return KEY0 + keys.index(address) if address in keys else self.index_of(address)

    def open_committee_game(self, solver: int, challenger: int, link: int | None) -> int | None:
        """Post, claim and submit a one-step job on the committee's market and play a real
        game on it (challengeAt the only checkpoint pair, K = 1, M = 1) to its ruling
        request; returns the game id, or None if a step failed (the model said which)."""
        side = self.session.side
        c = self.model.committee
        divergence = None if link is None else Divergence(0, link)
        lie = SyntheticTrace(solver + 2 * challenger, 1, 1, 1, divergence)
        honest = lie.honest()
        terms = JobTerms(
            Hash32(lie.spec_hash()),
            SPEC_CID,
            10**18 + solver,  # type: ignore[arg-type]
            6 * 10**17 + challenger,  # type: ignore[arg-type]
            c.market.min_bond + 10**16 * (1 + challenger),  # type: ignore[arg-type]
            self.model.now + 3_000,
            600,
            600,
            lie.k,
            lie.checkpoints + 1,
        )
        submitter, solver_i, challenger_i = 1, 2 + solver, 4 + challenger
        jobs = len(c.market.jobs)
        self.side_act(
            "committee:post",
            lambda: side.markets[submitter].post_job(terms)[1],
            lambda m, ts: m.committee.market.post(ts, self.addr(submitter), terms),
        )
        self.market_matches_model_and_conserves_tokens()
        job_id = len(self.model.committee.market.jobs)
        if job_id == jobs:
            return None
        self.side_act(
            "committee:claim",
            lambda: side.markets[solver_i].claim(JobId(job_id)),
            lambda m, ts: m.committee.market.claim(ts, self.addr(solver_i), job_id),
        )
        self.market_matches_model_and_conserves_tokens()
        commitment = (
            Hash32(lie.trace_root),
            lie.checkpoints + 1,
            MANIFEST_CID,
            Hash32(lie.leaves[-1]),
            Hash32(lie.files_root),
        )
        self.side_act(
            "committee:submit",
            lambda: side.markets[solver_i].submit_result(JobId(job_id), *commitment),
            lambda m, ts: m.committee.market.submit(ts, self.addr(solver_i), job_id, *commitment),
        )
        self.market_matches_model_and_conserves_tokens()
        if self.model.committee.market.jobs[job_id].status != JobStatus.Submitted:
            return None
        game = side.env.game
        games = self.model.committee.game_count
        challenger_address = self.addr(challenger_i)
        self.side_act(
            "committee:challenge",
            lambda: game.as_account(self.acct(challenger_i)).challenge_at(
                JobId(job_id),
                3,
                0,
                (lie.leaves[0], lie.leaves[1]),
                (lie.checkpoint_proof(0), lie.checkpoint_proof(1)),
            )[1],
            lambda m, ts: m.committee.open_game(ts, job_id, challenger_address),
            unmodeled=game.address,
        )
        game_id = self.model.committee.game_count
        if game_id == games:
            return None
        pair = game_actors(side.env, lie, honest, solver, challenger)
        for _ in range(8):
            if not self.committee_move(game_id, job_id, challenger_address, pair):
                break
        record = game.get_game(GameId(game_id))
        assert record.status == GameStatus.AwaitingRuling, record
        ruling = self.model.committee.rulings[game_id]
        ruling.honest_hash = decide(record, TraceOracle(honest)).computed
        return game_id

    def committee_move(
        self, game_id: int, job_id: int, challenger: str, pair: tuple[GameActor, GameActor]
    ) -> bool:
        """The honest move of the side to move (False once the game awaits its ruling); the
        solver's bundle requests the ruling, the only move the model sees."""
        game = self.session.side.env.game
        record = game.get_game(GameId(game_id))
        if record.status == GameStatus.AwaitingRuling:
            return False
        actor = pair[0] if record.turn == Party.Solver else pair[1]
        hashes = game.pending_dissection(record) if actor.role == Party.Challenger else None
        move = honest_move(record, actor.role, actor.trace_for(record), hashes, self.model.now)
        assert move is not None, record

        def plan(m: Model, ts: int) -> list[ContractEvent]:
            if not isinstance(move, PostBundle):
                return []
            return m.committee.request(ts, game_id, job_id, challenger, record.hash_hi)

        self.side_act(
            "committee:move",
            lambda: actor.send(record, move, hashes),
            plan,
            unmodeled=game.address,
        )
        return True

    def committee_vote(self, who: int, game_id: int, computed: bytes) -> None:
        address = self.side_addr(who)
        r = self.model.committee.rulings.get(game_id)
        name, tags = "vote", []
        if r is not None:
            member = self.model.committee.members.get(address)
            if member is not None and member.stake and member.active_from > r.requested_at:
                name = "vote:joined-after-request"  # refused: the membership delay at work
            if member is not None and member.exit_at:
                tags.append("vote:leaving-member")  # eligible while its exit is pending
            if self.model.committee.phase(game_id, self.model.now + 1) == RulingPhase.Escalated:
                # The whole committee decides: after an appeal, or a silent ruling window.
                tags.append("vote:after-appeal" if r.appealed_at else "vote:silent-escalation")
        self.side_act(
            name,
            lambda: self.session.side.referees[who].vote(GameId(game_id), computed),
            lambda m, ts: m.committee.vote(ts, address, game_id, computed),
            tag=tuple(tags),
            simulated=False,
        )

    def committee_appeal(self, who: int, game_id: int) -> None:
        address = self.side_addr(who)
        self.side_act(
            "appeal",
            lambda: self.session.side.referees[who].appeal(GameId(game_id)),
            lambda m, ts: m.committee.appeal(ts, address, game_id),
        )

    def committee_settle(self, who: int, game_id: int) -> None:
        address = self.side_addr(who)
        self.side_act(
            "settle",
            lambda: self.session.side.referees[who].settle(GameId(game_id)),
            lambda m, ts: m.committee.settle(ts, address, game_id),
            simulated=False,
        )

    def jump_to(self, target: int) -> None:
        if target > self.model.now:
            self.model.now = target
            mine_at(self.session.env.devnet, target)

    @precondition(lambda self: self.model.committee.game_count == 0)
    @rule(
        gate=st.integers(0, ROUND_ODDS - 1),
        scenario=st.sampled_from(SCENARIOS),
        solver=st.integers(0, 1),
        challenger=st.integers(0, 2),
        link=st.sampled_from([None, None, 1, 2]),
        five=st.booleans(),
    )
    def committee_round(
        self,
        gate: int,
        scenario: Scenario,
        solver: int,
        challenger: int,
        link: int | None,
        five: bool,
    ) -> None:
        """A real game on the committee's market, ruled by the staked committee, every step
        model-checked (its events or its named error), the invariants after each step of
        the job's lifecycle and after the round.

        Before the first game two spare keys may join (the committee of five, active at once
        while no game exists; SCENARIOS with a rogue pair always have it); post, claim,
        submit a one-step job (an honest solver, or one lying at the op link) and play it to
        the ruling request; then the scenario: maybe let the ruling window pass in silence
        (the ruling escalates by itself); a minority of rogue members votes the
        outcome-flipping hash first (or a spare key joins now and is refused its vote: it
        votes only on rulings requested after MEMBERSHIP_DELAY); the harmed party appeals a
        wrong proposal (or not); `turnout` honest members vote the re-executed hash;
        whatever is still open settles after its window (a proposal stands, a plurality with
        QUORUM votes decides, or the game is voided and the market reopens its window).
        `stop` leaves the ruling open for the `committee` rule's random votes, appeals,
        settles and clock jumps.
        """
        if gate:
            return  # the rounds are costly: a committee round in about one example in four
        rogues, silent, appeal, turnout, stop = (
            scenario.rogues,
            scenario.silent,
            scenario.appeal,
            scenario.turnout,
            scenario.stop,
        )
        five = five or rogues == 2

        c = self.model.committee
        if five and c.game_count == 0:
            for key in range(FOUNDING, FOUNDING + 2):
                self.membership("join", KEY0 + key, KEY0 + key)
        game_id = self.open_committee_game(solver, challenger, link)
        if game_id is None or stop == "opened":
            return

        def ruling() -> ModelRuling:
            return self.model.committee.rulings[game_id]

        if silent:
            self.jump_to(ruling().requested_at + self.model.committee.ruling_window + 1)
        voters = [
            a for a in self.model.committee.order if self.model.committee.eligible(game_id, a)
        ]
        keys = [self.who_of(a) for a in voters]
        rogue = keys[: min(rogues, (len(keys) - 1) // 2)]
        honest = keys[len(rogue) :]
        spares = [k for k in self.session.side.keys if k not in self.model.committee.order]
        if scenario.late_joiner and spares:  # it votes only on rulings requested later
            late = self.who_of(spares[0])
            self.membership("join", late, late)
            self.committee_vote(late, game_id, ruling().honest_hash)
        for who in rogue:
            self.committee_vote(who, game_id, ruling().wrong_hash)
        if stop == "rogues":
            return
        harmed = 4 + challenger if ruling().solver_won(ruling().wrong_hash) else 2 + solver
        if (
            appeal
            and self.model.committee.phase(game_id, self.model.now + 1) == RulingPhase.AppealOpen
        ):
            self.committee_appeal(harmed, game_id)
        for who in honest if turnout is None else honest[:turnout]:
            if self.model.committee.phase(game_id, self.model.now + 1) not in (
                RulingPhase.Voting,
                RulingPhase.Escalated,
            ):
                break
            if scenario.leaver and who == honest[0]:  # it still votes on this ruling
                self.membership("leave", who, who)
            self.committee_vote(who, game_id, ruling().honest_hash)
        r = ruling()
        if r.settled:
            return
        phase = self.model.committee.phase(game_id, self.model.now + 1)
        if phase == RulingPhase.AppealOpen:
            self.jump_to(r.proposed_at + self.model.committee.appeal_window + 1)
        else:
            if phase == RulingPhase.Voting:
                self.jump_to(r.requested_at + self.model.committee.ruling_window + 1)
            self.jump_to(self.model.committee.escalation_deadline(r) + 1)
        self.committee_settle(harmed, game_id)

    def membership(self, kind: str, who: int, payer: int) -> None:
        """join (paid by `payer`), leave, withdrawStake or withdraw (referee credit)."""
        address, payer_address = self.side_addr(who), self.side_addr(payer)
        referee = self.session.side.referees

        def send() -> Receipt:
            if kind == "join":
                return referee[payer].join(address)
            return getattr(referee[who], kind)()  # type: ignore[no-any-return]

        def plan(m: Model, ts: int) -> list[ContractEvent]:
            if kind == "join":
                return m.committee.join(ts, payer_address, address)
            return getattr(m.committee, kind)(ts, address)  # type: ignore[no-any-return]

        self.side_act(f"referee:{kind}", send, plan)

    @rule(
        kind=st.sampled_from(
            [
                "vote",
                "vote",
                "vote",
                "appeal",
                "settle",
                "jump",
                "jump",
                "join",
                "leave",
                "withdraw_stake",
                "withdraw",
            ]
        ),
        who=st.one_of(st.integers(KEY0, KEY0 + KEYS - 1), st.integers(0, 8)),
        payer=st.sampled_from([0, 1, 5, KEY0, KEY0 + KEYS - 1]),
        pick=st.integers(0, 3),
        vote=st.sampled_from(["honest", "honest", "wrong", "other"]),
        delta=st.integers(-1, 1),
    )
    def committee(self, kind: str, who: int, payer: int, pick: int, vote: str, delta: int) -> None:
        """Any committee action by anyone on any ruling (members and strangers, honest and
        rogue votes, early and late settles and appeals, joins, exits, stake withdrawals),
        or a jump to around one of the referee's deadlines."""
        c = self.model.committee
        # Mostly the latest games; pick 3 names the next game, never requested.
        game_id = c.game_count + 1 if pick == 3 else max(1, c.game_count - pick)
        r = c.rulings.get(game_id)
        if kind == "vote":
            computed = {
                "honest": r.honest_hash if r else ZERO_HASH,
                "wrong": r.wrong_hash if r else ZERO_HASH,
                "other": b"\x0c" * 32,
            }[vote]
            self.committee_vote(who, game_id, computed)
        elif kind == "appeal":
            self.committee_appeal(who, game_id)
        elif kind == "settle":
            self.committee_settle(who, game_id)
        elif kind == "jump":
            address = self.side_addr(who)
            member = c.members.get(address)
            targets = [m.exit_at + c.settlement_bound for m in [member] if m and m.exit_at]
            if r is not None and not r.settled:
                targets += [
                    r.requested_at + c.ruling_window,
                    r.proposed_at + c.appeal_window if r.proposed_at else 0,
                    c.escalation_deadline(r),
                ]
            targets = [t + delta for t in targets if t]
            if targets:
                self.jump_to(targets[pick % len(targets)])
        else:
            self.membership(kind, who, payer)

    def wait_past(self, deadline: int, wait: bool) -> None:
        if wait and deadline + 1 > self.model.now:
            self.model.now = deadline + 1
            mine_at(self.session.env.devnet, self.model.now)

    @staticmethod
    def ref_of(job_id: int) -> int:
        """The job ref that names `job_id` exactly."""
        return EXACT + job_id

    def _owed_rewards(self) -> list[tuple[int, str]]:
        return [
            (job_id, who)
            for job_id, job in self.model.jobs.items()
            if job.status == JobStatus.Slashed and not job.disputes
            for who, games in job.unclaimed.items()
            if games
        ]

    @precondition(lambda self: bool(self._owed_rewards()))
    @rule(pick=st.integers(min_value=0, max_value=9), caller=st.sampled_from(ACTORS))
    def claim_owed_reward(self, pick: int, caller: int) -> None:
        """A winner that was not the closing game's challenger claims its pool part."""
        owed = self._owed_rewards()
        job_id, who = owed[pick % len(owed)]
        self.act(
            "claim_reward",
            lambda: self.session.markets[caller].claim_reward(JobId(job_id), who),
            lambda m, ts: m.claim_reward(ts, self.addr(caller), job_id, who),
        )

    @precondition(lambda self: any(self.model.credits.values()))
    @rule(pick=st.integers(min_value=0, max_value=9))
    def withdraw_credited(self, pick: int) -> None:
        owed = [a for a, c in self.model.credits.items() if c]
        self.withdraw(self.index_of(owed[pick % len(owed)]))

    @rule(seconds=st.integers(min_value=1, max_value=4_000))
    def jump(self, seconds: int) -> None:
        self.model.now += seconds
        mine_at(self.session.env.devnet, self.model.now)

    @precondition(
        lambda self: any(
            j.status in (JobStatus.Open, JobStatus.Claimed) for j in self.model.jobs.values()
        )
    )
    @rule(
        pick=st.integers(min_value=0, max_value=9),
        how=st.sampled_from(["unclaimed", "reopen", "late"]),
        who=actors,
    )
    def expire_at_deadline(self, pick: int, how: str, who: int) -> None:
        """Jobs nobody finishes, each just past its deadline (coverage targets that random
        jumps reach rarely): ``unclaimed``, an Open job past its claim deadline expires;
        a Claimed job past its submit deadline reopens while its claim window lasts
        (``reopen``) or expires after it (``late``)."""
        want = JobStatus.Open if how == "unclaimed" else JobStatus.Claimed
        ids = sorted(i for i, j in self.model.jobs.items() if j.status == want)
        if not ids:
            return
        job_id = ids[pick % len(ids)]
        job = self.model.jobs[job_id]
        target = {  # the call is mined at now + 1
            "unclaimed": job.claim_deadline,
            "reopen": job.submit_deadline,
            "late": max(job.submit_deadline, job.claim_deadline),
        }[how]
        if target > self.model.now:
            self.model.now = target
            mine_at(self.session.env.devnet, target)
        address = self.addr(who)
        self.act(
            "expire",
            lambda: self.session.markets[who].expire(JobId(job_id)),
            lambda m, ts: m.expire(ts, address, job_id),
        )

    @rule(
        ref=job_refs,
        which=st.sampled_from(["claim", "submit", "challenge"]),
        delta=st.integers(-2, 1),
    )
    def jump_to_deadline(self, ref: int, which: str, delta: int) -> None:
        """Put the latest block right around a deadline: where off-by-one bugs live."""
        job = self.model.jobs.get(self.job_id(ref))
        if job is None:
            return
        deadline = {
            "claim": job.claim_deadline,
            "submit": job.submit_deadline,
            "challenge": job.challenge_deadline,
        }[which]
        target = deadline + delta
        if deadline == 0 or target <= self.model.now:
            return
        self.model.now = target
        mine_at(self.session.env.devnet, target)

    def index_of(self, address: str) -> int:
        for i in range(GAME + 1):
            if self.addr(i) == address:
                return i
        raise AssertionError(f"{address} is not a devnet account")

    # ---------------------------------------------------------------- invariants

    @invariant()
    def market_matches_model_and_conserves_tokens(self) -> None:
        m = self.model
        c = m.committee
        snap: MarketSnapshot = self.session.reader.read(len(m.jobs) + 1)
        assert snap.timestamp == m.now

        # (a) conservation of the token: the holders include the committee's market, the
        # referee and its members, so one sum covers both markets and the referee.
        holders = sum(snap.balances.values())
        assert holders + snap.market_balance == snap.total_supply
        assert snap.total_supply + snap.token_burned == snap.total_minted
        assert snap.market_burned == m.burned
        assert snap.token_burned == m.burned + c.market.burned + c.burned

        # The model's ledger, to the wei.
        assert {**snap.balances, m.market: snap.market_balance} == m.balances
        assert snap.order_nonces == m.order_nonces
        self.market_matches(snap, m, self.seen, "")
        if not self.side_dirty:
            return  # nothing was sent to the committee's contracts since the last read
        self.side_dirty = False
        side = self.session.side.reader.read(len(c.market.jobs) + 1)
        assert side.timestamp == m.now
        assert side.market_burned == c.market.burned
        assert side.market_balance == m.balances[c.market.market]
        assert side.order_nonces == c.market.order_nonces
        self.market_matches(side, c.market, self.seen_side, "committee:")
        self.referee_matches(c)

    def referee_matches(self, c: Committee) -> None:
        """(d) the referee's books are the model's, and it holds exactly member stakes +
        open appeal bonds + its credits."""
        side = self.session.side
        accounts = side.keys + [self.addr(i) for i in ACTORS]
        ref = side.reader.read_referee(c.referee, c.game, accounts, c.game_count)
        assert ref.game_count == c.game_count
        assert ref.total_burned == c.burned
        assert ref.credits == {h: c.credits.get(h, 0) for h in ref.credits}
        assert ref.total_credits == sum(c.credits.values())
        assert ref.committee == c.order
        for account, member in ref.members.items():
            mm = c.members.get(account, ModelMember(0, 0))
            assert (member.stake, member.active_from, member.exit_at) == (
                mm.stake,
                mm.active_from,
                mm.exit_at,
            ), account
            # A member is in the committee exactly while it has a stake.
            assert (member.stake != 0) == (account in ref.committee), account
        for game_id, ruling in ref.rulings.items():
            r = c.rulings.get(game_id)
            if r is None:
                assert ruling.requested_at == 0 and not ruling.settled, game_id
                continue
            assert ruling == Ruling(
                r.requested_at,
                r.proposed_at,
                r.appealed_at,
                r.committee_size,
                r.settled,
                r.appellant,
                r.solver_hash,
                r.proposed_hash,
            ), game_id
        stakes = sum(ref.members[a].stake for a in ref.committee)
        open_appeals = sum(1 for r in ref.rulings.values() if r.appealed_at and not r.settled)
        balance = self.model.balances[c.referee]
        assert balance == stakes + open_appeals * c.appeal_bond + ref.total_credits

    def market_matches(
        self, snap: MarketSnapshot, m: Model, seen: dict[int, JobStatus], prefix: str
    ) -> None:
        """(b) and (c) for one market against its model."""
        assert snap.credits == {a: c for a, c in m.credits.items()}
        assert snap.total_credits == sum(snap.credits.values())

        # (b) the market holds exactly its buckets, computed from the chain's own jobs.
        absent = snap.jobs.pop(len(m.jobs) + 1)
        assert absent.status is JobStatus.Absent
        unknown = snap.dispute_terms.pop(len(m.jobs) + 1)
        assert isinstance(unknown, UnknownJob), unknown
        assert unknown.args_by_name == {"jobId": len(m.jobs) + 1}
        assert snap.payouts.pop(len(m.jobs) + 1) == PayoutView(0, 0, 0, 0, 0, 0)
        buckets = snap.total_credits
        for job in snap.jobs.values():
            if job.status in LIVE:
                buckets += job.reward
            if job.status in STAKED:
                buckets += job.solver_stake
            buckets += job.open_disputes * job.challenger_bond
        for job_id, payout in snap.payouts.items():
            buckets += payout.held_for_solver + payout.reward_pool - payout.claimed_amount
            mj = m.jobs[job_id]
            assert (
                payout.held_for_solver,
                payout.reward_pool,
                payout.claimed_amount,
                payout.winning_games,
                payout.claimed_games,
                payout.reopenings,
            ) == (
                mj.held,
                mj.pool,
                mj.claimed_amount,
                mj.winning_games,
                mj.claimed_games,
                mj.reopenings,
            ), job_id
            # PayoutLib: the pool is paid exactly once every winning game claimed.
            assert payout.claimed_amount <= payout.reward_pool
            if payout.winning_games and payout.claimed_games == payout.winning_games:
                assert payout.claimed_amount == payout.reward_pool
            assert payout.reopenings <= MAX_REOPENINGS
        assert snap.market_balance == buckets

        # (c) statuses and legal transitions.
        for job_id, job in snap.jobs.items():
            mj = m.jobs[job_id]
            assert job.status == mj.status, job_id
            assert job.open_disputes == len(mj.disputes)
            assert (job.solver, job.submit_deadline) == (mj.solver, mj.submit_deadline)
            assert job.challenge_deadline == mj.challenge_deadline
            # What a dispute game reads of the job (status first) is the job itself.
            assert snap.dispute_terms[job_id] == DisputeTermsView(
                status=job.status,
                solver=job.solver,
                spec_hash=job.spec_hash,
                trace_root=job.trace_root,
                files_root=job.files_root,
                final_state_hash=job.final_state_hash,
                checkpoint_count=job.checkpoint_count,
                steps_per_checkpoint=job.steps_per_checkpoint,
            ), job_id
            assert (job.checkpoint_count, job.steps_per_checkpoint) == (
                mj.checkpoint_count,
                mj.steps_per_checkpoint,
            )
            assert (job.reward, job.solver_stake, job.challenger_bond) == (
                mj.reward,
                mj.stake,
                mj.bond,
            )
            before = seen.get(job_id, JobStatus.Absent)
            if job.status != before:
                assert (before, job.status) in LEGAL_TRANSITIONS, (job_id, before, job.status)
                self.session.stats[f"{prefix}transition:{before.name}->{job.status.name}"] += 1
            seen[job_id] = job.status


def simulation_lag(env: MarketEnv) -> int:
    """0 if ChainClient simulates a write at the latest block's clock, 1 if at the next one."""
    now = env.devnet.timestamp() + 10
    mine_at(env.devnet, now)
    bond = env.market.min_challenger_bond()  # below it, postJob reverts whatever the clock
    terms = JobTerms(SPEC_HASH, SPEC_CID, 1, 1, bond, now + 1, 1, 1, 1, 2)  # type: ignore[arg-type]
    fn = env.market._c.functions.postJob(terms.as_tuple())
    try:
        fn.build_transaction({"from": env.accounts[1].address})
    except Exception:
        return 1
    return 0


def deploy_committee(env: MarketEnv, tokens: list[WorkTokenClient]) -> DisputeEnv:
    """A second JobMarket on the same token, with a real DisputeGame and ArbiterReferee
    (FOUNDING members staked by the deployer); every actor and arbiter key approves both in
    full, and each key holds ETH and WORK of its own."""
    keys = arbiter_accounts(KEYS)
    deployment = deploy(
        env.client,
        token=env.token.address,
        **COMMITTEE_TERMS,
        arbiters=[k.address for k in keys[:FOUNDING]],
    )
    side = DisputeEnv(
        env.devnet,
        deployment,
        env.client,
        env.token,
        deployment.market(env.client),
        deployment.game(env.client),
        deployment.referee(env.client),
        keys[:FOUNDING],
        keys[FOUNDING:],
    )
    for key in keys:
        rpc(env.devnet, "anvil_setBalance", [key.address, hex(10**21)])
        env.token.mint(key.address, 10**23)
        env.token_as(key).approve(side.referee.address, MAX_UINT256)
    for index in ACTORS:
        tokens[index].approve(side.market.address, MAX_UINT256)
        tokens[index].approve(side.referee.address, MAX_UINT256)
    return side


@pytest.fixture
def session(_deployed_market: MarketEnv) -> Iterator[Session]:
    env = _deployed_market
    outer = env.devnet.snapshot()
    readers: list[BatchReader] = []
    try:
        tokens = [env.token_as(a) for a in env.accounts]
        for index in ACTORS:
            tokens[index].approve(env.market.address, MAX_UINT256)
        side = deploy_committee(env, tokens)
        keys = [str(k.address) for k in side.arbiters + side.spare_arbiters]
        holders = [str(a.address) for a in env.accounts] + keys
        holders += [side.market.address, side.referee.address, side.game.address]
        reader = BatchReader(env.devnet, env.token.address, env.market.address, holders)
        side_reader = BatchReader(env.devnet, env.token.address, side.market.address, holders)
        readers += [reader, side_reader]
        lag = simulation_lag(env)
        # One block per second from now on: a transaction lands exactly at latest + 1.
        rpc(env.devnet, "anvil_setBlockTimestampInterval", [1])
        snap = reader.read(0)
        side_snap = side_reader.read(0)
        referee = side_reader.read_referee(side.referee.address, side.game.address, keys, 0)
        balances = {**snap.balances, env.market.address: snap.market_balance}
        side_model = Model(
            now=snap.timestamp,
            market=side.market.address,
            game=side.game.address,
            winner_bps=side.market.winner_share_bps(),
            late_bps=side.market.late_share_bps(),
            balances=balances,  # one token: the very same ledger
            credits=dict(side_snap.credits),
            allowances={h: env.token.allowance(h, side.market.address) for h in holders},
            burned=side_snap.market_burned,
            order_nonces=dict(side_snap.order_nonces),
            min_bond=side.market.min_challenger_bond(),
        )
        committee = Committee(
            referee=side.referee.address,
            game=side.game.address,
            market=side_model,
            stake=side.referee.arbiter_stake(),
            quorum=side.referee.quorum(),
            ruling_window=side.referee.ruling_window(),
            appeal_window=side.referee.appeal_window(),
            escalation_window=side.referee.escalation_window(),
            appeal_bond=side.referee.appeal_bond(),
            membership_delay=side.referee.membership_delay(),
            members={
                a: ModelMember(m.stake, m.active_from, m.exit_at)
                for a, m in referee.members.items()
                if m.stake
            },
            order=list(referee.committee),
            credits=Counter({a: n for a, n in referee.credits.items() if n}),
            burned=referee.total_burned,
        )
        assert len(committee.order) == FOUNDING and referee.game_count == 0
        base = Model(
            now=snap.timestamp,
            market=env.market.address,
            game=env.game.address,
            winner_bps=env.market.winner_share_bps(),
            late_bps=env.market.late_share_bps(),
            balances=balances,
            credits=dict(snap.credits),
            allowances={h: env.token.allowance(h, env.market.address) for h in holders},
            burned=snap.market_burned,
            order_nonces=dict(snap.order_nonces),
            min_bond=env.market.min_challenger_bond(),
            side=committee,
        )
        assert env.market.job_count() == 0
        accounts = [*env.accounts, *side.arbiters, *side.spare_arbiters]
        referees = {i: side.referee.as_account(a) for i, a in enumerate(env.accounts)}
        referees |= {KEY0 + i: side.referee.as_account(a) for i, a in enumerate(accounts[10:])}
        yield Session(
            env=env,
            markets=[env.market_as(a) for a in env.accounts],
            tokens=tokens,
            reader=reader,
            base=base,
            sim_lag=lag,
            side=CommitteeSession(
                env=side,
                reader=side_reader,
                markets=[side.market.as_account(a) for a in env.accounts],
                referees=referees,
                keys=keys,
            ),
        )
    finally:
        rpc(env.devnet, "anvil_removeBlockTimestampInterval", [])
        for r in readers:
            r.close()
        env.devnet.revert(outer)


def test_market_state_machine_random_actions_keep_invariants(session: Session) -> None:
    MarketMachine.session = session
    run_state_machine_as_test(
        MarketMachine,
        settings=settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STEPS,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )
    stats = session.stats
    print(f"\nstate machine: {session.examples} examples")
    for key in sorted(stats):
        print(f"  {key}: {stats[key]}")
    assert session.examples >= MAX_EXAMPLES
    # The run must have reached every corner, not only the cheap reverts.
    for reached in (
        "post:ok",
        "claim:ok",
        "submit:ok",
        "finalize:ok",
        "withdraw:ok",
        "open_dispute:ok",
        "resolve_dispute:ok",
        "void_dispute:ok",
        "event:ChallengeWindowReopened",
        "open_dispute:reopened-window:ok",
        "resolve_dispute:after-slash:solver-won:ok",
        "resolve_dispute:after-slash:challenger-won:ok",
        "event:WinningsHeld",
        "event:RewardClaimed",
        "post_for:ok",
        "post_for:InvalidOrderSignature",
        "post_for:OrderExpired",
        "submit:CheckpointCountMismatch",
        "transition:Submitted->Slashed",
        "transition:Claimed->Open",
        "transition:Claimed->Expired",
        "transition:Open->Expired",
        "transition:Open->Cancelled",
        # The committee: rulings by real votes, an appeal that overturns a wrong proposal
        # and slashes its voters, escalation after a silent ruling window, settle.
        "committee:challenge:ok",
        "event:RulingPending",
        "event:Ruled",
        "event:RulingProposed",
        "event:Escalated",
        "event:Ruled:overturned",
        "event:ArbiterSlashed",
        "vote:after-appeal:ok",
        "vote:silent-escalation:ok",
        "settle:ok",
        "event:RulingExpired",
        "referee:join:ok",
        "referee:leave:ok",
        "vote:leaving-member:ok",
        "vote:joined-after-request:mined-revert:NotEligible",
        "committee:transition:Submitted->Slashed",
    ):
        assert stats[reached] > 0, reached
    # The new term checks, by whichever post (direct, permit, relayed) reached them.
    for error in ("InvalidCheckpointCount", "InvalidStepsPerCheckpoint"):
        assert sum(n for k, n in stats.items() if k.endswith(f":{error}")) > 0, error
