"""The solver's training loop: repops steps, a checkpoint every K steps, resumable.

Pure of chain I/O: it trains from the journal's last checkpoint (or the initial state),
writes each checkpoint to disk and to the artifact store, and records it in the journal
before moving on, so a crash loses at most the steps since the last checkpoint and a
restart reproduces them bit for bit.

With ``world_size`` W > 1 a job whose data.micro_batches W divides is trained by W local
data-parallel workers (`roles.dataparallel.launch`) in a run directory beside the job's
journal, seeded with the journal's last checkpoint; each checkpoint the workers write is
published (store + journal, the same bytes a single process would write: the state after
every step does not depend on W) as soon as it appears.  Any other job, and a job whose
workers keep failing, is trained in this process.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch

from chain.types import Cid, JobId
from market.store import ArtifactStore
from repops import hashing
from repops.artifact import commit_file
from repops.errors import RepopsError
from repops.program import State, init_state, load_checkpoint, save_checkpoint, step_of
from roles import dataparallel
from roles.files import write_atomic
from roles.jobcontext import MAX_DATASET_BYTES, JobContext, artifact_fetch, fetch
from roles.realtrace import HonestStepper, Stepper
from solver.journal import Checkpoint, JobJournal, Journal, Phase

log = logging.getLogger(__name__)


class TrainingError(Exception):
    """The job could not be trained (bad checkpoint on disk, device failure, ...)."""


class ProgressSink(Protocol):
    def start(
        self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s"
    ) -> None: ...

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None: ...

    def workers(self, line: str) -> None:
        """The data-parallel workers now (`roles.dataparallel.Status.line`: each rank's
        compute time, STRAGGLER or LOST)."""
        ...

    def event(self, text: str) -> None:
        """Something that happened to the workers (a lost worker, a restart, a stall)."""
        ...

    def finish(self) -> None: ...


@dataclass
class NullProgress:
    def start(self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s") -> None:
        return None

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
        return None

    def workers(self, line: str) -> None:
        return None

    def event(self, text: str) -> None:
        return None

    def finish(self) -> None:
        return None


def pick_device(setting: str) -> torch.device:
    """ "auto": CUDA when present, else CPU; or exactly what is asked for."""
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {setting!r} requested but CUDA is not available")
    return torch.device(setting)


def state_bytes_estimate(ctx: JobContext) -> int:
    """Bytes a step needs at most: every tape value alive at once, 4 bytes each (upper bound)."""
    tape = ctx.program.tape
    return sum(4 * math.prod(node.shape) for node in tape.nodes)


def tokens_per_step(ctx: JobContext) -> int:
    """Training tokens (GPT) or samples (MLP) consumed per step, for throughput display."""
    block = ctx.program.block
    return ctx.program.batch_size * (block if block else 1)


CALIBRATION_STEPS = 3
"""Steps of the job itself that `Trainer.calibrate` runs (the first one warms up)."""
TIME_MARGIN = 1.5
"""A job is claimed only if `TIME_MARGIN` times its estimated training time fits."""
FIXED_OVERHEAD_S = 5.0
"""Seconds for fetching, publishing the manifest and sending the result."""


def training_seconds(ctx: JobContext, seconds_per_step: float) -> float:
    """Estimated wall time from claim to submitted result at the measured rate."""
    return FIXED_OVERHEAD_S + TIME_MARGIN * ctx.program.steps * seconds_per_step


class RateCache:
    """Measured seconds per step by (program hash, device), kept across restarts."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _all(self) -> dict[str, float]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict):
            return {}
        return {str(k): float(v) for k, v in doc.items() if isinstance(v, int | float)}

    def get(self, key: str) -> float | None:
        return self._all().get(key)

    def put(self, key: str, seconds_per_step: float) -> None:
        rates = self._all()
        rates[key] = seconds_per_step
        write_atomic(self.path, json.dumps(rates, sort_keys=True).encode())


def rate_unit(ctx: JobContext) -> str:
    """The unit of `tokens_per_step` per second: tokens for sequence models, else samples."""
    return "tok/s" if ctx.program.block else "samples/s"


class Trainer:
    """Trains one job from wherever its journal says it got to.

    `stepper` calibrates, trains in this process and replays steps for disputes; with
    `world_size` > 1 the workers that `worker_cmd` starts train instead.
    """

    def __init__(
        self,
        journal: Journal,
        store: ArtifactStore,
        device: torch.device,
        stepper: Stepper | None = None,
        progress: ProgressSink | None = None,
        world_size: int = 1,
        worker_cmd: Sequence[str] = dataparallel.WORKER_CMD,
    ) -> None:
        self.journal = journal
        self.store = store
        self.device = device
        self.stepper: Stepper = stepper or HonestStepper(device)
        self.progress: ProgressSink = progress or NullProgress()
        self.rates = RateCache(journal.root.parent / "rates.json")
        self.world_size = world_size
        self.worker_cmd = tuple(worker_cmd)
        """The command that starts one worker (`roles.dataparallel.WORKER_CMD`)."""

    def world_for(self, ctx: JobContext) -> tuple[int, str | None]:
        """(workers that train this job, why fewer than ``world_size`` or None)."""
        w, micro = self.world_size, ctx.program.micro_batches
        if w == 1:
            return 1, None
        if micro % w:
            return 1, f"--world-size {w} does not divide data.micro_batches {micro}"
        if self.device.type == "cuda" and torch.cuda.device_count() < w:
            return (
                1,
                f"--world-size {w} needs {w} GPUs, this machine has {torch.cuda.device_count()}",
            )
        return w, None

    def calibrate(self, ctx: JobContext) -> float:
        """Seconds per step of this job on this device: a short run of the job's own first
        steps (which also proves that spec and dataset train), or the cached rate.

        Raises `TrainingError` naming why the job does not train.
        """
        key = f"{ctx.program.program_hash.hex()}/{self.device}"
        cached = self.rates.get(key)
        if cached is not None:
            return cached
        state = init_state(ctx.program, self.device)
        timings: list[float] = []
        try:
            for _ in range(min(CALIBRATION_STEPS, ctx.program.steps)):
                started = time.perf_counter()
                state, loss = self.stepper.step(ctx.program, state, ctx.dataset)
                timings.append(time.perf_counter() - started)
        except RepopsError as exc:
            raise TrainingError(f"spec and dataset do not train: {exc}") from exc
        if not math.isfinite(loss):
            raise TrainingError(f"the loss is {loss} after {len(timings)} steps")
        measured = timings[1:] or timings
        rate = sorted(measured)[len(measured) // 2]
        self.rates.put(key, rate)
        return rate

    def load_checkpoint(self, ctx: JobContext, entry: JobJournal, index: int) -> State:
        """Checkpoint `index` of this solver's run, from disk or else from the store."""
        ckpt = entry.checkpoints[index]
        path = self.journal.checkpoint_path(ctx.record.job_id, index)
        data = path.read_bytes() if path.is_file() else fetch(self.store, Cid(ckpt.cid), 1 << 34)
        try:
            state = load_checkpoint(ctx.program, data, self.device)
        except RepopsError as exc:
            raise TrainingError(f"checkpoint {index} of job {entry.job_id}: {exc}") from exc
        if hashing.state_hash(state).hex() != ckpt.state_hash:
            raise TrainingError(f"checkpoint {index} of job {entry.job_id} changed on disk")
        return state

    def train(
        self, ctx: JobContext, entry: JobJournal, on_checkpoint: Callable[[], None] | None = None
    ) -> JobJournal:
        """Train to the end; `on_checkpoint` runs after each published checkpoint."""
        program = ctx.program
        k = program.checkpoint_interval
        if entry.checkpoints:
            state = self.load_checkpoint(ctx, entry, len(entry.checkpoints) - 1)
            log.info("job %d: resuming at step %d", entry.job_id, step_of(state))
        else:
            state = init_state(program, self.device)
            self._publish(ctx, entry, state)
        entry.phase = Phase.TRAINING
        world, why = self.world_for(ctx)
        if why is not None:
            log.warning("job %d: training in one process: %s", entry.job_id, why)
        if world > 1:
            try:
                return self._train_parallel(ctx, entry, world, on_checkpoint)
            except dataparallel.LaunchFailed as exc:
                log.warning("job %d: %s; training on in one process", entry.job_id, exc)
                self.progress.event(f"{exc}; training on in one process")
                state = self.load_checkpoint(ctx, entry, len(entry.checkpoints) - 1)
        losses = entry.losses[: step_of(state)]
        tokens = tokens_per_step(ctx)
        self.progress.start(ctx.record.job_id, program.steps, step_of(state), rate_unit(ctx))
        try:
            while step_of(state) < program.steps:
                started = time.perf_counter()
                state, loss = self.stepper.step(program, state, ctx.dataset)
                losses.append(loss)
                rate = tokens / max(time.perf_counter() - started, 1e-9)
                self.progress.advance(step_of(state), loss, rate)
                if step_of(state) % k == 0:
                    entry.losses = list(losses)
                    self._publish(ctx, entry, state)
                    if on_checkpoint is not None:
                        on_checkpoint()
        finally:
            self.progress.finish()
        return entry

    def _publish(self, ctx: JobContext, entry: JobJournal, state: State) -> None:
        data = save_checkpoint(ctx.program, state)
        self._publish_bytes(ctx, entry, data, state)

    def _publish_bytes(self, ctx: JobContext, entry: JobJournal, data: bytes, state: State) -> None:
        """Checkpoint file `data` of `state`: to disk, to the store, into the journal."""
        job_id = ctx.record.job_id
        index = step_of(state) // ctx.program.checkpoint_interval
        self.journal.save_checkpoint(job_id, index, data)
        cid = self.store.add_bytes(data)
        del entry.checkpoints[index:]
        entry.checkpoints.append(
            Checkpoint(
                index, str(cid), hashing.state_hash(state).hex(), commit_file(data).root.hex()
            )
        )
        self.journal.save(entry)
        log.info("job %d: checkpoint %d (step %d) -> %s", job_id, index, step_of(state), cid)

    # ------------------------------------------------------------ data-parallel

    def run_dir(self, job_id: JobId) -> Path:
        """Where W workers train job `job_id` (`roles.dataparallel`'s run directory)."""
        return self.journal.job_dir(job_id) / "dataparallel"

    def _train_parallel(
        self,
        ctx: JobContext,
        entry: JobJournal,
        world: int,
        on_checkpoint: Callable[[], None] | None,
    ) -> JobJournal:
        """Train on `world` local workers from the journal's last checkpoint, publishing
        each checkpoint they write as it appears (raises LaunchFailed when they keep
        failing: the journal then holds every checkpoint published so far)."""
        program = ctx.program
        job_id = ctx.record.job_id
        run_dir = self._prepare_run(ctx, entry)
        tokens = tokens_per_step(ctx)
        done = (len(entry.checkpoints) - 1) * program.checkpoint_interval
        log.info("job %d: training on %d workers in %s", job_id, world, run_dir)
        shown_step, shown_at, shown_line = done, time.perf_counter(), ""

        def on_status(st: dataparallel.Status) -> None:
            nonlocal shown_step, shown_at, shown_line
            if st.step != shown_step and st.loss is not None:
                now = time.perf_counter()
                rate = tokens * max(st.step - shown_step, 1) / max(now - shown_at, 1e-9)
                shown_step, shown_at = st.step, now
                self.progress.advance(st.step, st.loss, rate)
            line = st.line()
            if line != shown_line:
                shown_line = line
                self.progress.workers(line)
            if st.checkpoint >= len(entry.checkpoints):
                self._collect(ctx, entry, run_dir, st.checkpoint, on_checkpoint)

        def on_event(ev: dataparallel.Event) -> None:
            self.progress.event(ev.text)

        self.progress.start(job_id, program.steps, done, rate_unit(ctx))
        try:
            result = dataparallel.launch(
                run_dir,
                world,
                device=self.device.type,
                on_status=on_status,
                on_event=on_event,
                worker_cmd=self.worker_cmd,
            )
        except dataparallel.RunInvalid as exc:
            raise TrainingError(f"job {job_id}: {exc}") from exc
        finally:
            self.progress.finish()
        last = program.steps // program.checkpoint_interval
        self._collect(ctx, entry, run_dir, last, on_checkpoint)
        if len(entry.checkpoints) != last + 1:
            raise TrainingError(f"job {job_id}: the workers wrote no checkpoint {last}")
        final = load_checkpoint(program, result.state)
        if hashing.state_hash(final).hex() != entry.checkpoints[-1].state_hash:
            raise TrainingError(f"job {job_id}: checkpoint {last} changed in {run_dir}")
        return entry

    def _collect(
        self,
        ctx: JobContext,
        entry: JobJournal,
        run_dir: Path,
        upto: int,
        on_checkpoint: Callable[[], None] | None,
    ) -> None:
        """Publish the workers' checkpoints after the journal's last, up to `upto` (those
        written so far, with the losses of their steps)."""
        program = ctx.program
        k = program.checkpoint_interval
        while len(entry.checkpoints) <= upto:
            index = len(entry.checkpoints)
            path = dataparallel.ckpt_path(run_dir, index)
            losses = dataparallel.read_losses(run_dir)
            if not path.is_file() or len(losses) < index * k:
                return  # not written yet: a later status shows it
            data = path.read_bytes()
            try:
                state = load_checkpoint(program, data, self.device)
            except RepopsError as exc:
                raise TrainingError(f"{path}: {exc}") from exc
            if step_of(state) != index * k:
                raise TrainingError(f"{path} holds step {step_of(state)}, not {index * k}")
            entry.losses = losses[: index * k]
            self._publish_bytes(ctx, entry, data, state)
            if on_checkpoint is not None:
                on_checkpoint()

    def _prepare_run(self, ctx: JobContext, entry: JobJournal) -> Path:
        """The job's run directory, holding its inputs and starting from the journal's
        last checkpoint (anything newer there, never published, is dropped)."""
        job_id = ctx.record.job_id
        run_dir = self.run_dir(job_id)
        _stop_stale_workers(run_dir)
        spec = ctx.spec
        dataset = fetch(self.store, Cid(str(spec["data"]["cid"])), MAX_DATASET_BYTES)
        artifacts: dict[str, bytes] = {}
        model = spec["program"]["model"]
        if model.get("name") == "graph":
            get = artifact_fetch(self.store)
            for part in ("graph", "weights"):
                artifacts[str(model[part]["sha256"])] = get(f"program.model.{part}", model[part])
        try:
            dataparallel.prepare_run(run_dir, spec, dataset, artifacts)
        except dataparallel.RunInvalid as exc:
            raise TrainingError(f"job {job_id}: {exc}") from exc
        last = len(entry.checkpoints) - 1
        for path in run_dir.glob("ckpt-*.safetensors"):
            try:
                newer = dataparallel.ckpt_index(path) > last
            except ValueError:
                newer = True
            if newer:
                path.unlink()
        (run_dir / "status.json").unlink(missing_ok=True)
        ours = self.journal.checkpoint_path(job_id, last)
        data = (
            ours.read_bytes()
            if ours.is_file()
            else fetch(self.store, Cid(entry.checkpoints[last].cid), 1 << 34)
        )
        write_atomic(dataparallel.ckpt_path(run_dir, last), data)
        k = ctx.program.checkpoint_interval
        write_atomic(run_dir / "losses.json", json.dumps(entry.losses[: last * k]).encode())
        return run_dir


STALE_WORKER_WAIT_S = 10.0


def _stop_stale_workers(run_dir: Path) -> None:
    """Terminate workers that an earlier solver process (killed with no time to stop
    them) left training in `run_dir`: their pids in workers.json, checked against
    /proc so that no other process is touched."""
    try:
        info = json.loads((run_dir / "workers.json").read_text())
        pids = [int(p) for p in info["pids"]]
    except (OSError, ValueError, KeyError, TypeError):
        return
    for pid in pids:
        if not _runs_in(pid, run_dir):
            continue  # gone, a zombie, another process (or no /proc to check against)
        log.warning("stopping worker %d left running in %s", pid, run_dir)
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            continue
        deadline = time.monotonic() + STALE_WORKER_WAIT_S
        while _runs_in(pid, run_dir) and time.monotonic() < deadline:
            time.sleep(0.05)


def _runs_in(pid: int, run_dir: Path) -> bool:
    """Whether process `pid` is alive with `run_dir` among its arguments."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(run_dir).encode() in cmdline
