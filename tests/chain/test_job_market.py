"""JobMarket and WorkToken on a real anvil: every lifecycle path and every revert.

Each test runs inside the `market_env` snapshot, so it starts from the freshly deployed
market (accounts 1..9 funded with 1M WORK, account 9 registered as the dispute game).
Amounts are odd on purpose, so that every basis-point split rounds and the rounding is
checked to the wei.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from chain.client import ChainClient
from chain.contracts import (
    DisputeTerms,
    JobMarketClient,
    JobTerms,
    PermitSignature,
    SignedJobOrder,
)
from chain.deploy import DEFAULT_MIN_CHALLENGER_BOND
from chain.errors import ContractRevert
from chain.generated import (
    AccessControlUnauthorizedAccount,
    Approval,
    BondBelowMinimum,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    ChallengeWindowReopened,
    CheckpointCountMismatch,
    ClaimDeadlinePassed,
    Credited,
    DeadlineInPast,
    DisputeGameAlreadySet,
    DisputeGameSet,
    DisputeOpened,
    DisputeResolved,
    DisputesOpen,
    DisputeVoided,
    EmptyCommitment,
    EmptySpec,
    ERC20InsufficientAllowance,
    ERC20InsufficientBalance,
    InvalidBps,
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
    OrdersRevoked,
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
    ZeroAddress,
    ZeroChallengerBond,
    ZeroReward,
    ZeroSolverStake,
)
from chain.types import Address, Cid, Hash32, JobId, Wei
from tests.chain.support import (
    BPS,
    CHECKPOINTS,
    FILES_ROOT,
    FINAL_STATE,
    MANIFEST_CID,
    MAX_UINT32,
    MAX_UINT256,
    MAX_WINDOW,
    MINTER_ROLE,
    SPEC_CID,
    SPEC_HASH,
    STEPS_PER_CHECKPOINT,
    TRACE_ROOT,
    ZERO_ADDRESS,
    ZERO_HASH,
    make_terms,
    mine_at,
    pin_time,
    set_next_block_timestamp,
)
from tests.fixtures.anvil import INITIAL_BALANCE, MarketEnv

REWARD = 10**21
STAKE = 3 * 10**20 + 1
BOND = 10**20 + 1
MIN_BOND = DEFAULT_MIN_CHALLENGER_BOND
WINNER_SHARE_BPS = 5_000
LATE_SHARE_BPS = 5_000


# ----------------------------------------------------------------------------- helpers


def submitter(env: MarketEnv) -> LocalAccount:
    return env.accounts[1]


def solver(env: MarketEnv) -> LocalAccount:
    return env.accounts[3]


def challenger(env: MarketEnv) -> LocalAccount:
    return env.accounts[6]


def now(env: MarketEnv) -> int:
    return env.devnet.timestamp()


def post(env: MarketEnv, who: LocalAccount | None = None, **kw: Any) -> tuple[JobId, JobTerms]:
    who = who or submitter(env)
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND, **kw)
    env.token_as(who).approve(env.market.address, terms.reward)
    job_id, _ = env.market_as(who).post_job(terms)
    return job_id, terms


def claim(env: MarketEnv, job_id: JobId, who: LocalAccount | None = None) -> None:
    who = who or solver(env)
    env.token_as(who).approve(env.market.address, STAKE)
    env.market_as(who).claim(job_id)


def submit(env: MarketEnv, job_id: JobId, who: LocalAccount | None = None) -> int:
    """Submit a valid result; returns the challenge deadline."""
    who = who or solver(env)
    receipt = env.market_as(who).submit_result(
        job_id, TRACE_ROOT, CHECKPOINTS, MANIFEST_CID, FINAL_STATE, FILES_ROOT
    )
    return receipt.one(ResultSubmitted).challenge_deadline


def submitted_job(env: MarketEnv) -> tuple[JobId, int]:
    job_id, _ = post(env)
    claim(env, job_id)
    return job_id, submit(env, job_id)


def open_dispute(env: MarketEnv, job_id: JobId, who: LocalAccount | None = None) -> None:
    who = who or challenger(env)
    env.token_as(who).approve(env.market.address, BOND)
    env.market_as(env.game).open_dispute(job_id, who.address)


def balance(env: MarketEnv, who: LocalAccount | str) -> int:
    address = who if isinstance(who, str) else who.address
    return env.token.balance_of(address)


def expect_revert(
    error: type[ContractRevert], call: Callable[[], object], **args: Any
) -> ContractRevert:
    """Run `call`, require the typed revert `error` with exactly the arguments `args`, each of
    the same Python type (an enum argument decodes to its IntEnum member, not an int)."""
    with pytest.raises(error) as info:
        call()
    assert type(info.value) is error
    assert dict(info.value.args_by_name) == args
    assert {k: type(v) for k, v in info.value.args_by_name.items()} == {
        k: type(v) for k, v in args.items()
    }
    return info.value


def assert_conserved(env: MarketEnv) -> None:
    """Tokens held by the accounts and the market add up to the supply; burned = minted - supply."""
    holders = sum(balance(env, a) for a in env.accounts) + balance(env, env.market.address)
    supply = env.token.total_supply()
    assert holders == supply
    assert supply + env.market.total_burned() == env.token.total_minted()


# -------------------------------------------------------------------------------- post


def test_post_job_with_approval_escrows_reward_and_emits_job_posted(market_env: MarketEnv) -> None:
    env = market_env
    who = submitter(env)
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    env.token_as(who).approve(env.market.address, REWARD)

    job_id, receipt = env.market_as(who).post_job(terms)

    assert job_id == 1
    assert receipt.one(JobPosted) == JobPosted(
        job_id=1,
        submitter=who.address,
        spec_hash=SPEC_HASH,
        spec_cid=SPEC_CID,
        reward=REWARD,
        solver_stake=STAKE,
        challenger_bond=BOND,
        claim_deadline=terms.claim_deadline,
    )
    assert receipt.one(Transfer) == Transfer(from_=who.address, to=env.market.address, value=REWARD)
    assert balance(env, who) == INITIAL_BALANCE - REWARD
    assert balance(env, env.market.address) == REWARD
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.Open
    assert job.submitter == who.address
    assert job.solver == ZERO_ADDRESS
    assert (job.reward, job.solver_stake, job.challenger_bond) == (REWARD, STAKE, BOND)
    assert (job.submit_window, job.challenge_window) == (600, 900)
    assert job.spec_hash == SPEC_HASH
    assert job.spec_cid == SPEC_CID
    # The checkpoint layout is fixed at post time, not at submission.
    assert (job.checkpoint_count, job.steps_per_checkpoint) == (CHECKPOINTS, STEPS_PER_CHECKPOINT)
    assert (job.trace_root, job.final_state_hash, job.manifest_cid) == (ZERO_HASH, ZERO_HASH, "")
    assert env.market.job_count() == 1


def test_post_job_twice_assigns_sequential_ids(market_env: MarketEnv) -> None:
    first, _ = post(market_env)
    second, _ = post(market_env, market_env.accounts[2])

    assert (first, second) == (1, 2)
    assert market_env.market.job_count() == 2
    assert market_env.market.get_job(second).submitter == market_env.accounts[2].address


def test_post_job_with_permit_signature_escrows_reward_without_approval(
    market_env: MarketEnv,
) -> None:
    env = market_env
    who = submitter(env)
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    assert env.token.allowance(who.address, env.market.address) == 0
    permit = env.token.sign_permit(who, env.market.address, REWARD, now(env) + 3_600)

    job_id, receipt = env.market_as(who).post_job_with_permit(terms, permit)

    assert receipt.one(JobPosted).reward == REWARD
    assert env.market.status_of(job_id) is JobStatus.Open
    assert balance(env, who) == INITIAL_BALANCE - REWARD
    assert balance(env, env.market.address) == REWARD
    assert env.token.nonces(who.address) == 1
    # The permit granted exactly the reward and the post spent it.
    assert env.token.allowance(who.address, env.market.address) == 0


def test_post_job_with_expired_permit_and_no_allowance_reverts_insufficient_allowance(
    market_env: MarketEnv,
) -> None:
    env = market_env
    who = submitter(env)
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    permit = env.token.sign_permit(who, env.market.address, REWARD, now(env) - 1)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(who).post_job_with_permit(terms, permit),
        spender=env.market.address,
        allowance=0,
        needed=REWARD,
    )
    assert env.market.job_count() == 0
    assert env.token.nonces(who.address) == 0


def test_post_job_with_forged_permit_and_no_allowance_reverts_insufficient_allowance(
    market_env: MarketEnv,
) -> None:
    env = market_env
    who = submitter(env)
    forger = env.accounts[8]
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    # Signed by someone else's key: the permit recovers to the forger, not to the owner.
    forged = env.token.sign_permit(forger, env.market.address, REWARD, now(env) + 3_600)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(who).post_job_with_permit(terms, forged),
        spender=env.market.address,
        allowance=0,
        needed=REWARD,
    )
    assert balance(env, who) == INITIAL_BALANCE
    assert balance(env, forger) == INITIAL_BALANCE


def test_post_job_with_spent_permit_but_allowance_in_place_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    who = submitter(env)
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    permit = env.token.sign_permit(who, env.market.address, REWARD, now(env) + 3_600)
    # A front-runner submits the permit first; the post must still go through.
    front_runner = env.token_as(env.accounts[8])
    front_runner.client.transact(
        front_runner._c.functions.permit(
            who.address, env.market.address, REWARD, permit.deadline, permit.v, permit.r, permit.s
        )
    )
    assert env.token.allowance(who.address, env.market.address) == REWARD

    job_id, _ = env.market_as(who).post_job_with_permit(terms, permit)

    assert env.market.status_of(job_id) is JobStatus.Open
    assert balance(env, env.market.address) == REWARD


def test_post_job_without_balance_reverts_insufficient_balance(market_env: MarketEnv) -> None:
    env = market_env
    broke = env.accounts[0]  # the deployer holds no WORK
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    env.token_as(broke).approve(env.market.address, REWARD)

    expect_revert(
        ERC20InsufficientBalance,
        lambda: env.market_as(broke).post_job(terms),
        sender=broke.address,
        balance=0,
        needed=REWARD,
    )


def test_post_job_without_allowance_reverts_insufficient_allowance(market_env: MarketEnv) -> None:
    env = market_env
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(submitter(env)).post_job(terms),
        spender=env.market.address,
        allowance=0,
        needed=REWARD,
    )


BAD_TERMS: dict[
    str, tuple[dict[str, Any], type[ContractRevert], Callable[[int], dict[str, Any]]]
] = {
    "zero_reward": ({"reward": 0}, ZeroReward, lambda t: {}),
    "zero_stake": ({"solver_stake": 0}, ZeroSolverStake, lambda t: {}),
    "zero_bond": ({"challenger_bond": 0}, ZeroChallengerBond, lambda t: {}),
    "zero_spec_hash": ({"spec_hash": ZERO_HASH}, EmptySpec, lambda t: {}),
    "empty_spec_cid": ({"spec_cid": ""}, EmptySpec, lambda t: {}),
    "deadline_now": ({"claim_in": 0}, DeadlineInPast, lambda t: {"deadline": t, "nowTs": t}),
    "deadline_past": (
        {"claim_in": -5},
        DeadlineInPast,
        lambda t: {"deadline": t - 5, "nowTs": t},
    ),
    "submit_window_zero": (
        {"submit_window": 0},
        InvalidWindow,
        lambda t: {"window": 0, "maxWindow": MAX_WINDOW},
    ),
    "submit_window_too_long": (
        {"submit_window": MAX_WINDOW + 1},
        InvalidWindow,
        lambda t: {"window": MAX_WINDOW + 1, "maxWindow": MAX_WINDOW},
    ),
    "challenge_window_zero": (
        {"challenge_window": 0},
        InvalidWindow,
        lambda t: {"window": 0, "maxWindow": MAX_WINDOW},
    ),
    "challenge_window_too_long": (
        {"challenge_window": MAX_WINDOW + 1},
        InvalidWindow,
        lambda t: {"window": MAX_WINDOW + 1, "maxWindow": MAX_WINDOW},
    ),
    "checkpoint_count_zero": (
        {"checkpoint_count": 0},
        InvalidCheckpointCount,
        lambda t: {"count": 0},
    ),
    "checkpoint_count_one": (
        {"checkpoint_count": 1},
        InvalidCheckpointCount,
        lambda t: {"count": 1},
    ),
    "steps_per_checkpoint_zero": (
        {"steps_per_checkpoint": 0},
        InvalidStepsPerCheckpoint,
        lambda t: {"steps": 0},
    ),
    # Both wrong: the checkpoint count is checked first.
    "checkpoint_count_and_steps_zero": (
        {"checkpoint_count": 1, "steps_per_checkpoint": 0},
        InvalidCheckpointCount,
        lambda t: {"count": 1},
    ),
    # The window checks come before the checkpoint checks.
    "window_and_checkpoint_count": (
        {"submit_window": 0, "checkpoint_count": 0},
        InvalidWindow,
        lambda t: {"window": 0, "maxWindow": MAX_WINDOW},
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_TERMS))
def test_post_job_with_bad_terms_reverts_named_error(market_env: MarketEnv, case: str) -> None:
    env = market_env
    overrides, error, expected_args = BAD_TERMS[case]
    who = submitter(env)
    env.token_as(who).approve(env.market.address, MAX_UINT256)
    at = now(env) + 10
    pin_time(env.devnet, at)
    terms_kw: dict[str, Any] = {
        "reward": REWARD,
        "solver_stake": STAKE,
        "challenger_bond": BOND,
        **overrides,
    }
    terms = make_terms(at, **terms_kw)

    expect_revert(error, lambda: env.market_as(who).post_job(terms), **expected_args(at))
    assert env.market.job_count() == 0
    assert balance(env, who) == INITIAL_BALANCE


def test_post_job_with_max_windows_succeeds(market_env: MarketEnv) -> None:
    job_id, _ = post(market_env, submit_window=MAX_WINDOW, challenge_window=MAX_WINDOW)

    job = market_env.market.get_job(job_id)
    assert (job.submit_window, job.challenge_window) == (MAX_WINDOW, MAX_WINDOW)


@pytest.mark.parametrize(
    ("count", "steps"),
    [(2, 1), (MAX_UINT32, MAX_UINT32)],
    ids=["minimum", "uint32_max"],
)
def test_post_job_with_extreme_checkpoint_layout_stores_it(
    market_env: MarketEnv, count: int, steps: int
) -> None:
    job_id, _ = post(market_env, checkpoint_count=count, steps_per_checkpoint=steps)

    job = market_env.market.get_job(job_id)
    assert (job.checkpoint_count, job.steps_per_checkpoint) == (count, steps)
    terms = market_env.market.dispute_terms(job_id)
    assert (terms.checkpoint_count, terms.steps_per_checkpoint) == (count, steps)


# ------------------------------------------------------------------------ post for (relayed)

NO_PERMIT = PermitSignature(
    owner=Address(ZERO_ADDRESS),
    spender=Address(ZERO_ADDRESS),
    value=Wei(0),
    deadline=0,
    v=0,
    r=bytes(32),
    s=bytes(32),
)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def relayer(env: MarketEnv) -> LocalAccount:
    """The deployer: it has gas but no WORK, so it cannot pay a reward by mistake."""
    return env.accounts[0]


def eip712_digest(typed: dict[str, Any]) -> bytes:
    """The EIP-712 digest eth_account signs for `typed`."""
    message = encode_typed_data(full_message=typed)
    return keccak(b"\x19" + message.version + message.header + message.body)


def sign_typed_order(
    account: LocalAccount, typed: dict[str, Any], terms: JobTerms
) -> SignedJobOrder:
    """Sign an arbitrary (possibly wrong-domain) JobOrder document as `account`."""
    signed = account.sign_message(encode_typed_data(full_message=typed))
    message = typed["message"]
    return SignedJobOrder(
        terms=terms,
        submitter=Address(message["submitter"]),
        nonce=message["nonce"],
        deadline=message["deadline"],
        signature=bytes(signed.signature),
    )


def order_state(env: MarketEnv, signer: LocalAccount) -> tuple[int, ...]:
    """Everything a relayed order may change."""
    return (
        env.market.job_count(),
        env.market.order_nonce(signer.address),
        balance(env, signer),
        balance(env, relayer(env)),
        balance(env, env.market.address),
        env.token.nonces(signer.address),
        env.token.allowance(signer.address, env.market.address),
        env.token.allowance(relayer(env).address, env.market.address),
    )


def std_terms(env: MarketEnv, **kw: Any) -> JobTerms:
    amounts: dict[str, Any] = {"reward": REWARD, "solver_stake": STAKE, "challenger_bond": BOND}
    return make_terms(now(env), **{**amounts, **kw})


def test_post_job_for_relays_signed_order_as_the_signer(market_env: MarketEnv) -> None:
    env = market_env
    w3 = env.client.w3
    signer = submitter(env)
    relay = env.accounts[8]
    # The relayer has WORK and an unlimited allowance: none of it may be touched.
    env.token_as(relay).approve(env.market.address, MAX_UINT256)
    terms = std_terms(env)
    deadline = now(env) + 600
    assert env.token.allowance(signer.address, env.market.address) == 0
    assert env.market.order_nonce(signer.address) == 0
    order = env.market.sign_job_order(signer, terms, deadline)
    assert (order.submitter, order.nonce, order.deadline) == (signer.address, 0, deadline)
    permit = env.token.sign_permit(signer, env.market.address, REWARD, deadline)
    relay_eth, signer_eth = w3.eth.get_balance(relay.address), w3.eth.get_balance(signer.address)

    job_id, receipt = env.market_as(relay).post_job_for(order, permit)

    assert job_id == 1
    assert list(receipt.events) == [
        Approval(owner=signer.address, spender=env.market.address, value=REWARD),
        JobPosted(
            job_id=1,
            submitter=signer.address,
            spec_hash=SPEC_HASH,
            spec_cid=SPEC_CID,
            reward=REWARD,
            solver_stake=STAKE,
            challenger_bond=BOND,
            claim_deadline=terms.claim_deadline,
        ),
        Transfer(from_=signer.address, to=env.market.address, value=REWARD),
    ]
    job = env.market.get_job(job_id)
    assert (job.submitter, job.status) == (signer.address, JobStatus.Open)
    assert (job.checkpoint_count, job.steps_per_checkpoint) == (CHECKPOINTS, STEPS_PER_CHECKPOINT)
    assert balance(env, signer) == INITIAL_BALANCE - REWARD
    assert balance(env, relay) == INITIAL_BALANCE
    assert balance(env, env.market.address) == REWARD
    assert env.token.allowance(relay.address, env.market.address) == MAX_UINT256
    assert env.token.allowance(signer.address, env.market.address) == 0
    assert env.token.nonces(signer.address) == 1
    assert env.market.order_nonce(signer.address) == 1
    assert env.market.order_nonce(relay.address) == 0
    # The relayer paid exactly the gas; the signer sent nothing.
    raw = w3.eth.get_transaction_receipt(receipt.tx_hash)  # type: ignore[arg-type]
    gas_cost = int(raw["gasUsed"]) * int(raw["effectiveGasPrice"])
    assert relay_eth - w3.eth.get_balance(relay.address) == gas_cost > 0
    assert w3.eth.get_balance(signer.address) == signer_eth
    assert_conserved(env)

    # The job is the signer's: the relayer cannot cancel it, the signer can.
    expect_revert(
        NotSubmitter,
        lambda: env.market_as(relay).cancel(job_id),
        jobId=job_id,
        caller=relay.address,
    )
    env.market_as(signer).cancel(job_id)
    assert env.market.credits(signer.address) == REWARD
    assert env.market.credits(relay.address) == 0


def test_post_job_for_without_permit_uses_existing_allowance(market_env: MarketEnv) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, REWARD + 5)
    order = env.market.sign_job_order(signer, std_terms(env), now(env) + 600)

    job_id, receipt = env.market_as(relayer(env)).post_job_for(order, NO_PERMIT)

    assert receipt.one(JobPosted).submitter == signer.address
    assert not [e for e in receipt.events if isinstance(e, Approval)]
    assert env.market.get_job(job_id).submitter == signer.address
    assert env.token.allowance(signer.address, env.market.address) == 5
    assert env.token.nonces(signer.address) == 0
    assert env.market.order_nonce(signer.address) == 1


def test_post_job_for_relayed_by_the_signer_itself_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    signer = submitter(env)
    order = env.market.sign_job_order(signer, std_terms(env), now(env) + 600)
    permit = env.token.sign_permit(signer, env.market.address, REWARD, now(env) + 600)

    job_id, _ = env.market_as(signer).post_job_for(order, permit)

    assert env.market.get_job(job_id).submitter == signer.address
    assert env.market.order_nonce(signer.address) == 1
    assert balance(env, signer) == INITIAL_BALANCE - REWARD


def test_post_job_for_with_forged_permit_and_no_allowance_reverts_insufficient_allowance(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    order = env.market.sign_job_order(signer, std_terms(env), now(env) + 600)
    # The permit is signed by the relayer, not by the owner of the reward.
    forged = env.token.sign_permit(relayer(env), env.market.address, REWARD, now(env) + 600)
    before = order_state(env, signer)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(relayer(env)).post_job_for(order, forged),
        spender=env.market.address,
        allowance=0,
        needed=REWARD,
    )
    # The whole transaction reverted: the order's nonce was not consumed.
    assert order_state(env, signer) == before
    env.market_as(relayer(env)).post_job_for(
        order, env.token.sign_permit(signer, env.market.address, REWARD, now(env) + 600)
    )
    assert env.market.order_nonce(signer.address) == 1


def test_post_job_for_signed_bad_terms_reverts_term_error_and_keeps_nonce(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    bad = std_terms(env, checkpoint_count=1)
    order = env.market.sign_job_order(signer, bad, now(env) + 600)
    before = order_state(env, signer)

    expect_revert(
        InvalidCheckpointCount,
        lambda: env.market_as(relayer(env)).post_job_for(order, NO_PERMIT),
        count=1,
    )
    assert order_state(env, signer) == before
    assert env.market.order_nonce(signer.address) == 0


OrderForge = Callable[[MarketEnv, LocalAccount, JobTerms, int], SignedJobOrder]


def _other_chain(env: MarketEnv, s: LocalAccount, t: JobTerms, d: int) -> SignedJobOrder:
    typed = env.market.job_order_typed_data(t, s.address, 0, d)
    typed["domain"]["chainId"] = typed["domain"]["chainId"] + 1
    return sign_typed_order(s, typed, t)


def _other_market(env: MarketEnv, s: LocalAccount, t: JobTerms, d: int) -> SignedJobOrder:
    typed = env.market.job_order_typed_data(t, s.address, 0, d)
    typed["domain"]["verifyingContract"] = env.token.address
    return sign_typed_order(s, typed, t)


def _other_domain_name(env: MarketEnv, s: LocalAccount, t: JobTerms, d: int) -> SignedJobOrder:
    typed = env.market.job_order_typed_data(t, s.address, 0, d)
    typed["domain"]["name"] = "Assay JobMarket v2"
    return sign_typed_order(s, typed, t)


def _high_s(env: MarketEnv, s: LocalAccount, t: JobTerms, d: int) -> SignedJobOrder:
    """The same signature, malleated to its high-s twin (valid for ecrecover, not for OZ)."""
    order = env.market.sign_job_order(s, t, d)
    sig = order.signature
    r, s_value, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    flipped = r + (SECP256K1_N - s_value).to_bytes(32, "big") + bytes([55 - v])
    return replace(order, signature=flipped)


# One field of the signed terms changed by the relayer (each still valid terms on its own).
TAMPERED_TERMS: dict[str, Callable[[JobTerms], Any]] = {
    "reward": lambda t: t.reward + 1,
    "solver_stake": lambda t: t.solver_stake - 1,
    "challenger_bond": lambda t: 1,
    "claim_deadline": lambda t: t.claim_deadline + 1,
    "submit_window": lambda t: t.submit_window + 1,
    "challenge_window": lambda t: 1,
    "spec_hash": lambda t: Hash32(bytes.fromhex("5f" * 32)),
    "spec_cid": lambda t: Cid(t.spec_cid + "x"),
    "steps_per_checkpoint": lambda t: t.steps_per_checkpoint + 1,
    "checkpoint_count": lambda t: t.checkpoint_count + 1,
}


def _tamper(field_name: str) -> OrderForge:
    def forge(env: MarketEnv, s: LocalAccount, t: JobTerms, d: int) -> SignedJobOrder:
        order = env.market.sign_job_order(s, t, d)
        tampered = replace(t, **{field_name: TAMPERED_TERMS[field_name](t)})
        assert tampered != t
        return replace(order, terms=tampered)

    return forge


BAD_ORDERS: dict[str, tuple[OrderForge, Callable[[MarketEnv, LocalAccount], str]]] = {
    # Signed by another key but claiming to be the submitter's order.
    "wrong_signer": (
        lambda env, s, t, d: replace(
            env.market.sign_job_order(env.accounts[2], t, d, nonce=0), submitter=s.address
        ),
        lambda env, s: s.address,
    ),
    # Another key signs a document naming the submitter (to spend the submitter's allowance).
    "signer_names_other_submitter": (
        lambda env, s, t, d: sign_typed_order(
            env.accounts[2], env.market.job_order_typed_data(t, s.address, 0, d), t
        ),
        lambda env, s: s.address,
    ),
    "relayer_extends_deadline": (
        lambda env, s, t, d: replace(env.market.sign_job_order(s, t, d), deadline=d + 1),
        lambda env, s: s.address,
    ),
    "future_nonce": (
        lambda env, s, t, d: env.market.sign_job_order(s, t, d, nonce=1),
        lambda env, s: s.address,
    ),
    "other_chain_id": (_other_chain, lambda env, s: s.address),
    "other_verifying_contract": (_other_market, lambda env, s: s.address),
    "other_domain_name": (_other_domain_name, lambda env, s: s.address),
    "high_s_malleated": (_high_s, lambda env, s: s.address),
    "truncated_signature": (
        lambda env, s, t, d: replace(
            env.market.sign_job_order(s, t, d),
            signature=env.market.sign_job_order(s, t, d).signature[:64],
        ),
        lambda env, s: s.address,
    ),
    "empty_signature": (
        lambda env, s, t, d: replace(env.market.sign_job_order(s, t, d), signature=b""),
        lambda env, s: s.address,
    ),
    # ecrecover of garbage is address(0): the zero address must not be impersonable.
    "zero_submitter_zero_signature": (
        lambda env, s, t, d: replace(
            env.market.sign_job_order(s, t, d), submitter=Address(ZERO_ADDRESS), signature=bytes(65)
        ),
        lambda env, s: ZERO_ADDRESS,
    ),
    **{
        f"tampered_{name}": (_tamper(name), lambda env, s: s.address)
        for name in sorted(TAMPERED_TERMS)
    },
}


@pytest.mark.parametrize("case", sorted(BAD_ORDERS))
def test_post_job_for_with_invalid_order_reverts_invalid_order_signature_and_changes_nothing(
    market_env: MarketEnv, case: str
) -> None:
    env = market_env
    signer = submitter(env)
    # An allowance is in place, so the signature is the only thing that can fail.
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    forge, named = BAD_ORDERS[case]
    order = forge(env, signer, std_terms(env), now(env) + 600)
    before = order_state(env, signer)

    expect_revert(
        InvalidOrderSignature,
        lambda: env.market_as(relayer(env)).post_job_for(order, NO_PERMIT),
        submitter=named(env, signer),
    )
    assert order_state(env, signer) == before
    assert env.market.order_nonce(ZERO_ADDRESS) == 0


def test_post_job_for_order_signed_for_another_market_is_rejected_by_both(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    other = fresh_market(env)
    other.set_dispute_game(env.game.address)
    for market in (env.market, other):
        env.token_as(signer).approve(market.address, MAX_UINT256)
    terms = std_terms(env)
    deadline = now(env) + 600
    for_other = other.sign_job_order(signer, terms, deadline)
    for_this = env.market.sign_job_order(signer, terms, deadline)
    assert for_other.nonce == for_this.nonce == 0
    assert for_other.signature != for_this.signature
    before = order_state(env, signer)

    expect_revert(
        InvalidOrderSignature,
        lambda: env.market_as(relayer(env)).post_job_for(for_other, NO_PERMIT),
        submitter=signer.address,
    )
    expect_revert(
        InvalidOrderSignature,
        lambda: other.as_account(relayer(env)).post_job_for(for_this, NO_PERMIT),
        submitter=signer.address,
    )
    assert order_state(env, signer) == before
    assert other.job_count() == 0
    # Each order is good on its own market.
    other.as_account(relayer(env)).post_job_for(for_other, NO_PERMIT)
    env.market_as(relayer(env)).post_job_for(for_this, NO_PERMIT)
    assert (other.job_count(), env.market.job_count()) == (1, 1)


def test_post_job_for_replayed_order_reverts_invalid_order_signature(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    order = env.market.sign_job_order(signer, std_terms(env), now(env) + 600)
    env.market_as(relayer(env)).post_job_for(order, NO_PERMIT)
    before = order_state(env, signer)
    assert before[:3] == (1, 1, INITIAL_BALANCE - REWARD)

    # The same bytes again, by the same relayer and by another one.
    for who in (relayer(env), env.accounts[8]):
        expect_revert(
            InvalidOrderSignature,
            lambda who=who: env.market_as(who).post_job_for(order, NO_PERMIT),
            submitter=signer.address,
        )
    assert order_state(env, signer) == before


def test_post_job_for_presigned_orders_are_usable_only_in_nonce_order(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    deadline = now(env) + 600
    first = env.market.sign_job_order(signer, std_terms(env), deadline)
    second = env.market.sign_job_order(signer, std_terms(env, reward=REWARD + 1), deadline, nonce=1)
    relay = env.market_as(relayer(env))

    expect_revert(
        InvalidOrderSignature,
        lambda: relay.post_job_for(second, NO_PERMIT),
        submitter=signer.address,
    )
    job_a, _ = relay.post_job_for(first, NO_PERMIT)
    job_b, _ = relay.post_job_for(second, NO_PERMIT)

    assert (job_a, job_b) == (1, 2)
    assert env.market.get_job(job_b).reward == REWARD + 1
    assert env.market.order_nonce(signer.address) == 2
    assert balance(env, signer) == INITIAL_BALANCE - 2 * REWARD - 1
    for stale in (first, second):
        expect_revert(
            InvalidOrderSignature,
            lambda stale=stale: relay.post_job_for(stale, NO_PERMIT),
            submitter=signer.address,
        )


def test_post_job_for_nonces_are_per_submitter(market_env: MarketEnv) -> None:
    env = market_env
    a, b = submitter(env), env.accounts[2]
    for who in (a, b):
        env.token_as(who).approve(env.market.address, MAX_UINT256)
    order_a = env.market.sign_job_order(a, std_terms(env), now(env) + 600)
    order_b = env.market.sign_job_order(b, std_terms(env), now(env) + 600)
    assert order_a.nonce == order_b.nonce == 0

    env.market_as(relayer(env)).post_job_for(order_a, NO_PERMIT)
    env.market_as(relayer(env)).post_job_for(order_b, NO_PERMIT)

    assert (env.market.order_nonce(a.address), env.market.order_nonce(b.address)) == (1, 1)
    assert [env.market.get_job(JobId(j)).submitter for j in (1, 2)] == [a.address, b.address]


def test_post_job_for_expired_order_reverts_order_expired(market_env: MarketEnv) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    at = now(env) + 10
    order = env.market.sign_job_order(signer, make_terms(at), at - 1)
    pin_time(env.devnet, at)
    before = order_state(env, signer)

    expect_revert(
        OrderExpired,
        lambda: env.market_as(relayer(env)).post_job_for(order, NO_PERMIT),
        deadline=at - 1,
        nowTs=at,
    )
    # An expired order is rejected before its signature is even looked at.
    expect_revert(
        OrderExpired,
        lambda: env.market_as(relayer(env)).post_job_for(replace(order, signature=b""), NO_PERMIT),
        deadline=at - 1,
        nowTs=at,
    )
    assert order_state(env, signer) == before


def test_post_job_for_at_order_deadline_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, MAX_UINT256)
    at = now(env) + 10
    order = env.market.sign_job_order(signer, make_terms(at), at)
    pin_time(env.devnet, at)

    job_id, _ = env.market_as(relayer(env)).post_job_for(order, NO_PERMIT)

    assert now(env) == at
    assert env.market.get_job(job_id).submitter == signer.address


def test_order_digest_equals_eth_account_typed_data_hash(market_env: MarketEnv) -> None:
    env = market_env
    signer = submitter(env)
    terms = std_terms(env)
    deadline = now(env) + 600

    def on_chain() -> bytes:
        fn = env.market._c.functions.orderDigest(terms.as_tuple(), signer.address, deadline)
        return bytes(env.market.client.call(fn.call))

    typed = env.market.job_order_typed_data(terms, signer.address, 0, deadline)
    assert on_chain() == eip712_digest(typed)
    order = env.market.sign_job_order(signer, terms, deadline)
    recovered = Account.recover_message(
        encode_typed_data(full_message=typed), signature=order.signature
    )
    assert recovered == signer.address

    # The type string the client signs is the one the contract hashes.
    fields = typed["types"]["JobOrder"]
    type_string = "JobOrder(" + ",".join(f"{f['type']} {f['name']}" for f in fields) + ")"
    typehash = env.market.client.call(env.market._c.functions.JOB_ORDER_TYPEHASH().call)
    assert bytes(typehash) == keccak(text=type_string)

    # The domain the client signs for is the one the contract reports (EIP-5267).
    domain = env.market.client.call(env.market._c.functions.eip712Domain().call)
    assert tuple(domain[1:5]) == (
        "Assay JobMarket",
        "1",
        env.client.w3.eth.chain_id,
        env.market.address,
    )

    # The digest follows the submitter's nonce.
    env.token_as(signer).approve(env.market.address, REWARD)
    env.market_as(relayer(env)).post_job_for(order, NO_PERMIT)
    typed_next = env.market.job_order_typed_data(terms, signer.address, 1, deadline)
    assert on_chain() == eip712_digest(typed_next) != eip712_digest(typed)


# ------------------------------------------------------------------------------ cancel


def test_cancel_open_job_by_submitter_credits_reward(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)

    receipt = env.market_as(submitter(env)).cancel(job_id)

    assert receipt.one(JobCancelled) == JobCancelled(job_id=job_id)
    assert receipt.one(Credited) == Credited(account=submitter(env).address, amount=REWARD)
    assert env.market.status_of(job_id) is JobStatus.Cancelled
    assert env.market.credits(submitter(env).address) == REWARD
    assert env.market.total_credits() == REWARD
    # Credited, not transferred: the tokens stay in the market until withdrawn.
    assert balance(env, env.market.address) == REWARD


def test_cancel_by_other_account_reverts_not_submitter(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    other = env.accounts[2]

    expect_revert(
        NotSubmitter,
        lambda: env.market_as(other).cancel(job_id),
        jobId=job_id,
        caller=other.address,
    )
    assert env.market.status_of(job_id) is JobStatus.Open


def test_cancel_claimed_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(submitter(env)).cancel(job_id),
        jobId=job_id,
        expected=JobStatus.Open,
        actual=JobStatus.Claimed,
    )


def test_wrong_status_revert_decodes_both_statuses_into_job_status_members(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    with pytest.raises(WrongStatus) as info:
        env.market_as(submitter(env)).cancel(job_id)
    expected, actual = info.value.args_by_name["expected"], info.value.args_by_name["actual"]
    assert isinstance(expected, JobStatus) and expected is JobStatus.Open
    assert isinstance(actual, JobStatus) and actual is JobStatus.Claimed
    assert str(info.value) == f"WrongStatus(jobId={job_id}, expected=Open, actual=Claimed)"


def test_cancel_cancelled_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    env.market_as(submitter(env)).cancel(job_id)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(submitter(env)).cancel(job_id),
        jobId=job_id,
        expected=JobStatus.Open,
        actual=JobStatus.Cancelled,
    )
    assert env.market.credits(submitter(env).address) == REWARD


# ------------------------------------------------------------------------------- claim


def test_claim_open_job_pulls_stake_and_sets_submit_deadline(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    env.token_as(solver(env)).approve(env.market.address, STAKE)
    at = now(env) + 7
    pin_time(env.devnet, at)

    receipt = env.market_as(solver(env)).claim(job_id)

    assert receipt.one(JobClaimed) == JobClaimed(
        job_id=job_id, solver=solver(env).address, submit_deadline=at + terms.submit_window
    )
    assert receipt.one(Transfer) == Transfer(
        from_=solver(env).address, to=env.market.address, value=STAKE
    )
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.Claimed
    assert job.solver == solver(env).address
    assert job.submit_deadline == at + terms.submit_window
    assert balance(env, solver(env)) == INITIAL_BALANCE - STAKE
    assert balance(env, env.market.address) == REWARD + STAKE


def test_claim_at_claim_deadline_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    env.token_as(solver(env)).approve(env.market.address, STAKE)
    pin_time(env.devnet, terms.claim_deadline)

    env.market_as(solver(env)).claim(job_id)

    assert env.market.status_of(job_id) is JobStatus.Claimed
    assert now(env) == terms.claim_deadline


def test_claim_after_claim_deadline_reverts_claim_deadline_passed(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    env.token_as(solver(env)).approve(env.market.address, STAKE)
    pin_time(env.devnet, terms.claim_deadline + 1)

    expect_revert(
        ClaimDeadlinePassed,
        lambda: env.market_as(solver(env)).claim(job_id),
        jobId=job_id,
        deadline=terms.claim_deadline,
    )
    assert balance(env, solver(env)) == INITIAL_BALANCE


def test_claim_without_stake_allowance_reverts_insufficient_allowance(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(solver(env)).claim(job_id),
        spender=env.market.address,
        allowance=0,
        needed=STAKE,
    )
    assert env.market.status_of(job_id) is JobStatus.Open


def test_claim_claimed_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    second = env.accounts[4]
    env.token_as(second).approve(env.market.address, STAKE)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(second).claim(job_id),
        jobId=job_id,
        expected=JobStatus.Open,
        actual=JobStatus.Claimed,
    )
    assert env.market.get_job(job_id).solver == solver(env).address


# ------------------------------------------------------------------------------ submit


def test_submit_result_by_solver_records_commitment_and_challenge_deadline(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, terms = post(env)
    claim(env, job_id)
    at = now(env) + 11
    pin_time(env.devnet, at)

    receipt = env.market_as(solver(env)).submit_result(
        job_id, TRACE_ROOT, CHECKPOINTS, MANIFEST_CID, FINAL_STATE, FILES_ROOT
    )

    assert receipt.one(ResultSubmitted) == ResultSubmitted(
        job_id=job_id,
        solver=solver(env).address,
        trace_root=TRACE_ROOT,
        checkpoint_count=CHECKPOINTS,
        manifest_cid=MANIFEST_CID,
        final_state_hash=FINAL_STATE,
        files_root=FILES_ROOT,
        challenge_deadline=at + terms.challenge_window,
    )
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.Submitted
    assert (job.trace_root, job.final_state_hash) == (TRACE_ROOT, FINAL_STATE)
    assert (job.checkpoint_count, job.manifest_cid) == (CHECKPOINTS, MANIFEST_CID)
    assert job.steps_per_checkpoint == STEPS_PER_CHECKPOINT
    assert job.challenge_deadline == at + terms.challenge_window


def test_submit_result_by_other_account_reverts_not_solver(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    other = env.accounts[4]

    expect_revert(
        NotSolver,
        lambda: env.market_as(other).submit_result(
            job_id, TRACE_ROOT, CHECKPOINTS, MANIFEST_CID, FINAL_STATE, FILES_ROOT
        ),
        jobId=job_id,
        caller=other.address,
    )
    assert env.market.status_of(job_id) is JobStatus.Claimed


def test_submit_result_at_submit_deadline_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    pin_time(env.devnet, deadline)

    submit(env, job_id)

    assert env.market.status_of(job_id) is JobStatus.Submitted


def test_submit_result_after_submit_deadline_reverts_submit_deadline_passed(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    pin_time(env.devnet, deadline + 1)

    expect_revert(
        SubmitDeadlinePassed,
        lambda: submit(env, job_id),
        jobId=job_id,
        deadline=deadline,
    )


@pytest.mark.parametrize("count", [0, 1, 2, CHECKPOINTS - 1, CHECKPOINTS + 1, MAX_UINT32])
def test_submit_result_with_other_checkpoint_count_reverts_checkpoint_count_mismatch(
    market_env: MarketEnv, count: int
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    expect_revert(
        CheckpointCountMismatch,
        lambda: env.market_as(solver(env)).submit_result(
            job_id, TRACE_ROOT, count, MANIFEST_CID, FINAL_STATE, FILES_ROOT
        ),
        jobId=job_id,
        expected=CHECKPOINTS,
        actual=count,
    )
    job = env.market.get_job(job_id)
    assert (job.status, job.trace_root, job.checkpoint_count) == (
        JobStatus.Claimed,
        ZERO_HASH,
        CHECKPOINTS,
    )


def test_submit_result_with_mismatched_count_and_empty_commitment_reports_mismatch_first(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    expect_revert(
        CheckpointCountMismatch,
        lambda: env.market_as(solver(env)).submit_result(
            job_id,
            ZERO_HASH,
            2,
            "",  # type: ignore[arg-type]
            ZERO_HASH,
            ZERO_HASH,
        ),
        jobId=job_id,
        expected=CHECKPOINTS,
        actual=2,
    )


def test_submit_result_after_deadline_with_mismatched_count_reports_deadline_first(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    pin_time(env.devnet, deadline + 1)

    expect_revert(
        SubmitDeadlinePassed,
        lambda: env.market_as(solver(env)).submit_result(
            job_id, TRACE_ROOT, 2, MANIFEST_CID, FINAL_STATE, FILES_ROOT
        ),
        jobId=job_id,
        deadline=deadline,
    )


def test_submit_result_with_two_checkpoint_job_accepts_count_two(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env, checkpoint_count=2, steps_per_checkpoint=1)
    claim(env, job_id)

    receipt = env.market_as(solver(env)).submit_result(
        job_id, TRACE_ROOT, 2, MANIFEST_CID, FINAL_STATE, FILES_ROOT
    )

    assert receipt.one(ResultSubmitted).checkpoint_count == 2
    assert env.market.get_job(job_id).checkpoint_count == 2


@pytest.mark.parametrize(
    ("root", "manifest", "final", "files"),
    [
        (ZERO_HASH, MANIFEST_CID, FINAL_STATE, FILES_ROOT),
        (TRACE_ROOT, "", FINAL_STATE, FILES_ROOT),
        (TRACE_ROOT, MANIFEST_CID, ZERO_HASH, FILES_ROOT),
        (TRACE_ROOT, MANIFEST_CID, FINAL_STATE, ZERO_HASH),
    ],
    ids=["zero_root", "empty_manifest", "zero_final_state", "zero_files_root"],
)
def test_submit_result_with_empty_commitment_reverts_empty_commitment(
    market_env: MarketEnv, root: bytes, manifest: str, final: bytes, files: bytes
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    expect_revert(
        EmptyCommitment,
        lambda: env.market_as(solver(env)).submit_result(
            job_id,
            root,  # type: ignore[arg-type]
            CHECKPOINTS,
            manifest,  # type: ignore[arg-type]
            final,  # type: ignore[arg-type]
            files,  # type: ignore[arg-type]
        ),
    )
    assert env.market.status_of(job_id) is JobStatus.Claimed


def test_submit_result_on_open_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)

    expect_revert(
        WrongStatus,
        lambda: submit(env, job_id),
        jobId=job_id,
        expected=JobStatus.Claimed,
        actual=JobStatus.Open,
    )


# ------------------------------------------------------------------------------ expire


def test_expire_open_job_past_claim_deadline_refunds_reward(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    pin_time(env.devnet, terms.claim_deadline + 1)

    receipt = env.market_as(env.accounts[8]).expire(job_id)

    assert receipt.one(JobExpired) == JobExpired(job_id=job_id)
    assert receipt.one(Credited) == Credited(account=submitter(env).address, amount=REWARD)
    assert env.market.status_of(job_id) is JobStatus.Expired
    assert env.market.credits(submitter(env).address) == REWARD
    assert env.market.total_burned() == 0


def test_expire_open_job_at_claim_deadline_reverts_not_expired(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    pin_time(env.devnet, terms.claim_deadline)

    expect_revert(
        NotExpired,
        lambda: env.market.expire(job_id),
        jobId=job_id,
        status=JobStatus.Open,
    )


def test_expire_claimed_job_before_submit_deadline_reverts_not_expired(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    pin_time(env.devnet, env.market.get_job(job_id).submit_deadline)

    expect_revert(
        NotExpired, lambda: env.market.expire(job_id), jobId=job_id, status=JobStatus.Claimed
    )


def test_expire_late_solver_with_claim_window_left_splits_stake_and_reopens(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, terms = post(env, claim_in=10_000, submit_window=600)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    assert deadline + 1 <= terms.claim_deadline
    pin_time(env.devnet, deadline + 1)
    supply = env.token.total_supply()

    receipt = env.market_as(env.accounts[8]).expire(job_id)

    to_submitter = STAKE * LATE_SHARE_BPS // BPS
    burned = STAKE - to_submitter
    assert (to_submitter, burned) == (STAKE // 2, STAKE // 2 + 1)
    assert receipt.one(SolverTimedOut) == SolverTimedOut(
        job_id=job_id, solver=solver(env).address, to_submitter=to_submitter, burned=burned
    )
    assert receipt.one(JobReopened) == JobReopened(job_id=job_id)
    assert receipt.one(Credited) == Credited(account=submitter(env).address, amount=to_submitter)
    assert not [e for e in receipt.events if isinstance(e, JobExpired)]
    assert receipt.one(Transfer) == Transfer(
        from_=env.market.address, to=ZERO_ADDRESS, value=burned
    )
    job = env.market.get_job(job_id)
    assert job.status is JobStatus.Open
    assert (job.solver, job.submit_deadline) == (ZERO_ADDRESS, 0)
    assert env.market.credits(submitter(env).address) == to_submitter
    assert env.market.total_burned() == burned
    assert env.token.total_supply() == supply - burned
    assert balance(env, env.market.address) == REWARD + to_submitter
    assert_conserved(env)

    # The reopened job is claimable again by another solver.
    second = env.accounts[4]
    claim(env, job_id, second)
    assert env.market.get_job(job_id).solver == second.address


def test_expire_late_solver_after_claim_deadline_splits_stake_and_refunds_reward(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, terms = post(env, claim_in=100, submit_window=600)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    assert deadline + 1 > terms.claim_deadline
    pin_time(env.devnet, deadline + 1)

    receipt = env.market.expire(job_id)

    to_submitter = STAKE * LATE_SHARE_BPS // BPS
    burned = STAKE - to_submitter
    assert receipt.one(SolverTimedOut).burned == burned
    assert receipt.one(JobExpired) == JobExpired(job_id=job_id)
    assert not [e for e in receipt.events if isinstance(e, JobReopened)]
    credited = [e for e in receipt.events if isinstance(e, Credited)]
    assert credited == [
        Credited(account=submitter(env).address, amount=REWARD),
        Credited(account=submitter(env).address, amount=to_submitter),
    ]
    assert env.market.status_of(job_id) is JobStatus.Expired
    assert env.market.credits(submitter(env).address) == REWARD + to_submitter
    assert env.market.total_credits() == REWARD + to_submitter
    assert env.market.total_burned() == burned
    assert balance(env, env.market.address) == REWARD + to_submitter
    assert balance(env, solver(env)) == INITIAL_BALANCE - STAKE
    assert_conserved(env)


def test_expire_submitted_job_reverts_not_expired(market_env: MarketEnv) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    pin_time(env.devnet, challenge_deadline + 10_000)

    expect_revert(
        NotExpired, lambda: env.market.expire(job_id), jobId=job_id, status=JobStatus.Submitted
    )


def test_expire_cancelled_job_reverts_not_expired(market_env: MarketEnv) -> None:
    env = market_env
    job_id, terms = post(env)
    env.market_as(submitter(env)).cancel(job_id)
    pin_time(env.devnet, terms.claim_deadline + 1)

    expect_revert(
        NotExpired, lambda: env.market.expire(job_id), jobId=job_id, status=JobStatus.Cancelled
    )
    assert env.market.credits(submitter(env).address) == REWARD


# ---------------------------------------------------------------------------- finalize


def test_finalize_during_challenge_window_reverts_challenge_window_open(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    pin_time(env.devnet, challenge_deadline)

    expect_revert(
        ChallengeWindowOpen,
        lambda: env.market.finalize(job_id),
        jobId=job_id,
        deadline=challenge_deadline,
    )


def test_finalize_with_open_dispute_reverts_disputes_open(market_env: MarketEnv) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    open_dispute(env, job_id)
    open_dispute(env, job_id, env.accounts[7])
    pin_time(env.devnet, challenge_deadline + 1)

    expect_revert(DisputesOpen, lambda: env.market.finalize(job_id), jobId=job_id, count=2)
    assert env.market.status_of(job_id) is JobStatus.Submitted


def test_finalize_after_window_credits_reward_and_stake_to_solver(market_env: MarketEnv) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    pin_time(env.devnet, challenge_deadline + 1)

    receipt = env.market_as(env.accounts[8]).finalize(job_id)

    assert receipt.one(JobFinalized) == JobFinalized(
        job_id=job_id, solver=solver(env).address, payout=REWARD + STAKE
    )
    assert receipt.one(Credited) == Credited(account=solver(env).address, amount=REWARD + STAKE)
    assert env.market.status_of(job_id) is JobStatus.Finalized
    assert env.market.credits(solver(env).address) == REWARD + STAKE
    assert env.market.total_burned() == 0

    env.market_as(solver(env)).withdraw()
    assert balance(env, solver(env)) == INITIAL_BALANCE + REWARD
    assert balance(env, env.market.address) == 0
    assert_conserved(env)


def test_finalize_finalized_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    pin_time(env.devnet, challenge_deadline + 1)
    env.market.finalize(job_id)

    expect_revert(
        WrongStatus,
        lambda: env.market.finalize(job_id),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=JobStatus.Finalized,
    )
    assert env.market.credits(solver(env).address) == REWARD + STAKE


def test_finalize_claimed_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)

    expect_revert(
        WrongStatus,
        lambda: env.market.finalize(job_id),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=JobStatus.Claimed,
    )


# ---------------------------------------------------------------------------- withdraw


def test_withdraw_credit_transfers_tokens_and_zeroes_credit(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    env.market_as(submitter(env)).cancel(job_id)

    receipt = env.market_as(submitter(env)).withdraw()

    assert receipt.one(Withdrawn) == Withdrawn(account=submitter(env).address, amount=REWARD)
    assert receipt.one(Transfer) == Transfer(
        from_=env.market.address, to=submitter(env).address, value=REWARD
    )
    assert env.market.credits(submitter(env).address) == 0
    assert env.market.total_credits() == 0
    assert balance(env, submitter(env)) == INITIAL_BALANCE
    assert balance(env, env.market.address) == 0
    expect_revert(
        NothingToWithdraw,
        lambda: env.market_as(submitter(env)).withdraw(),
        account=submitter(env).address,
    )


def test_withdraw_without_credit_reverts_nothing_to_withdraw(market_env: MarketEnv) -> None:
    env = market_env
    who = env.accounts[5]

    expect_revert(NothingToWithdraw, lambda: env.market_as(who).withdraw(), account=who.address)


# ---------------------------------------------------------------------- dispute game set


def fresh_market(env: MarketEnv, deployer: LocalAccount | None = None) -> JobMarketClient:
    client = ChainClient(env.devnet.web3(), deployer or env.accounts[0])
    address, _ = client.deploy(
        "JobMarket", [env.token.address, WINNER_SHARE_BPS, LATE_SHARE_BPS, MIN_BOND]
    )
    return JobMarketClient(client, address)


def test_set_dispute_game_by_deployer_registers_game_once(market_env: MarketEnv) -> None:
    env = market_env
    market = fresh_market(env)
    game = env.accounts[7].address
    assert market.dispute_game() == ZERO_ADDRESS

    receipt = market.set_dispute_game(game)

    assert receipt.one(DisputeGameSet) == DisputeGameSet(game=game)
    assert market.dispute_game() == game
    expect_revert(
        DisputeGameAlreadySet,
        lambda: market.set_dispute_game(env.accounts[8].address),
        current=game,
    )


def test_set_dispute_game_by_non_deployer_reverts_not_deployer(market_env: MarketEnv) -> None:
    env = market_env
    market = fresh_market(env)
    intruder = env.accounts[5]

    expect_revert(
        NotDeployer,
        lambda: market.as_account(intruder).set_dispute_game(intruder.address),
        caller=intruder.address,
    )
    assert market.dispute_game() == ZERO_ADDRESS


def test_set_dispute_game_zero_address_reverts_zero_address(market_env: MarketEnv) -> None:
    market = fresh_market(market_env)

    expect_revert(ZeroAddress, lambda: market.set_dispute_game(ZERO_ADDRESS))


def test_set_dispute_game_on_deployed_market_reverts_already_set(market_env: MarketEnv) -> None:
    env = market_env

    expect_revert(
        DisputeGameAlreadySet,
        lambda: env.market.set_dispute_game(env.accounts[8].address),
        current=env.game.address,
    )


# ---------------------------------------------------------------------------- disputes


def test_open_dispute_by_game_pulls_bond_and_counts_dispute(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = submitted_job(env)
    env.token_as(challenger(env)).approve(env.market.address, BOND)
    before = balance(env, env.market.address)

    receipt = env.market_as(env.game).open_dispute(job_id, challenger(env).address)

    assert receipt.one(DisputeOpened) == DisputeOpened(
        job_id=job_id, challenger=challenger(env).address, bond=BOND
    )
    assert receipt.one(Transfer) == Transfer(
        from_=challenger(env).address, to=env.market.address, value=BOND
    )
    assert env.market.get_job(job_id).open_disputes == 1
    assert balance(env, challenger(env)) == INITIAL_BALANCE - BOND
    assert balance(env, env.market.address) == before + BOND


def test_open_dispute_by_non_game_reverts_not_dispute_game(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = submitted_job(env)
    env.token_as(challenger(env)).approve(env.market.address, BOND)

    expect_revert(
        NotDisputeGame,
        lambda: env.market_as(challenger(env)).open_dispute(job_id, challenger(env).address),
        caller=challenger(env).address,
    )
    assert env.market.get_job(job_id).open_disputes == 0


def test_open_dispute_at_challenge_deadline_succeeds(market_env: MarketEnv) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    env.token_as(challenger(env)).approve(env.market.address, BOND)
    pin_time(env.devnet, challenge_deadline)

    env.market_as(env.game).open_dispute(job_id, challenger(env).address)

    assert env.market.get_job(job_id).open_disputes == 1


def test_open_dispute_after_challenge_window_reverts_challenge_window_closed(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    env.token_as(challenger(env)).approve(env.market.address, BOND)
    pin_time(env.devnet, challenge_deadline + 1)

    expect_revert(
        ChallengeWindowClosed,
        lambda: env.market_as(env.game).open_dispute(job_id, challenger(env).address),
        jobId=job_id,
        deadline=challenge_deadline,
    )


def test_open_dispute_without_bond_allowance_reverts_insufficient_allowance(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = submitted_job(env)

    expect_revert(
        ERC20InsufficientAllowance,
        lambda: env.market_as(env.game).open_dispute(job_id, challenger(env).address),
        spender=env.market.address,
        allowance=0,
        needed=BOND,
    )
    assert env.market.get_job(job_id).open_disputes == 0


def test_open_dispute_on_claimed_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    env.token_as(challenger(env)).approve(env.market.address, BOND)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(env.game).open_dispute(job_id, challenger(env).address),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=JobStatus.Claimed,
    )


def test_resolve_dispute_solver_won_splits_bond_and_result_still_finalizes(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    open_dispute(env, job_id)

    receipt = env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, True)

    to_solver = BOND * WINNER_SHARE_BPS // BPS
    burned = BOND - to_solver
    assert receipt.one(DisputeResolved) == DisputeResolved(
        job_id=job_id, challenger=challenger(env).address, solver_won=True
    )
    # The solver's share is held until its job finalizes, not credited.
    assert receipt.one(WinningsHeld) == WinningsHeld(
        job_id=job_id, solver=solver(env).address, amount=to_solver
    )
    assert not [e for e in receipt.events if isinstance(e, Credited)]
    assert receipt.one(Transfer) == Transfer(
        from_=env.market.address, to=ZERO_ADDRESS, value=burned
    )
    assert not [e for e in receipt.events if isinstance(e, SolverSlashed)]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Submitted, 0)
    assert env.market.credits(solver(env).address) == 0
    assert env.market.payout_of(job_id).held_for_solver == to_solver
    assert env.market.credits(challenger(env).address) == 0
    assert env.market.total_burned() == burned
    assert balance(env, challenger(env)) == INITIAL_BALANCE - BOND

    pin_time(env.devnet, challenge_deadline + 1)
    finalized = env.market.finalize(job_id)
    assert finalized.one(JobFinalized).payout == to_solver + REWARD + STAKE
    assert env.market.status_of(job_id) is JobStatus.Finalized
    assert env.market.credits(solver(env).address) == to_solver + REWARD + STAKE
    assert env.market.payout_of(job_id).held_for_solver == 0
    assert_conserved(env)


def test_resolve_dispute_challenger_won_slashes_stake_and_refunds_reward(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    open_dispute(env, job_id)
    supply = env.token.total_supply()

    receipt = env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, False)

    to_winner = STAKE * WINNER_SHARE_BPS // BPS
    burned = STAKE - to_winner
    # The only game closes the job: the winner gets ONE credit, its bond back plus the pool.
    assert list(receipt.events) == [
        DisputeResolved(job_id=job_id, challenger=challenger(env).address, solver_won=False),
        SolverSlashed(
            job_id=job_id,
            solver=solver(env).address,
            winner=challenger(env).address,
            to_winner=to_winner,
            burned=burned,
        ),
        Credited(account=submitter(env).address, amount=REWARD),
        Transfer(from_=env.market.address, to=ZERO_ADDRESS, value=burned),
        RewardClaimed(job_id=job_id, challenger=challenger(env).address, games=1, amount=to_winner),
        Credited(account=challenger(env).address, amount=BOND + to_winner),
    ]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    assert job.challenge_deadline == challenge_deadline
    assert env.market.credits(challenger(env).address) == BOND + to_winner
    assert env.market.credits(submitter(env).address) == REWARD
    assert env.market.credits(solver(env).address) == 0
    assert env.market.total_credits() == BOND + to_winner + REWARD
    assert env.market.total_burned() == burned
    assert env.token.total_supply() == supply - burned
    assert balance(env, env.market.address) == BOND + to_winner + REWARD

    # A slashed result never finalizes, whatever the clock says.
    pin_time(env.devnet, challenge_deadline + 1)
    expect_revert(
        WrongStatus,
        lambda: env.market.finalize(job_id),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=JobStatus.Slashed,
    )
    env.market_as(challenger(env)).withdraw()
    assert balance(env, challenger(env)) == INITIAL_BALANCE + to_winner
    assert_conserved(env)


@pytest.mark.parametrize("solver_won", [False, True], ids=["challenger-won", "solver-won"])
def test_resolve_second_dispute_after_slash_returns_its_bond_and_shares_the_pool_if_won(
    market_env: MarketEnv, solver_won: bool
) -> None:
    """Once the solver is proven wrong, a later game returns its bond: no second slash, a
    proven cheater earns no share of a losing late challenger's bond, and a later game that
    also proved the lie owns an equal part of the winners' pool (paid when the last closes)."""
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    first, second = challenger(env), env.accounts[7]
    open_dispute(env, job_id, first)
    open_dispute(env, job_id, second)
    env.market_as(env.game).resolve_dispute(job_id, first.address, False)
    to_winner = STAKE * WINNER_SHARE_BPS // BPS
    slash_burn = STAKE - to_winner
    assert env.market.total_burned() == slash_burn
    supply = env.token.total_supply()
    market_before = balance(env, env.market.address)

    receipt = env.market_as(env.game).resolve_dispute(job_id, second.address, solver_won)

    second_part = part = 0 if solver_won else to_winner - to_winner // 2
    assert list(receipt.events) == [
        DisputeResolved(job_id=job_id, challenger=second.address, solver_won=solver_won),
        *(
            []
            if solver_won
            else [RewardClaimed(job_id=job_id, challenger=second.address, games=1, amount=part)]
        ),
        Credited(account=second.address, amount=BOND + second_part),
    ]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    assert job.challenge_deadline == challenge_deadline
    # The first winner is paid its part by anyone's claim.
    env.market_as(second).claim_reward(job_id, first.address)
    expect_revert(
        NothingToWithdraw,
        lambda: env.market.claim_reward(job_id, first.address),
        account=first.address,
    )
    first_part = to_winner - second_part
    assert env.market.credits(second.address) == BOND + second_part
    assert env.market.credits(first.address) == BOND + first_part
    assert env.market.credits(solver(env).address) == 0
    assert env.market.credits(submitter(env).address) == REWARD
    assert env.market.total_credits() == 2 * BOND + to_winner + REWARD
    # Nothing burned and nothing left the market: the bond only became a credit.
    assert env.market.total_burned() == slash_burn
    assert env.token.total_supply() == supply
    assert balance(env, env.market.address) == market_before
    expect_revert(
        NoOpenDispute,
        lambda: env.market_as(env.game).resolve_dispute(job_id, second.address, solver_won),
        jobId=job_id,
    )
    env.market_as(second).withdraw()
    assert balance(env, second) == INITIAL_BALANCE + second_part
    expect_revert(
        NothingToWithdraw,
        lambda: env.market_as(solver(env)).withdraw(),
        account=solver(env).address,
    )
    assert_conserved(env)


def test_resolve_solver_won_before_the_slash_forfeits_the_solvers_bond_share_to_the_winners(
    market_env: MarketEnv,
) -> None:
    """A game the solver wins BEFORE another game proves it wrong still splits that bond
    solver/burn, but the solver's share is only held: the slash forfeits it to the winners'
    pool, so a proven cheater keeps nothing it won (e.g. by an honest challenger's timeout)."""
    env = market_env
    job_id, _ = submitted_job(env)
    first, second = challenger(env), env.accounts[7]
    open_dispute(env, job_id, first)
    open_dispute(env, job_id, second)

    receipt = env.market_as(env.game).resolve_dispute(job_id, first.address, True)

    to_solver = BOND * WINNER_SHARE_BPS // BPS
    assert list(receipt.events) == [
        DisputeResolved(job_id=job_id, challenger=first.address, solver_won=True),
        WinningsHeld(job_id=job_id, solver=solver(env).address, amount=to_solver),
        Transfer(from_=env.market.address, to=ZERO_ADDRESS, value=BOND - to_solver),
    ]
    slash = env.market_as(env.game).resolve_dispute(job_id, second.address, False)
    to_winner = STAKE * WINNER_SHARE_BPS // BPS
    assert slash.one(SolverSlashed).to_winner == to_winner + to_solver
    assert env.market.status_of(job_id) is JobStatus.Slashed
    assert env.market.credits(solver(env).address) == 0
    assert env.market.payout_of(job_id).held_for_solver == 0
    assert env.market.credits(first.address) == 0
    assert env.market.credits(second.address) == BOND + to_winner + to_solver
    assert env.market.total_burned() == (BOND - to_solver) + (STAKE - to_winner)
    assert_conserved(env)


def test_resolve_dispute_after_slash_then_void_of_the_last_one_keeps_the_slash(
    market_env: MarketEnv,
) -> None:
    """Three games on one job: the first slashes, the second loses late (bond back), the
    third is voided (bond back, and no window reopened on a slashed job)."""
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    first, second, third = challenger(env), env.accounts[7], env.accounts[8]
    for who in (first, second, third):
        open_dispute(env, job_id, who)
    env.market_as(env.game).resolve_dispute(job_id, first.address, False)
    env.market_as(env.game).resolve_dispute(job_id, second.address, True)
    pin_time(env.devnet, challenge_deadline + 10)

    receipt = env.market_as(env.game).void_dispute(job_id, third.address)

    assert list(receipt.events) == [
        DisputeVoided(job_id=job_id, challenger=third.address),
        Credited(account=third.address, amount=BOND),
    ]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    assert job.challenge_deadline == challenge_deadline
    to_winner = STAKE * WINNER_SHARE_BPS // BPS
    # The only winning game was not the closing one: its pool is claimed.
    assert env.market.credits(first.address) == BOND
    env.market.claim_reward(job_id, first.address)
    assert {
        who.address: env.market.credits(who.address)
        for who in (first, second, third, solver(env), submitter(env))
    } == {
        first.address: BOND + to_winner,
        second.address: BOND,
        third.address: BOND,
        solver(env).address: 0,
        submitter(env).address: REWARD,
    }
    assert env.market.total_burned() == STAKE - to_winner
    assert_conserved(env)


def test_resolve_dispute_without_open_dispute_reverts_no_open_dispute(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = submitted_job(env)

    expect_revert(
        NoOpenDispute,
        lambda: env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, True),
        jobId=job_id,
    )


def test_resolve_dispute_by_non_game_reverts_not_dispute_game(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = submitted_job(env)
    open_dispute(env, job_id)
    intruder = challenger(env)

    expect_revert(
        NotDisputeGame,
        lambda: env.market_as(intruder).resolve_dispute(job_id, intruder.address, False),
        caller=intruder.address,
    )
    assert env.market.status_of(job_id) is JobStatus.Submitted
    assert env.market.get_job(job_id).open_disputes == 1


def test_resolve_dispute_on_open_job_reverts_wrong_status(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, True),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=JobStatus.Open,
    )


def disputed_job(
    env: MarketEnv, challengers: list[LocalAccount], window: int = 900
) -> tuple[JobId, int]:
    """A submitted job with one dispute per challenger, each opened AT the challenge deadline
    (the last second of the original window); returns the job and that deadline."""
    job_id, _ = post(env, challenge_window=window)
    claim(env, job_id)
    for who in challengers:
        env.token_as(who).approve(env.market.address, BOND)
    deadline = submit(env, job_id)
    for who in challengers:
        pin_time(env.devnet, deadline)
        env.market_as(env.game).open_dispute(job_id, who.address)
    assert env.market.get_job(job_id).open_disputes == len(challengers)
    return job_id, deadline


@pytest.mark.parametrize("window", [1, 900, MAX_WINDOW])
def test_void_dispute_refunds_bond_and_reopens_challenge_window_for_a_full_window(
    market_env: MarketEnv, window: int
) -> None:
    """Referee silence must not let a result finalize unchallenged: the void (here after the
    original deadline) gives challengers a fresh full window from the void's block."""
    env = market_env
    job_id, deadline = disputed_job(env, [challenger(env)], window)
    market_before = balance(env, env.market.address)
    voided_at = deadline + 50
    pin_time(env.devnet, voided_at)

    receipt = env.market_as(env.game).void_dispute(job_id, challenger(env).address)

    reopened = voided_at + window
    assert list(receipt.events) == [
        ChallengeWindowReopened(job_id=job_id, challenge_deadline=reopened),
        DisputeVoided(job_id=job_id, challenger=challenger(env).address),
        Credited(account=challenger(env).address, amount=BOND),
    ]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes, job.challenge_deadline) == (
        JobStatus.Submitted,
        0,
        reopened,
    )
    assert job.challenge_window == window
    assert env.market.credits(challenger(env).address) == BOND
    assert env.market.credits(solver(env).address) == 0
    assert env.market.total_credits() == BOND
    assert env.market.total_burned() == 0
    # The bond moved from the open-bond bucket to a credit; nothing left the market.
    assert balance(env, env.market.address) == market_before == REWARD + STAKE + BOND

    # The result finalizes only once the REOPENED window is over.
    pin_time(env.devnet, reopened)
    expect_revert(
        ChallengeWindowOpen, lambda: env.market.finalize(job_id), jobId=job_id, deadline=reopened
    )
    pin_time(env.devnet, reopened + 1)
    receipt = env.market.finalize(job_id)
    assert list(receipt.events) == [
        JobFinalized(job_id=job_id, solver=solver(env).address, payout=REWARD + STAKE),
        Credited(account=solver(env).address, amount=REWARD + STAKE),
    ]
    env.market_as(challenger(env)).withdraw()
    assert balance(env, challenger(env)) == INITIAL_BALANCE
    assert env.market.credits(solver(env).address) == REWARD + STAKE
    assert_conserved(env)


def test_void_dispute_inside_the_window_extends_it_to_a_full_window_from_now(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, deadline = submitted_job(env)
    open_dispute(env, job_id)
    voided_at = deadline - 100
    pin_time(env.devnet, voided_at)

    receipt = env.market_as(env.game).void_dispute(job_id, challenger(env).address)

    assert receipt.events[0] == ChallengeWindowReopened(
        job_id=job_id, challenge_deadline=voided_at + 900
    )
    assert env.market.get_job(job_id).challenge_deadline == deadline + 800
    pin_time(env.devnet, deadline + 1)
    expect_revert(
        ChallengeWindowOpen,
        lambda: env.market.finalize(job_id),
        jobId=job_id,
        deadline=deadline + 800,
    )


def test_void_dispute_reopened_window_accepts_new_disputes_until_its_new_deadline(
    market_env: MarketEnv,
) -> None:
    """After the void, the original deadline has passed, yet a second challenger can still
    dispute (up to the reopened deadline, inclusive) and win: the cheater is slashed."""
    env = market_env
    first, second, third = challenger(env), env.accounts[7], env.accounts[8]
    job_id, deadline = disputed_job(env, [first])
    for who in (second, third):
        env.token_as(who).approve(env.market.address, BOND)
    voided_at = deadline + 300
    pin_time(env.devnet, voided_at)
    env.market_as(env.game).void_dispute(job_id, first.address)
    reopened = voided_at + 900
    assert env.market.get_job(job_id).challenge_deadline == reopened

    pin_time(env.devnet, reopened)
    receipt = env.market_as(env.game).open_dispute(job_id, second.address)

    assert list(receipt.events) == [
        DisputeOpened(job_id=job_id, challenger=second.address, bond=BOND),
        Transfer(from_=second.address, to=env.market.address, value=BOND),
    ]
    pin_time(env.devnet, reopened + 1)
    expect_revert(
        ChallengeWindowClosed,
        lambda: env.market_as(env.game).open_dispute(job_id, third.address),
        jobId=job_id,
        deadline=reopened,
    )
    expect_revert(DisputesOpen, lambda: env.market.finalize(job_id), jobId=job_id, count=1)

    receipt = env.market_as(env.game).resolve_dispute(job_id, second.address, False)

    to_winner = STAKE * WINNER_SHARE_BPS // BPS
    assert receipt.one(SolverSlashed).winner == second.address
    assert env.market.status_of(job_id) is JobStatus.Slashed
    assert env.market.credits(first.address) == BOND
    assert env.market.credits(second.address) == BOND + to_winner
    assert env.market.credits(third.address) == 0
    assert env.market.credits(solver(env).address) == 0
    assert env.market.credits(submitter(env).address) == REWARD
    assert_conserved(env)


def test_void_dispute_emits_reopened_only_when_the_deadline_moves(market_env: MarketEnv) -> None:
    """Two voids in one second: the second would set the same deadline, so it is silent."""
    env = market_env
    first, second, third = challenger(env), env.accounts[7], env.accounts[8]
    job_id, deadline = disputed_job(env, [first, second, third])
    voided_at = deadline + 7
    pin_time(env.devnet, voided_at)
    receipt = env.market_as(env.game).void_dispute(job_id, first.address)
    assert receipt.events[0] == ChallengeWindowReopened(
        job_id=job_id, challenge_deadline=voided_at + 900
    )

    set_next_block_timestamp(env.devnet, voided_at)
    receipt = env.market_as(env.game).void_dispute(job_id, second.address)

    assert list(receipt.events) == [
        DisputeVoided(job_id=job_id, challenger=second.address),
        Credited(account=second.address, amount=BOND),
    ]
    job = env.market.get_job(job_id)
    assert (job.open_disputes, job.challenge_deadline) == (1, voided_at + 900)

    pin_time(env.devnet, voided_at + 1)
    receipt = env.market_as(env.game).void_dispute(job_id, third.address)
    assert list(receipt.events) == [
        ChallengeWindowReopened(job_id=job_id, challenge_deadline=voided_at + 901),
        DisputeVoided(job_id=job_id, challenger=third.address),
        Credited(account=third.address, amount=BOND),
    ]
    assert env.market.get_job(job_id).challenge_deadline == voided_at + 901
    assert_conserved(env)


def test_void_one_of_two_disputes_still_blocks_finalize(market_env: MarketEnv) -> None:
    env = market_env
    second = env.accounts[7]
    job_id, deadline = disputed_job(env, [challenger(env), second])
    voided_at = deadline + 5
    pin_time(env.devnet, voided_at)

    env.market_as(env.game).void_dispute(job_id, second.address)

    job = env.market.get_job(job_id)
    assert (job.open_disputes, job.challenge_deadline) == (1, voided_at + 900)
    pin_time(env.devnet, voided_at + 901)
    expect_revert(DisputesOpen, lambda: env.market.finalize(job_id), jobId=job_id, count=1)
    # The remaining dispute can still be lost by the solver.
    env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, False)
    assert env.market.status_of(job_id) is JobStatus.Slashed
    assert env.market.credits(second.address) == BOND
    assert_conserved(env)


def test_void_dispute_after_slash_refunds_bond_without_touching_slash_or_window(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, deadline = submitted_job(env)
    first, second = challenger(env), env.accounts[7]
    open_dispute(env, job_id, first)
    open_dispute(env, job_id, second)
    env.market_as(env.game).resolve_dispute(job_id, first.address, False)
    burned = env.market.total_burned()
    credits_before = env.market.total_credits()
    pin_time(env.devnet, deadline + 60)  # a reopening would move the deadline: none on Slashed

    receipt = env.market_as(env.game).void_dispute(job_id, second.address)

    assert list(receipt.events) == [
        DisputeVoided(job_id=job_id, challenger=second.address),
        Credited(account=second.address, amount=BOND),
    ]
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes, job.challenge_deadline) == (
        JobStatus.Slashed,
        0,
        deadline,
    )
    assert env.market.total_burned() == burned == STAKE - STAKE * WINNER_SHARE_BPS // BPS
    assert env.market.total_credits() == credits_before + BOND
    assert env.market.credits(second.address) == BOND
    assert env.market.credits(submitter(env).address) == REWARD
    expect_revert(
        NoOpenDispute,
        lambda: env.market_as(env.game).void_dispute(job_id, second.address),
        jobId=job_id,
    )
    assert_conserved(env)


def test_void_dispute_by_non_game_reverts_not_dispute_game(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = submitted_job(env)
    open_dispute(env, job_id)
    for intruder in (challenger(env), solver(env), env.accounts[0]):
        expect_revert(
            NotDisputeGame,
            lambda intruder=intruder: env.market_as(intruder).void_dispute(
                job_id, intruder.address
            ),
            caller=intruder.address,
        )
    assert env.market.get_job(job_id).open_disputes == 1
    assert env.market.total_credits() == 0


def test_void_dispute_without_open_dispute_reverts_no_open_dispute(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = submitted_job(env)

    expect_revert(
        NoOpenDispute,
        lambda: env.market_as(env.game).void_dispute(job_id, challenger(env).address),
        jobId=job_id,
    )


def test_void_dispute_twice_for_one_dispute_reverts_no_open_dispute(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = submitted_job(env)
    open_dispute(env, job_id)
    env.market_as(env.game).void_dispute(job_id, challenger(env).address)

    expect_revert(
        NoOpenDispute,
        lambda: env.market_as(env.game).void_dispute(job_id, challenger(env).address),
        jobId=job_id,
    )
    assert env.market.credits(challenger(env).address) == BOND


@pytest.mark.parametrize("status", [JobStatus.Open, JobStatus.Claimed, JobStatus.Finalized])
def test_void_dispute_on_job_not_submitted_or_slashed_reverts_wrong_status(
    market_env: MarketEnv, status: JobStatus
) -> None:
    env = market_env
    job_id, _ = post(env)
    if status is not JobStatus.Open:
        claim(env, job_id)
    if status is JobStatus.Finalized:
        challenge_deadline = submit(env, job_id)
        pin_time(env.devnet, challenge_deadline + 1)
        env.market.finalize(job_id)

    expect_revert(
        WrongStatus,
        lambda: env.market_as(env.game).void_dispute(job_id, challenger(env).address),
        jobId=job_id,
        expected=JobStatus.Submitted,
        actual=status,
    )


# ------------------------------------------------------------------------- dispute terms


def test_dispute_terms_follow_the_job_through_its_lifecycle(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env, checkpoint_count=9, steps_per_checkpoint=7)

    assert env.market.dispute_terms(job_id) == DisputeTerms(
        status=JobStatus.Open,
        solver=Address(ZERO_ADDRESS),
        spec_hash=SPEC_HASH,
        trace_root=ZERO_HASH,
        files_root=ZERO_HASH,
        final_state_hash=ZERO_HASH,
        checkpoint_count=9,
        steps_per_checkpoint=7,
    )
    claim(env, job_id)
    assert env.market.dispute_terms(job_id) == DisputeTerms(
        status=JobStatus.Claimed,
        solver=solver(env).address,
        spec_hash=SPEC_HASH,
        trace_root=ZERO_HASH,
        files_root=ZERO_HASH,
        final_state_hash=ZERO_HASH,
        checkpoint_count=9,
        steps_per_checkpoint=7,
    )
    env.market_as(solver(env)).submit_result(
        job_id, TRACE_ROOT, 9, MANIFEST_CID, FINAL_STATE, FILES_ROOT
    )

    submitted = DisputeTerms(
        status=JobStatus.Submitted,
        solver=solver(env).address,
        spec_hash=SPEC_HASH,
        trace_root=TRACE_ROOT,
        files_root=FILES_ROOT,
        final_state_hash=FINAL_STATE,
        checkpoint_count=9,
        steps_per_checkpoint=7,
    )
    assert env.market.dispute_terms(job_id) == submitted
    open_dispute(env, job_id)
    env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, False)
    # A slashed job still tells the game what was committed, and that it is slashed.
    assert env.market.dispute_terms(job_id) == replace(submitted, status=JobStatus.Slashed)


def test_dispute_terms_status_is_the_first_abi_word(market_env: MarketEnv) -> None:
    """The raw ABI layout DisputeGame decodes: (status, solver, specHash, traceRoot,
    filesRoot, finalStateHash, checkpointCount, stepsPerCheckpoint), status first."""
    env = market_env
    job_id, _ = submitted_job(env)
    raw = env.client.w3.eth.call(
        {
            "to": env.market.address,  # type: ignore[typeddict-item]
            "data": "0x"
            + (keccak(text="disputeTerms(uint256)")[:4] + job_id.to_bytes(32, "big")).hex(),
        }
    )
    words = [bytes(raw[i : i + 32]) for i in range(0, len(raw), 32)]
    assert len(words) == 8
    assert int.from_bytes(words[0], "big") == JobStatus.Submitted.value
    assert words[1] == bytes(12) + bytes.fromhex(solver(env).address[2:])
    assert words[2:6] == [SPEC_HASH, TRACE_ROOT, FILES_ROOT, FINAL_STATE]
    assert [int.from_bytes(w, "big") for w in words[6:]] == [CHECKPOINTS, STEPS_PER_CHECKPOINT]


def _job_in(env: MarketEnv, status: JobStatus) -> JobId:
    """A job brought to `status` by the market's own transitions."""
    job_id, terms = post(env, claim_in=2_000)
    if status is JobStatus.Cancelled:
        env.market_as(submitter(env)).cancel(job_id)
    elif status is JobStatus.Expired:
        pin_time(env.devnet, terms.claim_deadline + 1)
        env.market.expire(job_id)
    elif status is not JobStatus.Open:
        claim(env, job_id)
    if status in (JobStatus.Submitted, JobStatus.Finalized, JobStatus.Slashed):
        deadline = submit(env, job_id)
        if status is JobStatus.Finalized:
            pin_time(env.devnet, deadline + 1)
            env.market.finalize(job_id)
        elif status is JobStatus.Slashed:
            open_dispute(env, job_id)
            env.market_as(env.game).resolve_dispute(job_id, challenger(env).address, False)
    assert env.market.status_of(job_id) is status
    return job_id


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.Open,
        JobStatus.Claimed,
        JobStatus.Submitted,
        JobStatus.Finalized,
        JobStatus.Cancelled,
        JobStatus.Expired,
        JobStatus.Slashed,
    ],
    ids=lambda s: s.name,
)
def test_dispute_terms_status_and_fields_mirror_the_stored_job(
    market_env: MarketEnv, status: JobStatus
) -> None:
    env = market_env
    job_id = _job_in(env, status)
    job = env.market.get_job(job_id)

    assert env.market.dispute_terms(job_id) == DisputeTerms(
        status=status,
        solver=job.solver,
        spec_hash=job.spec_hash,
        trace_root=job.trace_root,
        files_root=job.files_root,
        final_state_hash=job.final_state_hash,
        checkpoint_count=job.checkpoint_count,
        steps_per_checkpoint=job.steps_per_checkpoint,
    )


def test_dispute_terms_after_solver_timeout_forget_the_solver(market_env: MarketEnv) -> None:
    env = market_env
    job_id, _ = post(env, claim_in=10_000)
    claim(env, job_id)
    pin_time(env.devnet, env.market.get_job(job_id).submit_deadline + 1)
    env.market.expire(job_id)

    assert env.market.dispute_terms(job_id) == DisputeTerms(
        status=JobStatus.Open,  # reopened: the claim window is still running
        solver=Address(ZERO_ADDRESS),
        spec_hash=SPEC_HASH,
        trace_root=ZERO_HASH,
        files_root=ZERO_HASH,
        final_state_hash=ZERO_HASH,
        checkpoint_count=CHECKPOINTS,
        steps_per_checkpoint=STEPS_PER_CHECKPOINT,
    )


# --------------------------------------------------------------------------- unknown ids


UNKNOWN_ID_CALLS: dict[str, Callable[[MarketEnv, JobId], object]] = {
    "cancel": lambda env, j: env.market_as(submitter(env)).cancel(j),
    "claim": lambda env, j: env.market_as(solver(env)).claim(j),
    "submit": lambda env, j: env.market_as(solver(env)).submit_result(
        j, TRACE_ROOT, CHECKPOINTS, MANIFEST_CID, FINAL_STATE, FILES_ROOT
    ),
    "expire": lambda env, j: env.market.expire(j),
    "finalize": lambda env, j: env.market.finalize(j),
    "open_dispute": lambda env, j: env.market_as(env.game).open_dispute(j, challenger(env).address),
    "resolve_dispute": lambda env, j: env.market_as(env.game).resolve_dispute(
        j, challenger(env).address, False
    ),
    "void_dispute": lambda env, j: env.market_as(env.game).void_dispute(j, challenger(env).address),
    "dispute_terms": lambda env, j: env.market.dispute_terms(j),
}


@pytest.mark.parametrize("action", sorted(UNKNOWN_ID_CALLS))
@pytest.mark.parametrize("job_id", [0, 2])
def test_action_on_unknown_job_reverts_unknown_job(
    market_env: MarketEnv, action: str, job_id: int
) -> None:
    env = market_env
    post(env)  # job 1 exists; 0 and 2 do not

    expect_revert(UnknownJob, lambda: UNKNOWN_ID_CALLS[action](env, JobId(job_id)), jobId=job_id)
    assert env.market.status_of(JobId(job_id)) is JobStatus.Absent


# ------------------------------------------------------------------------- constructor


@pytest.mark.parametrize(
    ("winner_bps", "late_bps", "bad"),
    [(BPS + 1, 0, BPS + 1), (0, BPS + 1, BPS + 1), (2**256 - 1, 5_000, 2**256 - 1)],
    ids=["winner_share", "late_share", "winner_share_max"],
)
def test_market_constructor_with_share_over_bps_reverts_invalid_bps(
    market_env: MarketEnv, winner_bps: int, late_bps: int, bad: int
) -> None:
    client = ChainClient(market_env.devnet.web3(), market_env.accounts[0])

    expect_revert(
        InvalidBps,
        lambda: client.deploy(
            "JobMarket", [market_env.token.address, winner_bps, late_bps, MIN_BOND]
        ),
        bps=bad,
    )


def test_market_constructor_with_zero_token_reverts_zero_address(market_env: MarketEnv) -> None:
    client = ChainClient(market_env.devnet.web3(), market_env.accounts[0])

    args = [ZERO_ADDRESS, 5_000, 5_000, MIN_BOND]
    expect_revert(ZeroAddress, lambda: client.deploy("JobMarket", args))


def test_market_constructor_with_full_shares_records_immutables(market_env: MarketEnv) -> None:
    deployer = market_env.accounts[2]
    client = ChainClient(market_env.devnet.web3(), deployer)
    address, _ = client.deploy("JobMarket", [market_env.token.address, BPS, 0, MIN_BOND])
    market = JobMarketClient(client, address)

    assert (market.winner_share_bps(), market.late_share_bps()) == (BPS, 0)
    assert market.client.call(market._c.functions.DEPLOYER().call) == deployer.address
    assert market.client.call(market._c.functions.TOKEN().call) == market_env.token.address


# ------------------------------------------------------------------------------- token


def test_token_mint_by_non_minter_reverts_access_control_unauthorized(
    market_env: MarketEnv,
) -> None:
    env = market_env
    outsider = env.accounts[5]
    supply = env.token.total_supply()

    expect_revert(
        AccessControlUnauthorizedAccount,
        lambda: env.token_as(outsider).mint(outsider.address, 1),
        account=outsider.address,
        neededRole=MINTER_ROLE,
    )
    assert env.token.total_supply() == supply


def test_token_mint_by_minter_raises_supply_and_total_minted(market_env: MarketEnv) -> None:
    env = market_env
    supply, minted = env.token.total_supply(), env.token.total_minted()
    assert supply == minted == 9 * INITIAL_BALANCE

    receipt = env.token.mint(env.accounts[5].address, 12_345)

    assert receipt.one(Transfer) == Transfer(
        from_=ZERO_ADDRESS, to=env.accounts[5].address, value=12_345
    )
    assert env.token.total_supply() == supply + 12_345
    assert env.token.total_minted() == minted + 12_345
    assert balance(env, env.accounts[5]) == INITIAL_BALANCE + 12_345


def test_full_lifecycle_with_slash_and_withdrawals_conserves_tokens(market_env: MarketEnv) -> None:
    env = market_env
    job_a, deadline_a = submitted_job(env)
    job_b, _ = post(env, env.accounts[2])
    claim(env, job_b, env.accounts[4])
    submit(env, job_b, env.accounts[4])
    open_dispute(env, job_b)
    env.market_as(env.game).resolve_dispute(job_b, challenger(env).address, False)
    pin_time(env.devnet, deadline_a + 1)
    env.market.finalize(job_a)
    for who in (solver(env), challenger(env), env.accounts[2]):
        env.market_as(who).withdraw()

    burned = STAKE - STAKE * WINNER_SHARE_BPS // BPS
    assert env.market.total_credits() == 0
    assert balance(env, env.market.address) == 0
    assert env.market.total_burned() == burned
    assert env.token.total_minted() - env.token.total_supply() == burned
    assert balance(env, solver(env)) == INITIAL_BALANCE + REWARD
    assert balance(env, env.accounts[4]) == INITIAL_BALANCE - STAKE
    assert balance(env, challenger(env)) == INITIAL_BALANCE + STAKE * WINNER_SHARE_BPS // BPS
    assert balance(env, env.accounts[2]) == INITIAL_BALANCE
    assert balance(env, submitter(env)) == INITIAL_BALANCE - REWARD
    assert_conserved(env)


# ------------------------------------------------- mined reverts (ChainClient regression)
#
# ChainClient simulates a write on the latest block but the transaction is mined in the next
# one; a deadline passing in between made the mined transaction revert with an opaque
# TransactionFailed.  The client now replays a reverted transaction at its block and raises
# the typed error.  Each test checks that the transaction really was mined (and reverted):
# the error carries its hash, and its receipt has status 0.


def assert_mined_and_reverted(env: MarketEnv, error: ContractRevert, block_before: int) -> None:
    tx_hash = getattr(error, "tx_hash", None)
    assert isinstance(tx_hash, str) and tx_hash.startswith("0x") and len(tx_hash) == 66
    raw = env.client.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
    assert raw["status"] == 0
    assert raw["blockNumber"] == block_before + 1


def test_claim_mined_one_second_past_deadline_raises_typed_claim_deadline_passed(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, terms = post(env)
    env.token_as(solver(env)).approve(env.market.address, STAKE)
    # The latest block sits exactly at the deadline; the claim is mined one second later.
    mine_at(env.devnet, terms.claim_deadline)
    set_next_block_timestamp(env.devnet, terms.claim_deadline + 1)
    block = env.client.w3.eth.block_number

    error = expect_revert(
        ClaimDeadlinePassed,
        lambda: env.market_as(solver(env)).claim(job_id),
        jobId=job_id,
        deadline=terms.claim_deadline,
    )
    assert_mined_and_reverted(env, error, block)
    assert env.market.status_of(job_id) is JobStatus.Open
    assert balance(env, solver(env)) == INITIAL_BALANCE


def test_submit_mined_one_second_past_deadline_raises_typed_submit_deadline_passed(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, _ = post(env)
    claim(env, job_id)
    deadline = env.market.get_job(job_id).submit_deadline
    mine_at(env.devnet, deadline)
    set_next_block_timestamp(env.devnet, deadline + 1)
    block = env.client.w3.eth.block_number

    error = expect_revert(
        SubmitDeadlinePassed, lambda: submit(env, job_id), jobId=job_id, deadline=deadline
    )
    assert_mined_and_reverted(env, error, block)
    assert env.market.status_of(job_id) is JobStatus.Claimed


def test_open_dispute_mined_past_challenge_window_raises_typed_challenge_window_closed(
    market_env: MarketEnv,
) -> None:
    env = market_env
    job_id, challenge_deadline = submitted_job(env)
    env.token_as(challenger(env)).approve(env.market.address, BOND)
    mine_at(env.devnet, challenge_deadline)
    set_next_block_timestamp(env.devnet, challenge_deadline + 1)
    block = env.client.w3.eth.block_number

    error = expect_revert(
        ChallengeWindowClosed,
        lambda: env.market_as(env.game).open_dispute(job_id, challenger(env).address),
        jobId=job_id,
        deadline=challenge_deadline,
    )
    assert_mined_and_reverted(env, error, block)
    assert env.market.get_job(job_id).open_disputes == 0


def test_post_mined_at_claim_deadline_raises_typed_deadline_in_past_with_mined_clock(
    market_env: MarketEnv,
) -> None:
    env = market_env
    who = submitter(env)
    env.token_as(who).approve(env.market.address, REWARD)
    at = now(env) + 5
    terms = make_terms(at, claim_in=1)
    mine_at(env.devnet, at)
    set_next_block_timestamp(env.devnet, at + 1)
    block = env.client.w3.eth.block_number

    error = expect_revert(
        DeadlineInPast,
        lambda: env.market_as(who).post_job(terms),
        deadline=at + 1,
        nowTs=at + 1,
    )
    assert_mined_and_reverted(env, error, block)
    assert env.market.job_count() == 0


def test_post_job_for_mined_past_order_deadline_raises_typed_order_expired(
    market_env: MarketEnv,
) -> None:
    env = market_env
    signer = submitter(env)
    env.token_as(signer).approve(env.market.address, REWARD)
    at = now(env) + 5
    terms = make_terms(at)
    order = env.market.sign_job_order(signer, terms, at)
    mine_at(env.devnet, at)
    set_next_block_timestamp(env.devnet, at + 1)
    block = env.client.w3.eth.block_number

    error = expect_revert(
        OrderExpired,
        lambda: env.market_as(relayer(env)).post_job_for(order, NO_PERMIT),
        deadline=at,
        nowTs=at + 1,
    )
    assert_mined_and_reverted(env, error, block)
    assert env.market.order_nonce(signer.address) == 0


def test_revoke_orders_makes_a_signed_unrelayed_order_unusable(market_env: MarketEnv) -> None:
    env = market_env
    signer, relayer = submitter(env), env.accounts[5]
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=BOND)
    deadline = env.devnet.timestamp() + 600
    order = env.market.sign_job_order(signer, terms, deadline)
    permit = env.token.sign_permit(signer, env.market.address, terms.reward, deadline)
    nonce = env.market.order_nonce(signer.address)

    receipt = env.market_as(signer).revoke_orders()

    assert receipt.one(OrdersRevoked) == OrdersRevoked(submitter=signer.address, nonce=nonce)
    assert env.market.order_nonce(signer.address) == nonce + 1
    before = env.market.job_count()
    with pytest.raises(InvalidOrderSignature) as exc:
        env.market_as(relayer).post_job_for(order, permit)
    assert exc.value.args_by_name["submitter"] == signer.address
    assert env.market.job_count() == before
    fresh = env.market.sign_job_order(signer, terms, deadline)
    job_id, _ = env.market_as(relayer).post_job_for(fresh, permit)
    assert env.market.get_job(job_id).submitter == signer.address


# ------------------------------------------------------------------ minimum challenger bond


def test_post_job_with_one_wei_bond_reverts_bond_below_minimum(market_env: MarketEnv) -> None:
    """Issue 11's cheap games: a 1-wei bond made a game cost a griefer nothing. A job must
    ask at least MIN_CHALLENGER_BOND (the cost of defending one game); the minimum passes."""
    env = market_env
    who = submitter(env)
    minimum = env.market.min_challenger_bond()
    assert minimum == MIN_BOND > 1
    for bond in (1, minimum - 1):
        terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=bond)
        expect_revert(
            BondBelowMinimum,
            lambda terms=terms: env.market_as(who).post_job(terms),
            bond=bond,
            minimum=minimum,
        )
    terms = make_terms(now(env), reward=REWARD, solver_stake=STAKE, challenger_bond=minimum)
    env.token_as(who).approve(env.market.address, REWARD)
    job_id, _ = env.market_as(who).post_job(terms)
    assert env.market.get_job(job_id).challenger_bond == minimum
    assert_conserved(env)


def test_market_constructor_with_zero_minimum_bond_reverts(market_env: MarketEnv) -> None:
    client = ChainClient(market_env.devnet.web3(), market_env.accounts[0])
    args = [market_env.token.address, 5_000, 5_000, 0]
    expect_revert(ZeroChallengerBond, lambda: client.deploy("JobMarket", args))
