"""Run repops' non-CPU ("GPU") code path on CPU tensors and audit every torch call it makes.

On a GPU the repops ops do not take their native C++ kernels (`x.is_cpu` is false): they
run torch "twins" (`numerics.*_torch`, the torch branches of `repops.ops`) and matmul goes
to `repops.cuda_kernels.matmul` (`a.is_cuda`).  `gpu_path()` makes every tensor answer
`is_cpu` False and `is_cuda` True while the tensors stay on the CPU, routes the CUDA matmul
to `CUDA_MATMUL_STANDIN`, and records each torch function called from repops op code (a
call with a frame of `OP_MODULES` on its stack) with the dtypes of its tensor arguments.

`problems(rec)` lists every recorded call that is not in `ALLOWED` (torch functions whose
result is fixed per element by IEEE-754 binary32/binary64 or integer/bit/data-movement
semantics, so torch's CUDA kernels must give the bits its CPU kernels give) or that breaks
the runtime condition of its entry in `GUARDS` (an add with alpha, a float-to-integer cast
of a NaN or out-of-range value, a float sum).  What remains assumed: torch's CUDA kernels
for the allowed functions are IEEE-exact (no fast-math; contraction cannot reach across
two kernels, and no allowed function computes a*b + c in one kernel).
"""

from __future__ import annotations

import math
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import CodeType
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

import repops.cuda_kernels
from repops import kernels
from tests.support import cuda_emu

_IS_CPU = torch._C.TensorBase.__dict__["is_cpu"]
_IS_CUDA = torch._C.TensorBase.__dict__["is_cuda"]

# Frames of these modules are "repops op code": a torch call with one of them on its stack
# (directly, or through a helper such as repops.rng or a test's injected twin) is recorded.
OP_MODULES = frozenset({"repops.ops", "repops.numerics", "repops.matmul", "repops.cuda_kernels"})


# THE stand-in for `repops.cuda_kernels.matmul(a, b, kc)` on the GPU path: the host
# emulation of the CUDA kernel (its own arithmetic header, run block by block and phase by
# phase), so the GPU path's matmuls are the CUDA kernel's arithmetic, not the CPU kernel's.
CUDA_MATMUL_STANDIN: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] = cuda_emu.matmul


# ----------------------------------------------------------------------------------------
# The allowlist: qualified name -> why its result is exactly determined per element.
# Names: "torch.f" for torch.f, "Tensor.m" for a Tensor method or operator, "Tensor.p"
# for a Tensor property getter.
# ----------------------------------------------------------------------------------------

_META = "metadata, no tensor value computed"
_MOVE = "data movement: copies bit patterns, computes nothing"
_NEW = "creation: fill values converted once on the host (RNE), or integers"
_CMP = "IEEE comparison, exact (NaN compares unequal); bool result"
_BIT = "integer/bitwise op: exact two's complement, same on every device"

# The additions and subtractions: each takes an `alpha` (guarded: see GUARDS).
_ADD = ("torch.add", "Tensor.add", "Tensor.__radd__")
_SUB = ("torch.sub", "Tensor.sub", "Tensor.__rsub__", "torch.rsub")

ALLOWED: dict[str, str] = {
    # metadata
    **dict.fromkeys(
        (
            "Tensor.is_cpu",
            "Tensor.is_cuda",
            "Tensor.device",
            "Tensor.dtype",
            "Tensor.shape",
            "Tensor.dim",
            "Tensor.numel",
            "Tensor.size",
            "Tensor.stride",
            "Tensor.element_size",
            "Tensor.is_floating_point",
        ),
        _META,
    ),
    # data movement
    **dict.fromkeys(
        (
            "Tensor.reshape",
            "Tensor.view",
            "Tensor.permute",
            "Tensor.t",
            "Tensor.mT",
            "Tensor.expand",
            "Tensor.unsqueeze",
            "Tensor.squeeze",
            "Tensor.narrow",
            "Tensor.flip",
            "Tensor.contiguous",
            "Tensor.clone",
            "Tensor.__getitem__",
            "Tensor.index_select",
            "torch.index_select",
            "torch.cat",
            "torch.stack",
            "torch.where",
            "Tensor.item",
            "Tensor.cpu",
        ),
        _MOVE,
    ),
    **dict.fromkeys(
        (
            "torch.tensor",
            "torch.zeros",
            "torch.ones",
            "torch.full",
            "torch.zeros_like",
            "torch.ones_like",
            "torch.full_like",
            "torch.arange",  # integers only (guard): float arange is start + i*step, one FMA
        ),
        _NEW,
    ),
    # casts (guarded: see GUARDS)
    "Tensor.to": "cast: widening exact, float64->float32 and int->float RNE on every device; "
    "float->int only when finite and in range (guard), else undefined",
    # binary32/binary64 basic operations, correctly rounded by IEEE-754 (CUDA: nvcc's
    # defaults -prec-div=true -prec-sqrt=true, no fast-math)
    **dict.fromkeys(
        _ADD, "one IEEE add per element (alpha only +-1: guard; a*alpha + b would be one FMA)"
    ),
    **dict.fromkeys(_SUB, "one IEEE subtraction per element (alpha only +-1: guard)"),
    **dict.fromkeys(
        ("torch.mul", "Tensor.mul", "Tensor.__rmul__"), "one IEEE multiplication per element"
    ),
    **dict.fromkeys(
        ("torch.div", "Tensor.div", "Tensor.__truediv__"),
        "one IEEE division per element (no rounding_mode on floats; a Python-number divisor "
        "only a power of two, as CUDA multiplies by its reciprocal: guard)",
    ),
    "Tensor.__rdiv__": "s / x is computed by torch as reciprocal(x) * s: one IEEE division "
    "only when s is +-1 (guard)",
    "Tensor.__rtruediv__": "as Tensor.__rdiv__ (s must be +-1: guard)",
    "torch.sqrt": "IEEE square root, correctly rounded (-prec-sqrt=true on CUDA)",
    "torch.neg": "sign flip, exact",
    "Tensor.neg": "sign flip, exact",
    "Tensor.__neg__": "sign flip, exact",
    "torch.abs": "sign clear, exact",
    "torch.copysign": "sign copy, exact",
    "torch.signbit": "sign bit, exact",
    "torch.round": "round half to even to an integer value, exact (decimals only 0: guard)",
    "torch.frexp": "exact mantissa/exponent split of finite values (the exponent of inf/NaN "
    "is unspecified: log_torch discards those lanes)",
    "torch.remainder": "integers: exact; floats: fmod (exact) then one IEEE add of the "
    "divisor when the signs differ, the same formula in torch's CPU and CUDA kernels",
    "torch.nan_to_num": "exact replacement of NaN/inf by given values",
    "torch.clamp": "exact selection between x and nonzero number bounds (guard), NaN "
    "propagates on both",
    "torch.isnan": "classification, exact",
    "torch.isinf": "classification, exact",
    "torch.isfinite": "classification, exact",
    # selections: exact, ties of signed zeros resolved by the callers (+0.0 after amax)
    "torch.amax": "maximum: exact selection, NaN propagates; a zero maximum's sign is "
    "unspecified across devices, so callers add +0.0 or compare with ==",
    "torch.amin": "minimum: exact selection (used on int64 indices)",
    "torch.sum": "integers/bool only (guard): two's complement addition is associative, so "
    "any reduction order gives the same integer",
    # comparisons and integer/bit ops
    **dict.fromkeys(
        (
            "torch.gt",
            "torch.ge",
            "torch.lt",
            "torch.le",
            "torch.eq",
            "torch.ne",
            "Tensor.gt",
            "Tensor.ge",
            "Tensor.lt",
            "Tensor.le",
            "Tensor.eq",
            "Tensor.ne",
            "Tensor.__eq__",
            "Tensor.__ne__",
        ),
        _CMP,
    ),
    **dict.fromkeys(
        (
            "torch.bitwise_and",
            "torch.bitwise_or",
            "torch.bitwise_xor",
            "torch.bitwise_not",
            "torch.bitwise_left_shift",
            "torch.bitwise_right_shift",
            "Tensor.__and__",
            "Tensor.__or__",
            "Tensor.__xor__",
            "Tensor.__invert__",
            "Tensor.logical_and",
            "Tensor.logical_or",
            "Tensor.logical_not",
        ),
        _BIT,
    ),
    # the project's own CUDA kernel: its bits are the subject of bench/gpu_check.sh and the
    # host emulator, not of this audit
    "repops.cuda_kernels.matmul": "the project's repops-2 CUDA kernel (checked elsewhere)",
}

_FLOATS = (torch.float32, torch.float64)
_OK_DTYPES = frozenset(
    {
        torch.float32,
        torch.float64,
        torch.int64,
        torch.int32,
        torch.int16,
        torch.int8,
        torch.uint8,
        torch.bool,
    }
)


def _tensors(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for a in (*args, *kwargs.values()):
        if isinstance(a, torch.Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(x for x in a if isinstance(x, torch.Tensor))
    return out


def _alpha(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    a = kwargs.get("alpha", 1)
    return None if a in (1, -1) else f"alpha={a!r} (a + alpha*b is one FMA on CUDA)"


def _rdiv(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    s = args[1] if len(args) > 1 else None
    if isinstance(s, (int, float)) and not isinstance(s, bool) and s in (1, -1):
        return None
    return f"scalar {s!r} / tensor (torch computes reciprocal(x) * s: two roundings)"


def _pow2(s: float) -> bool:
    """True for +-2**e with 2**-126 <= 2**e <= 2**126 (1/s is then exact in binary32)."""
    if not math.isfinite(s) or s == 0:
        return False
    m, e = math.frexp(abs(s))
    return m == 0.5 and -125 <= e <= 127


def _div(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    mode = kwargs.get("rounding_mode")
    floats = any(t.dtype.is_floating_point for t in _tensors(args, {}))
    if mode is not None and floats:
        return f"rounding_mode={mode!r} on floats"
    d = args[1] if len(args) > 1 else kwargs.get("other")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and floats and not _pow2(d):
        # torch's CUDA div_true_kernel: a CPU-scalar divisor is applied as a * (1/b)
        return f"tensor / scalar {d!r} (CUDA computes x * (1/s): two roundings)"
    return None


def _shift(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    x, k = args[0], args[1] if len(args) > 1 else kwargs.get("other")
    bits = torch.iinfo(x.dtype).bits if isinstance(x, torch.Tensor) else 64
    if isinstance(k, int) and 0 <= k < bits:
        return None
    return f"shift by {k!r} (only a constant in [0, {bits}) is specified alike everywhere)"


def _clamp(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    bounds = [*args[1:3], kwargs.get("min"), kwargs.get("max")]
    if any(isinstance(b, torch.Tensor) or (b is not None and b == 0) for b in bounds):
        return "a zero or tensor bound (which zero max/min pick is unspecified)"
    return None


_CREATE = ("torch.tensor", "torch.zeros", "torch.ones", "torch.full", "torch.arange", "torch.empty")


def _on_device(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    if kwargs.get("device") is None:
        return "created without device= (a CPU tensor on a GPU: a CPU-scalar operand)"
    return None


def _round(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    d = kwargs.get("decimals", 0)
    return None if d == 0 else f"decimals={d!r} (scales by 10**d: extra roundings)"


def _int_only(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    dt = kwargs.get("dtype")
    floats = [t.dtype for t in _tensors(args, {}) if t.dtype.is_floating_point]
    if floats or (dt is not None and dt.is_floating_point):
        return f"float reduction ({floats or dt}): its order (and so its rounding) is unspecified"
    return None


def _target_dtype(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.dtype | None:
    if isinstance(kwargs.get("dtype"), torch.dtype):
        return kwargs["dtype"]  # type: ignore[no-any-return]
    for a in args[1:]:
        if isinstance(a, torch.dtype):
            return a
        if isinstance(a, torch.Tensor):
            return a.dtype
    return None


def _cast(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    x, dt = args[0], _target_dtype(args, kwargs)
    if dt is None or not x.dtype.is_floating_point or dt.is_floating_point or dt is torch.bool:
        return None
    if x.numel() == 0:
        return None
    lim = float(2 ** (torch.iinfo(dt).bits - 1))
    bad = ~torch.isfinite(x) | (x.abs() >= lim)
    if bool(bad.any()):
        v = float(x[bad].reshape(-1)[0])
        return f"{x.dtype}->{dt} of {v!r} (NaN/out of range: undefined, differs by device)"
    return None


def _arange(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    dt = kwargs.get("dtype")
    if (dt is not None and dt.is_floating_point) or any(isinstance(a, float) for a in args):
        return "float arange (start + i*step: one FMA on CUDA)"
    return _on_device(args, kwargs)


# Arithmetic whose floating tensor operands must share one dtype (no implicit promotion:
# a float64 0-dim tensor meeting float32 would be rounded by the type-promotion rules).
ARITHMETIC = frozenset(
    {
        *_ADD,
        *_SUB,
        "torch.mul",
        "Tensor.mul",
        "Tensor.__rmul__",
        "torch.div",
        "Tensor.div",
        "Tensor.__truediv__",
        "Tensor.__rdiv__",
        "Tensor.__rtruediv__",
        "torch.remainder",
        "torch.copysign",
        "torch.clamp",
    }
)

GUARDS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], str | None]] = {
    **dict.fromkeys(_CREATE, _on_device),
    "torch.arange": _arange,
    **dict.fromkeys((*_ADD, *_SUB), _alpha),
    "Tensor.__rdiv__": _rdiv,
    "Tensor.__rtruediv__": _rdiv,
    "torch.div": _div,
    "Tensor.div": _div,
    "Tensor.__truediv__": _div,
    "torch.round": _round,
    "torch.clamp": _clamp,
    "torch.bitwise_left_shift": _shift,
    "torch.bitwise_right_shift": _shift,
    "torch.sum": _int_only,
    "Tensor.to": _cast,
}


# ----------------------------------------------------------------------------------------
# Host computations of allowed functions whose torch CPU kernel is NOT IEEE-exact, while
# the CUDA kernel is: run in their place, so that the CPU run shows what the device gives.
# ----------------------------------------------------------------------------------------


def ieee_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root of a float32/float64 tensor (numpy: sqrtps/sqrtpd).
    torch's vectorised CPU sqrt is off by one ulp on about 1 in 6 float32 inputs; CUDA's
    sqrt (nvcc -prec-sqrt=true, torch's default) is correctly rounded."""
    if x.dtype not in _FLOATS:
        raise TypeError(f"ieee_sqrt of {x.dtype}")
    with np.errstate(invalid="ignore"):
        return torch.from_numpy(np.sqrt(x.detach().contiguous().numpy()))


HOST_IEEE: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {"torch.sqrt": ieee_sqrt}


# ----------------------------------------------------------------------------------------
# The mode
# ----------------------------------------------------------------------------------------


def qualified_name(func: Any) -> str:
    """'torch.add', 'Tensor.add', 'Tensor.is_cpu', 'torch.nn.functional.relu', ..."""
    owner: Any = getattr(func, "__self__", None)
    if type(owner).__name__ in ("getset_descriptor", "property", "member_descriptor"):
        return f"Tensor.{owner.__name__}"  # a property getter
    qn = str(getattr(func, "__qualname__", None) or getattr(func, "__name__", repr(func)))
    cls, _, name = qn.rpartition(".")
    if cls == "_VariableFunctionsClass":
        return f"torch.{name}"
    if cls in ("TensorBase", "Tensor"):
        return f"Tensor.{name}"
    mod = getattr(func, "__module__", None) or "?"
    return f"{mod}.{qn}"


@dataclass(frozen=True)
class Call:
    """One kind of recorded call: name, dtypes of its tensor arguments, repops call site."""

    name: str
    dtypes: tuple[str, ...]
    site: str


class GpuPathMode(TorchFunctionMode):
    """Answers is_cpu False / is_cuda True and records torch calls made from op code."""

    def __init__(self) -> None:
        super().__init__()
        self.fake = True
        self.calls: Counter[Call] = Counter()
        self.violations: Counter[tuple[Call, str]] = Counter()
        self.native: Counter[str] = Counter()  # native symbols used on the GPU path
        self._op_code: dict[CodeType, bool] = {}

    def _site(self) -> str | None:
        """'repops/numerics.py:123 exp_torch' of the innermost op-code frame, or None."""
        f = sys._getframe(2)
        cache = self._op_code
        while f is not None:
            code = f.f_code
            hit = cache.get(code)
            if hit is None:
                hit = f.f_globals.get("__name__") in OP_MODULES
                cache[code] = hit
            if hit:
                name = f.f_globals["__name__"].replace(".", "/")
                return f"{name}.py:{f.f_lineno} {code.co_name}"
            f = f.f_back  # type: ignore[assignment]
        return None

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        owner = getattr(func, "__self__", None)
        if self.fake:
            site = self._site()
            name = qualified_name(func)
            if site is not None:
                self._record(name, args, kwargs, site)
            if owner is _IS_CPU:
                return False
            if owner is _IS_CUDA:
                return True
            host = HOST_IEEE.get(name)
            if host is not None and not kwargs and len(args) == 1:
                return host(args[0])
        return func(*args, **kwargs)

    def _record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], site: str) -> None:
        ts = _tensors(args, kwargs)
        call = Call(name, tuple(str(t.dtype).removeprefix("torch.") for t in ts), site)
        self.calls[call] += 1
        if name not in ALLOWED:
            self.violations[(call, "not in the allowlist")] += 1
            return
        odd = sorted({str(t.dtype) for t in ts if t.dtype not in _OK_DTYPES})
        if odd:
            self.violations[(call, f"dtype {', '.join(odd)}")] += 1
        if name in ARITHMETIC and len({t.dtype for t in ts if t.dtype.is_floating_point}) > 1:
            self.violations[(call, "mixed float dtypes (implicit promotion)")] += 1
        guard = GUARDS.get(name)
        why = guard(args, kwargs) if guard is not None else None
        if why is not None:
            self.violations[(call, why)] += 1

    @contextmanager
    def real_devices(self) -> Iterator[None]:
        """Inside: tensors answer is_cpu/is_cuda truthfully and nothing is recorded."""
        old = self.fake
        self.fake = False
        try:
            yield
        finally:
            self.fake = old


@contextmanager
def gpu_path(
    matmul: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor] | None = None,
) -> Iterator[GpuPathMode]:
    """Make repops take its non-CPU paths on CPU tensors; yields the recording mode.

    `matmul(a, b, kc)` stands in for the CUDA kernel (default `CUDA_MATMUL_STANDIN`); it
    runs with the real device answers and unrecorded.
    """
    impl = matmul if matmul is not None else CUDA_MATMUL_STANDIN
    mode = GpuPathMode()

    def standin(a: torch.Tensor, b: torch.Tensor, kc: int) -> torch.Tensor:
        site = mode._site()
        mode._record("repops.cuda_kernels.matmul", (a, b), {}, site or "?")
        with mode.real_devices():
            return impl(a, b, kc)

    real_lib = kernels.lib

    class _Lib:  # the native library, counting the symbols op code looks up
        def __getattr__(self, sym: str) -> Any:
            if mode.fake and mode._site() is not None:
                mode.native[sym] += 1
            return getattr(real_lib(), sym)

    proxy = _Lib()
    orig = repops.cuda_kernels.matmul
    repops.cuda_kernels.matmul = standin
    kernels.lib = lambda: proxy  # type: ignore[assignment,return-value]
    try:
        with mode:
            yield mode
    finally:
        repops.cuda_kernels.matmul = orig
        kernels.lib = real_lib


# The one native symbol the GPU path may use: fp_guard's clearing of FTZ/DAZ on the host
# threads (no tensor computed).
NATIVE_ALLOWED = frozenset({"repops_sanitize_fp"})


def problems(mode: GpuPathMode) -> list[str]:
    """One line per kind of recorded call that is not allowed (empty: the path is clean),
    including any native CPU kernel the GPU path reached."""
    out = [
        f"{c.name}({', '.join(c.dtypes)}) at {c.site}: {why} [x{n}]"
        for (c, why), n in sorted(mode.violations.items(), key=lambda kv: kv[0][0].site)
    ]
    out += [
        f"native CPU kernel {sym} called on the GPU path [x{n}]"
        for sym, n in sorted(mode.native.items())
        if sym not in NATIVE_ALLOWED
    ]
    return out


def summary(mode: GpuPathMode) -> list[str]:
    """Every recorded (name, dtypes) with its count, most frequent first."""
    agg: Counter[tuple[str, tuple[str, ...]]] = Counter()
    for c, n in mode.calls.items():
        agg[(c.name, c.dtypes)] += n
    return [f"{n:8d}  {name}({', '.join(dts)})" for (name, dts), n in agg.most_common()]


__all__ = [
    "ALLOWED",
    "ARITHMETIC",
    "CUDA_MATMUL_STANDIN",
    "GUARDS",
    "HOST_IEEE",
    "NATIVE_ALLOWED",
    "OP_MODULES",
    "Call",
    "GpuPathMode",
    "gpu_path",
    "ieee_sqrt",
    "problems",
    "qualified_name",
    "summary",
]


def main() -> int:
    """`python -m tests.support.gpu_path`: the conformance cases and two mlp/gpt steps on
    the GPU path; prints every recorded call, then the problems (exit 1 if any)."""
    from jobspec.factory import gpt_spec, mlp_spec
    from repops import conformance, data
    from repops.hashing import state_hash
    from repops.program import build_program, init_state, train

    lines: list[str] = []
    with gpu_path() as mode:
        bad = [r.line() for r in conformance.report() if not r.ok]
    for spec, build in ((mlp_spec(), data.build_digits), (gpt_spec(), data.build_stdlib_chars)):
        prog, ds = build_program(spec), data.Dataset.from_bytes(build())
        want = state_hash(train(prog, init_state(prog), ds, 2)[0])
        with gpu_path() as m2:
            got = state_hash(train(prog, init_state(prog), ds, 2)[0])
        mode.calls.update(m2.calls)
        mode.violations.update(m2.violations)
        mode.native.update(m2.native)
        if got != want:
            bad.append(f"{prog.model_name}: state hash after 2 steps differs from the CPU's")
    lines += summary(mode)
    found = [*bad, *problems(mode)]
    lines.append(f"{len(found)} problems" + "".join(f"\n  {p}" for p in found))
    sys.stdout.write("\n".join(lines) + "\n")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
