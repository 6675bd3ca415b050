"""Data-parallel training of one job on W workers (`torch.distributed`), and its launcher.

    python -m roles.dataparallel worker RUN_DIR [--device cpu|cuda] [--timeout S]

is one worker; it reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` from the environment, as `torchrun` sets them, so the same command runs
under `torchrun` on one machine or several (README: "Training on several machines").
`launch` starts W local workers itself, watches them, and restarts them all from the
last checkpoint when one is lost.

Only rank 0 reads and writes the run directory; it sends the spec, the artifacts, the
dataset and the start state to the other ranks over the process group, so the other
machines need nothing but the code.  The run directory (`prepare_run` writes the inputs):

    spec.json                the job spec (canonical JSON)
    dataset                  the dataset file, in the format the spec names
    artifacts/<sha256>       a graph model's graph.json and weights, by sha256
    ckpt-<iiii>.safetensors  checkpoint i (rank 0, atomic; ckpt-0000 is the initial state)
    losses.json              every step's loss up to the last checkpoint (rank 0, atomic)
    status.json              rank 0 after every step: step, steps, loss, checkpoint, and
                             each rank's compute and exchange-wait seconds of that step
    workers.json             `launch`: attempt, port and each rank's pid
    logs/rank-<r>.log        `launch`: each worker's output

A worker starts from the newest checkpoint that loads (or step 0) and trains to the end
with `repops.parallel` (the state after every step is the single-process state, bit for
bit); at every checkpoint all ranks compare state hashes and stop if any differs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from repops import data as data_mod
from repops import hashing, parallel
from repops.errors import RepopsError
from repops.program import (
    Program,
    State,
    build_program,
    canonical_json,
    check_dataset,
    init_state,
    load_checkpoint,
    save_checkpoint,
    step_of,
)
from roles.files import write_atomic

log = logging.getLogger(__name__)

STRAGGLER_FACTOR = 1.5
"""A rank whose compute time in a step exceeds this times the median rank's (and the
median by more than `STRAGGLER_MIN_S`) is shown as a straggler."""
STRAGGLER_MIN_S = 0.01
DEFAULT_TIMEOUT_S = 120.0
"""Seconds a collective waits for a silent peer before the worker gives up (lost)."""


class RunInvalid(Exception):
    """The run directory cannot be trained (one line for the user)."""


class LaunchFailed(Exception):
    """The workers kept failing: the restarts allowed are spent."""


class WorkersDiverged(Exception):
    """Two ranks hold different states at a checkpoint (a broken worker or machine)."""


# ----------------------------------------------------------------------------------------
# The run directory
# ----------------------------------------------------------------------------------------


def ckpt_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"ckpt-{index:04d}.safetensors"


def ckpt_index(path: Path) -> int:
    """The checkpoint index of a `ckpt_path` file name (ValueError for another name)."""
    return int(path.name[len("ckpt-") : -len(".safetensors")])


def prepare_run(
    run_dir: Path,
    spec: Mapping[str, Any],
    dataset: bytes,
    artifacts: Mapping[str, bytes] | None = None,
) -> None:
    """Write a run's inputs (idempotent: a directory already holding another spec or
    dataset is refused, so that its checkpoints are never mixed with another job's)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    files = {"spec.json": canonical_json(dict(spec)), "dataset": dataset}
    for sha, blob in (artifacts or {}).items():
        files[f"artifacts/{sha}"] = blob
    for name, blob in files.items():
        path = run_dir / name
        if path.is_file():
            if path.read_bytes() != blob:
                raise RunInvalid(f"{run_dir} holds another job's {name}: use a new directory")
            continue
        write_atomic(path, blob)


def _run_files(run_dir: Path) -> dict[str, bytes]:
    try:
        files = {
            "spec.json": (run_dir / "spec.json").read_bytes(),
            "dataset": (run_dir / "dataset").read_bytes(),
        }
    except OSError as exc:
        raise RunInvalid(f"{run_dir}: {exc.strerror}: {exc.filename}") from None
    art = run_dir / "artifacts"
    if art.is_dir():
        for p in sorted(art.iterdir()):
            files[f"artifacts/{p.name}"] = p.read_bytes()
    return files


def load_run(files: Mapping[str, bytes]) -> tuple[Program, data_mod.Dataset]:
    """The program and dataset of a run's files (raises RunInvalid)."""
    try:
        spec = json.loads(files["spec.json"])
        program = build_program(spec, lambda _path, ref: files[f"artifacts/{ref['sha256']}"])
        fmt = spec["data"].get("format") or data_mod.DATASETS[spec["data"]["dataset"]]
        ds = data_mod.Dataset.of_format(fmt, files["dataset"])
        check_dataset(program, ds)
    except (ValueError, RepopsError) as exc:
        raise RunInvalid(str(exc)) from None
    return program, ds


def last_checkpoint(run_dir: Path, program: Program) -> tuple[int, bytes] | None:
    """(index, bytes) of the newest checkpoint in `run_dir` that loads, or None."""
    found = sorted(run_dir.glob("ckpt-*.safetensors"), reverse=True)
    for p in found:
        try:
            index = ckpt_index(p)
            blob = p.read_bytes()
            load_checkpoint(program, blob)
        except (ValueError, OSError, RepopsError):
            log.warning("%s does not load: skipped", p)
            continue
        return index, blob
    return None


def read_losses(run_dir: Path) -> list[float]:
    try:
        doc = json.loads((run_dir / "losses.json").read_text())
    except (OSError, ValueError):
        return []
    return [float(x) for x in doc] if isinstance(doc, list) else []


# ----------------------------------------------------------------------------------------
# The worker
# ----------------------------------------------------------------------------------------


def _bcast_bytes(blob: bytes | None, src: int = 0) -> bytes:
    """Rank src's bytes on every rank (CPU tensors: gloo, also beside NCCL)."""
    import torch.distributed as dist

    size = [len(blob) if blob is not None else 0]
    dist.broadcast_object_list(size, src, device=torch.device("cpu"))
    if not size[0]:
        return b""
    buf = (
        torch.frombuffer(bytearray(blob), dtype=torch.uint8)
        if blob is not None and dist.get_rank() == src
        else torch.empty(int(size[0]), dtype=torch.uint8)
    )
    if buf.numel():
        dist.broadcast(buf, src)
    return buf.numpy().tobytes()


StepHook = Callable[[int, int], None]  # (rank, step about to run)


def worker_main(
    run_dir: Path,
    device: str = "cpu",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    on_step: StepHook | None = None,
    executor: type[parallel.ShardedExecutor] = parallel.ShardedExecutor,
) -> int:
    """One worker of a run (environment as torchrun sets it); returns the exit status.

    `on_step` and `executor` let drills and tests make a slow or a lying worker.
    """
    import torch.distributed as dist

    die_with_launcher()
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = torch.device(f"cuda:{local}" if device == "cuda" else device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "cpu:gloo,cuda:nccl" if dev.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    try:
        files: dict[str, bytes] = _run_files(run_dir) if rank == 0 else {}
        names = [sorted(files)]
        dist.broadcast_object_list(names, 0, device=torch.device("cpu"))
        for name in names[0]:
            files[name] = _bcast_bytes(files.get(name))
        program, ds = load_run(files)
        start = last_checkpoint(run_dir, program) if rank == 0 else None
        if rank == 0 and start is None:
            blob0 = save_checkpoint(program, init_state(program))
            write_atomic(ckpt_path(run_dir, 0), blob0)
            start = (0, blob0)
        state = load_checkpoint(program, _bcast_bytes(start[1] if start else None), dev)
        losses = read_losses(run_dir)[: step_of(state)] if rank == 0 else []
        ex = executor(program.tape, dev, world, rank)
        _train(program, ds, state, ex, run_dir, losses, on_step)
    finally:
        dist.destroy_process_group()
    return 0


def _train(
    program: Program,
    ds: data_mod.Dataset,
    state: State,
    ex: parallel.ShardedExecutor,
    run_dir: Path,
    losses: list[float],
    on_step: StepHook | None,
) -> None:
    import torch.distributed as dist

    rank, world = ex.rank, ex.plan.world
    comm = _TimedComm(parallel.torch_comm())
    k = program.checkpoint_interval
    checkpoint = step_of(state) // k
    while step_of(state) < program.steps:
        if on_step is not None:
            on_step(rank, step_of(state))
        comm.waited = 0.0
        t0 = time.perf_counter()
        state, loss = parallel.train_step(program, state, ds, ex, comm)
        spent = time.perf_counter() - t0
        times = torch.tensor([spent - comm.waited, comm.waited], dtype=torch.float64)
        every = [torch.zeros(2, dtype=torch.float64) for _ in range(world)]
        dist.all_gather(every, times)
        step = step_of(state)
        if step % k == 0:
            h = torch.frombuffer(bytearray(hashing.state_hash(state)), dtype=torch.uint8)
            hs = [torch.zeros(32, dtype=torch.uint8) for _ in range(world)]
            dist.all_gather(hs, h)
            if any(not torch.equal(x, hs[0]) for x in hs):
                bad = [r for r, x in enumerate(hs) if not torch.equal(x, hs[0])]
                raise WorkersDiverged(f"at step {step} ranks {bad} hold another state")
        if rank != 0:
            continue
        losses.append(loss)
        if step % k == 0:
            checkpoint = step // k
            write_atomic(ckpt_path(run_dir, checkpoint), save_checkpoint(program, state))
            write_atomic(run_dir / "losses.json", json.dumps(losses).encode())
        status = {
            "step": step,
            "steps": program.steps,
            "loss": loss,
            "checkpoint": checkpoint,
            "world": world,
            "ranks": [
                {"rank": r, "compute_s": float(t[0]), "wait_s": float(t[1])}
                for r, t in enumerate(every)
            ],
        }
        write_atomic(run_dir / "status.json", json.dumps(status).encode())
    if rank == 0:
        sys.stdout.write(f"final_loss: {losses[-1]!r}\n" if losses else "final_loss: -\n")
        sys.stdout.write(f"state_hash: {hashing.state_hash(state).hex()}\n")
        sys.stdout.flush()


class _TimedComm:
    """A `parallel.Comm` that adds up the seconds spent in its collectives."""

    def __init__(self, inner: parallel.TorchComm) -> None:
        self.inner = inner
        self.waited = 0.0

    def broadcast(self, src: int, buf: torch.Tensor) -> torch.Tensor:
        t = time.perf_counter()
        out = self.inner.broadcast(src, buf)
        self.waited += time.perf_counter() - t
        return out

    def alltoall(self, sends: Sequence[torch.Tensor], sizes: Sequence[int]) -> list[torch.Tensor]:
        t = time.perf_counter()
        out = self.inner.alltoall(sends, sizes)
        self.waited += time.perf_counter() - t
        return out


# ----------------------------------------------------------------------------------------
# Progress: what the launcher and the displays read
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankStatus:
    rank: int
    compute_s: float
    wait_s: float
    state: str  # "ok" | "straggler" | "lost"


@dataclass(frozen=True)
class Status:
    step: int
    steps: int
    loss: float | None
    checkpoint: int
    attempt: int
    ranks: tuple[RankStatus, ...]

    def line(self) -> str:
        """One line for a progress display: each rank's compute time and flag."""
        parts = []
        for r in self.ranks:
            flag = "" if r.state == "ok" else f" {r.state.upper()}"
            parts.append(f"r{r.rank} {r.compute_s * 1e3:.0f}ms{flag}")
        return " · ".join(parts)


def flag_ranks(
    compute: Sequence[float], waits: Sequence[float], lost: Sequence[int] = ()
) -> tuple[RankStatus, ...]:
    """Each rank's flag: lost (its process died), straggler (see `STRAGGLER_FACTOR`), ok."""
    med = statistics.median(compute) if compute else 0.0
    out = []
    for r, (c, w) in enumerate(zip(compute, waits, strict=True)):
        if r in lost:
            state = "lost"
        elif c > STRAGGLER_FACTOR * med and c - med > STRAGGLER_MIN_S:
            state = "straggler"
        else:
            state = "ok"
        out.append(RankStatus(r, c, w, state))
    return tuple(out)


def read_status(run_dir: Path, attempt: int = 0, lost: Sequence[int] = ()) -> Status | None:
    try:
        doc = json.loads((run_dir / "status.json").read_text())
        ranks = doc["ranks"]
        compute = [float(r["compute_s"]) for r in ranks]
        waits = [float(r["wait_s"]) for r in ranks]
        return Status(
            int(doc["step"]),
            int(doc["steps"]),
            float(doc["loss"]),
            int(doc["checkpoint"]),
            attempt,
            flag_ranks(compute, waits, lost),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------------------
# The launcher (W local workers)
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """Something the launcher tells its display: a lost worker, a restart, a stall."""

    kind: str  # "lost" | "restart" | "stalled"
    text: str
    attempt: int
    ranks: tuple[int, ...] = ()


@dataclass
class RunResult:
    state: bytes  # the last checkpoint's bytes (the final state)
    losses: list[float]
    attempts: int
    events: list[Event] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


WORKER_CMD = (sys.executable, "-m", "roles.dataparallel", "worker")


def die_with_launcher() -> None:
    """A worker that `launch` started (``ASSAY_LAUNCHER_PID`` set) asks to be killed when
    its launcher dies (Linux prctl PR_SET_PDEATHSIG), so that no orphan trains on in a
    run directory a new launch resumes; one whose launcher is already gone exits.  Under
    torchrun, or elsewhere, a no-op."""
    want = os.environ.get("ASSAY_LAUNCHER_PID")
    if want is None or not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != int(want):
        raise SystemExit(1)


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit status {rc}"


def _last_line(path: Path) -> str:
    try:
        lines = [x for x in path.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def launch(
    run_dir: Path,
    world: int,
    *,
    device: str = "cpu",
    threads: int | None = None,
    max_restarts: int = 2,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    stall_s: float = 60.0,
    on_status: Callable[[Status], None] | None = None,
    on_event: Callable[[Event], None] | None = None,
    worker_cmd: Sequence[str] = WORKER_CMD,
    poll_s: float = 0.1,
) -> RunResult:
    """Train the run on `world` local workers; restart them all from the last checkpoint
    when one dies (at most `max_restarts` times).  Returns the final state."""
    if world < 1:
        raise RunInvalid("--world-size must be >= 1")
    program, _ds = load_run(_run_files(run_dir))
    try:
        parallel.plan(program.tape, world)
    except RepopsError as exc:
        raise RunInvalid(
            f"world size {world} must divide data.micro_batches {program.micro_batches}"
        ) from exc
    per_worker = threads or max(1, (os.cpu_count() or 1) // world)
    events: list[Event] = []

    def tell(ev: Event) -> None:
        events.append(ev)
        log.warning("%s", ev.text)
        if on_event is not None:
            on_event(ev)

    (run_dir / "logs").mkdir(exist_ok=True)
    attempt = 0
    while True:
        port = free_port()
        procs = []
        for r in range(world):
            env = dict(os.environ)
            env.update(
                RANK=str(r),
                LOCAL_RANK=str(r),
                WORLD_SIZE=str(world),
                LOCAL_WORLD_SIZE=str(world),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=str(port),
                OMP_NUM_THREADS=str(per_worker),
                ASSAY_LAUNCHER_PID=str(os.getpid()),
            )
            logf = open(run_dir / "logs" / f"rank-{r}.log", "ab")  # noqa: SIM115
            cmd = [*worker_cmd, str(run_dir), "--device", device, "--timeout", str(timeout_s)]
            procs.append(subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT))
            logf.close()
        info = {"attempt": attempt, "port": port, "pids": [p.pid for p in procs]}
        write_atomic(run_dir / "workers.json", json.dumps(info).encode())
        try:
            failed = _watch(run_dir, procs, attempt, stall_s, poll_s, on_status, tell)
        except BaseException:  # a callback failed or the caller was interrupted: no orphans
            _stop(procs)
            raise
        if not failed:
            break
        desc = ", ".join(f"rank {r} {_describe_exit(rc)}" for r, rc in failed)
        tail = _last_line(run_dir / "logs" / f"rank-{failed[0][0]}.log")
        tell(
            Event(
                "lost",
                f"worker lost: {desc}" + (f" ({tail})" if tail else ""),
                attempt,
                tuple(r for r, _ in failed),
            )
        )
        attempt += 1
        if attempt > max_restarts:
            raise LaunchFailed(f"workers failed {attempt} times; last: {desc}")
        found = last_checkpoint(run_dir, program)
        at = 0 if found is None else found[0] * program.checkpoint_interval
        tell(Event("restart", f"restarting {world} workers from step {at}", attempt))
    found = last_checkpoint(run_dir, program)
    assert found is not None
    state = load_checkpoint(program, found[1])
    if step_of(state) != program.steps:
        raise LaunchFailed(f"workers exited at step {step_of(state)} of {program.steps}")
    return RunResult(found[1], read_losses(run_dir), attempt + 1, events)


def _watch(
    run_dir: Path,
    procs: Sequence[subprocess.Popen[bytes]],
    attempt: int,
    stall_s: float,
    poll_s: float,
    on_status: Callable[[Status], None] | None,
    tell: Callable[[Event], None],
) -> list[tuple[int, int]]:
    """Wait for the workers; [] when all exit 0, else [(rank, exit status)] of the first
    to fail (the others are then stopped)."""
    last_step, last_change, stalled = -1, time.monotonic(), False
    while True:
        codes = [p.poll() for p in procs]
        failed = [(r, rc) for r, rc in enumerate(codes) if rc not in (None, 0)]
        lost = [r for r, _ in failed]
        st = read_status(run_dir, attempt, lost)
        if st is not None and on_status is not None:
            on_status(st)
        if st is not None and st.step != last_step:
            last_step, last_change, stalled = st.step, time.monotonic(), False
        elif not stalled and time.monotonic() - last_change > stall_s:
            stalled = True
            tell(Event("stalled", f"no step finished for {stall_s:.0f} s", attempt))
        if failed:
            _stop(procs)
            return failed
        if all(rc == 0 for rc in codes):
            return []
        time.sleep(poll_s)


def _stop(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + 10.0
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ----------------------------------------------------------------------------------------
# Command line (the worker; `assay train --local --world-size W` is the launcher's front)
# ----------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m roles.dataparallel",
        description="One data-parallel worker of a run directory (torchrun-compatible).",
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker", help="run this process's rank (RANK, WORLD_SIZE, ... env)")
    w.add_argument("run_dir", help="the run directory (read by rank 0 only)")
    w.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    w.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="collective timeout")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        return worker_main(Path(args.run_dir), args.device, args.timeout)
    except (RunInvalid, WorkersDiverged) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
