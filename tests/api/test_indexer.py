"""market.indexer against a real anvil: follows the market, survives restarts without
missing or duplicating events, and re-syncs after a reorg (an EVM snapshot revert)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chain.contracts import JobTerms
from chain.deploy import Deployment
from chain.types import Cid, Hash32, JobId, Wei
from market.indexer import DisputeRow, EventRow, Indexer, JobRow, make_engine
from tests.fixtures.anvil import MarketEnv

ONE = 10**18
TRACE_ROOT = Hash32(b"\xa1" * 32)
FINAL = Hash32(b"\xf5" * 32)
MANIFEST = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")


def _post(env: MarketEnv, submitter_index: int = 1, reward: int = 10 * ONE) -> JobId:
    submitter = env.accounts[submitter_index]
    env.token_as(submitter).approve(env.market.address, reward)
    terms = JobTerms(
        spec_hash=Hash32(b"\x5e" * 32),
        spec_cid=Cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
        reward=Wei(reward),
        solver_stake=Wei(5 * ONE),
        challenger_bond=Wei(2 * ONE),
        claim_deadline=env.devnet.timestamp() + 3600,
        submit_window=3600,
        challenge_window=3600,
        steps_per_checkpoint=5,
        checkpoint_count=5,
    )
    job_id, _ = env.market_as(submitter).post_job(terms)
    return job_id


def _indexer(env: MarketEnv, db: Path, deployment: Deployment | None = None) -> Indexer:
    return Indexer(
        env.devnet.web3(),
        deployment or env.deployment,
        make_engine(f"sqlite:///{db}"),
        batch_blocks=3,
    )


def _count(indexer: Indexer, table: type) -> int:
    with Session(indexer.engine) as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_indexer_follows_job_lifecycle_and_disputes(market_env: MarketEnv, tmp_path: Path) -> None:
    env = market_env
    job_id = _post(env)
    solver, challenger = env.accounts[3], env.accounts[6]
    env.token_as(solver).approve(env.market.address, 5 * ONE)
    env.market_as(solver).claim(job_id)
    env.market_as(solver).submit_result(job_id, TRACE_ROOT, 5, MANIFEST, FINAL)
    env.token_as(challenger).approve(env.market.address, 2 * ONE)
    env.market_as(env.game).open_dispute(job_id, challenger.address)
    env.market_as(env.game).resolve_dispute(job_id, challenger.address, True)
    indexer = _indexer(env, tmp_path / "i.db")
    result = indexer.sync_once()
    assert not result.reset
    with Session(indexer.engine) as session:
        job = session.get(JobRow, job_id)
        assert job is not None
        assert job.status == "Submitted"
        assert job.solver == solver.address
        assert job.manifest_cid == MANIFEST
        assert job.trace_root == "0x" + TRACE_ROOT.hex()
        assert job.steps_per_checkpoint == 5
        (dispute,) = session.scalars(select(DisputeRow)).all()
        assert dispute.resolved and dispute.solver_won is True
        names = [
            e.name
            for e in session.scalars(
                select(EventRow).where(EventRow.job_id == job_id).order_by(EventRow.id)
            )
        ]
    assert names == [
        "JobPosted",
        "JobClaimed",
        "ResultSubmitted",
        "DisputeOpened",
        "DisputeResolved",
        "WinningsHeld",  # the solver's bond share, held until the job finalizes
    ]


def test_indexer_restart_neither_misses_nor_duplicates(
    market_env: MarketEnv, tmp_path: Path
) -> None:
    env = market_env
    db = tmp_path / "i.db"
    _post(env)
    first = _indexer(env, db)
    first.sync_once()
    seen = _count(first, EventRow)
    assert seen > 0
    _post(env)
    _post(env, submitter_index=2)
    again = _indexer(env, db)  # a new process on the same database
    again.sync_once()
    again.sync_once()
    with Session(again.engine) as session:
        keys = session.execute(select(EventRow.block_number, EventRow.log_index)).all()
        jobs = session.scalar(select(func.count()).select_from(JobRow))
    assert len(keys) == len(set(keys))
    assert jobs == 3
    assert _count(again, EventRow) > seen


def test_indexer_reorg_rolls_back_and_resyncs(market_env: MarketEnv, tmp_path: Path) -> None:
    env = market_env
    _post(env)
    snapshot = env.devnet.snapshot()
    _post(env, reward=11 * ONE)
    indexer = _indexer(env, tmp_path / "i.db")
    indexer.sync_once()
    assert _count(indexer, JobRow) == 2
    env.devnet.revert(snapshot)  # the second post is gone; a different block replaces it
    _post(env, submitter_index=2, reward=12 * ONE)
    result = indexer.sync_once()
    assert result.reset
    with Session(indexer.engine) as session:
        rewards = sorted(int(r) for r in session.scalars(select(JobRow.reward)))
        posted = session.scalar(
            select(func.count()).select_from(EventRow).where(EventRow.name == "JobPosted")
        )
    assert rewards == [10 * ONE, 12 * ONE]
    assert posted == 2


def test_indexer_chain_behind_cursor_resyncs(market_env: MarketEnv, tmp_path: Path) -> None:
    env = market_env
    snapshot = env.devnet.snapshot()
    _post(env)
    indexer = _indexer(env, tmp_path / "i.db")
    indexer.sync_once()
    assert _count(indexer, JobRow) == 1
    env.devnet.revert(snapshot)  # like an anvil restarted from an older state
    result = indexer.sync_once()
    assert result.reset
    assert _count(indexer, JobRow) == 0


def test_indexer_new_deployment_starts_over(market_env: MarketEnv, tmp_path: Path) -> None:
    env = market_env
    _post(env)
    db = tmp_path / "i.db"
    _indexer(env, db).sync_once()
    moved = Deployment(
        chain_id=env.deployment.chain_id,
        block=env.devnet.web3().eth.block_number + 1,
        deployer=env.deployment.deployer,
        addresses=env.deployment.addresses,
    )
    other = _indexer(env, db, moved)
    assert other.sync_once().reset
    assert _count(other, JobRow) == 0
