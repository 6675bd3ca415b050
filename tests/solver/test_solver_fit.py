"""The solver never walks into a loss it can see coming, and never crash-loops.

Against anvil and an embedded store, with the real SolverNode: a job whose dataset does not
fit the model, or whose submit window is shorter than the training time measured by a
short calibration run, is never claimed; a claimed job that cannot be trained is
abandoned in the journal with a one-line reason, and a restarted solver does not re-enter
it.  The calibration rate is cached across restarts.
"""

from __future__ import annotations

from pathlib import Path

import torch

from chain.generated import JobStatus
from market.store import open_store
from repops import data as data_mod
from repops import stio
from repops.program import Program, State
from roles.realtrace import HonestStepper
from solver.journal import Phase
from solver.node import Event, SolverNode
from solver.trainer import CALIBRATION_STEPS, training_seconds
from tests.e2e.support import publish_job, solver_node
from tests.fixtures.dispute import DisputeEnv


def _chars_file() -> bytes:
    tokens = torch.arange(400, dtype=torch.uint8) % 128
    return stio.dumps({"train": tokens, "val": tokens[:50]}, {"format": "repops-chars-v1"})


class CountingStepper(HonestStepper):
    """The honest stepper, counting calls; raises after `fail_after` steps when set."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.calls = 0
        self.fail_after = fail_after

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        self.calls += 1
        if self.fail_after is not None and self.calls > self.fail_after:
            raise IndexError("index 300 is out of bounds\n  (a deterministic training failure)")
        return super().step(program, state, dataset)


def _events(node: SolverNode) -> list[str]:
    seen: list[str] = []

    def report(e: Event) -> None:
        seen.append(f"{e.job_id}: {e.what}")

    node.report = report
    return seen


def test_solver_skips_a_dataset_that_does_not_fit_the_model(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store, dataset_bytes=_chars_file())
    node = solver_node(dispute_env, store, tmp_path / "state")
    seen = _events(node)
    node.tick()
    assert dispute_env.market.get_job(job_id).status == JobStatus.Open
    assert node.journal.load(job_id) is None
    (line,) = [s for s in seen if "skipped" in s]
    assert "data.dataset" in line and "repops-chars-v1" in line and "\n" not in line


def test_solver_skips_a_job_it_cannot_train_within_the_submit_window(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    # Far beyond any CPU: 16 M steps (the spec's limit is 2^24 - 1) at ~1 ms a step.
    slow = publish_job(dispute_env, store, steps=16_000_000, checkpoint_interval=1_000_000)
    fits = publish_job(dispute_env, store, submit_window=3_600)
    node = solver_node(dispute_env, store, tmp_path / "state")
    seen = _events(node)
    node._scan()
    node._maybe_claim()
    assert dispute_env.market.get_job(slow).status == JobStatus.Open
    (line,) = [s for s in seen if s.startswith(f"{slow}: skipped")]
    assert "submit window is 3600 s" in line and "16000000 steps" in line
    assert dispute_env.market.get_job(fits).status == JobStatus.Claimed
    ctx = node._contexts[fits]
    per_step = node.trainer.rates.get(f"{ctx.program.program_hash.hex()}/cpu")
    assert per_step is not None and training_seconds(ctx, per_step) < 3_600


def test_solver_abandons_an_untrainable_claimed_job_and_never_reenters_it(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store)
    state_dir = tmp_path / "state"
    broken = CountingStepper(fail_after=CALIBRATION_STEPS + 1)  # passes calibration only
    node = solver_node(dispute_env, store, state_dir, stepper=broken)
    seen = _events(node)
    node.tick()  # claims, then training fails deterministically
    entry = node.journal.load(job_id)
    assert entry is not None and entry.phase == Phase.ABANDONED
    assert entry.note.startswith("cannot train: index 300 is out of bounds")
    assert "\n" not in entry.note
    assert any("abandoned" in s for s in seen)
    assert dispute_env.market.get_job(job_id).status == JobStatus.Claimed

    again = CountingStepper()
    restarted = solver_node(dispute_env, store, state_dir, stepper=again)
    for _ in range(3):
        restarted.tick()
    assert again.calls == 0  # neither trained nor re-calibrated
    reloaded = restarted.journal.load(job_id)
    assert reloaded is not None and reloaded.phase == Phase.ABANDONED


def test_calibration_rate_is_cached_across_restarts(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store)
    state_dir = tmp_path / "state"
    first = CountingStepper()
    node = solver_node(dispute_env, store, state_dir, stepper=first)
    assert node._unfit(job_id) is None
    assert first.calls == CALIBRATION_STEPS
    second = CountingStepper()
    restarted = solver_node(dispute_env, store, state_dir, stepper=second)
    assert restarted._unfit(job_id) is None
    assert second.calls == 0


def test_solver_past_its_submit_deadline_abandons_instead_of_reverting_forever(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store, submit_window=60)
    node = solver_node(dispute_env, store, tmp_path / "state")
    node._scan()
    node._maybe_claim()
    entry = node.journal.load(job_id)
    assert entry is not None
    node._train(entry)
    assert entry.phase == Phase.SUBMITTING
    dispute_env.devnet.increase_time(120)
    node.tick()
    reloaded = node.journal.load(job_id)
    assert reloaded is not None and reloaded.phase == Phase.ABANDONED
    assert reloaded.note.startswith("submit deadline") and "passed" in reloaded.note
    assert dispute_env.market.get_job(job_id).status == JobStatus.Claimed
    node.tick()  # and it stays quiet
