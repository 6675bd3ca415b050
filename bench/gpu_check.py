"""GPU check: build the CUDA kernel, compare every op's bits and whole training steps
CPU vs GPU, and print the bench ratios vs torch fp32 and TF32 (run by bench/gpu_check.sh).

    python -m bench.gpu_check [--reps N]

Prints `PASS`/`FAIL` lines per op case and per model, `gpu_matmul_ratio_fp32: X`,
`gpu_matmul_ratio_tf32: X`, `gpu_step_ratio_<model>: X` (repops on GPU / torch fp32 on
GPU, median of interleaved per-rep ratios), and exits 1 if any bit differs.  Written
without a GPU at hand: UNVERIFIED until it has run on one.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from bench.repops import SPECS, _setup
from repops import conformance
from repops.hashing import state_hash
from repops.matmul import matmul
from repops.program import batch_for, init_state, train, train_step
from repops.torch_reference import TorchTwin, make_optimizer, torch_step
from repops.trace import replay_step, step_batch


def _sync_timed(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t


def _ratio(fa: Callable[[], object], fb: Callable[[], object], reps: int) -> float:
    fa()
    fb()
    return statistics.median(_sync_timed(fa) / _sync_timed(fb) for _ in range(reps))


def _step_ratio(name: str, reps: int) -> float:
    prog, ds = _setup(name)
    cur = {"s": init_state(prog, "cuda")}
    twin = TorchTwin(prog, {k: v.cuda() for k, v in init_state(prog).items()}).cuda()
    opt, sched = make_optimizer(twin)
    batches = [{k: v.cuda() for k, v in batch_for(prog, ds, t).items()} for t in range(4)]
    it = {"i": 0}

    def ours() -> None:
        cur["s"], _ = train_step(prog, cur["s"], ds, "cuda")

    def theirs() -> None:
        torch_step(twin, opt, sched, batches[it["i"] % 4])
        it["i"] += 1

    return _ratio(ours, theirs, reps)


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("FAIL no CUDA device")
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device {torch.cuda.get_device_name()}, torch {torch.__version__}")
    t = time.perf_counter()
    from repops.cuda_kernels import _module

    _module()
    print(f"built the CUDA kernel in {time.perf_counter() - t:.0f} s")
    failures = 0
    cpu = {r.name: r for r in conformance.report("cpu")}
    for r in conformance.report("cuda"):
        ok = r.ok and cpu.get(f"{r.op}/{r.path.split('=')[-1]}", r).ok
        failures += not ok
        print(("PASS " if ok else "FAIL ") + r.line())
    for name in ("mlp", "gpt"):
        prog, ds = _setup(name)
        st, _ = train(prog, init_state(prog), ds, 1)
        batch = step_batch(prog, st, ds)
        a = replay_step(prog, st, batch, "cpu")
        b = replay_step(prog, st, batch, "cuda")
        bad = [
            j for j, (x, y) in enumerate(zip(a.out_hashes, b.out_hashes, strict=True), 1) if x != y
        ]
        if bad:
            node = prog.tape.nodes[prog.tape.chain[bad[0] - 1]]
            print(f"FAIL step {name}: {len(bad)} ops differ, first op {bad[0]} ({node.op.value})")
        s_cpu, _ = train(prog, init_state(prog), ds, 2, "cpu")
        s_gpu, _ = train(prog, init_state(prog, "cuda"), ds, 2, "cuda")
        same = state_hash(s_cpu) == state_hash(s_gpu)
        print(f"{'PASS' if same and not bad else 'FAIL'} state hash after 2 steps, {name}")
        failures += bool(bad) or not same
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4096, 4096, generator=g).cuda()
    y = torch.randn(4096, 4096, generator=g).cuda()
    print(f"gpu_matmul_ratio_fp32: {_ratio(lambda: matmul(x, y), lambda: x @ y, args.reps):.2f}")
    torch.backends.cuda.matmul.allow_tf32 = True
    print(f"gpu_matmul_ratio_tf32: {_ratio(lambda: matmul(x, y), lambda: x @ y, args.reps):.2f}")
    torch.backends.cuda.matmul.allow_tf32 = False
    for name in SPECS:
        print(f"gpu_step_ratio_{name}: {_step_ratio(name, args.reps):.2f}")
    print("gpu check: " + ("all bits equal" if failures == 0 else f"{failures} FAILURES"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
