"""Benchmark: data-parallel training (`repops.parallel`) on W worker processes vs one.

    python -m bench.scale [--world W] [--threads N] [--reps N] [--only gpt,mlp]
                          [--device cpu|cuda] [--quick] [--timeout S]

For each model (a zoo GPT and the digits MLP, both with ``data.micro_batches`` = 4), the
bench starts W worker processes itself (``python -m bench.scale --worker R``, a
`torch.distributed` group on 127.0.0.1 at a free port, `--threads` threads each, default
1) and measures, interleaved within one run of the group after one warm-up of each:

* ``step_s_<model>_w1``: one step of `repops.training.train_step` on rank 0 while the
  other ranks wait at a barrier (the single-process run, in one of the bench's processes);
* ``step_s_<model>_w<W>``: one step of `repops.parallel.train_step` on every rank (a rank's
  time from leaving a barrier to the end of its step; the step's time is the slowest
  rank's);
* ``scaling_efficiency_<model>_w<W>``: t1 / (W x tW), the median of the per-rep values;
* ``comm_bytes_<model>_w<W>: ours X ddp Y ratio Z``: bytes a worker receives per step
  (`Plan.received_bytes`, the largest over ranks) against a plain DDP ring all-reduce of
  the fp32 gradients, 2(W-1)/W x the gradient bytes;
* ``comm_s_<model>_w<W>: ours X allreduce Y ratio Z``: the measured time of our exchange
  alone (`ShardedExecutor.probe`: the full-boundary broadcasts, the scatter and the
  gather of `repops.parallel`, on buffers of the plan's sizes) against `dist.all_reduce`
  of one flat fp32 buffer of the gradient size, in
  the same processes, interleaved (slowest rank per rep; medians; ratio = median of the
  per-rep ratios);
* ``bits_equal_<model>_w<W>: True`` when every rank's state after the 1 + reps parallel
  steps has the state hash of the single-process chain after as many steps (the bench
  exits 1 otherwise), and ``state_hash_<model>_w1: HEX`` (bench/gpu_scale.sh compares it
  between a CPU and a GPU run).

Step times include what a real step does (the step's batch from the dataset, the state
moved to the device, the loss read back); every worker runs the whole optimizer (the
SHARED nodes), so efficiency is below 1 even with free communication.

``--device cuda``: workers run on ``cuda:<rank>`` with NCCL when there are at least W GPUs;
with fewer, every rank runs on ``cuda:0`` and the group uses gloo (which takes CUDA
tensors; NCCL refuses two ranks on one GPU), so W > 1 then measures ranks sharing one GPU,
not scaling.  Times are taken after `torch.cuda.synchronize`.  The load average is printed
before and after: on a shared machine W = 2 competes with other processes for the cores.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import torch

from jobspec.factory import gpt_spec, mlp_spec
from repops import data, parallel, training
from repops.hashing import state_hash
from repops.program import Program, build_program

MICRO = 4
_RUN: dict[str, Any] = {"lr": 1e-3, "beta2": 0.99, "data_seed": 1, "seed": 0}


def _with_micro(spec: dict[str, Any], micro: int) -> dict[str, Any]:
    spec["data"]["micro_batches"] = micro
    return spec


# the models of a normal run, and the tiny ones of --quick (the test's)
SPECS: dict[str, dict[str, Any]] = {
    "gpt": _with_micro(
        gpt_spec(block=32, n_layer=2, n_head=4, n_embd=64, batch_size=16, **_RUN), MICRO
    ),
    "mlp": _with_micro(mlp_spec(hidden=[128], batch_size=64, **_RUN), MICRO),
}
QUICK: dict[str, dict[str, Any]] = {
    "gpt": _with_micro(gpt_spec(block=16, n_layer=1, n_head=2, n_embd=16, batch_size=4), MICRO),
    "mlp": _with_micro(mlp_spec(hidden=[16], batch_size=16), MICRO),
}
DATASETS = {"digits": data.build_digits, "stdlib_chars": data.build_stdlib_chars}


def spec_for(name: str, quick: bool) -> dict[str, Any]:
    return copy.deepcopy((QUICK if quick else SPECS)[name])


def gradient_bytes(prog: Program) -> int:
    """Bytes of the step's fp32 gradients (one per parameter element)."""
    return sum(math.prod(p.shape) for p in prog.params.values()) * 4


def ddp_bytes(grad_bytes: int, world: int) -> int:
    """Bytes a worker receives in a ring all-reduce of `grad_bytes`: 2(W-1)/W of them."""
    return 2 * (world - 1) * grad_bytes // world


# ----------------------------------------------------------------------------------------
# Worker side (one process of the group)
# ----------------------------------------------------------------------------------------


def _device_and_backend(device: str, world: int, rank: int) -> tuple[torch.device, str]:
    if device == "cpu":
        return torch.device("cpu"), "gloo"
    if not torch.cuda.is_available():
        raise SystemExit("bench.scale: --device cuda but torch sees no CUDA device")
    if torch.cuda.device_count() >= world:
        return torch.device("cuda", rank), "nccl"
    return torch.device("cuda", 0), "gloo"  # ranks share one GPU: NCCL refuses that


def _worker(args: argparse.Namespace) -> None:
    import torch.distributed as dist

    torch.set_num_threads(args.threads)
    world, rank = args.world, args.worker
    dev, backend = _device_and_backend(args.device, world, rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(
        backend,
        init_method=f"tcp://127.0.0.1:{args.port}",
        rank=rank,
        world_size=world,
        timeout=datetime.timedelta(seconds=args.timeout),
        device_id=dev if backend == "nccl" else None,  # NCCL: bind this rank's GPU now
    )
    prog = build_program(spec_for(args.model, args.quick))
    ds = data.Dataset.from_bytes(DATASETS[prog.dataset]())
    ex = parallel.ShardedExecutor(prog.tape, dev, world, rank)
    comm = parallel.torch_comm()
    tape, plan = prog.tape, ex.plan
    flat = torch.zeros(gradient_bytes(prog) // 4, dtype=torch.float32, device=dev)
    cur = {"w1": training.init_state(prog, dev), "wn": training.init_state(prog, dev)}

    def step1() -> None:
        if rank == 0:
            cur["w1"], _ = training.train_step(prog, cur["w1"], ds, dev)

    def stepn() -> None:
        cur["wn"], _ = parallel.train_step(prog, cur["wn"], ds, ex, comm)

    def ours() -> None:
        ex.probe(comm)

    def allreduce() -> None:
        dist.all_reduce(flat)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def timed(fn: Callable[[], None]) -> float:
        sync()
        dist.barrier()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    fns = (step1, stepn, ours, allreduce)
    for fn in fns:  # warm-up (one step of each chain)
        timed(fn)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(args.reps):
        for k, fn in enumerate(fns):
            times[k].append(timed(fn))
    sync()
    mine = {
        "times": times,
        "hash": state_hash(cur["wn"]).hex(),
        "received": plan.received_bytes(tape, rank),
    }
    every: list[Any] = [None] * world
    dist.all_gather_object(every, mine)
    if rank == 0:
        result = {
            "ranks": every,
            "w1_hash": state_hash(cur["w1"]).hex(),
            "ops": tape.num_ops,
            "grad_bytes": gradient_bytes(prog),
            "steps": 1 + args.reps,
            "device": str(dev),
            "backend": backend,
        }
        print("RESULT " + json.dumps(result), flush=True)
    dist.barrier()
    dist.destroy_process_group()


# ----------------------------------------------------------------------------------------
# Launcher side
# ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(name: str, procs: list[subprocess.Popen[str]], deadline: float, limit: float) -> None:
    """Until every worker has exited 0; a worker that fails ends the wait at once (the
    others would sit in a collective until the group's timeout)."""
    while True:
        for r, p in enumerate(procs):
            if p.poll():
                raise SystemExit(f"bench.scale: {name}: worker {r} exited {p.returncode}")
        if all(p.returncode == 0 for p in procs):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"bench.scale: {name}: workers still running after {limit} s")
        time.sleep(0.05)


def launch(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run the W workers for one model; rank 0's result.  Exits (one line) if a worker
    fails or the group runs past --timeout."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    cmd = [sys.executable, "-m", "bench.scale", "--model", name, "--port", str(port)]
    cmd += ["--world", str(args.world), "--reps", str(args.reps), "--threads", str(args.threads)]
    cmd += ["--device", args.device, "--timeout", str(args.timeout)]
    cmd += ["--quick"] if args.quick else []
    with tempfile.TemporaryFile(mode="w+") as out0:  # rank 0's result line
        procs = [
            subprocess.Popen(
                [*cmd, "--worker", str(r)],
                stdout=out0 if r == 0 else subprocess.DEVNULL,
                text=True,
                env=env,
            )
            for r in range(args.world)
        ]
        try:
            _wait(name, procs, time.monotonic() + args.timeout, args.timeout)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        out0.seek(0)
        text = out0.read()
    lines = [ln for ln in text.splitlines() if ln.startswith("RESULT ")]
    if not lines:
        raise SystemExit(f"bench.scale: {name}: rank 0 printed no result")
    got: dict[str, Any] = json.loads(lines[-1][len("RESULT ") :])
    return got


def report(name: str, res: dict[str, Any], world: int) -> bool:
    """Print the model's lines; True if the bits agree."""
    ranks = res["ranks"]
    reps = len(ranks[0]["times"][0])
    # per rep: the single-process step on rank 0, and the slowest rank of the others
    t1 = list(ranks[0]["times"][0])
    tn, ours, ar = (
        [max(rk["times"][k][i] for rk in ranks) for i in range(reps)] for k in (1, 2, 3)
    )
    eff = statistics.median(a / (world * b) for a, b in zip(t1, tn, strict=True))
    comm_ratio = statistics.median(a / b for a, b in zip(ours, ar, strict=True))
    received = max(rk["received"] for rk in ranks)
    ddp = ddp_bytes(res["grad_bytes"], world)
    bits = all(rk["hash"] == res["w1_hash"] for rk in ranks)
    w = f"w{world}"
    print(
        f"{name} ({res['ops']} ops, {MICRO} micro-batches, {res['steps']} steps, "
        f"{world} workers on {res['device']} via {res['backend']}): "
        f"w1 {statistics.median(t1) * 1e3:.1f} ms, {w} {statistics.median(tn) * 1e3:.1f} ms"
    )
    print(f"step_s_{name}_w1: {statistics.median(t1):.5f}")
    print(f"step_s_{name}_{w}: {statistics.median(tn):.5f}")
    print(f"scaling_efficiency_{name}_{w}: {eff:.2f}")
    print(f"comm_bytes_{name}_{w}: ours {received} ddp {ddp} ratio {received / ddp:.2f}")
    print(
        f"comm_s_{name}_{w}: ours {statistics.median(ours):.6f} "
        f"allreduce {statistics.median(ar):.6f} ratio {comm_ratio:.2f}"
    )
    print(f"state_hash_{name}_w1: {res['w1_hash']}")
    print(f"bits_equal_{name}_{w}: {bits}")
    return bits


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--world", type=int, default=2, help="workers W (W >= 2, W divides 4)")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="threads per worker")
    ap.add_argument("--only", default=",".join(SPECS), help="comma-separated models")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--quick", action="store_true", help="tiny models (the test's)")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per model's group")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.world < 2 or MICRO % args.world:
        ap.error(f"--world {args.world}: W must be at least 2 and divide {MICRO} micro-batches")
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.worker is not None:
        _worker(args)
        return 0
    # `timeout` (bench/gpu_scale.sh) sends SIGTERM: exit through launch's clean-up, which
    # kills the workers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no CUDA device")
    models = [m for m in args.only.split(",") if m]
    for m in models:
        if m not in SPECS:
            ap.error(f"unknown model {m!r}; choose from {', '.join(SPECS)}")
    print(
        f"torch {torch.__version__}, {args.world} workers x {args.threads} thread(s), "
        f"device {args.device}, {args.reps} reps{' (quick models)' if args.quick else ''}"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ok = True
    for name in models:
        ok &= report(name, launch(name, args), args.world)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
