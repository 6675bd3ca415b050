"""The whistleblower against anvil, an embedded store and real solvers: its sampling is its
own secret, a withheld checkpoint is re-executed instead of skipped, every unverifiable
commitment is a finding with a kind, games resume from its cache, jobs are taken
earliest deadline first (in parallel with workers), and a window it cannot meet is
logged loudly."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import pytest

from arbiter.whistleblower import (
    ACTIONS,
    Action,
    FindingKind,
    Report,
    check_manifest,
    sample_segments,
)
from chain.generated import GameCreated, GameKind, JobStatus, Level
from chain.types import Cid, Hash32, JobId
from market.manifest import Manifest, build_manifest
from market.store import ArtifactStore, EmbeddedStore, open_store
from repops import data as data_mod
from repops.program import Program, State
from roles.files import own_secret
from roles.realtrace import HonestStepper
from solver.journal import Phase
from solver.node import SolverNode
from tests.e2e.support import MLP_SPEC, publish_job, referee, run_market, solver_node, whistleblower
from tests.fixtures.dispute import DisputeEnv
from tests.support.cheaters import UlpCheater

K = MLP_SPEC["checkpoint_interval"]
SEGMENTS = MLP_SPEC["steps"] // K


class CountingStepper(HonestStepper):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        self.calls += 1
        return super().step(program, state, dataset)


def _settled(node: SolverNode, job_id: JobId) -> bool:
    entry = node.journal.load(job_id)
    return entry is not None and entry.phase == Phase.SETTLED


def _manifest(store: ArtifactStore, env: DisputeEnv, job_id: JobId) -> Manifest:
    return Manifest.from_bytes(store.get_bytes(env.market.get_job(job_id).manifest_cid))


def _secret_sampling(state_dir: Path, job_id: int, fraction: float, want: list[int]) -> None:
    """Write a whistleblower secret under which exactly `want` is sampled for `job_id`."""
    for n in range(10_000):
        secret = n.to_bytes(32, "big")
        if sample_segments(secret, job_id, SEGMENTS, fraction) == want:
            state_dir.mkdir(parents=True, exist_ok=True)
            (state_dir / "sampling.secret").write_text(secret.hex())
            return
    raise AssertionError("no secret samples that")


def test_sampling_secret_is_random_private_and_stable(tmp_path: Path) -> None:
    a = own_secret(tmp_path / "a" / "sampling.secret")
    assert own_secret(tmp_path / "a" / "sampling.secret") == a  # kept across restarts
    assert (tmp_path / "a" / "sampling.secret").stat().st_mode & 0o077 == 0
    b = own_secret(tmp_path / "b" / "sampling.secret")
    assert a != b and len(a) == 32
    picks = {tuple(sample_segments(own_secret(tmp_path / f"s{i}"), 7, 16, 0.25)) for i in range(8)}
    assert len(picks) > 1  # which segments are checked depends on whose secret it is
    assert sample_segments(a, 7, 16, 1.0) == list(range(16))
    (tmp_path / "bad").write_text("not hex")
    with pytest.raises(ValueError, match="32-byte hex secret"):
        own_secret(tmp_path / "bad")


def test_every_finding_kind_has_an_action() -> None:
    assert set(ACTIONS) == set(FindingKind)
    assert ACTIONS[FindingKind.SEGMENT_MISMATCH] is Action.CHALLENGE_AT
    assert ACTIONS[FindingKind.MANIFEST_MISSING] is Action.PROOFLESS
    assert ACTIONS[FindingKind.CHECKPOINT_UNAVAILABLE] is Action.AVAILABILITY
    assert ACTIONS[FindingKind.FINAL_MODEL_UNUSABLE] is Action.FILE
    assert ACTIONS[FindingKind.FINAL_HASH_MISMATCH] is Action.PROVE_FINAL


def test_manifest_findings_name_what_is_wrong(dispute_env: DisputeEnv, tmp_path: Path) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store)
    node = solver_node(dispute_env, store, tmp_path / "solver")
    node.tick()
    record = dispute_env.market.get_job(job_id)
    assert record.status == JobStatus.Submitted
    assert check_manifest(store, record) == (_manifest(store, dispute_env, job_id), None)
    good = _manifest(store, dispute_env, job_id)
    swapped = list(good.leaves)
    swapped[1] = b"\x01" * 32
    forged = build_manifest(
        record.spec_cid,
        good.steps,
        good.checkpoint_interval,
        [c.cid for c in good.checkpoints],
        swapped,
        good.file_roots,
        good.losses,
    )
    cases = {
        FindingKind.MANIFEST_MISSING: dataclasses.replace(record, manifest_cid=Cid("junk")),
        FindingKind.MANIFEST_MALFORMED: dataclasses.replace(
            record, manifest_cid=store.add_bytes(b"{}")
        ),
        FindingKind.MANIFEST_INCONSISTENT: dataclasses.replace(
            record, manifest_cid=store.add_bytes(forged.to_bytes())
        ),
        FindingKind.FINAL_HASH_MISMATCH: dataclasses.replace(
            record, final_state_hash=Hash32(b"\x02" * 32)
        ),
    }
    for kind, bad in cases.items():
        manifest, finding = check_manifest(store, bad)
        assert finding is not None and finding.kind == kind, (kind, finding)
        # Only a wrong finalStateHash leaves a manifest to re-execute against.
        assert (manifest is not None) == (kind == FindingKind.FINAL_HASH_MISMATCH)


def test_a_withheld_manifest_is_a_finding_sent_to_its_action(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    """A cheater that withholds its manifest: the whistleblower has nothing to compare, so
    it opens a proofless game from the top and plays it from its own re-execution; the
    cheater must reveal its leaves with proofs as it dissects, and the lie is caught."""
    env = dispute_env
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(env, store)
    cheater = solver_node(env, store, tmp_path / "solver", stepper=UlpCheater(at_step=2 * K + 1))
    cheater.tick()
    assert isinstance(store, EmbeddedStore)
    store.block_path(env.market.get_job(job_id).manifest_cid).unlink()
    wb = whistleblower(env, store, state_dir=tmp_path / "wb")
    wb.tick()
    (report,) = wb.findings
    assert [f.kind for f in report.findings] == [FindingKind.MANIFEST_MISSING]
    assert report.decisive() == report.findings[0] and report.checked == ()
    game = env.game.get_game(env.game.game_count())
    assert (game.job_id, game.kind, game.level) == (job_id, GameKind.Trace, Level.CHECKPOINT)
    assert game.hash_hi == env.market.get_job(job_id).final_state_hash
    run_market(env, [cheater.tick, wb.tick], referee(env, store), lambda: _settled(cheater, job_id))
    assert env.market.get_job(job_id).status == JobStatus.Slashed


def test_withheld_checkpoint_is_reexecuted_and_the_lie_behind_it_caught_then_resumed(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    """A lie in segment 2 with checkpoint 2 withheld, a 25 % spot check that samples only
    segment 2: re-executed from the whistleblower's own state, challenged, won; a restarted
    whistleblower resumes the game from its cache without stepping once."""
    env = dispute_env
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(env, store)
    cheater = solver_node(env, store, tmp_path / "solver", stepper=UlpCheater(at_step=2 * K + 1))
    cheater.tick()
    manifest = _manifest(store, env, job_id)
    assert isinstance(store, EmbeddedStore)
    store.block_path(manifest.checkpoints[2].cid).unlink()  # withheld
    wb_dir = tmp_path / "wb"
    _secret_sampling(wb_dir, job_id, 0.25, [2])
    wb = whistleblower(env, store, state_dir=wb_dir, check_fraction=0.25)
    wb.tick()

    (report,) = wb.findings
    assert report.mismatch == 3 and report.checked == (0, 1, 2)
    assert [(f.kind, f.index) for f in report.findings] == [
        (FindingKind.SEGMENT_MISMATCH, 3),
        (FindingKind.CHECKPOINT_UNAVAILABLE, 2),
    ]
    assert env.game.game_count() == 1 and wb.active_games == 1
    asked = wb._traces[job_id].step_state(2, 1)  # a position its game will ask for

    counting = CountingStepper()
    restarted = whistleblower(env, store, state_dir=wb_dir, check_fraction=0.25, stepper=counting)
    restarted._scan()
    (created,) = restarted._to_resume
    assert isinstance(created, GameCreated)
    restarted._resume(created)
    assert counting.calls == 0  # the agreed start state came from its own cache
    assert restarted._traces[job_id].step_state(2, 1) == asked
    assert counting.calls == 0  # and what it already answered is read back, not replayed
    run_market(
        env, [cheater.tick, restarted.tick], referee(env, store), lambda: _settled(cheater, job_id)
    )
    assert env.market.get_job(job_id).status == JobStatus.Slashed


def test_jobs_are_checked_earliest_deadline_first_and_late_ones_are_logged(
    dispute_env: DisputeEnv, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = dispute_env
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    first = publish_job(env, store, seed=1)
    node = solver_node(env, store, tmp_path / "solver")
    node.tick()
    env.devnet.increase_time(60)
    second = publish_job(env, store, seed=2)
    node.tick()
    assert (
        env.market.get_job(first).challenge_deadline < env.market.get_job(second).challenge_deadline
    )
    seen: list[str] = []
    wb = whistleblower(env, store, state_dir=tmp_path / "wb", report=seen.append)
    wb._scan()
    program = node._context(first).program
    wb._rates[program.program_hash] = 1_000.0  # as if each step took 1000 s here
    with caplog.at_level(logging.WARNING, logger="arbiter.whistleblower"):
        wb.tick()
    assert [r.job_id for r in wb.findings] == [first, second]
    late = [r.getMessage() for r in caplog.records if "cannot be met" in r.getMessage()]
    assert any(f"job {first}:" in line and "1000000.0 ms/step" in line for line in late), late

    third = publish_job(env, store, seed=3)
    node.tick()
    env.devnet.increase_time(env.market.get_job(third).challenge_window + 10)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="arbiter.whistleblower"):
        wb.tick()
    assert any(
        f"job {third}: challenge window closed" in r.getMessage()
        and "NOT checked" in r.getMessage()
        for r in caplog.records
    )


def test_independent_jobs_are_checked_in_parallel_worker_processes(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    env = dispute_env
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    jobs = [publish_job(env, store, seed=s) for s in (1, 2)]
    node = solver_node(env, store, tmp_path / "solver")
    node.tick()
    node.tick()
    assert all(env.market.get_job(j).status == JobStatus.Submitted for j in jobs)
    wb = whistleblower(env, store, state_dir=tmp_path / "wb", workers=2)
    try:
        wb.tick()
        assert wb.busy and len(wb._running) == 2  # both handed to the pool at once
        deadline = time.monotonic() + 180
        while len(wb.findings) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            wb.tick()
    finally:
        wb.close()
    reports: list[Report] = sorted(wb.findings, key=lambda r: r.job_id)
    assert [(r.job_id, r.mismatch, r.checked) for r in reports] == [
        (j, None, tuple(range(SEGMENTS))) for j in jobs
    ]
    assert all(r.steps_run == SEGMENTS * K for r in reports)


def test_a_withheld_final_model_is_a_finding_even_when_every_segment_matches(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    """Every segment is right but the final model is withheld: the submitter would pay for
    a model it cannot have. The whistleblower opens a File game on checkpoint m; the solver
    names its CID, the referee cannot fetch it, and the solver loses its stake."""
    env = dispute_env
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(env, store)
    node = solver_node(env, store, tmp_path / "solver")
    node.tick()
    manifest = _manifest(store, env, job_id)
    assert isinstance(store, EmbeddedStore)
    store.block_path(manifest.checkpoints[-1].cid).unlink()
    wb = whistleblower(env, store, state_dir=tmp_path / "wb")
    wb.tick()
    (report,) = wb.findings
    assert report.mismatch is None and report.checked == tuple(range(SEGMENTS))
    assert [(f.kind, f.index) for f in report.findings] == [
        (FindingKind.FINAL_MODEL_UNUSABLE, SEGMENTS)
    ]
    assert ACTIONS[report.findings[0].kind] is Action.FILE
    game = env.game.get_game(env.game.game_count())
    assert (game.job_id, game.kind) == (job_id, GameKind.File)
    run_market(env, [node.tick, wb.tick], referee(env, store), lambda: _settled(node, job_id))
    assert env.market.get_job(job_id).status == JobStatus.Slashed
