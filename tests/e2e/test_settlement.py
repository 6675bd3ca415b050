"""End to end on anvil + the real js-ipfs daemon: a job is posted, a solver trains it with
repops, a whistleblower re-executes every segment, and the market settles with exact money.

Three outcomes (DESIGN.md §2, §6): an honest result is paid; every kind of cheat is caught at
the segment where it happens, bisected to one link, ruled by the referee's real
re-execution and slashed; a whistleblower that believes a wrong computation loses its bond
and the honest result still finalizes.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chain.generated import (
    DisputeResolved,
    GameStatus,
    JobFinalized,
    JobStatus,
    Level,
    SolverSlashed,
)
from chain.types import JobId
from market.store import ArtifactStore
from roles.realtrace import Stepper
from solver.journal import Phase
from solver.node import SolverNode
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.support import (
    MLP_SPEC,
    publish_job,
    referee,
    run_market,
    solver_node,
    whistleblower,
)
from tests.fixtures.dispute import BOND, REWARD, STAKE, DisputeEnv
from tests.support.cheaters import (
    DataOrderCheater,
    PlainTorchCheater,
    SkipCheater,
    StopEarlyCheater,
    UlpCheater,
)

STEPS = MLP_SPEC["steps"]  # 8
K = MLP_SPEC["checkpoint_interval"]  # 2 -> leaves 0..4, segments 0..3
WINNER_SHARE_BPS = 5_000
TO_WINNER = STAKE * WINNER_SHARE_BPS // 10_000
STAKE_BURNED = STAKE - TO_WINNER
BOND_TO_SOLVER = BOND * WINNER_SHARE_BPS // 10_000
BOND_BURNED = BOND - BOND_TO_SOLVER

# "A random step", drawn once from a fixed seed so a failure names a reproducible case.
ULP_STEP = random.Random(20_240_611).randrange(STEPS)


def _settled(node: SolverNode, job_id: JobId) -> bool:
    entry = node.journal.load(job_id)
    return entry is not None and entry.phase == Phase.SETTLED


def _op_count(env: DisputeEnv, game_id: int) -> int:
    return env.game.get_game(game_id).op_count


def test_honest_solver_unchallenged_is_paid_and_job_finalized(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path)
    wb = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    (report,) = wb.findings
    assert (report.job_id, report.checked, report.mismatch, report.findings) == (
        job_id,
        (0, 1, 2, 3),
        None,
        (),
    )
    assert report.reason == "all checked segments match" and report.not_checked == ()
    assert env.game.game_count() == 0
    record = env.market.get_job(job_id)
    assert record.status == JobStatus.Finalized
    assert record.solver == env.solver(0).address
    assert market_events(env, JobFinalized) == [
        JobFinalized(job_id, env.solver(0).address, REWARD + STAKE)
    ]
    assert ledger.delta(env.solver(0).address) == REWARD  # reward paid, stake returned
    assert ledger.delta(env.submitter.address) == -REWARD
    assert ledger.delta(env.challenger(0).address) == 0
    assert ledger.burned_since() == 0
    assert env.market.credits(env.solver(0).address) == 0  # withdrawn, not left as credit
    assert env.token.balance_of(env.market.address) == ledger.market_balance
    entry = node.journal.load(job_id)
    assert entry is not None and entry.note == "finalized"


CHEATS: list[tuple[str, Stepper, int, int]] = [
    # (id, stepper, first wrong leaf, disputed step)
    (f"ulp-at-step-{ULP_STEP}", UlpCheater(at_step=ULP_STEP), ULP_STEP // K + 1, ULP_STEP),
    ("skipped-step-6", SkipCheater(at_step=6), 4, 6),
    ("stop-early-at-4-claims-8", StopEarlyCheater(at_step=4), 3, 4),
    ("plain-torch-step-2", PlainTorchCheater(at_step=2), 2, 2),
    ("other-data-order", DataOrderCheater(), 1, 0),
]


@pytest.mark.parametrize(
    ("cheater", "bad_leaf", "disputed_step"),
    [pytest.param(stepper, leaf, step, id=name) for name, stepper, leaf, step in CHEATS],
)
def test_cheating_solver_challenged_at_its_segment_is_slashed(
    dispute_env: DisputeEnv,
    ipfs_store: ArtifactStore,
    ledger: Ledger,
    tmp_path: Path,
    cheater: Stepper,
    bad_leaf: int,
    disputed_step: int,
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path, stepper=cheater)
    wb = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    # The whistleblower re-executed up to the first wrong segment and challenged it.
    segment = bad_leaf - 1
    assert len(wb.findings) == 1
    finding = wb.findings[0]
    assert finding.mismatch == bad_leaf
    assert finding.checked == tuple(range(segment + 1))
    assert finding.reason == (
        f"segment {segment} (steps {segment * K}..{bad_leaf * K}) ends in a different state"
    )
    # One game, bisected to the single link the lie is in, ruled by re-execution.
    assert env.game.game_count() == 1
    game = env.game.get_game(1)
    assert game.status == GameStatus.ChallengerWon
    assert game.level == Level.OP
    assert game.base == disputed_step
    if isinstance(cheater, DataOrderCheater):
        assert (game.lo, game.hi) == (0, 1)  # h_0 binds the batch
    else:
        m = _op_count(env, 1)
        assert (game.lo, game.hi) == (m + 1, m + 2)  # the end link binds the next state
    assert len(ref.receipts) == 2  # two of the three members agree: a majority, final
    # Money: bond back + WINNER_SHARE of the stake; stake lost; reward refunded; rest burned.
    assert env.market.get_job(job_id).status == JobStatus.Slashed
    assert market_events(env, SolverSlashed) == [
        SolverSlashed(
            job_id, env.solver(0).address, env.challenger(0).address, TO_WINNER, STAKE_BURNED
        )
    ]
    assert market_events(env, DisputeResolved) == [
        DisputeResolved(job_id, env.challenger(0).address, False)
    ]
    assert ledger.delta(env.challenger(0).address) == TO_WINNER
    assert ledger.delta(env.solver(0).address) == -STAKE
    assert ledger.burned_since() == STAKE_BURNED
    assert env.market.credits(env.submitter.address) == REWARD
    env.market.as_account(env.submitter).withdraw()
    assert ledger.delta(env.submitter.address) == 0
    assert env.token.balance_of(env.market.address) == ledger.market_balance
    entry = node.journal.load(job_id)
    assert entry is not None and entry.note == "slashed"


def test_whistleblower_challenging_honest_result_loses_bond_and_result_finalizes(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path)
    # It believes step 3 ends one ulp away from what repops computes.
    wb = whistleblower(env, ipfs_store, stepper=UlpCheater(at_step=3))
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    assert [f.mismatch for f in wb.findings] == [2]
    assert env.game.game_count() == 1
    game = env.game.get_game(1)
    assert game.status == GameStatus.SolverWon
    assert (game.level, game.base) == (Level.OP, 3)
    assert market_events(env, DisputeResolved) == [
        DisputeResolved(job_id, env.challenger(0).address, True)
    ]
    record = env.market.get_job(job_id)
    assert record.status == JobStatus.Finalized
    assert env.devnet.timestamp() > record.challenge_deadline
    assert ledger.delta(env.challenger(0).address) == -BOND
    assert ledger.delta(env.solver(0).address) == REWARD + BOND_TO_SOLVER
    assert ledger.delta(env.submitter.address) == -REWARD
    assert ledger.burned_since() == BOND_BURNED
    assert env.token.balance_of(env.market.address) == ledger.market_balance
