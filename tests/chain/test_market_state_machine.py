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
arguments, and that nothing changes.  After every step the whole market is read back in one
JSON-RPC batch and checked against the model and against DESIGN.md §1.4:

(a) tokens are conserved: holders + market = totalSupply, totalSupply + burned = minted,
    and the market's totalBurned is the token's burned amount;
(b) the market holds exactly its buckets: live rewards + live stakes + open bonds + held
    solver winnings + unpaid winners' pools + credits (a voided dispute moves its bond from
    the open-bond bucket to a credit), and each job's payout record is the model's;
(c) every job's status is the model's, and every observed transition is one JobTypes.sol
    allows; what disputeTerms reports (status first) is the stored job itself.

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

from chain.client import Receipt
from chain.contracts import (
    JobMarketClient,
    JobTerms,
    PermitSignature,
    SignedJobOrder,
    WorkTokenClient,
)
from chain.errors import ContractRevert
from chain.generated import (
    Approval,
    BondBelowMinimum,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    ChallengeWindowReopened,
    CheckpointCountMismatch,
    ClaimDeadlinePassed,
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
    NotDeployer,
    NotDisputeGame,
    NotExpired,
    NothingToWithdraw,
    NotSolver,
    NotSubmitter,
    OrderExpired,
    ResultSubmitted,
    RewardClaimed,
    SolverSlashed,
    SolverTimedOut,
    SubmitDeadlinePassed,
    Transfer,
    UnknownJob,
    WinningsHeld,
    Withdrawn,
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
from tests.fixtures.anvil import MarketEnv

# ASSAY_MARKET_SM_EXAMPLES raises the count for a deeper (nightly) run.
MAX_EXAMPLES = int(os.environ.get("ASSAY_MARKET_SM_EXAMPLES", "200"))
STEPS = 20
ACTORS = range(9)  # 0 is the deployer (holds no WORK); 1..8 are funded
GAME = 9
LIVE = (JobStatus.Open, JobStatus.Claimed, JobStatus.Submitted)
STAKED = (JobStatus.Claimed, JobStatus.Submitted)
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


@dataclass
class Session:
    """What every example shares: the deployed market, per-account clients, the reader."""

    env: MarketEnv
    markets: list[JobMarketClient]
    tokens: list[WorkTokenClient]
    reader: BatchReader
    base: Model
    sim_lag: int
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
        tag: str | None = None,
    ) -> None:
        """Predict at the simulation's clock and at the mined clock, send, compare.

        `tag` names a situation the coverage checks want reached: counted as `tag:ok` when
        the call succeeds. Every event of a successful call is counted as `event:Name`.
        """
        sim_ts = self.model.now + self.session.sim_lag
        exec_ts = self.model.now + 1
        try:
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
        assert list(receipt.events) == events, name
        mined.now = exec_ts
        self.model = mined
        self.session.stats[f"{name}:ok"] += 1
        if tag is not None:
            self.session.stats[f"{tag}:ok"] += 1
        for event in events:
            self.session.stats[f"event:{type(event).__name__}"] += 1

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
        snap: MarketSnapshot = self.session.reader.read(len(m.jobs) + 1)
        assert snap.timestamp == m.now

        # (a) conservation of the token.
        holders = sum(snap.balances.values())
        assert holders + snap.market_balance == snap.total_supply
        assert snap.total_supply + snap.token_burned == snap.total_minted
        assert snap.market_burned == snap.token_burned == m.burned

        # The model's ledger, to the wei.
        assert {**snap.balances, m.market: snap.market_balance} == m.balances
        assert snap.credits == {a: c for a, c in m.credits.items()}
        assert snap.order_nonces == m.order_nonces
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
            before = self.seen.get(job_id, JobStatus.Absent)
            if job.status != before:
                assert (before, job.status) in LEGAL_TRANSITIONS, (job_id, before, job.status)
                self.session.stats[f"transition:{before.name}->{job.status.name}"] += 1
            self.seen[job_id] = job.status


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


@pytest.fixture
def session(_deployed_market: MarketEnv) -> Iterator[Session]:
    env = _deployed_market
    outer = env.devnet.snapshot()
    reader = BatchReader(
        env.devnet,
        env.token.address,
        env.market.address,
        [str(a.address) for a in env.accounts],
    )
    try:
        tokens = [env.token_as(a) for a in env.accounts]
        for index in ACTORS:
            tokens[index].approve(env.market.address, MAX_UINT256)
        lag = simulation_lag(env)
        # One block per second from now on: a transaction lands exactly at latest + 1.
        rpc(env.devnet, "anvil_setBlockTimestampInterval", [1])
        holders = [str(a.address) for a in env.accounts]
        snap = reader.read(0)
        base = Model(
            now=snap.timestamp,
            market=env.market.address,
            game=env.game.address,
            winner_bps=env.market.winner_share_bps(),
            late_bps=env.market.late_share_bps(),
            balances={**snap.balances, env.market.address: snap.market_balance},
            credits=dict(snap.credits),
            allowances={h: env.token.allowance(h, env.market.address) for h in holders},
            burned=snap.market_burned,
            order_nonces=dict(snap.order_nonces),
            min_bond=env.market.min_challenger_bond(),
        )
        assert env.market.job_count() == 0
        yield Session(
            env=env,
            markets=[env.market_as(a) for a in env.accounts],
            tokens=tokens,
            reader=reader,
            base=base,
            sim_lag=lag,
        )
    finally:
        rpc(env.devnet, "anvil_removeBlockTimestampInterval", [])
        reader.close()
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
    ):
        assert stats[reached] > 0, reached
    # The new term checks, by whichever post (direct, permit, relayed) reached them.
    for error in ("InvalidCheckpointCount", "InvalidStepsPerCheckpoint"):
        assert sum(n for k, n in stats.items() if k.endswith(f":{error}")) > 0, error
