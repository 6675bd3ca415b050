"""Conformance self-test: every op kind, on every native code path, against committed hashes.

Each case runs one operator on seeded inputs (built from integers by numpy's PCG64 and
exact float32 bit construction, so the inputs themselves never depend on a library
kernel) and compares the tensorHash of its output with `conformance_vectors.json`.  A
machine whose kernels give other bits (a miscompiled extension, a CPU or library that
rounds differently, a bad patch) fails here before it claims, challenges or rules.

    python -m repops.conformance            # the report (also `assay doctor`)
    python -m repops.conformance --write    # regenerate the vectors (only when the
                                            # semantics change, with a version bump)

This module must never weaken a failure into a warning: `require()` raises.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from repops import kernels
from repops.errors import RepopsError
from repops.hashing import tensor_hash
from repops.matmul import matmul
from repops.ops import Op, execute
from repops.version import REPOPS_VERSION

VECTORS = Path(__file__).with_name("conformance_vectors.json")


class ConformanceError(RepopsError):
    """An op gave other bits than the committed vector (message names op and path)."""


@dataclass(frozen=True)
class CaseResult:
    """One case of the report: op, code path, and whether its hash matched."""

    op: str
    path: str
    ok: bool
    got: str
    want: str | None

    @property
    def name(self) -> str:
        return f"{self.op}/{self.path}"

    def line(self) -> str:
        if self.ok:
            return f"ok    {self.op:12s} {self.path}"
        want = self.want[:16] if self.want else "no committed vector"
        return f"FAIL  {self.op:12s} {self.path}: got {self.got[:16]}, expected {want}"


def _floats(seed: int, shape: tuple[int, ...], lo: int = -8, hi: int = 8) -> torch.Tensor:
    """float32 values sign * (1 + m 2**-23) * 2**e, e in [lo, hi), plus a few specials."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = int(np.prod(shape))
    sign = rng.integers(0, 2, n, dtype=np.int64)
    mant = rng.integers(0, 1 << 23, n, dtype=np.int64)
    expo = rng.integers(lo, hi, n, dtype=np.int64) + 127
    bits = (sign << 31) | (expo << 23) | mant
    return (
        torch.from_numpy(bits.astype(np.uint32).view(np.int32).copy())
        .view(torch.float32)
        .reshape(shape)
    )


def _specials(x: torch.Tensor) -> torch.Tensor:
    y = x.clone().reshape(-1)
    vals = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-40, -3e-39, 1e-45]
    y[: len(vals)] = torch.tensor(vals)
    return y.reshape(x.shape)


Case = tuple[str, str, Callable[[], torch.Tensor]]


def _cases(device: str = "cpu") -> list[Case]:
    """Every case; on a CUDA device the op cases plus "matmul/cuda" (no CPU ISA paths)."""
    cases = _op_cases(torch.device(device))
    ma = _specials(_floats(13, (3, 37, 300), -30, 30)).to(device)
    mb = _floats(14, (3, 300, 29), -30, 30).to(device)

    def mm(isa: kernels.Isa | None, x: torch.Tensor, y: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: matmul(x, y, isa=isa)

    if device == "cpu":
        for isa in kernels.available_isas():
            name = isa.name.lower()
            cases.append(("matmul", name, mm(isa, ma, mb)))
            cases.append(("matmul", f"{name}/transposed", mm(isa, mb.mT, ma.mT)))
    else:  # every path has the same bits: compared with the vectors of the CPU paths
        cases.append(("matmul", f"{device}=scalar", mm(None, ma, mb)))
        cases.append(("matmul", f"{device}=scalar/transposed", mm(None, mb.mT, ma.mT)))
    cases.append(("matmul", "tape", lambda: execute(Op.MATMUL, None, [ma[0], mb[0]])))
    return cases


def _op_cases(dev: torch.device) -> list[Case]:
    a = _specials(_floats(1, (48, 33)))
    b = _floats(2, (33,))
    pos = _floats(3, (48, 33), -20, 20).abs()
    wide = _floats(4, (48, 33), -60, 60)
    g = _floats(5, (48, 33))
    idx = torch.from_numpy(
        np.random.Generator(np.random.PCG64(6)).integers(0, 40, (5, 7), dtype=np.int64)
    )
    table = _floats(7, (40, 9))
    big_int = torch.from_numpy(
        np.random.Generator(np.random.PCG64(8)).integers(-(2**30), 2**30, 64, dtype=np.int64)
    )

    sc = [_floats(15 + i, (), -12, 0).abs() for i in range(9)]
    seed_step = (torch.tensor(2**40 + 17, dtype=torch.int64), torch.tensor(9, dtype=torch.int64))
    take_idx = torch.from_numpy(
        np.random.Generator(np.random.PCG64(36)).integers(-1, 33, (7, 11), dtype=np.int64)
    )
    g64 = _floats(26, (64, 65))

    def op(o: Op, arg: Any, *xs: torch.Tensor) -> Callable[[], torch.Tensor]:
        on = [x.to(dev) for x in xs]
        return lambda: execute(o, arg, on)

    cases: list[Case] = [
        ("add", "torch", op(Op.ADD, None, a, b)),
        ("add", "int64", op(Op.ADD, None, big_int, big_int.flip(0))),
        ("sub", "torch", op(Op.SUB, None, a, b)),
        ("mul", "torch", op(Op.MUL, None, wide, a)),
        ("div", "torch", op(Op.DIV, None, a, wide)),
        ("neg", "torch", op(Op.NEG, None, a)),
        ("sqrt", "torch", op(Op.SQRT, None, pos)),
        ("maximum", "torch", op(Op.MAXIMUM, None, a, b)),
        ("minimum", "torch", op(Op.MINIMUM, None, a, b)),
        ("relu", "torch", op(Op.RELU, None, a)),
        ("relu_grad", "torch", op(Op.RELU_GRAD, None, a, g)),
        ("exp", "native", op(Op.EXP, None, _specials(_floats(9, (64, 65), -4, 7)))),
        ("log", "native", op(Op.LOG, None, _specials(_floats(10, (64, 65), -120, 120)))),
        ("tanh", "native", op(Op.TANH, None, _specials(_floats(11, (64, 65), -10, 5)))),
        ("sum", "native/axis0", op(Op.SUM, 0, wide)),
        ("sum", "native/axis1", op(Op.SUM, 1, wide)),
        ("sum", "native/axis1-long", op(Op.SUM, 1, _floats(12, (6, 1000), -30, 30))),
        ("max", "torch", op(Op.MAX, 1, a)),
        ("reshape", "torch", op(Op.RESHAPE, (33, 48), a)),
        ("permute", "torch", op(Op.PERMUTE, (1, 0), a)),
        ("expand", "torch", op(Op.EXPAND, (4, 33), b.reshape(1, 33))),
        ("onehot", "torch", op(Op.ONEHOT, 40, idx)),
        ("gather_rows", "torch", op(Op.GATHER_ROWS, None, table, idx)),
        ("to_f32", "torch", op(Op.TO_F32, None, big_int)),
        ("layer_norm", "native", op(Op.LAYER_NORM, 1e-5, _floats(30, (7, 3, 384), -6, 6))),
        ("layer_norm_grad", "native", op(Op.LAYER_NORM_GRAD, 1e-5, wide, g)),
        ("softmax", "native", op(Op.SOFTMAX, None, _floats(27, (3, 5, 70), -4, 6))),
        ("softmax", "native/masked", op(Op.SOFTMAX, None, _specials(_floats(28, (9, 33))))),
        ("softmax_grad", "native", op(Op.SOFTMAX_GRAD, None, _floats(29, (64, 65)).abs(), g64)),
        ("gelu", "native", op(Op.GELU, None, _specials(_floats(24, (64, 65), -12, 4)))),
        ("gelu_grad", "native", op(Op.GELU_GRAD, None, _specials(_floats(25, (64, 65))), g64)),
        ("adam_moment", "native", op(Op.ADAM_MOMENT, False, wide, g, sc[0], sc[1])),
        ("adam_moment", "native/square", op(Op.ADAM_MOMENT, True, pos, g, sc[2], sc[3])),
        ("adamw_param", "native", op(Op.ADAMW_PARAM, False, wide, g, pos, *sc[4:])),
        ("adamw_param", "native/decay", op(Op.ADAMW_PARAM, True, wide, g, pos, *sc[4:])),
        ("sigmoid", "native", op(Op.SIGMOID, None, _specials(_floats(31, (64, 65), -8, 8)))),
        ("gelu_erf", "native", op(Op.GELU_ERF, None, _specials(_floats(32, (64, 65), -6, 4)))),
        ("gelu_erf_grad", "native", op(Op.GELU_ERF_GRAD, None, _floats(33, (64, 65), -6, 4), g64)),
        ("sin", "native", op(Op.SIN, None, _specials(_floats(34, (64, 65), -10, 12)))),
        ("cos", "native", op(Op.COS, None, _specials(_floats(35, (64, 65), -10, 12)))),
        ("take", "torch", op(Op.TAKE, 1, a, take_idx)),
        ("amax", "torch", op(Op.AMAX, 0, a)),
        ("max_grad", "torch", op(Op.MAX_GRAD, 1, a, g[:, :1])),
        ("compare", "torch", op(Op.COMPARE, "le", a, b)),
        ("where", "torch", op(Op.WHERE, None, (a > 0).to(torch.int64), a, g)),
        ("cat", "torch", op(Op.CAT, 1, a, g, wide)),
        (
            "dropout_mask",
            "torch",
            op(Op.DROPOUT_MASK, (12345, 4194304, 1.3333333730697632, (40, 50)), *seed_step),
        ),
    ]
    return cases


def _committed() -> dict[str, str]:
    data = json.loads(VECTORS.read_text())
    if data.get("repops_version") != REPOPS_VERSION:
        raise ConformanceError(
            f"conformance vectors are for {data.get('repops_version')!r}, this is {REPOPS_VERSION}"
        )
    cases: dict[str, str] = data["cases"]
    return cases


def report(device: str = "cpu") -> list[CaseResult]:
    """Run every case on `device`; one result per (op, path).  A path "D=P" runs on device D
    and is compared with the committed vector of CPU path P."""
    want = _committed()
    out = []
    for op_name, path, fn in _cases(device):
        key = f"{op_name}/{path.split('=')[-1]}"
        try:
            got = tensor_hash(fn()).hex()
        except Exception as e:  # a crashing kernel is a failing kernel
            got = f"error: {type(e).__name__}: {e}"
        out.append(CaseResult(op_name, path, got == want.get(key), got, want.get(key)))
    return out


_passed = False


def require() -> None:
    """Raise ConformanceError (one line naming op and path) unless every case matches.

    Runs once per process (about a second); roles call it before they act.
    """
    global _passed
    if _passed:
        return
    bad = [r for r in report() if not r.ok]
    if bad:
        first = bad[0]
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ConformanceError(
            f"conformance self-test failed: op {first.op} on path {first.path} gives other "
            f"bits than the committed vector{more}; run `assay doctor`"
        )
    _passed = True


def refusal() -> str | None:
    """None when this machine conforms, else the one-line reason to refuse to act."""
    try:
        require()
    except ConformanceError as e:
        return str(e)
    return None


def doctor_lines() -> list[str]:
    """The report a person reads (`assay doctor`)."""
    results = report()
    isas = ", ".join(i.name.lower() for i in kernels.available_isas())
    lines = [
        f"{REPOPS_VERSION}: torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"kernel paths {isas} (using {kernels.selected_isa().name.lower()})",
        *(r.line() for r in results),
    ]
    bad = sum(not r.ok for r in results)
    lines.append(
        f"{len(results) - bad}/{len(results)} cases match: "
        + ("this machine conforms" if bad == 0 else "this machine must not train or judge")
    )
    return lines


def _write() -> None:
    cases = {f"{o}/{p}": tensor_hash(fn()).hex() for o, p, fn in _cases()}
    VECTORS.write_text(
        json.dumps(
            {
                "_generated": "python -m repops.conformance --write (only with a version bump)",
                "repops_version": REPOPS_VERSION,
                "cases": dict(sorted(cases.items())),
            },
            indent=1,
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="repops conformance self-test")
    ap.add_argument("--write", action="store_true", help="regenerate the committed vectors")
    args = ap.parse_args(argv)
    if args.write:
        _write()
        return 0
    lines = doctor_lines()
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if lines[-1].endswith("conforms") else 1


if __name__ == "__main__":
    sys.exit(main())
