"""Kernels of the reproducible operators: exact math plus one specified rounding.

Every function here is a fixed sequence of torch operations whose result bits are fully
specified by IEEE-754 (one basic operation per torch call, round-to-nearest-even, no FMA
contraction because each call is its own kernel) or by exact integer arithmetic.  So the
bits do not depend on device, BLAS, blocking or thread count.

This module must never call a torch op whose rounding is unspecified: no float32/float64
`sum`/`mean`/`cumsum` on values that matter, no libm transcendentals, no fused ops
(addcmul, lerp, softmax, layer_norm, gelu, var), no float GEMM whose partial sums are not
exact.  `torch.sum` appears only on integer-valued float64 tensors whose every partial sum
is an integer below 2**53, where any summation order gives the same exact result.
"""

from __future__ import annotations

import math

import torch

# ----------------------------------------------------------------------------------------
# Matmul: Ozaki-style exact integer slicing.
#
# A (.., m, k) and B (.., k, n) are float32.  Row i of A gets the power-of-two scale
# 2**e_i with max|A_i| < 2**e_i (e_i from frexp; 0 for an all-zero row), column j of B
# gets 2**f_j likewise.  X = trunc(A_i * 2**(63 - e_i)) is an integer with |X| < 2**63,
# written with three signed 21-bit digits of the sign of X: X = x_0 2**42 + x_1 2**21 + x_2,
# |x_p| < 2**21.  Same for B (Y, digits y_q).  The operator's value is
#
#   C_ij = RNE_binary32( 2**(e_i + f_j - 84) * sum_{p+q <= 2} 2**(21(2-p-q)) (x_p . y_q) )
#
# i.e. the exact sum of the six kept slice products, rounded once.  Dropped: the bits of
# each element below 2**(e_i - 63) and the three slice pairs with p + q >= 3.  Every element
# within 2**-39 of its row (column) maximum keeps all 24 bits, so rows whose range is wide
# (one large gradient, many small ones) stay as accurate as plain fp32 up to a combined
# row x column range of about 2**39.  Tested bound:
#   |C - A.B| <= 2**-24 |A.B| + 2**-150 + 24 * k * 2**-63 * max|A_i| * max|B_j|.
#
# Each slice GEMM multiplies integer matrices with |entries| < 2**21, so for k <= 2048
# every partial sum is an integer below 2**53 and any float64 GEMM (any BLAS, blocking,
# thread count, CPU or GPU) computes it exactly.  The three weight classes
# T_d = sum_{p+q=d} x_p . y_q are combined exactly: in float64 while they stay below 2**53
# (k <= 512), otherwise in int64 over k-chunks of 2048; carry normalisation brings S to
# T_0 2**42 + U with 0 <= U < 2**42, an exact TwoSum plus one nextafter rounds S to odd at
# 53 bits, which makes the
# final round-to-nearest-even to binary32 a correct rounding of the exact value.
# ----------------------------------------------------------------------------------------

DIGIT_BITS = 21
N_SLICES = 3
WIDTH = DIGIT_BITS * N_SLICES
K_CHUNK = 2048
F64_MAX_K = 512  # 3 k 2**42 < 2**53: the limbs T_d stay exact in float64
MAX_K = 1 << 18  # keeps every int64 accumulation of the chunks below 2**63
_DIGIT = float(1 << DIGIT_BITS)
_TWO42 = float(1 << 42)
_TWO53 = 1 << 53
_ONE_GEMM_LIMIT = 1 << 18  # below this many multiply-adds one GEMM does all nine pairs


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """2.0**e in float64 exactly, for int tensors with -1022 <= e <= 1023 (bit construction)."""
    return torch.bitwise_left_shift(e.to(torch.int64) + 1023, 52).view(torch.float64)


def _row_exponents(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(e, finite): max|x| < 2**e along `dim` (kept), int32, 0 for all-zero/non-finite."""
    amax = torch.amax(torch.abs(x), dim=dim, keepdim=True).to(torch.float64)
    e = torch.frexp(amax).exponent
    finite = torch.isfinite(amax)
    return torch.where(finite, e, torch.zeros_like(e)), finite


def _digits_into(x: torch.Tensor, e: torch.Tensor, finite: bool, out: list[torch.Tensor]) -> None:
    """Write the signed 21-bit digits of trunc(x * 2**(63 - e)) into out[0..2] (float64).

    x0 2**42 + x1 2**21 + x2 = trunc(x * 2**(63 - e)), every digit of the sign of x.
    """
    x64 = x.to(torch.float64)
    if not finite:
        x64 = torch.where(torch.isfinite(x64), x64, torch.zeros_like(x64))
    big = torch.trunc(x64.mul_(_pow2(WIDTH - e)))  # exact: 24 significant bits, |big| < 2**63
    t0 = torch.trunc(torch.mul(big, 1.0 / _TWO42, out=out[0]), out=out[0])
    t1 = torch.trunc(big * (1.0 / _DIGIT))
    # Both differences are integers below 2**21 in magnitude, hence exact.
    torch.sub(t1, t0 * _DIGIT, out=out[1])
    torch.sub(big, t1.mul_(_DIGIT), out=out[2])


def _gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if a.shape[0] == 1:
        return torch.mm(a[0], b[0]).unsqueeze(0)
    return torch.bmm(a, b)


def _slice_products(a3: torch.Tensor, b3: torch.Tensor) -> list[torch.Tensor]:
    """[T_0, T_1, T_2] as float64: T_d = sum_{p+q=d} x_p @ y_q (each an exact integer).

    a3: digits (b, 3, m, k), b3: digits (b, k, 3, N), k <= K_CHUNK.  Exact as float64 while
    3 k (2**21 - 1)**2 < 2**53, i.e. k <= F64_MAX_K; the caller converts otherwise.
    """
    b, n, m, k = a3.shape
    big = b3.shape[3]
    rows = a3.reshape(b, n * m, k)  # (b, 3m, k): digit-major rows, a view
    if m * k * big <= _ONE_GEMM_LIMIT:
        # One GEMM for all nine pairs: for small operands the call overhead dominates.
        g = _gemm(rows, b3.reshape(b, k, n * big)).reshape(b, n, m, n, big)
        pairs = {(p, q): g[:, p, :, q, :] for p in range(n) for q in range(n - p)}
    elif b == 1:
        return _slice_products_sparse(a3[0], b3[0])
    else:
        pairs = {}
        for q in range(n):
            g = _gemm(rows[:, : (n - q) * m], b3[:, :, q, :]).reshape(b, n - q, m, big)
            for p in range(n - q):
                pairs[(p, q)] = g[:, p]
    t0 = pairs[(0, 0)]
    t1 = pairs[(0, 1)] + pairs[(1, 0)]
    t2 = pairs[(0, 2)] + pairs[(1, 1)]
    t2 += pairs[(2, 0)]
    return [t0, t1, t2]


def _slice_products_sparse(a3: torch.Tensor, b3: torch.Tensor) -> list[torch.Tensor]:
    """2-D `_slice_products` that skips the all-zero rows of x_2 and columns of y_2.

    x_2 is non-zero only in rows holding an element below 2**-18 of the row maximum, so
    the pairs (2, 0) and (0, 2) usually touch a few rows/columns.  Skipping exact zero
    products and adding the others with index_add (no duplicate indices: one exact add
    per element) does not change a single bit.  a3: (3, m, k), b3: (k, 3, N).
    """
    _, m, k = a3.shape
    big = b3.shape[2]
    top = a3[:2].reshape(2 * m, k)  # [x_0; x_1], a view
    g0 = torch.mm(top, b3[:, 0])  # (2m, N): pairs (0, 0) and (1, 0), contiguous blocks
    g1 = torch.mm(top, b3[:, 1])  # (2m, N): pairs (0, 1) and (1, 1)
    t0 = g0[:m]
    t1 = g1[:m].add_(g0[m:])
    t2 = g1[m:]
    rows = torch.nonzero(torch.any(a3[2] != 0, dim=1)).reshape(-1)
    if rows.numel() > m // 2:
        t2 += torch.mm(a3[2], b3[:, 0])
    elif rows.numel():
        t2.index_add_(0, rows, torch.mm(a3[2].index_select(0, rows), b3[:, 0]))
    cols = torch.nonzero(torch.any(b3[:, 2] != 0, dim=0)).reshape(-1)
    if cols.numel() > big // 2:
        t2 += torch.mm(a3[0], b3[:, 2])
    elif cols.numel():
        t2.index_add_(1, cols, torch.mm(a3[0], b3[:, 2].index_select(1, cols)))
    return [t0.unsqueeze(0), t1.unsqueeze(0), t2.unsqueeze(0)]


def _odd_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b (exact float64 inputs) rounded to odd at 53 bits.

    TwoSum gives a + b = s + err exactly; rounding to odd then means: when err != 0 and s
    has an even significand, step s to its neighbour on err's side (one of two adjacent
    doubles is always odd).  `b` is used as scratch.
    """
    s = a + b
    bb = s - a
    err = (a - (s - bb)).add_(b.sub_(bb))
    bits = s.view(torch.int64)
    step = (err != 0).logical_and_((bits & 1) == 0)
    toward = torch.copysign(torch.tensor(math.inf, dtype=s.dtype, device=s.device), err)
    return torch.where(step, torch.nextafter(s, toward), s)


def _combine_f64(t: list[torch.Tensor]) -> torch.Tensor:
    """S = T_0 2**42 + T_1 2**21 + T_2 rounded to odd, for float64 limbs below 2**53."""
    t0, t1, t2 = t
    inv = 1.0 / _DIGIT
    c = torch.floor(t2 * inv)
    r2 = t2.sub_(c * _DIGIT)  # in [0, 2**21)
    t1 = t1.add_(c)
    c = torch.floor(t1 * inv)
    r1 = t1.sub_(c * _DIGIT)
    t0 = t0 + c  # S = t0 2**42 + r1 2**21 + r2, all exact
    u = r1.mul_(_DIGIT).add_(r2)  # 0 <= u < 2**42
    return _odd_sum(t0.mul_(_TWO42), u)


def _round_to_odd_f64(mag: torch.Tensor, sticky: torch.Tensor) -> torch.Tensor:
    """Non-negative int64 (plus a sticky flag for lower bits) -> float64 rounded to odd."""
    bitlen = torch.frexp(mag.to(torch.float64)).exponent.to(torch.int64)
    # bitlen may be one too high after the conversion rounds up; keeping 52 bits is as good.
    sh = torch.clamp(bitlen - 53, min=0)
    kept = torch.bitwise_right_shift(mag, sh)
    lost = (mag - torch.bitwise_left_shift(kept, sh)) != 0
    kept = torch.where(lost | sticky, torch.bitwise_or(kept, 1), kept)
    return kept.to(torch.float64) * _pow2(sh)


def _combine_i64(t: list[torch.Tensor]) -> torch.Tensor:
    """S = T_0 2**42 + T_1 2**21 + T_2 (int64 limbs) rounded to odd at 53 bits, float64."""
    mask = (1 << DIGIT_BITS) - 1
    t0, t1, t2 = t
    t1 = t1 + (t2 >> DIGIT_BITS)
    u = ((t1 & mask) << DIGIT_BITS) + (t2 & mask)  # 0 <= u < 2**42, exact in float64
    t0 = t0 + (t1 >> DIGIT_BITS)  # S = t0 2**42 + u
    res = _odd_sum(t0.to(torch.float64).mul_(_TWO42), u.to(torch.float64))
    wide = (t0 >= _TWO53) | (t0 <= -_TWO53)
    if bool(wide.any()):
        # Only reachable with k > F64_MAX_K chunks: round |S| to odd in integer arithmetic.
        neg = t0 < 0
        uz = u == 0
        hi = torch.where(neg, -t0 - 1 + uz.to(torch.int64), t0)  # |S| = hi 2**42 + lo
        mag = _round_to_odd_f64(hi, ~uz) * _TWO42
        res = torch.where(wide, torch.where(neg, -mag, mag), res)
    return res


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Reproducible float32 matmul (semantics above).  a (..., m, k), b (..., k, n).

    Batch dims of `a` and `b` must be equal, or `b` must be 2-D (then a's batch dims are
    folded into rows).
    """
    if b.dim() == 2 and a.dim() > 2:
        lead = a.shape[:-1]
        return matmul(a.reshape(-1, a.shape[-1]), b).reshape(*lead, b.shape[1])
    out_lead = a.shape[:-2]
    a3 = a.reshape(-1, a.shape[-2], a.shape[-1])
    b3 = b.reshape(-1, b.shape[-2], b.shape[-1])
    nb, m, k = a3.shape
    big = b3.shape[-1]
    if k > MAX_K:
        raise ValueError(f"matmul inner dimension {k} exceeds {MAX_K}")
    ea, fin_a = _row_exponents(a3, dim=-1)  # (b, m, 1)
    eb, fin_b = _row_exponents(b3, dim=-2)  # (b, 1, n)
    all_finite = bool(fin_a.all()) and bool(fin_b.all())
    da = torch.empty((nb, N_SLICES, m, k), dtype=torch.float64, device=a.device)
    db = torch.empty((nb, k, N_SLICES, big), dtype=torch.float64, device=a.device)
    _digits_into(a3, ea, all_finite, [da[:, p] for p in range(N_SLICES)])
    _digits_into(b3, eb, all_finite, [db[:, :, p] for p in range(N_SLICES)])
    if k <= F64_MAX_K:
        s = _combine_f64(_slice_products(da, db))
    else:
        limbs: list[torch.Tensor] | None = None
        for lo in range(0, k, K_CHUNK):
            part = _slice_products(da[..., lo : lo + K_CHUNK], db[:, lo : lo + K_CHUNK])
            ints = [x.to(torch.int64) for x in part]  # exact: integers below 2**55
            limbs = ints if limbs is None else [x + y for x, y in zip(limbs, ints, strict=True)]
        assert limbs is not None
        s = _combine_i64(limbs)
    # 2**(e_i + f_j - 84) applied as two exact float64 scalings, then the one rounding.
    # "+ 0.0" first turns an exact zero into +0 whatever sign the GEMM gave it.
    out = s.add_(0.0).mul_(_pow2(ea)).mul_(_pow2(eb - 84)).to(torch.float32)
    if not all_finite:
        bad = ~(fin_a & fin_b)
        out = torch.where(bad, torch.full_like(out, float("nan")), out)
    return out.reshape(*out_lead, out.shape[-2], out.shape[-1])


def matmul_error_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The tested absolute error bound of `matmul`, excluding its final rounding (float64)."""
    k = a.shape[-1]
    ma = torch.amax(torch.abs(a.double()), dim=-1, keepdim=True)
    mb = torch.amax(torch.abs(b.double()), dim=-2, keepdim=True)
    return 24.0 * k * 2.0**-WIDTH * ma * mb


# ----------------------------------------------------------------------------------------
# Reductions: a fixed halving tree in float32.
#
# SUM over an axis of length L: with P the smallest power of two >= L, level 1 computes
# y_i = x_i + x_{i+P/2} for i + P/2 < L and y_i = x_i otherwise (i < P/2), then recurses on
# y (length P/2) until one element is left.  Every addition is one binary32 IEEE add, so
# the bits are fixed by the tree shape alone.  L = 0 gives +0.
# ----------------------------------------------------------------------------------------


def tree_sum(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed-tree float32 sum over `dim`, keepdim=True."""
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


def exp(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 exp (float64 sequence above, rounded once)."""
    x64 = torch.clamp(x.to(torch.float64), -110.0, 90.0)
    k, q = _exp_core(x64)
    y = (q + 1.0) * _pow2(torch.nan_to_num(k, nan=0.0).to(torch.int64))
    return y.to(torch.float32)


def log(x: torch.Tensor) -> torch.Tensor:
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


def tanh(x: torch.Tensor) -> torch.Tensor:
    """float32 -> float32 tanh (odd; tanh(+-0) = +-0, NaN -> NaN)."""
    x64 = x.to(torch.float64)
    a = torch.clamp(torch.abs(x64), max=20.0)
    k, q = _exp_core(a * 2.0)
    big = (q + 1.0) * _pow2(torch.nan_to_num(k, nan=0.0).to(torch.int64))
    em1 = torch.where(k == 0.0, q, big - 1.0)
    t = em1 / (em1 + 2.0)
    return torch.copysign(t, x64).to(torch.float32)
