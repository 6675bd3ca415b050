"""bench.scale: the W = 2 bench starts its own gloo workers, ends with the single-process
bits, and reports communication the plan implies (tiny models, two reps)."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

from bench.scale import DATASETS, spec_for
from repops import data
from repops.hashing import state_hash
from repops.program import build_program
from repops.training import init_state, train

ROOT = Path(__file__).resolve().parents[2]
REPS = 2


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bench.scale", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=240,
    )


def _lines(out: str) -> dict[str, str]:
    got = {}
    for ln in out.splitlines():
        m = re.fullmatch(r"([a-z0-9_]+): (.+)", ln)
        if m:
            got[m[1]] = m[2]
    return got


def test_quick_bench_two_workers_same_bits_and_comm() -> None:
    proc = _bench("--quick", "--reps", str(REPS))
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = _lines(proc.stdout)
    for name in ("gpt", "mlp"):
        t1, t2 = float(got[f"step_s_{name}_w1"]), float(got[f"step_s_{name}_w2"])
        eff = float(got[f"scaling_efficiency_{name}_w2"])
        assert t1 > 0 and t2 > 0 and 0 < eff < 2
        assert got[f"bits_equal_{name}_w2"] == "True"
        # the bench's W = 1 chain is the single-process run: 1 + reps steps from step 0
        prog = build_program(spec_for(name, quick=True))
        ds = data.Dataset.from_bytes(DATASETS[prog.dataset]())
        state, _ = train(prog, init_state(prog), ds, 1 + REPS)
        assert got[f"state_hash_{name}_w1"] == state_hash(state).hex()
        # M = 4 on 2 workers: each receives the other's partial gradient of every
        # parameter and its partial loss (fp32); DDP's ring moves 2(W-1)/W x the gradients
        grad = 4 * sum(math.prod(p.shape) for p in prog.params.values())
        m = re.fullmatch(r"ours (\d+) ddp (\d+) ratio ([0-9.]+)", got[f"comm_bytes_{name}_w2"])
        assert m is not None
        assert (int(m[1]), int(m[2])) == (grad + 4, grad)
        m = re.fullmatch(
            r"ours ([0-9.]+) allreduce ([0-9.]+) ratio ([0-9.]+)", got[f"comm_s_{name}_w2"]
        )
        assert m is not None and float(m[1]) > 0 and float(m[2]) > 0
    assert "load average before:" in proc.stdout and "load average after:" in proc.stdout


def test_world_that_does_not_divide_the_micro_batches_is_refused() -> None:
    proc = _bench("--quick", "--world", "3")
    assert proc.returncode == 2
    assert "--world 3: W must be at least 2 and divide 4 micro-batches" in proc.stderr
