"""The real `solver run` CLI, SIGKILLed mid-training and restarted: it resumes from its last
journaled checkpoint, ends with the same bits as an uninterrupted run, submits exactly once
and gets paid after the challenge window (DESIGN.md §1.3, solver/journal.py)."""

from __future__ import annotations

import json
from pathlib import Path

from chain.generated import JobStatus, ResultSubmitted
from market.ipfsd import IpfsDaemon
from market.manifest import Manifest
from market.store import ArtifactStore
from repops import hashing
from repops.program import init_state, step_of, train
from repops.trace import trace_root
from roles.jobcontext import load_job
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.procs import RoleFiles, role, wait_for
from tests.e2e.support import WINDOW_S, publish_job
from tests.fixtures.dispute import REWARD, DisputeEnv

STEPS = 24
K = 4  # leaves 0..6; the kill lands after leaf 1, with >= 16 steps still to train
START_TIMEOUT_S = 120
FINISH_TIMEOUT_S = 180


def _journal(path: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):  # not written yet (the write itself is atomic)
        return None
    assert isinstance(doc, dict)
    return doc


def test_solver_killed_mid_training_resumes_to_same_trace_and_submits_once(
    dispute_env: DisputeEnv,
    ipfs_daemon: IpfsDaemon,
    ipfs_store: ArtifactStore,
    ledger: Ledger,
    tmp_path: Path,
) -> None:
    env = dispute_env
    solver = env.solver(0)
    job_id = publish_job(env, ipfs_store, steps=STEPS, checkpoint_interval=K)
    files = RoleFiles.write(env, tmp_path)
    key = files.key("solver", solver)
    state_dir = tmp_path / "state"
    journal_path = state_dir / solver.address / "jobs" / str(job_id) / "journal.json"
    argv = [
        "solver",
        *files.common(env, key, ipfs_daemon.api_url),
        "--state-dir",
        str(state_dir),
        "-v",
        "run",
        "--device",
        "cpu",
        "--max-jobs",
        "1",
    ]

    def mid_training() -> bool:
        doc = _journal(journal_path)
        return (
            doc is not None and doc["phase"] == "training" and len(doc["checkpoints"]) >= 2  # type: ignore[arg-type]
        )

    with role("solver-1", argv, tmp_path / "run1") as first:
        wait_for(mid_training, START_TIMEOUT_S, "a checkpoint past 0", alive=first)
        first.kill()
    killed = _journal(journal_path)
    assert killed is not None
    assert killed["phase"] == "training", "the kill landed after training: raise STEPS"
    resumed_at = (len(killed["checkpoints"]) - 1) * K  # type: ignore[arg-type]
    assert 0 < resumed_at < STEPS
    assert env.market.get_job(job_id).status == JobStatus.Claimed
    assert market_events(env, ResultSubmitted) == []

    with role("solver-2", argv, tmp_path / "run2") as second:
        wait_for(
            lambda: env.market.get_job(job_id).status == JobStatus.Submitted,
            FINISH_TIMEOUT_S,
            "the result to be submitted",
            interval=0.2,
            alive=second,
        )
        env.devnet.increase_time(WINDOW_S + 1)
        assert second.wait(FINISH_TIMEOUT_S) == 0, second.output()
        assert f"job {job_id}: resuming at step {resumed_at}" in second.stderr, second.output()
        assert f"job {job_id}: settled: finalized" in second.stdout, second.output()
        assert "solver stopped; 1 job(s) settled" in second.stdout, second.output()

    # The same bits (and losses) as an uninterrupted in-process run of the same spec.
    ctx = load_job(env.market, ipfs_store, job_id)
    state = init_state(ctx.program)
    leaves, losses = [hashing.state_hash(state)], []
    while step_of(state) < STEPS:
        state, segment_losses = train(ctx.program, state, ctx.dataset, K)
        leaves.append(hashing.state_hash(state))
        losses += segment_losses
    assert len(leaves) == STEPS // K + 1
    submitted = market_events(env, ResultSubmitted, lambda e: e.job_id == job_id)
    assert len(submitted) == 1
    assert submitted[0].solver == solver.address
    assert submitted[0].trace_root == trace_root(leaves)
    assert submitted[0].final_state_hash == leaves[-1]
    assert submitted[0].checkpoint_count == len(leaves)
    final = _journal(journal_path)
    assert final is not None and final["phase"] == "settled"
    assert [c["state_hash"] for c in final["checkpoints"]] == [h.hex() for h in leaves]  # type: ignore[union-attr]
    record = env.market.get_job(job_id)
    assert record.status == JobStatus.Finalized
    manifest = Manifest.from_bytes(ipfs_store.get_bytes(record.manifest_cid))
    assert manifest.leaves == leaves
    assert manifest.losses == tuple(losses)  # none lost or repeated across the restart
    assert ledger.delta(solver.address) == REWARD
