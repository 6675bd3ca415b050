"""Two solvers (one cheating) and one whistleblower working three jobs at once, ticked
round-robin in-process: every job settles as it should, a solver never holds two jobs at
once, no job is claimed twice, and no token is created or lost (DESIGN.md §1.4)."""

from __future__ import annotations

from pathlib import Path

from chain.generated import (
    ContractEvent,
    DisputeResolved,
    GameStatus,
    JobClaimed,
    JobStatus,
    ResultSubmitted,
    SolverSlashed,
)
from chain.types import JobId
from market.store import ArtifactStore
from solver.journal import Phase
from tests.e2e.ledger import Ledger, event_blocks, market_events
from tests.e2e.support import publish_job, referee, run_market, solver_node, whistleblower
from tests.fixtures.dispute import REWARD, STAKE, DisputeEnv
from tests.support.cheaters import UlpCheater

TO_WINNER = STAKE // 2
JOBS = 3


def test_two_solvers_one_cheating_three_jobs_all_settle_and_funds_conserved(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    jobs = [publish_job(env, ipfs_store, seed=3 + i) for i in range(JOBS)]
    honest = solver_node(env, ipfs_store, tmp_path / "honest", index=0)
    cheater = solver_node(
        env, ipfs_store, tmp_path / "cheater", index=1, stepper=UlpCheater(at_step=1)
    )
    wb = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)
    nodes = [honest, cheater]

    def all_settled() -> bool:
        return all(
            env.market.get_job(j).status in (JobStatus.Finalized, JobStatus.Slashed) for j in jobs
        ) and all(e.phase == Phase.SETTLED for n in nodes for e in n.journal.all())

    run_market(env, [honest.tick, cheater.tick, wb.tick], ref, done=all_settled, max_rounds=80)

    # Round-robin order decides who gets what: honest takes 1, the cheater 2, honest 3
    # once its first result is in.
    claims = market_events(env, JobClaimed)
    assert [(c.job_id, c.solver) for c in claims] == [
        (jobs[0], env.solver(0).address),
        (jobs[1], env.solver(1).address),
        (jobs[2], env.solver(0).address),
    ]
    # A solver claims again only after submitting the job it holds.
    for solver in (env.solver(0).address, env.solver(1).address):
        holding: JobId | None = None
        timeline: list[tuple[int, ContractEvent]] = event_blocks(env, [JobClaimed, ResultSubmitted])
        for _, event in timeline:
            if getattr(event, "solver", None) != solver:
                continue
            if isinstance(event, JobClaimed):
                assert holding is None, f"{solver} claimed {event.job_id} while holding {holding}"
                holding = JobId(event.job_id)
            else:
                assert isinstance(event, ResultSubmitted) and event.job_id == holding
                holding = None
    assert [s.job_id for s in market_events(env, ResultSubmitted)] == [jobs[0], jobs[1], jobs[2]]

    statuses = [env.market.get_job(j).status for j in jobs]
    assert statuses == [JobStatus.Finalized, JobStatus.Slashed, JobStatus.Finalized]
    assert sorted((f.job_id, f.mismatch) for f in wb.findings) == [
        (jobs[0], None),
        (jobs[1], 1),
        (jobs[2], None),
    ]
    assert env.game.game_count() == 1
    assert env.game.get_game(1).job_id == jobs[1]
    assert env.game.get_game(1).status == GameStatus.ChallengerWon
    assert market_events(env, DisputeResolved) == [
        DisputeResolved(jobs[1], env.challenger(0).address, False)
    ]
    assert market_events(env, SolverSlashed) == [
        SolverSlashed(
            jobs[1], env.solver(1).address, env.challenger(0).address, TO_WINNER, STAKE - TO_WINNER
        )
    ]

    # Exact money, then conservation over every account, the market and the burn.
    assert ledger.delta(env.solver(0).address) == 2 * REWARD
    assert ledger.delta(env.solver(1).address) == -STAKE
    assert ledger.delta(env.challenger(0).address) == TO_WINNER
    assert ledger.delta(env.submitter.address) == -3 * REWARD
    assert env.market.credits(env.submitter.address) == REWARD  # the cheated job's refund
    assert ledger.burned_since() == STAKE - TO_WINNER
    assert env.token.balance_of(env.market.address) - ledger.market_balance == REWARD
    assert env.market.total_credits() == REWARD
    held, minted = ledger.conserved()
    assert held == minted
