"""Benchmark: repops against plain torch float32 on the same model, batch and machine.

    python -m bench.repops [--reps N]

Measures, in one run and interleaved (so both see the same machine load), the median
time of: a 1024 x 1024 x 1024 matmul (repops Ozaki matmul vs `a @ b`), and one whole
training step of each zoo model (repops tape vs the plain-torch twin with torch AdamW).
Prints `matmul_ratio: X` and `step_ratio_<model>: X` (repops time / torch time), plus the
raw medians.  Goal: step ratio <= 1.2 on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from repops import data, numerics
from repops.program import Program, batch_for, build_program, init_state, train_step
from repops.torch_reference import TorchTwin, make_optimizer, torch_step

SPECS: dict[str, dict[str, Any]] = {
    "mlp": {
        "model": {"name": "mlp", "config": {"in_features": 64, "hidden": [128], "classes": 10}},
        "data": {"dataset": "digits", "batch_size": 64, "seed": 1},
    },
    "gpt": {
        "model": {
            "name": "gpt",
            "config": {"vocab": 128, "block": 64, "n_layer": 2, "n_head": 4, "n_embd": 128},
        },
        "data": {"dataset": "stdlib_chars", "batch_size": 16, "seed": 1},
    },
}


def spec_for(name: str) -> dict[str, Any]:
    s = SPECS[name]
    return {
        "repops_version": "repops-2",
        "program": {
            "model": s["model"],
            "loss": "cross_entropy",
            "optimizer": {
                "name": "adamw",
                "lr": 1e-3,
                "beta1": 0.9,
                "beta2": 0.99,
                "eps": 1e-8,
                "weight_decay": 0.01,
            },
            "lr_schedule": {"name": "constant"},
        },
        "data": s["data"],
        "steps": 1000,
        "checkpoint_interval": 100,
        "seed": 0,
    }


def interleaved(
    fa: Callable[[], object], fb: Callable[[], object], reps: int
) -> tuple[float, float]:
    """Median seconds of fa and fb, alternating runs after one warm-up each."""
    fa()
    fb()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(reps):
        t = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t)
        t = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def bench_matmul(reps: int) -> tuple[float, float]:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(1024, 1024, generator=g)
    b = torch.randn(1024, 1024, generator=g)
    return interleaved(lambda: numerics.matmul(a, b), lambda: a @ b, reps)


def bench_step(prog: Program, ds: data.Dataset, reps: int) -> tuple[float, float]:
    state = init_state(prog)
    twin = TorchTwin(prog, state)
    opt, sched = make_optimizer(twin)
    cur = {"s": state}
    batches = [batch_for(prog, ds, t) for t in range(reps + 1)]
    it = {"i": 0}

    def ours() -> None:
        cur["s"], _ = train_step(prog, cur["s"], ds)

    def theirs() -> None:
        torch_step(twin, opt, sched, batches[it["i"] % len(batches)])
        it["i"] += 1

    return interleaved(ours, theirs, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}"
    )
    ours, theirs = bench_matmul(args.reps)
    print(f"matmul n=1024: repops {ours * 1e3:.1f} ms, torch {theirs * 1e3:.1f} ms")
    print(f"matmul_ratio: {ours / theirs:.2f}")
    datasets = {"digits": data.build_digits, "stdlib_chars": data.build_stdlib_chars}
    for name in SPECS:
        prog = build_program(spec_for(name))
        ds = data.Dataset.from_bytes(datasets[prog.dataset]())
        ours, theirs = bench_step(prog, ds, args.reps)
        print(
            f"step {name} ({prog.tape.num_ops} ops): repops {ours * 1e3:.1f} ms, "
            f"torch {theirs * 1e3:.1f} ms"
        )
        print(f"step_ratio_{name}: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
