"""`solver run --world-size 2` through the whole market on anvil + the real js-ipfs store.

The job is the zoo digits MLP with ``data.micro_batches`` = 2; the solver trains it on two
real gloo worker processes (`roles.dataparallel.launch`), publishing each checkpoint its
rank 0 writes.  Verification is unchanged: the whistleblower and the referee are one
process on one CPU.

- An honest W=2 solver's checkpoints are the single-process run's, byte for byte (same
  state hashes, same CIDs); the whistleblower finds nothing; it is paid (Finalized).
- A W=2 solver whose rank-1 worker lies in one op of its own micro-batch (one ulp on the
  first matmul of micro-batch 1, at one step) defends the checkpoints its workers wrote
  with the same lie replayed in one process; the whistleblower catches it, the game
  bisects to that op, the committee re-executes it on one CPU: Slashed.
- A W=2 training interrupted after a checkpoint (the solver dies) resumes from the
  journal's checkpoint; a worker lost on the way shows in the progress display and is
  restarted from the last checkpoint; the bits are the same throughout.  (Slow: the
  real `solver run --world-size 2` CLI, SIGKILLed mid-training, stops the workers it
  left behind when restarted, resumes and is paid once.)
"""

from __future__ import annotations

import copy
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from arbiter.referee import decide
from arbiter.repops_oracle import RepopsOracle
from chain.generated import GameStatus, JobStatus, Level, ResultSubmitted, SolverSlashed
from chain.types import JobId
from jobspec.factory import mlp_spec
from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore
from repops import hashing
from repops.ops import Op
from repops.program import Program, State, init_state, save_checkpoint, step_of, train
from repops.trace import OperandBundle, trace_root
from roles.jobcontext import JobContext, load_job
from solver.journal import JobJournal, Phase
from solver.node import SolverNode
from solver.trainer import Trainer
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.procs import RoleFiles, role, wait_for
from tests.e2e.support import WINDOW_S, digits_bytes, post_spec, referee, run_market, solver_node
from tests.e2e.support import whistleblower as make_whistleblower
from tests.fixtures.dispute import REWARD, STAKE, DisputeEnv
from tests.support.dp_liar import OneNodeLiar, dying_worker_cmd, lie_node, worker_cmd

STEPS = 6
K = 2
LIE_STEP = 3  # in segment 1 (steps 2..4): leaf 2 is the first wrong one
WORLD = 2


def _spec(store: ArtifactStore) -> dict[str, Any]:
    spec = copy.deepcopy(mlp_spec(hidden=(16,), steps=STEPS, checkpoint_interval=K))
    spec["data"]["micro_batches"] = 2
    spec["data"]["cid"] = str(store.add_bytes(digits_bytes()))
    return spec


def _settled(node: SolverNode, job_id: JobId) -> bool:
    entry = node.journal.load(job_id)
    return entry is not None and entry.phase == Phase.SETTLED


def _single_process(program: Program, ds: object) -> tuple[list[State], list[float]]:
    """Every checkpoint's state, and every step's loss, of the plain in-process run."""
    state = init_state(program)
    states, losses = [state], []
    while step_of(state) < program.steps:
        state, part = train(program, state, ds, K)  # type: ignore[arg-type]
        states.append(state)
        losses += part
    return states, losses


class Recorder:
    """A ProgressSink that keeps what it was shown."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.lines: list[str] = []
        self.events: list[str] = []

    def start(self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s") -> None:
        return None

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
        self.steps.append(step)

    def workers(self, line: str) -> None:
        self.lines.append(line)

    def event(self, text: str) -> None:
        self.events.append(text)

    def finish(self) -> None:
        return None


def test_world_size_2_solver_publishes_single_process_checkpoints_and_is_paid(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = post_spec(env, ipfs_store, _spec(ipfs_store))
    shown = Recorder()
    node = solver_node(env, ipfs_store, tmp_path, world_size=WORLD, progress=shown)
    said: list[str] = []
    node.report = lambda e: said.append(e.what)
    wb = make_whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    assert f"training {STEPS} steps on {WORLD} workers (cpu)" in said
    run_dir = node.trainer.run_dir(job_id)
    assert sorted(p.name for p in (run_dir / "logs").iterdir()) == ["rank-0.log", "rank-1.log"]
    # the checkpoints are the single-process run's, byte for byte
    ctx = load_job(env.market, ipfs_store, job_id)
    states, losses = _single_process(ctx.program, ctx.dataset)
    entry = node.journal.load(job_id)
    assert entry is not None
    assert [c.state_hash for c in entry.checkpoints] == [
        hashing.state_hash(s).hex() for s in states
    ]
    for i, s in enumerate(states):
        blob = save_checkpoint(ctx.program, s)
        assert node.journal.checkpoint_path(job_id, i).read_bytes() == blob
        assert entry.checkpoints[i].cid == str(ipfs_store.add_bytes(blob))
    assert entry.losses == losses
    # progress advanced from the workers' status, with each rank's time shown
    assert shown.steps and shown.steps[-1] == STEPS
    assert any(line.startswith("r0 ") and " · r1 " in line for line in shown.lines)
    # verification on one CPU agrees: no dispute, paid
    (report,) = wb.findings
    assert (report.job_id, report.mismatch) == (job_id, None)
    assert env.game.game_count() == 0
    assert env.market.get_job(job_id).status == JobStatus.Finalized
    assert ledger.delta(env.solver(0).address) == REWARD


def test_one_op_lie_of_a_world_size_2_worker_settles_on_one_cpu(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    spec = _spec(ipfs_store)
    job_id = post_spec(env, ipfs_store, spec)
    ctx = load_job(env.market, ipfs_store, job_id)
    tape = ctx.program.tape
    node_id = lie_node(tape, rank=1, world=WORLD)
    (lo1, hi1) = tape.micro_ranges[1]
    assert lo1 <= node_id < hi1 and tape.nodes[node_id].op is Op.MATMUL  # rank 1's own
    liar = OneNodeLiar(node=node_id, at_step=LIE_STEP)
    node = solver_node(
        env,
        ipfs_store,
        tmp_path,
        stepper=liar,
        world_size=WORLD,
        worker_cmd=worker_cmd(node_id, LIE_STEP, rank=1),
    )
    wb = make_whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    run_dir = node.trainer.run_dir(job_id)
    assert f"rank 1 lied in node {node_id}" in (run_dir / "logs" / "rank-1.log").read_text()
    entry = node.journal.load(job_id)
    assert entry is not None
    # the W=2 checkpoint after the lie is what the solver's one-process replay gives
    state = node.trainer.load_checkpoint(ctx, entry, LIE_STEP // K)
    for _ in range(K):
        state, _ = liar.step(ctx.program, state, ctx.dataset)
    assert hashing.state_hash(state).hex() == entry.checkpoints[LIE_STEP // K + 1].state_hash
    honest, _ = _single_process(ctx.program, ctx.dataset)
    assert (
        entry.checkpoints[LIE_STEP // K].state_hash
        == hashing.state_hash(honest[LIE_STEP // K]).hex()
    )
    assert (
        entry.checkpoints[LIE_STEP // K + 1].state_hash
        != hashing.state_hash(honest[LIE_STEP // K + 1]).hex()
    )
    # caught on one CPU, bisected to exactly the lying op, re-executed: Slashed
    (finding,) = wb.findings
    assert finding.mismatch == LIE_STEP // K + 1
    assert env.game.game_count() == 1
    game = env.game.get_game(1)
    assert game.status == GameStatus.ChallengerWon
    assert (game.level, game.base) == (Level.OP, LIE_STEP)
    lie = tape.chain.index(node_id) + 1  # its op index in the step's chain
    assert (game.lo, game.hi) == (lie, lie + 1)
    bundle = OperandBundle.from_bytes(ipfs_store.get_bytes(game.bundle_cid))
    assert bundle.op_index == lie
    ruling = decide(game, RepopsOracle(ipfs_store, env.market))
    assert (ruling.solver_won, ruling.reason) == (False, "re-execution contradicts the solver")
    assert env.market.get_job(job_id).status == JobStatus.Slashed
    (slashed,) = market_events(env, SolverSlashed)
    assert slashed.solver == env.solver(0).address
    assert ledger.delta(env.solver(0).address) == -STAKE


def _claimed(
    env: DisputeEnv, store: ArtifactStore, tmp_path: Path
) -> tuple[JobId, SolverNode, JobJournal, JobContext]:
    """A posted job and a world-size-2 solver node that scanned, calibrated and claimed
    it: (job id, node, its journal entry, its job context)."""
    job_id = post_spec(env, store, _spec(store))
    node = solver_node(env, store, tmp_path, world_size=WORLD)
    for _ in range(3):  # scan, calibrate and claim
        node._scan()
        node._maybe_claim()
        if node.journal.load(job_id) is not None:
            break
    entry = node.journal.load(job_id)
    assert entry is not None
    return job_id, node, entry, node._context(job_id)


class Interrupted(Exception):
    pass


def test_world_size_2_training_interrupted_and_a_worker_lost_resumes_bit_identically(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    job_id, node, entry, ctx = _claimed(env, ipfs_store, tmp_path)

    def crash_after_checkpoint_1() -> None:
        if len(entry.checkpoints) >= 2:
            raise Interrupted  # the solver dies here: its workers are stopped with it

    with pytest.raises(Interrupted):
        node.trainer.train(ctx, entry, on_checkpoint=crash_after_checkpoint_1)
    run_dir = node.trainer.run_dir(job_id)
    stopped = node.journal.load(job_id)
    assert stopped is not None and len(stopped.checkpoints) == 2
    # a new solver process: a new trainer, the journal as the crash left it; its rank 1
    # is lost about to run step 2K (after checkpoint 2 is written)
    shown = Recorder()
    again = Trainer(
        node.journal,
        ipfs_store,
        node.trainer.device,
        progress=shown,
        world_size=WORLD,
        worker_cmd=dying_worker_cmd(2 * K, rank=1),
    )
    resumed = again.train(ctx, stopped)
    assert shown.steps and min(shown.steps) > K  # from checkpoint 1, not from scratch
    assert shown.events[0].startswith("worker lost: rank 1 exit status 9"), shown.events
    assert shown.events[1] == f"restarting {WORLD} workers from step {2 * K}", shown.events
    assert any("LOST" in line for line in shown.lines), shown.lines
    states, losses = _single_process(ctx.program, ctx.dataset)
    assert [c.state_hash for c in resumed.checkpoints] == [
        hashing.state_hash(s).hex() for s in states
    ]
    assert resumed.losses == losses
    workers = json.loads((run_dir / "workers.json").read_text())
    assert len(workers["pids"]) == WORLD


def test_job_whose_micro_batches_world_size_does_not_divide_trains_in_one_process(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    spec = _spec(ipfs_store)
    del spec["data"]["micro_batches"]  # M = 1
    job_id = post_spec(env, ipfs_store, spec)
    node = solver_node(env, ipfs_store, tmp_path, world_size=WORLD)
    said: list[str] = []
    node.report = lambda e: said.append(e.what)
    for _ in range(5):
        node.tick()
        entry = node.journal.load(job_id)
        if entry is not None and entry.phase == Phase.SUBMITTED:
            break
    assert entry is not None and entry.phase == Phase.SUBMITTED
    assert (
        f"training in one process: --world-size {WORLD} does not divide data.micro_batches 1"
        in said
    )
    assert f"training {STEPS} steps on cpu" in said
    assert not node.trainer.run_dir(job_id).exists()
    ctx = load_job(env.market, ipfs_store, job_id)
    states, losses = _single_process(ctx.program, ctx.dataset)
    assert [c.state_hash for c in entry.checkpoints] == [
        hashing.state_hash(s).hex() for s in states
    ]
    assert entry.losses == losses


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped)."""
    try:
        return bool(Path(f"/proc/{pid}/cmdline").read_bytes())
    except OSError:
        return False


CLI_STEPS = 24
CLI_K = 4


@pytest.mark.slow  # ~30 s: the in-process interruption test above covers the resume
def test_solver_cli_world_size_2_sigkilled_mid_training_resumes_and_submits_once(
    dispute_env: DisputeEnv,
    ipfs_daemon: IpfsDaemon,
    ipfs_store: ArtifactStore,
    ledger: Ledger,
    tmp_path: Path,
) -> None:
    env = dispute_env
    solver = env.solver(0)
    spec = _spec(ipfs_store)
    spec.update(steps=CLI_STEPS, checkpoint_interval=CLI_K)
    spec["program"]["model"]["config"]["hidden"] = [64, 64]
    job_id = post_spec(env, ipfs_store, spec)
    files = RoleFiles.write(env, tmp_path)
    key = files.key("solver", solver)
    state_dir = tmp_path / "state"
    job_dir = state_dir / solver.address / "jobs" / str(job_id)
    argv = [
        "solver",
        *files.common(env, key, ipfs_daemon.api_url),
        "--state-dir",
        str(state_dir),
        "-v",
        "run",
        "--device",
        "cpu",
        "--world-size",
        str(WORLD),
        "--max-jobs",
        "1",
    ]

    def journal() -> dict[str, Any] | None:
        try:
            doc = json.loads((job_dir / "journal.json").read_text())
        except (FileNotFoundError, ValueError):
            return None
        assert isinstance(doc, dict)
        return doc

    def mid_training() -> bool:
        doc = journal()
        return doc is not None and doc["phase"] == "training" and len(doc["checkpoints"]) >= 2

    orphans: list[int] = []
    try:
        with role("solver-1", argv, tmp_path / "run1") as first:
            wait_for(mid_training, 120, "a checkpoint past 0", alive=first)
            first.kill()  # SIGKILL: its workers are orphaned (they may still be training)
        orphans = json.loads((job_dir / "dataparallel" / "workers.json").read_text())["pids"]
        killed = journal()
        assert killed is not None and killed["phase"] == "training"
        resumed_at = (len(killed["checkpoints"]) - 1) * CLI_K
        with role("solver-2", argv, tmp_path / "run2") as second:
            wait_for(
                lambda: env.market.get_job(job_id).status == JobStatus.Submitted,
                180,
                "the result to be submitted",
                interval=0.2,
                alive=second,
            )
            assert not any(_alive(p) for p in orphans)  # stopped before it trained again
            env.devnet.increase_time(WINDOW_S + 1)
            assert second.wait(180) == 0, second.output()
        out = second.stdout
        assert f"job {job_id}: training {CLI_STEPS} steps on {WORLD} workers (cpu)" in out
        assert f"job {job_id}: resuming at step {resumed_at}" in second.stderr, second.output()
        assert f"job {job_id}: settled: finalized" in out, second.output()
    finally:
        for pid in orphans:  # whatever happened above, no worker outlives the test
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
    ctx = load_job(env.market, ipfs_store, job_id)
    state = init_state(ctx.program)
    leaves = [hashing.state_hash(state)]
    while step_of(state) < CLI_STEPS:
        state, _ = train(ctx.program, state, ctx.dataset, CLI_K)
        leaves.append(hashing.state_hash(state))
    (submitted,) = market_events(env, ResultSubmitted, lambda e: e.job_id == job_id)
    assert submitted.trace_root == trace_root(leaves)
    assert env.market.get_job(job_id).status == JobStatus.Finalized
    assert ledger.delta(solver.address) == REWARD


def test_workers_that_keep_failing_leave_the_job_to_one_process_with_the_same_bits(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    _job_id, node, entry, ctx = _claimed(env, ipfs_store, tmp_path)
    shown = Recorder()
    broken = (sys.executable, "-c", "raise SystemExit(3)")  # every worker exits at once
    trainer = Trainer(
        node.journal,
        ipfs_store,
        node.trainer.device,
        progress=shown,
        world_size=WORLD,
        worker_cmd=broken,
    )
    done = trainer.train(ctx, entry)
    lost = [e for e in shown.events if e.startswith("worker lost: rank ")]
    assert len(lost) == 3, shown.events  # the first attempt and two restarts
    assert shown.events[-1].endswith("; training on in one process"), shown.events
    states, losses = _single_process(ctx.program, ctx.dataset)
    assert [c.state_hash for c in done.checkpoints] == [hashing.state_hash(s).hex() for s in states]
    assert done.losses == losses
