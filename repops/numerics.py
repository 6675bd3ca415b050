"""Kernels of the reproducible operators: exact math plus one specified rounding.

Every function here is a fixed sequence of IEEE-754 operations (round-to-nearest-even,
no FMA contraction except matmul's specified fmaf chains, subnormals kept), so the bits do
not depend on device, BLAS, blocking or thread count.  On CPU, matmul and exp/log/tanh
run in the native kernels of `repops.kernels` (which set and restore FTZ/DAZ themselves);
the `*_torch` twins below are the same sequences as torch calls (one basic operation per
call), used on CUDA and as the reference the native kernels are tested against.

This module must never call a torch op whose rounding is unspecified: no float32/float64
`sum`/`mean`/`cumsum` on values that matter, no libm transcendentals, no fused ops
(addcmul, lerp, softmax, layer_norm, gelu, var), no library GEMM.  In the twins, no
`python number / tensor` but +-1 (torch computes it as reciprocal(x) * s) and no
`tensor / python number` other than a power of two (torch's CUDA division multiplies by
the reciprocal of a CPU scalar); `tests/support/gpu_path.py` audits every call.
"""

from __future__ import annotations

import math

import torch

from repops import kernels
from repops.matmul import KC, matmul

__all__ = [
    "KC",
    "adam_moment",
    "adamw_param",
    "exp",
    "fp_guard",
    "gelu",
    "gelu_grad",
    "layer_norm_core",
    "layer_norm_grad",
    "log",
    "matmul",
    "softmax",
    "softmax_grad",
    "sqrt",
    "tanh",
    "tree_sum",
]  # + *_torch twins

# ----------------------------------------------------------------------------------------
# Matmul: repops-2 chunked fmaf chains (KC = 128), defined and implemented in
# `repops.matmul`.
# ----------------------------------------------------------------------------------------


def fp_guard() -> None:
    """Clear FTZ/DAZ and force round-to-nearest on this thread and on every thread of the
    OpenMP pool torch's elementwise ops run on (MXCSR is per thread: FTZ set before torch
    started its pool would otherwise leak into the workers)."""
    torch.set_flush_denormal(False)
    kernels.lib().repops_sanitize_fp(torch.get_num_threads())


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """2.0**e in float64 exactly, for int tensors with -1022 <= e <= 1023 (bit construction)."""
    return torch.bitwise_left_shift(e.to(torch.int64) + 1023, 52).view(torch.float64)


# ----------------------------------------------------------------------------------------
# Reductions: a fixed halving tree in float32.
#
# SUM over an axis of length L: with P the smallest power of two >= L, level 1 computes
# y_i = x_i + x_{i+P/2} for i + P/2 < L and y_i = x_i otherwise (i < P/2), then recurses on
# y (length P/2) until one element is left.  Every addition is one binary32 IEEE add, so
# the bits are fixed by the tree shape alone.  L = 0 gives +0.
# ----------------------------------------------------------------------------------------


def tree_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed-tree float32 sum over `dim`, keepdim=True (native on CPU)."""
    dim = dim % x.dim()
    shape = tuple(x.shape)
    length = shape[dim]
    if not x.is_cpu or x.dtype != torch.float32 or length == 0:
        return tree_sum_torch(x, dim)
    if length == 1:  # the tree of one element is that element: no operation
        return x.contiguous()
    src = x.contiguous()
    outer = math.prod(shape[:dim])
    inner = math.prod(shape[dim + 1 :])
    out = torch.empty((*shape[:dim], 1, *shape[dim + 1 :]), dtype=torch.float32)
    rc = kernels.lib().repops_tree_sum(
        src.data_ptr(), out.data_ptr(), outer, length, inner, torch.get_num_threads()
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_tree_sum failed with code {rc}")
    return out


def tree_sum_torch(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed-tree float32 sum over `dim`, keepdim=True, as torch adds."""
    dim = dim % x.dim()
    length = x.shape[dim]
    if length == 0:
        shape = list(x.shape)
        shape[dim] = 1
        return torch.zeros(shape, dtype=x.dtype, device=x.device)
    while length > 1:
        half = 1 << ((length - 1).bit_length() - 1)  # P/2
        head = x.narrow(dim, 0, half)
        tail = x.narrow(dim, half, length - half)
        if length - half == half:
            x = head + tail
        else:
            paired = head.narrow(dim, 0, length - half) + tail
            x = torch.cat([paired, head.narrow(dim, length - half, 2 * half - length)], dim=dim)
        length = half
    return x


# ----------------------------------------------------------------------------------------
# Transcendentals: fixed float64 sequences (each step one IEEE float64 op), rounded once to
# float32.  exp: clamp to [-110, 90] (outside, the float32 result is 0 or inf anyway),
# k = round(x / ln2) (RNE), r = (x - k*LN2_HI) - k*LN2_LO (Cody-Waite, k*LN2_HI exact),
# exp(r) - 1 = Horner polynomial of degree 12 (Taylor coefficients 1/i!, |r| <= 0.347,
# truncation < 2**-50), result (1 + q) * 2**k.  log: frexp, mantissa folded into
# [sqrt(1/2), sqrt(2)), s = (m-1)/(m+1), log m = 2 atanh s by its odd series to s**17,
# plus e*LN2_HI + e*LN2_LO.  tanh: |x| clamped to 20, expm1(2|x|) from the exp core
# (the polynomial alone when k == 0, avoiding cancellation), t = em1 / (em1 + 2), sign
# restored with copysign.
# ----------------------------------------------------------------------------------------

LN2_HI = 0.693147180369123816490  # 0x3FE62E42FEE00000: low 28 bits zero, k*LN2_HI exact
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
INV_LN2 = 1.44269504088896338700
_EXP_COEFFS = [1.0 / math.factorial(i) for i in range(12, 0, -1)]  # 1/12! .. 1/1!
_LOG_COEFFS = [2.0 / (2 * i + 1) for i in range(8, -1, -1)]  # 2/17 .. 2/1
SQRT_HALF = 0.70710678118654752440


def _exp_core(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For float64 x in [-110, 90]: (k float64 integer, q) with exp(x) ~ 2**k * (1 + q)."""
    k = torch.round(x * INV_LN2)
    r = x - k * LN2_HI
    r = r - k * LN2_LO
    q = r * _EXP_COEFFS[0]
    for c in _EXP_COEFFS[1:]:
        q = q + c
        q = q * r
    return k, q


def exp_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 exp (float64 sequence above, rounded once), as torch calls."""
    x64 = torch.clamp(x.to(torch.float64), -110.0, 90.0)
    k, q = _exp_core(x64)
    y = (q + 1.0) * _pow2(torch.nan_to_num(k, nan=0.0).to(torch.int64))
    return y.to(torch.float32)


def log_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 natural log; log(0) = -inf, log(<0) = NaN, log(inf) = inf."""
    x64 = x.to(torch.float64)
    m, e = torch.frexp(x64)
    fold = m < SQRT_HALF
    m = torch.where(fold, m * 2.0, m)
    ef = e.to(torch.float64) - fold.to(torch.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = z * _LOG_COEFFS[0]
    for c in _LOG_COEFFS[1:-1]:
        p = p + c
        p = p * z
    p = p + _LOG_COEFFS[-1]
    lm = s * p
    y = ef * LN2_HI + (ef * LN2_LO + lm)
    special = torch.where(
        x64 == 0.0,
        torch.full_like(x64, -math.inf),
        torch.where(x64 == math.inf, x64, torch.full_like(x64, math.nan)),
    )
    ok = (x64 > 0.0) & (x64 < math.inf)
    return torch.where(ok, y, special).to(torch.float32)


def tanh_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 tanh (odd; tanh(+-0) = +-0, NaN -> NaN), as torch calls."""
    x64 = x.to(torch.float64)
    a = torch.clamp(torch.abs(x64), max=20.0)
    k, q = _exp_core(a * 2.0)
    big = (q + 1.0) * _pow2(torch.nan_to_num(k, nan=0.0).to(torch.int64))
    em1 = torch.where(k == 0.0, q, big - 1.0)
    t = em1 / (em1 + 2.0)
    return torch.copysign(t, x64).to(torch.float32)


_UNARY = {
    "exp": 0,
    "log": 1,
    "tanh": 2,
    "sqrt": 3,
    "gelu": 4,
    "sigmoid": 5,
    "gelu_erf": 6,
    "sin": 7,
    "cos": 8,
}


def _native_unary(name: str, x: torch.Tensor) -> torch.Tensor:
    if x.dtype != torch.float32:
        raise TypeError(f"{name} needs float32, got {x.dtype}")
    src = x.contiguous()
    out = torch.empty_like(src)
    rc = kernels.lib().repops_unary(
        _UNARY[name],
        src.data_ptr(),
        out.data_ptr(),
        src.numel(),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_unary {name} failed with code {rc}")
    return out


def _native_grad(name: str, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The native elementwise gradient kernel `repops_<name>(x, g, out, n, threads)`."""
    xs, gs = x.contiguous(), g.contiguous()
    out = torch.empty_like(xs)
    rc = getattr(kernels.lib(), f"repops_{name}")(
        xs.data_ptr(),
        gs.data_ptr(),
        out.data_ptr(),
        xs.numel(),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_{name} failed with code {rc}")
    return out


def exp(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 exp: the float64 sequence above, rounded once."""
    return exp_torch(x) if not x.is_cpu else _native_unary("exp", x)


def log(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 natural log: the float64 sequence above, rounded once."""
    return log_torch(x) if not x.is_cpu else _native_unary("log", x)


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 correctly rounded IEEE square root (native on CPU: torch's
    vectorised CPU sqrt is not correctly rounded)."""
    return torch.sqrt(x) if not x.is_cpu else _native_unary("sqrt", x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 tanh: the float64 sequence above, rounded once."""
    return tanh_torch(x) if not x.is_cpu else _native_unary("tanh", x)


# ----------------------------------------------------------------------------------------
# AdamW pieces (float32 tensors of one shape, 0-dim float32 scalars), each element the
# binary32 sequence written out, every operation rounded on its own:
#   adam_moment:  b*m + c*g            (square: b*m + c*(g*g))
#   adamw_param:  p - lr*((m/bc1) / (sqrt(v/bc2) + eps) [+ wd*p])
# ----------------------------------------------------------------------------------------


def _scalar(t: torch.Tensor) -> float:
    return float(t.item())


def adam_moment(
    m: torch.Tensor, g: torch.Tensor, b: torch.Tensor, c: torch.Tensor, square: bool
) -> torch.Tensor:
    """b*m + c*g, or b*m + c*(g*g) when `square` (the Adam first/second moments)."""
    if not m.is_cpu:
        return b * m + c * (g * g if square else g)
    ms, gs = m.contiguous(), g.contiguous()
    out = torch.empty_like(ms)
    rc = kernels.lib().repops_adam_moment(
        int(square),
        ms.data_ptr(),
        gs.data_ptr(),
        out.data_ptr(),
        ms.numel(),
        _scalar(b),
        _scalar(c),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_adam_moment failed with code {rc}")
    return out


def adamw_param(
    p: torch.Tensor, m: torch.Tensor, v: torch.Tensor, scalars: list[torch.Tensor], decay: bool
) -> torch.Tensor:
    """p - lr*((m/bc1) / (sqrt(v/bc2) + eps) [+ wd*p]) with scalars (bc1, bc2, eps, lr, wd)."""
    bc1, bc2, eps, lr, wd = scalars
    if not p.is_cpu:
        u = (m / bc1) / (torch.sqrt(v / bc2) + eps)
        if decay:
            u = u + wd * p
        return p - lr * u
    ps, ms, vs = p.contiguous(), m.contiguous(), v.contiguous()
    out = torch.empty_like(ps)
    rc = kernels.lib().repops_adamw_param(
        ps.data_ptr(),
        ms.data_ptr(),
        vs.data_ptr(),
        out.data_ptr(),
        ps.numel(),
        *(_scalar(t) for t in (bc1, bc2, eps, lr, wd)),
        int(decay),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_adamw_param failed with code {rc}")
    return out


# ----------------------------------------------------------------------------------------
# tanh-GELU, fused (binary32 operations in this order; tanh is the float64 sequence above,
# rounded once; C1 = f32(0.044715), C2 = f32(sqrt(2/pi)), C3 = f32(0.134145)):
#   gelu(x):       x3 = (x*x)*x;  t = tanh(C2*(x + C1*x3));  (0.5*x)*(1 + t)
#   gelu_grad(x, g): x2 = x*x;  x3 = x2*x;  t = tanh(C2*(x + C1*x3));  a = 0.5*(1 + t);
#                  s = 1 - t*t;  b = ((0.5*x)*s)*(C2*(1 + C3*x2));  g*(a + b)
# ----------------------------------------------------------------------------------------

GELU_C1 = 0.044715
GELU_C2 = math.sqrt(2.0 / math.pi)
GELU_C3 = 0.134145


def _c(v: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32, device=like.device)


def gelu_torch(x: torch.Tensor) -> torch.Tensor:
    """tanh-GELU as torch calls (the definition above)."""
    x3 = (x * x) * x
    t = tanh_torch(_c(GELU_C2, x) * (x + _c(GELU_C1, x) * x3))
    return (_c(0.5, x) * x) * (_c(1.0, x) + t)


def gelu_grad_torch(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """d gelu(x)/dx * g as torch calls (the definition above)."""
    x2 = x * x
    x3 = x2 * x
    t = tanh_torch(_c(GELU_C2, x) * (x + _c(GELU_C1, x) * x3))
    a = _c(0.5, x) * (_c(1.0, x) + t)
    s = _c(1.0, x) - t * t
    b = ((_c(0.5, x) * x) * s) * (_c(GELU_C2, x) * (_c(1.0, x) + _c(GELU_C3, x) * x2))
    return g * (a + b)


def gelu(x: torch.Tensor) -> torch.Tensor:
    """tanh-GELU (native on CPU)."""
    return gelu_torch(x) if not x.is_cpu else _native_unary("gelu", x)


def gelu_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """gelu'(x) * g (native on CPU)."""
    return gelu_grad_torch(x, g) if not x.is_cpu else _native_grad("gelu_grad", x, g)


# ----------------------------------------------------------------------------------------
# Softmax over the last axis, fused:
#   softmax(x):       mx = exact max (NaN if any NaN, +0 for a zero max); e = EXP(x - mx);
#                     s = the halving-tree SUM of e; e / s
#   softmax_grad(y, g): d = the halving-tree SUM of g*y; y*(g - d)
# ----------------------------------------------------------------------------------------


def softmax_torch(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis as torch calls (the definition above)."""
    e = exp_torch(x - (torch.amax(x, dim=-1, keepdim=True) + 0.0))
    return e / tree_sum_torch(e, -1)


def softmax_grad_torch(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The softmax backward as torch calls (the definition above)."""
    return y * (g - tree_sum_torch(g * y, -1))


def _rows(x: torch.Tensor) -> tuple[int, int]:
    length = x.shape[-1] if x.dim() else 1
    return (x.numel() // length if length else 0), length


def softmax(x: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis (native on CPU)."""
    rows, length = _rows(x)
    if not x.is_cpu or length == 0 or rows == 0:
        return softmax_torch(x)
    xs = x.contiguous()
    out = torch.empty_like(xs)
    rc = kernels.lib().repops_softmax(
        xs.data_ptr(),
        out.data_ptr(),
        rows,
        length,
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_softmax failed with code {rc}")
    return out


def softmax_grad(y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The softmax backward over the last axis (native on CPU)."""
    rows, length = _rows(y)
    if not y.is_cpu or length == 0 or rows == 0:
        return softmax_grad_torch(y, g)
    ys, gs = y.contiguous(), g.contiguous()
    out = torch.empty_like(ys)
    rc = kernels.lib().repops_softmax_grad(
        ys.data_ptr(),
        gs.data_ptr(),
        out.data_ptr(),
        rows,
        length,
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_softmax_grad failed with code {rc}")
    return out


# ----------------------------------------------------------------------------------------
# Layer-norm core over the last axis (length C), fused; inv_c = f32(1/C), eps = f32(eps):
#   layer_norm_core(x):   mu = SUM(x)*inv_c; xc = x - mu; var = SUM(xc*xc)*inv_c;
#                         rstd = 1/sqrt(var + eps); xc*rstd
#   layer_norm_grad(x, g): xhat, rstd as above (recomputed); a = SUM(g)*inv_c;
#                         b = SUM(g*xhat)*inv_c; rstd*((g - a) - xhat*b)
# (SUM the halving tree; every other step one binary32 operation.)
# ----------------------------------------------------------------------------------------


def _f32(v: float) -> float:
    return float(torch.tensor(v, dtype=torch.float32).item())


def _ln_parts(x: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_c = _c(1.0 / x.shape[-1], x)
    xc = x - tree_sum_torch(x, -1) * inv_c
    var = tree_sum_torch(xc * xc, -1) * inv_c
    rstd = _c(1.0, x) / sqrt(var + _c(eps, x))
    return xc * rstd, rstd


def layer_norm_core_torch(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The layer-norm core as torch calls (the definition above)."""
    return _ln_parts(x, eps)[0]


def layer_norm_grad_torch(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """The layer-norm core's backward as torch calls (the definition above)."""
    xhat, rstd = _ln_parts(x, eps)
    inv_c = _c(1.0 / x.shape[-1], x)
    a = tree_sum_torch(g, -1) * inv_c
    b = tree_sum_torch(g * xhat, -1) * inv_c
    return rstd * ((g - a) - xhat * b)


def layer_norm_core(x: torch.Tensor, eps: float) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) over the last axis (native on CPU)."""
    rows, length = _rows(x)
    if not x.is_cpu or length == 0 or rows == 0:
        return layer_norm_core_torch(x, eps)
    xs = x.contiguous()
    out = torch.empty_like(xs)
    rc = kernels.lib().repops_layer_norm(
        xs.data_ptr(),
        out.data_ptr(),
        rows,
        length,
        _f32(1.0 / length),
        _f32(eps),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_layer_norm failed with code {rc}")
    return out


def layer_norm_grad(x: torch.Tensor, g: torch.Tensor, eps: float) -> torch.Tensor:
    """The layer-norm core's backward (native on CPU)."""
    rows, length = _rows(x)
    if not x.is_cpu or length == 0 or rows == 0:
        return layer_norm_grad_torch(x, g, eps)
    xs, gs = x.contiguous(), g.contiguous()
    out = torch.empty_like(xs)
    rc = kernels.lib().repops_layer_norm_grad(
        xs.data_ptr(),
        gs.data_ptr(),
        out.data_ptr(),
        rows,
        length,
        _f32(1.0 / length),
        _f32(eps),
        torch.get_num_threads(),
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_layer_norm_grad failed with code {rc}")
    return out


# ----------------------------------------------------------------------------------------
# repops-2 vocabulary extensions (issue 13): SIGMOID, GELU_ERF, SIN, COS, the fixed-index
# gather TAKE and the argmax routing of AMAX.  Every floating-point step is one binary64
# operation written as a torch call (IEEE-exact on every device), rounded once to binary32.
#
#   sigmoid(x):  a = min(|x|, 110); e = EXP64(-a); d = 1 + e;
#                x >= 0 (or -0): 1/d;  x < 0: e/d.
#   EXP64(y) (y in [-110, 90]) = (q + 1) * 2**k with (k, q) = core(y) (the exp core above).
#   gelu_erf(x): z = |x| * INV_SQRT2; e = EXP64(max(-(z*z), -110));
#                z < 2: erf = (TWO_OVER_SQRT_PI * e) * S, S = z + t_1 + ... + t_40 added
#                       left to right, t_0 = z, t_{n+1} = (t_n * w) * R_n, w = (2*z)*z,
#                       R_n = 1.0 / (2n + 3) (one binary64 division each, a constant);
#                       erfc = 1 - erf
#                z >= 2: f = z; for n = 60..1: f = z + (n * 0.5) / f;
#                        erfc = (e * INV_SQRT_PI) / f      (Laplace's continued fraction)
#                phi = 1 - 0.5*erfc (x >= 0) or 0.5*erfc (x < 0); result x * phi;
#                x = -inf gives -0.
#   gelu_erf_grad(x, g): d = phi + x * (e * INV_SQRT_2PI) (binary64, as above), rounded
#                once to binary32; result g * d (one binary32 multiplication).
#   sin/cos(x): a = |x|; k = rne(a * TWO_OVER_PI); r = ((a - k*PIO2_1) - k*PIO2_2) - k*PIO2_3
#                (PIO2_1, PIO2_2 are 33-bit pieces of pi/2, so k*PIO2_i is exact for
#                k < 2**20); z = r*r;
#                s = r + (r*z)*P_S(z), P_S(z) = S_1 + z*(S_2 + ... z*S_8) (Horner from S_8,
#                S_i = (-1)**i / (2i+1)!); c = 1 + z*P_C(z), P_C Horner from C_9,
#                C_i = (-1)**i / (2i)!; q = k mod 4;
#                sin(a) = (s, c, -s, -c)[q], cos(a) = (c, -s, -c, s)[q];
#                sin(x) = -sin(a) when x has its sign bit set, cos(x) = cos(a).
#                Accurate (<= 1 ulp, tested) for |x| < 2**19; beyond, the same sequence
#                (bits fixed, accuracy decreasing); inf and NaN give NaN.
# ----------------------------------------------------------------------------------------

INV_SQRT2 = 0.7071067811865476
TWO_OVER_SQRT_PI = 1.1283791670955126
INV_SQRT_PI = 0.5641895835477563
INV_SQRT_2PI = 0.3989422804014327
TWO_OVER_PI = 0.6366197723675814
PIO2_1 = float.fromhex("0x1.921fb544p+0")  # the top 33 bits of pi/2
PIO2_2 = float.fromhex("0x1.0b4611a6p-34")  # the next 33 bits
PIO2_3 = float.fromhex("0x1.3198a2e037073p-69")  # pi/2 - PIO2_1 - PIO2_2, rounded
_SIN_COEFFS = [(-1.0) ** i / math.factorial(2 * i + 1) for i in range(8, 0, -1)]  # S_8..S_1
_COS_COEFFS = [(-1.0) ** i / math.factorial(2 * i) for i in range(9, 0, -1)]  # C_9..C_1
ERF_SERIES_TERMS = 40
_ERF_RECIP = [1.0 / (2 * n + 3) for n in range(ERF_SERIES_TERMS)]  # R_n = f64(1/(2n+3))
ERFC_CF_TERMS = 60


def _exp64(y: torch.Tensor) -> torch.Tensor:
    k, q = _exp_core(y)
    return (q + 1.0) * _pow2(torch.nan_to_num(k, nan=0.0).to(torch.int64))


def sigmoid_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 logistic sigmoid: the binary64 sequence above, as torch calls."""
    x64 = x.to(torch.float64)
    e = _exp64(-torch.clamp(torch.abs(x64), max=110.0))
    d = e + 1.0
    return torch.where(x64 < 0, e / d, 1.0 / d).to(torch.float32)


def _phi_and_density(x64: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(Phi(x), e) in binary64 with e = exp(-x*x/2), by the sequence above."""
    z = torch.abs(x64) * INV_SQRT2
    e = _exp64(torch.clamp(-(z * z), min=-110.0))
    w = (z * 2.0) * z
    t = z
    s = z
    for r in _ERF_RECIP:
        t = (t * w) * r
        s = s + t
    erfc_series = 1.0 - (e * TWO_OVER_SQRT_PI) * s
    f = z
    # 0-dim tensor numerators n/2 (one tensor made once, not one per term: on a GPU each
    # would be a host-to-device copy): torch computes `float / tensor` as reciprocal *
    # float (two roundings), tensor / tensor as one IEEE division
    halves = torch.tensor(
        [n * 0.5 for n in range(ERFC_CF_TERMS, 0, -1)], dtype=torch.float64, device=z.device
    )
    for i in range(ERFC_CF_TERMS):
        f = z + halves[i] / f
    erfc_cf = (e * INV_SQRT_PI) / f
    erfc = torch.where(z < 2.0, erfc_series, erfc_cf)
    phi = torch.where(x64 < 0, erfc * 0.5, 1.0 - erfc * 0.5)
    return phi, e


def gelu_erf_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 x * Phi(x) (the erf GELU): the binary64 sequence, as torch calls."""
    x64 = x.to(torch.float64)
    phi, _ = _phi_and_density(x64)
    y = torch.where(x64 == -math.inf, torch.zeros_like(x64).neg(), x64 * phi)
    return y.to(torch.float32)


def gelu_erf_grad_torch(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g * f32(Phi(x) + x phi(x)): the derivative of `gelu_erf` applied to g (torch calls)."""
    x64 = x.to(torch.float64)
    phi, e = _phi_and_density(x64)
    d = phi + x64 * (e * INV_SQRT_2PI)
    d = torch.where(torch.isinf(x64), torch.where(x64 > 0, 1.0, 0.0).to(torch.float64), d)
    return g * d.to(torch.float32)


def _sin_cos_abs(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.abs(x.to(torch.float64))
    k = torch.round(a * TWO_OVER_PI)
    r = ((a - k * PIO2_1) - k * PIO2_2) - k * PIO2_3
    z = r * r
    ps = z * _SIN_COEFFS[0]
    for c in _SIN_COEFFS[1:-1]:
        ps = (ps + c) * z
    ps = ps + _SIN_COEFFS[-1]
    s = r + (r * z) * ps
    pc = z * _COS_COEFFS[0]
    for c in _COS_COEFFS[1:-1]:
        pc = (pc + c) * z
    pc = pc + _COS_COEFFS[-1]
    c_ = 1.0 + z * pc
    q = torch.remainder(torch.nan_to_num(k, nan=0.0, posinf=0.0), 4.0)
    sin_a = torch.where(q == 0, s, torch.where(q == 1, c_, torch.where(q == 2, -s, -c_)))
    cos_a = torch.where(q == 0, c_, torch.where(q == 1, -s, torch.where(q == 2, -c_, s)))
    bad = ~torch.isfinite(a)
    nan = torch.full_like(a, math.nan)
    return torch.where(bad, nan, sin_a), torch.where(bad, nan, cos_a)


def sin_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 sine: fixed range reduction + polynomials (torch calls)."""
    s, _ = _sin_cos_abs(x)
    return torch.where(torch.signbit(x), -s, s).to(torch.float32)


def cos_torch(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 cosine: fixed range reduction + polynomials (torch calls)."""
    return _sin_cos_abs(x)[1].to(torch.float32)


def sigmoid(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 logistic sigmoid (native on CPU)."""
    return sigmoid_torch(x) if not x.is_cpu else _native_unary("sigmoid", x)


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 erf GELU (native on CPU)."""
    return gelu_erf_torch(x) if not x.is_cpu else _native_unary("gelu_erf", x)


def sin(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 sine (native on CPU)."""
    return sin_torch(x) if not x.is_cpu else _native_unary("sin", x)


def cos(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 cosine (native on CPU)."""
    return cos_torch(x) if not x.is_cpu else _native_unary("cos", x)


def gelu_erf_grad(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """g * f32(Phi(x) + x phi(x)) (native on CPU)."""
    if not x.is_cpu:
        return gelu_erf_grad_torch(x, g)
    return _native_grad("gelu_erf_grad", x, g)


def take(x: torch.Tensor, idx: torch.Tensor, lead: int) -> torch.Tensor:
    """out[b..., j...] = flat(x[b...])[idx[j...]] over the `lead` leading axes b; an index
    of -1 gives +0.  Exact copies (native on CPU: bit patterns copied)."""
    if not x.is_cpu or x.element_size() not in (4, 8) or idx.dtype != torch.int64:
        return take_torch(x, idx, lead)
    xs, js = x.contiguous(), idx.contiguous()
    lead_shape = tuple(x.shape[:lead])
    b = 1
    for d in lead_shape:
        b *= d
    per = 1
    for d in x.shape[lead:]:
        per *= d
    out = torch.empty((*lead_shape, *idx.shape), dtype=x.dtype)
    rc = kernels.lib().repops_take(
        xs.data_ptr(), js.data_ptr(), out.data_ptr(), b, per, js.numel(), x.element_size()
    )
    if rc == -3:
        raise IndexError(f"take: an index is out of range for {per} elements per entry")
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_take failed with code {rc}")
    return out


def take_torch(x: torch.Tensor, idx: torch.Tensor, lead: int) -> torch.Tensor:
    """`take` as torch calls (any device)."""
    lead_shape = tuple(x.shape[:lead])
    b = 1
    for d in lead_shape:
        b *= d
    # Rows of the (elements + 1, leading entries) transpose are contiguous: one
    # index_select gathers every leading entry at once; the extra row is the +0 of idx -1.
    cols = x.reshape(b, -1).t()
    zero = torch.zeros((1, b), dtype=x.dtype, device=x.device)
    padded = torch.cat([cols, zero], dim=0)
    j = torch.where(idx < 0, torch.full_like(idx, padded.shape[0] - 1), idx).reshape(-1)
    out = padded.index_select(0, j.to(x.device))  # (idx.numel(), b)
    return out.t().reshape(*lead_shape, *idx.shape)


def max_grad(x: torch.Tensor, g: torch.Tensor, axis: int) -> torch.Tensor:
    """g (size 1 on `axis`) placed at the first index along `axis` where x attains its
    maximum (the first NaN, if any); +0 everywhere else.  Exact (native on CPU)."""
    axis = axis % x.dim() if x.dim() else 0
    length = x.shape[axis] if x.dim() else 1
    outer = 1
    for d in x.shape[:axis]:
        outer *= d
    inner = 1
    for d in x.shape[axis + 1 :]:
        inner *= d
    if (
        not x.is_cpu
        or x.dtype != torch.float32
        or g.dtype != torch.float32
        or x.dim() == 0
        or length == 0
        or tuple(g.shape) != (*x.shape[:axis], 1, *x.shape[axis + 1 :])
    ):
        return max_grad_torch(x, g, axis)
    xs, gs = x.contiguous(), g.contiguous()
    out = torch.empty(x.shape, dtype=torch.float32)
    rc = kernels.lib().repops_max_grad(
        xs.data_ptr(), gs.data_ptr(), out.data_ptr(), outer, length, inner
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_max_grad failed with code {rc}")
    return out


def max_grad_torch(x: torch.Tensor, g: torch.Tensor, axis: int) -> torch.Tensor:
    """`max_grad` as torch calls (any device)."""
    length = x.shape[axis]
    mx = torch.amax(x, dim=axis, keepdim=True)
    hit = (x == mx) | (torch.isnan(x) & torch.isnan(mx))
    shape = [1] * x.dim()
    shape[axis] = length
    ar = torch.arange(length, device=x.device).reshape(shape)
    first = torch.amin(torch.where(hit, ar, length), dim=axis, keepdim=True)
    return torch.where(ar == first, g, torch.zeros((), dtype=g.dtype, device=g.device))
