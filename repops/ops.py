"""The closed operator vocabulary of repops and the one kernel that implements each op.

`Op` is the complete list of things a training tape may do.  Each member's docstring is
its semantics: exact math plus one specified rounding, so that any correct implementation
on any device gives identical bits.  Common rules:

* float32 elementwise ops broadcast like numpy; each output element is ONE IEEE-754
  binary32 operation, round-to-nearest-even, no FMA contraction, subnormals kept.
* Reductions use the fixed halving tree of `numerics.tree_sum`; transcendentals are the
  fixed float64 sequences of `numerics.exp/log/tanh` (each step one IEEE binary64
  operation, no contraction), rounded once to binary32.
* MATMUL (repops-2), for a (..., m, k) and b (..., k, n) (equal batch dims, or b 2-D):
  with KC = 128, P_c[i][j] = the binary32 fmaf chain from +0 over k index t in chunk c
  = [c KC, min((c+1) KC, k)) in increasing t (acc = fmaf(a[i][t], b[t][j], acc)), and
  C[i][j] = ((P_0 + P_1) + P_2) + ... in binary32 (C = P_0 for k <= KC, +0 for k = 0).
  Round-to-nearest-even, subnormals kept, inf/NaN per IEEE-754 (only the outputs whose
  row/column meet a non-finite value are affected).  Nothing is reassociated or split.
* NaN payloads are unspecified (hashing canonicalizes them); the sign of every zero is
  specified.

This module must never use a torch op whose rounding is unspecified (fused ops, float
reductions, libm transcendentals, torch softmax/layer_norm/gelu/var).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import torch

from repops import kernels, numerics, rng

Kernel = Callable[..., torch.Tensor]


class Op(enum.Enum):
    """Every operator a tape may contain (the value is the stable wire name).

    Each member's docstring (``Op.X.__doc__``) is its exact semantics.
    """

    def __new__(cls, value: str, doc: str) -> Op:
        obj = object.__new__(cls)
        obj._value_ = value
        obj.__doc__ = doc
        return obj

    INPUT = (
        "input",
        "A state or batch tensor named by `arg`; not an operator of the chain.",
    )
    CONST = (
        "const",
        "A constant tensor fixed by the program (`arg` indexes the tape's constants).",
    )

    ADD = (
        "add",
        "a + b (float32, one IEEE add; or int64, exact two's complement).",
    )
    SUB = (
        "sub",
        "a - b (float32, one IEEE subtraction).",
    )
    MUL = (
        "mul",
        "a * b (float32, one IEEE multiplication).",
    )
    DIV = (
        "div",
        "a / b (float32, one IEEE division).",
    )
    NEG = (
        "neg",
        "-a (exact sign flip, NaN stays NaN).",
    )
    SQRT = (
        "sqrt",
        "sqrt(a) (float32, correctly rounded IEEE square root; never torch's CPU sqrt).",
    )
    MAXIMUM = (
        "maximum",
        "a if (a > b or a is NaN) else b (elementwise, exact).",
    )
    MINIMUM = (
        "minimum",
        "a if (a < b or a is NaN) else b (elementwise, exact).",
    )
    RELU = (
        "relu",
        "+0 if a <= 0 else a (so relu(-0) = +0 and relu(NaN) = NaN).",
    )
    RELU_GRAD = (
        "relu_grad",
        "(x, g) -> g if x > 0 else +0: the derivative of RELU applied to g.",
    )
    EXP = (
        "exp",
        "e**a: float64 Cody-Waite reduction + degree-12 polynomial, rounded once.",
    )
    LOG = (
        "log",
        "ln a: float64 frexp + atanh series, rounded once; log 0 = -inf, log(<0) = NaN.",
    )
    TANH = (
        "tanh",
        "tanh a: float64 expm1-based sequence, rounded once; odd, tanh(+-0) = +-0.",
    )

    SUM = (
        "sum",
        "Sum over axis `arg` (kept as size 1) by the fixed halving tree of float32 adds.",
    )
    MAX = (
        "max",
        "Maximum over axis `arg` (kept), exact; NaN if any NaN; +0 for a zero maximum. "
        "Not differentiable: used only as the stabilising shift of softmax/logsumexp.",
    )

    GELU = (
        "gelu",
        "tanh-GELU: x3 = (x*x)*x; t = TANH(C2*(x + C1*x3)); (0.5*x)*(1 + t), binary32 ops "
        "in this order, C1 = f32(0.044715), C2 = f32(sqrt(2/pi)).",
    )
    GELU_GRAD = (
        "gelu_grad",
        "(x, g) -> g*(a + b): x2 = x*x; t as GELU; a = 0.5*(1 + t); "
        "b = ((0.5*x)*(1 - t*t))*(C2*(1 + C3*x2)), C3 = f32(0.134145).",
    )
    LAYER_NORM = (
        "layer_norm",
        "Over the last axis (C), eps = f32(`arg`), inv_c = f32(1/C): mu = SUM(a)*inv_c; "
        "xc = a - mu; var = SUM(xc*xc)*inv_c; rstd = 1/sqrt(var + eps); xc*rstd.",
    )
    LAYER_NORM_GRAD = (
        "layer_norm_grad",
        "(x, g) -> rstd*((g - SUM(g)*inv_c) - xhat*(SUM(g*xhat)*inv_c)), xhat and rstd "
        "recomputed from x as LAYER_NORM (eps = f32(`arg`)).",
    )
    SOFTMAX = (
        "softmax",
        "Over the last axis: mx = MAX (exact, +0 for zero, NaN if any NaN); e = EXP(a - mx); "
        "s = SUM(e) by the halving tree; e / s (binary32).",
    )
    SOFTMAX_GRAD = (
        "softmax_grad",
        "(y, g) -> y*(g - d), d = SUM(g*y) over the last axis by the halving tree (binary32).",
    )
    ADAM_MOMENT = (
        "adam_moment",
        "(m, g, b, c) -> b*m + c*g, or b*m + c*(g*g) when `arg` is true (b, c 0-dim); "
        "binary32, each product and the sum rounded separately, same shape as m.",
    )
    ADAMW_PARAM = (
        "adamw_param",
        "(p, m, v, bc1, bc2, eps, lr, wd) -> p - lr*((m/bc1) / (sqrt(v/bc2) + eps) + wd*p), "
        "the wd*p term only when `arg` is true; binary32, one rounding per operation in "
        "this order (m/bc1, v/bc2, sqrt, +eps, /, wd*p, +, lr*u, -).",
    )

    MATMUL = (
        "matmul",
        "a @ b: per output, KC = 128-long binary32 fmaf chains from +0 in increasing k, "
        "the chunk partials added left to right (module docstring; repops.matmul).",
    )

    RESHAPE = (
        "reshape",
        "Same elements in row-major order with shape `arg` (exact).",
    )
    PERMUTE = (
        "permute",
        "Axes permuted by `arg` (exact).",
    )
    EXPAND = (
        "expand",
        "Broadcast size-1 axes to shape `arg` (exact copies).",
    )

    ONEHOT = (
        "onehot",
        "int64 indices -> float32 one-hot over `arg` classes (+1 at the index, +0 elsewhere).",
    )
    GATHER_ROWS = (
        "gather_rows",
        "(table (V, C), idx int64 (...)) -> table[idx] of shape (..., C), exact copies.",
    )
    TO_F32 = (
        "to_f32",
        "int64 -> float32, round-to-nearest-even (exact below 2**24).",
    )

    # -- issue 13: vocabulary for bring-your-own-model graphs --------------------------
    SIGMOID = (
        "sigmoid",
        "1/(1 + e**-a): in float64 s = min(|a|, 110), e = EXP core(-s), d = 1 + e; 1/d "
        "for a >= 0 (and -0), e/d for a < 0; rounded once (numerics.sigmoid).",
    )
    GELU_ERF = (
        "gelu_erf",
        "x*Phi(x), Phi(x) = erfc(-x/sqrt 2)/2: float64, erf by its 40-term positive series "
        "for |x|/sqrt 2 < 2, erfc by the 60-term Laplace continued fraction otherwise, "
        "rounded once; gelu_erf(-inf) = -0 (numerics.gelu_erf).",
    )
    GELU_ERF_GRAD = (
        "gelu_erf_grad",
        "(x, g) -> g * f32(Phi(x) + x*exp(-x*x/2)/sqrt(2 pi)), the float64 pieces as "
        "GELU_ERF, rounded once, then one binary32 multiplication (numerics.gelu_erf_grad).",
    )
    SIN = (
        "sin",
        "sin a: float64 |a| reduced by k = rne(|a|*2/pi) against pi/2 in three pieces "
        "(33+33+53 bits), degree-17/18 Taylor polynomials, quadrant k mod 4, sign of a "
        "restored; rounded once; inf/NaN -> NaN (numerics.sin).",
    )
    COS = (
        "cos",
        "cos a: the range reduction and polynomials of SIN, cos(|a|), rounded once; "
        "inf/NaN -> NaN (numerics.cos).",
    )
    TAKE = (
        "take",
        "(x, idx) with idx an int64 CONST: out[b..., j...] = flat(x[b...])[idx[j...]] over "
        "the `arg` leading axes b of x, shape (*x.shape[:arg], *idx.shape); idx -1 gives "
        "+0 (exact copies: slices, im2col, pooling windows, padding).",
    )
    AMAX = (
        "amax",
        "Maximum over axis `arg` (kept), exactly as MAX, but differentiable: its "
        "derivative is MAX_GRAD (the gradient goes to the first maximal element).",
    )
    MAX_GRAD = (
        "max_grad",
        "(x, g) over axis `arg`, g of size 1 there: g at the first index where x equals "
        "its maximum (the first NaN if any), +0 elsewhere (exact).",
    )
    COMPARE = (
        "compare",
        "a OP b with OP = `arg` in gt, ge, lt, le, eq, ne (IEEE comparisons, NaN compares "
        "unequal); int64 1 or 0, broadcast like numpy (float32 or int64 operands).",
    )
    WHERE = (
        "where",
        "(c int64, a, b) -> a if c != 0 else b, broadcast like numpy (exact copies).",
    )
    DROPOUT_MASK = (
        "dropout_mask",
        "(seed, step) int64 0-dim, `arg` = (stream, threshold, scale, shape): float32 of "
        "`shape`, element i (row-major) = scale if (w >> 8) >= threshold else +0, with "
        "w = rng.bits32(seed, rng.bits32(stream, 0x5EED, step), i) (exact integer math).",
    )
    CAT = (
        "cat",
        "The inputs (one dtype, equal shapes but on axis `arg`) concatenated along axis "
        "`arg` in input order (exact copies).",
    )

    @property
    def is_leaf(self) -> bool:
        """True for INPUT and CONST: values proven by the state, batch or program."""
        return self in (Op.INPUT, Op.CONST)

    @property
    def is_elementwise(self) -> bool:
        return self in _ELEMENTWISE

    @property
    def is_reduction(self) -> bool:
        return self in (Op.SUM, Op.MAX, Op.AMAX)

    @property
    def is_matmul(self) -> bool:
        return self is Op.MATMUL


_ELEMENTWISE = frozenset(
    {
        Op.ADD,
        Op.SUB,
        Op.MUL,
        Op.DIV,
        Op.NEG,
        Op.SQRT,
        Op.MAXIMUM,
        Op.MINIMUM,
        Op.RELU,
        Op.RELU_GRAD,
        Op.EXP,
        Op.LOG,
        Op.TANH,
        Op.TO_F32,
        Op.ADAM_MOMENT,
        Op.ADAMW_PARAM,
        Op.GELU,
        Op.GELU_GRAD,
        Op.SIGMOID,
        Op.GELU_ERF,
        Op.GELU_ERF_GRAD,
        Op.SIN,
        Op.COS,
        Op.COMPARE,
        Op.WHERE,
    }
)


def _maximum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where((a > b) | torch.isnan(a), a, b)


def _minimum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where((a < b) | torch.isnan(a), a, b)


def _relu(a: torch.Tensor) -> torch.Tensor:
    if not a.is_cpu or a.dtype != torch.float32:
        return torch.where(a <= 0, torch.zeros((), dtype=a.dtype, device=a.device), a)
    xs = a.contiguous()
    out = torch.empty_like(xs)
    rc = kernels.lib().repops_relu(xs.data_ptr(), out.data_ptr(), xs.numel())
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_relu failed with code {rc}")
    return out


def _relu_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    if not x.is_cpu or x.shape != g.shape or x.dtype != torch.float32 or g.dtype != x.dtype:
        return torch.where(x > 0, g, torch.zeros((), dtype=g.dtype, device=g.device))
    xs, gs = x.contiguous(), g.contiguous()
    out = torch.empty_like(xs)
    rc = kernels.lib().repops_relu_grad(xs.data_ptr(), gs.data_ptr(), out.data_ptr(), xs.numel())
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_relu_grad failed with code {rc}")
    return out


def _max(a: torch.Tensor, axis: int) -> torch.Tensor:
    # amax is exact; "+ 0.0" makes a zero maximum +0 whichever zero the kernel picked.
    return torch.amax(a, dim=axis, keepdim=True) + 0.0


_COMPARE: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "gt": torch.gt,
    "ge": torch.ge,
    "lt": torch.lt,
    "le": torch.le,
    "eq": torch.eq,
    "ne": torch.ne,
}


def _where(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(c != 0, a, b)


def _dropout_mask(seed: torch.Tensor, step: torch.Tensor, arg: Any) -> torch.Tensor:
    if not seed.is_cpu:
        return dropout_mask_torch(seed, step, arg)
    stream, threshold, scale, shape = arg
    n = 1
    for d in shape:
        n *= int(d)
    st = rng.bits32_int(int(stream), 0x5EED, int(step.item()))
    out = torch.empty(tuple(shape), dtype=torch.float32)
    keys = rng.round_keys(int(seed.item()), st)
    rc = kernels.lib().repops_dropout_mask(*keys, int(threshold), float(scale), out.data_ptr(), n)
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_dropout_mask failed with code {rc}")
    return out


def dropout_mask_torch(seed: torch.Tensor, step: torch.Tensor, arg: Any) -> torch.Tensor:
    """DROPOUT_MASK as torch integer ops (any device; the reference of the native kernel)."""
    stream, threshold, scale, shape = arg
    n = 1
    for d in shape:
        n *= int(d)
    st = rng.bits32(int(stream), 0x5EED, step.reshape(1).to(torch.int64))
    c = torch.arange(n, dtype=torch.int64, device=seed.device)
    w = rng.bits32(int(seed.item()), int(st.item()), c)
    keep = torch.bitwise_right_shift(w, 8) >= int(threshold)
    val = torch.tensor(float(scale), dtype=torch.float32, device=seed.device)
    zero = torch.zeros((), dtype=torch.float32, device=seed.device)
    return torch.where(keep, val, zero).reshape(tuple(shape))


def _onehot(idx: torch.Tensor, classes: int) -> torch.Tensor:
    ar = torch.arange(classes, device=idx.device, dtype=idx.dtype)
    return (idx.unsqueeze(-1) == ar).to(torch.float32)


def _gather_rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return table.index_select(0, idx.reshape(-1)).reshape(*idx.shape, table.shape[1])


KERNELS: dict[Op, Callable[[Any, list[torch.Tensor]], torch.Tensor]] = {
    Op.ADD: lambda arg, x: torch.add(x[0], x[1]),
    Op.SUB: lambda arg, x: torch.sub(x[0], x[1]),
    Op.MUL: lambda arg, x: torch.mul(x[0], x[1]),
    Op.DIV: lambda arg, x: torch.div(x[0], x[1]),
    Op.NEG: lambda arg, x: torch.neg(x[0]),
    Op.SQRT: lambda arg, x: numerics.sqrt(x[0]),
    Op.MAXIMUM: lambda arg, x: _maximum(x[0], x[1]),
    Op.MINIMUM: lambda arg, x: _minimum(x[0], x[1]),
    Op.RELU: lambda arg, x: _relu(x[0]),
    Op.RELU_GRAD: lambda arg, x: _relu_grad(x[0], x[1]),
    Op.EXP: lambda arg, x: numerics.exp(x[0]),
    Op.LOG: lambda arg, x: numerics.log(x[0]),
    Op.TANH: lambda arg, x: numerics.tanh(x[0]),
    Op.SUM: lambda arg, x: numerics.tree_sum(x[0], arg),
    Op.MAX: lambda arg, x: _max(x[0], arg),
    Op.LAYER_NORM: lambda arg, x: numerics.layer_norm_core(x[0], float(arg)),
    Op.LAYER_NORM_GRAD: lambda arg, x: numerics.layer_norm_grad(x[0], x[1], float(arg)),
    Op.SOFTMAX: lambda arg, x: numerics.softmax(x[0]),
    Op.SOFTMAX_GRAD: lambda arg, x: numerics.softmax_grad(x[0], x[1]),
    Op.GELU: lambda arg, x: numerics.gelu(x[0]),
    Op.GELU_GRAD: lambda arg, x: numerics.gelu_grad(x[0], x[1]),
    Op.ADAM_MOMENT: lambda arg, x: numerics.adam_moment(x[0], x[1], x[2], x[3], bool(arg)),
    Op.ADAMW_PARAM: lambda arg, x: numerics.adamw_param(x[0], x[1], x[2], x[3:8], bool(arg)),
    Op.MATMUL: lambda arg, x: numerics.matmul(x[0], x[1]),
    Op.RESHAPE: lambda arg, x: x[0].reshape(arg),
    Op.PERMUTE: lambda arg, x: x[0].permute(arg),
    Op.EXPAND: lambda arg, x: x[0].expand(arg),
    Op.ONEHOT: lambda arg, x: _onehot(x[0], arg),
    Op.GATHER_ROWS: lambda arg, x: _gather_rows(x[0], x[1]),
    Op.TO_F32: lambda arg, x: x[0].to(torch.float32),
    Op.SIGMOID: lambda arg, x: numerics.sigmoid(x[0]),
    Op.GELU_ERF: lambda arg, x: numerics.gelu_erf(x[0]),
    Op.GELU_ERF_GRAD: lambda arg, x: numerics.gelu_erf_grad(x[0], x[1]),
    Op.SIN: lambda arg, x: numerics.sin(x[0]),
    Op.COS: lambda arg, x: numerics.cos(x[0]),
    Op.TAKE: lambda arg, x: numerics.take(x[0], x[1], arg),
    Op.AMAX: lambda arg, x: _max(x[0], arg),
    Op.MAX_GRAD: lambda arg, x: numerics.max_grad(x[0], x[1], arg),
    Op.COMPARE: lambda arg, x: _COMPARE[arg](x[0], x[1]).to(torch.int64),
    Op.WHERE: lambda arg, x: _where(x[0], x[1], x[2]),
    Op.CAT: lambda arg, x: torch.cat(x, dim=arg),
    Op.DROPOUT_MASK: lambda arg, x: _dropout_mask(x[0], x[1], arg),
}


def execute(op: Op, arg: Any, inputs: list[torch.Tensor]) -> torch.Tensor:
    """Run one non-leaf op on its input tensors (FTZ/DAZ cleared on every thread first)."""
    numerics.fp_guard()
    return KERNELS[op](arg, inputs)
