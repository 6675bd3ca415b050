"""The solver's training loop: repops steps, a checkpoint every K steps, resumable.

Pure of chain I/O: it trains from the journal's last checkpoint (or the initial state),
writes each checkpoint to disk and to the artifact store, and records it in the journal
before moving on, so a crash loses at most the steps since the last checkpoint and a
restart reproduces them bit for bit.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
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
from roles.files import write_atomic
from roles.jobcontext import JobContext, fetch
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

    def finish(self) -> None: ...


@dataclass
class NullProgress:
    def start(self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s") -> None:
        return None

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
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
    """Trains one job from wherever its journal says it got to."""

    def __init__(
        self,
        journal: Journal,
        store: ArtifactStore,
        device: torch.device,
        stepper: Stepper | None = None,
        progress: ProgressSink | None = None,
    ) -> None:
        self.journal = journal
        self.store = store
        self.device = device
        self.stepper: Stepper = stepper or HonestStepper(device)
        self.progress: ProgressSink = progress or NullProgress()
        self.rates = RateCache(journal.root.parent / "rates.json")

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
        job_id = ctx.record.job_id
        index = step_of(state) // ctx.program.checkpoint_interval
        data = save_checkpoint(ctx.program, state)
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
