"""Thread and CPU state cannot change a bit: FTZ/DAZ turned on before torch starts its
thread pool, torch and oneDNN capped to lower ISAs, the repops kernel path forced, and
thread counts 1/2/4 all give the same training state hashes (each in a fresh process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.repops.conftest import GPT_SPEC, MLP_SPEC

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import ctypes, json, sys
if sys.argv[1] == "ftz":
    # Set FTZ and DAZ on the main thread BEFORE torch exists, so its pool inherits them.
    ctypes.CDLL(sys.argv[2]).set_ftz_daz()
import torch
from repops import data
from repops.hashing import state_hash
from repops.program import build_program, init_state, train
if sys.argv[1] == "ftz":
    # Show the flag is live: a plain torch op flushes a subnormal before repops runs.
    flushed = (torch.full((4,), 1e-39) * 1.0)[0].item() == 0.0
else:
    flushed = None
specs = json.loads(sys.argv[3])
out = {"flushed": flushed}
for name, spec in specs.items():
    build = data.build_digits if name == "mlp" else data.build_stdlib_chars
    ds = data.Dataset.from_bytes(build())
    prog = build_program(spec)
    st, _ = train(prog, init_state(prog), ds, 2)
    out[name] = state_hash(st).hex()
# A large elementwise op runs on torch's worker threads too: none may flush.
from repops.ops import Op, execute
tiny = torch.full((1 << 20,), 1e-39)
out["subnormals_kept"] = bool((execute(Op.MUL, None, [tiny, torch.ones(1 << 20)]) != 0).all())
print(json.dumps(out))
"""

FTZ_C = r"""
#include <xmmintrin.h>
void set_ftz_daz(void) { _mm_setcsr(_mm_getcsr() | 0x8040); }
"""


def _hashes(mode: str, env: dict[str, str], helper: str = "") -> dict[str, Any]:
    specs = json.dumps({"mlp": MLP_SPEC, "gpt": GPT_SPEC})
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, helper, specs],
        capture_output=True,
        text=True,
        env=full,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return _hashes("plain", {"OMP_NUM_THREADS": "2"})


def test_ftz_set_before_torch_starts_changes_no_hash(
    baseline: dict[str, Any], tmp_path: Path
) -> None:
    src = tmp_path / "ftz.c"
    src.write_text(FTZ_C)
    so = tmp_path / "ftz.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    got = _hashes("ftz", {"OMP_NUM_THREADS": "2"}, str(so))
    assert got["flushed"] is True  # the flag really was on
    assert got["subnormals_kept"] is True
    assert (got["mlp"], got["gpt"]) == (baseline["mlp"], baseline["gpt"])


@pytest.mark.parametrize(
    "env",
    [
        {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "default"},
        {"ASSAY_REPOPS_ISA": "avx2", "OMP_NUM_THREADS": "1"},
        {"ASSAY_REPOPS_ISA": "scalar", "OMP_NUM_THREADS": "4"},
    ],
    ids=["torch-capped", "avx2-1-thread", "scalar-4-threads"],
)
def test_capped_isas_and_thread_counts_change_no_hash(
    baseline: dict[str, Any], env: dict[str, str]
) -> None:
    got = _hashes("plain", {"OMP_NUM_THREADS": "2", **env})
    assert (got["mlp"], got["gpt"]) == (baseline["mlp"], baseline["gpt"])
