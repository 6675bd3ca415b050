"""Reproducible float32 matmul on exact int8 GEMMs (Ozaki scheme, 7-bit slices).

Semantics.  A (.., m, k) and B (.., k, n) are float32.  Row i of A gets the power-of-two
scale 2**e_i with max|A_i| < 2**e_i (e_i from frexp; 0 for an all-zero row), column j of B
gets 2**f_j likewise.  With S = N_SLICES and W = 7 S,

    X = trunc(A_ik 2**(W - e_i)) = sum_{p<S} x_p 2**(7(S-1-p)),   |x_p| <= 127,

the base-128 digits of X, each of the sign of X (same for Y and B).  The operator's value is

    C_ij = RNE_binary32( 2**(e_i + f_j - W - 7) * sum_{d<S} 2**(7(S-1-d)) T_d ),
    T_d  = sum_{p+q=d} x_p . y_q,

the exact sum of the S(S+1)/2 kept slice products, rounded once.  Dropped: the bits of each
element below 2**(e_i - W) (truncation: < 2 2**-W per product of the scaled operands) and
the slice pairs with p + q >= S (< 1.01 (S-1) 2**-W); 2**(e_i+f_j) <= 4 max|A_i| max|B_j|
and the final rounding adds a factor 1 + 2**-24, hence the tested bound

    |C - A.B| <= 2**-24 |A.B| + 2**-150 + (4 S + 5) k 2**-W max|A_i| max|B_j|.

With S = 7 (W = 49) every element within 2**-25 of its row (column) maximum keeps all 24
bits, so rows whose range is wide (one large gradient, many small ones) stay as accurate
as plain fp32 up to a combined row x column range of about 2**25.

Why int8.  T_d is one integer GEMM: [x_0 .. x_d] (m x (d+1)k) times [y_d; ..; y_0], whose
every partial sum is an integer below (d+1) k 127**2 < 2**31 for k <= K_CHUNK, so any
int8 x int8 -> int32 GEMM (oneDNN/VNNI, cuBLASLt, any blocking or thread count) computes it
exactly (CUDA's shape rules are met by zero padding, which adds exact zeros).  On this
CPU such a GEMM is ~8x faster than a float32 one and ~17x faster than the float64 GEMMs
of the former 21-bit scheme.  The T_d are combined exactly in int64 as hi 2**21 + lo
(Horner in base 2**7, carry-normalised), rounded to odd at bit 21 when |S| >= 2**53 so
that the value converts exactly to float64 while rounding to binary32 exactly like S,
scaled by exact powers of two and rounded once to binary32.
"""

from __future__ import annotations

import torch

DIGIT_BITS = 7
N_SLICES = 7
WIDTH = DIGIT_BITS * N_SLICES
# S k 127**2 < 2**31 keeps every T_d exact in int32.  A multiple of 8 (CUDA _int_mm).
K_CHUNK = 16384
# The sum splits as S = hi 2**21 + lo: hi = sum_{d<4} T_d 2**(7(3-d)), lo = the rest.
# After carry normalisation |hi| <= k 127**2 2**21 (1 + 2**-6) < 2**53 needs k <= 2**18.
MAX_K = 1 << 18
_HI_TERMS = 4
_LO_BITS = DIGIT_BITS * (N_SLICES - _HI_TERMS)
_F32_MIN_EXP = WIDTH - 126  # see _split


def _pow2(e: torch.Tensor) -> torch.Tensor:
    """2.0**e in float64 exactly, for int tensors with -1022 <= e <= 1023 (bit construction)."""
    return torch.bitwise_left_shift(e.to(torch.int64) + 1023, 52).view(torch.float64)


def _pow2_f32(e: torch.Tensor) -> torch.Tensor:
    """2.0**e in float32 exactly, for int tensors with -126 <= e <= 127 (bit construction)."""
    return torch.bitwise_left_shift(e.to(torch.int32) + 127, 23).view(torch.float32)


def _exponents(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(e, finite): max|x| < 2**e along `dim` (kept), int32, 0 for all-zero/non-finite."""
    amax = torch.amax(torch.abs(x), dim=dim, keepdim=True).to(torch.float64)
    e = torch.frexp(amax).exponent
    finite = torch.isfinite(amax)
    return torch.where(finite, e, torch.zeros_like(e)), finite


def _split(x: torch.Tensor, e: torch.Tensor, finite: bool, out: list[torch.Tensor]) -> None:
    """Write the base-128 digits of trunc(x 2**(W - e)) into the int8 views out[0..S-1].

    t = x 2**(7 - e) lies in (-128, 128); digit p is trunc(t_p), t_{p+1} = 128 frac(t_p).
    Every step is exact in float32 (power-of-two scalings, frac of a float), and the
    float -> int8 conversion truncates toward zero by definition (C++ [conv.fpint]; the
    value fits).  A subnormal input becomes |t| < 2**(-119 - e), below the last digit's
    2**(7 - W) when e >= W - 126: then a device that flushes subnormals gives the same
    digits.  Rows with a smaller maximum (rare) take the exact scaling through float64.
    """
    if not finite:
        x = torch.where(torch.isfinite(x), x, torch.zeros_like(x))
    if bool((e >= _F32_MIN_EXP).all()):
        t = x * _pow2_f32(DIGIT_BITS - e)
    else:
        t = (x.to(torch.float64) * _pow2(DIGIT_BITS - e)).to(torch.float32)
    last = len(out) - 1
    for p, dst in enumerate(out):
        dst.copy_(t)
        if p < last:
            t.frac_().mul_(float(1 << DIGIT_BITS))


def _to_f64(hi: torch.Tensor, lo: torch.Tensor) -> torch.Tensor:
    """S = hi 2**21 + lo (int64, 0 <= lo < 2**21, |hi| < 2**53) as a float64 that rounds to
    binary32 exactly as S does.

    Below |hi| < 2**32 S itself has fewer than 53 bits and converts exactly.  Above, S is
    rounded to odd at bit 21 ((hi | sticky) 2**21): exact in float64, and inside the same
    2**21-interval as S, which holds no rounding boundary of a format whose last bit is
    >= 2**23 (binary32 at |S| >= 2**47).  `hi` and `lo` are used as scratch.
    """
    large = torch.abs(hi) >= (1 << 32)
    near = torch.bitwise_left_shift(hi, DIGIT_BITS * 3).bitwise_or_(lo).to(torch.float64)
    far = hi.bitwise_or_((lo != 0).to(torch.int64)).to(torch.float64).mul_(float(1 << 21))
    return torch.where(large, far, near)


def _gemm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    # torch._int_mm is torch's only int8 x int8 -> int32 GEMM (a private name, stable since
    # 2.1 on CPU and CUDA).  Integer accumulation is exact, so its blocking, thread count and
    # device cannot change a bit of the result.
    return torch._int_mm(a, b)


def _chunk_sums(
    da: torch.Tensor, db: torch.Tensor, kk: int, hi: torch.Tensor, lo: torch.Tensor
) -> None:
    """Add one k-chunk's Horner sums to hi += sum_{d<4} T_d 2**(7(3-d)), lo += the rest.

    da: (nb, m, S, kk) int8 digits, db: (nb, S, kk, n) with digit q in block S - 1 - q;
    hi, lo: int64 (nb, m, n).  S_total = hi 2**21 + lo.
    """
    nb, m = da.shape[0], da.shape[1]
    n = db.shape[3]
    s_ = N_SLICES
    rows = da.reshape(nb, m, s_ * kk)
    cols = db.reshape(nb, s_ * kk, n)
    for i in range(nb):
        for d in range(s_):
            # [x_0 .. x_d] . [y_d; ..; y_0] = T_d: the prefix of the rows, the suffix of cols.
            t = _gemm(rows[i, :, : (d + 1) * kk], cols[i, (s_ - 1 - d) * kk :])
            acc = hi[i] if d < _HI_TERMS else lo[i]
            weight = 1 << (DIGIT_BITS * ((_HI_TERMS if d < _HI_TERMS else s_) - 1 - d))
            acc.add_(t, alpha=weight)


def _cuda_pad(x: torch.Tensor, dim: int, mult: int, minimum: int = 0) -> torch.Tensor:
    size = x.shape[dim]
    want = max(-(-size // mult) * mult, minimum)
    if want == size:
        return x
    pad = list(x.shape)
    pad[dim] = want - size
    return torch.cat([x, torch.zeros(pad, dtype=x.dtype, device=x.device)], dim=dim)


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
    n = b3.shape[-1]
    if k > MAX_K:
        raise ValueError(f"matmul inner dimension {k} exceeds {MAX_K}")
    if m == 0 or n == 0 or k == 0:
        return torch.zeros((*out_lead, m, n), dtype=torch.float32, device=a.device)
    m0, n0 = m, n
    if a.device.type == "cuda":
        # cuBLASLt int8 GEMMs need m > 16 and k, n multiples of 8; zero padding adds exact
        # zeros to every sum, and the padded rows/columns are cut off below.
        a3 = _cuda_pad(_cuda_pad(a3, 2, 8), 1, 1, 17)
        b3 = _cuda_pad(_cuda_pad(b3, 1, 8), 2, 8)
        nb, m, k = a3.shape
        n = b3.shape[-1]
    ea, fin_a = _exponents(a3, dim=-1)  # (nb, m, 1)
    eb, fin_b = _exponents(b3, dim=-2)  # (nb, 1, n)
    all_finite = bool(fin_a.all()) and bool(fin_b.all())
    s_ = N_SLICES
    nchunks = -(-k // K_CHUNK)
    kk = min(k, K_CHUNK)
    da = torch.empty((nb, m, s_, nchunks * kk), dtype=torch.int8, device=a.device)
    db = torch.empty((nb, s_, nchunks * kk, n), dtype=torch.int8, device=a.device)
    if nchunks * kk != k:
        da[..., k:] = 0  # the last chunk is padded with exact zeros
        db[:, :, k:] = 0
    _split(a3, ea, all_finite, [da[:, :, p, :k] for p in range(s_)])
    _split(b3, eb, all_finite, [db[:, s_ - 1 - q, :k] for q in range(s_)])
    hi = torch.zeros((nb, m, n), dtype=torch.int64, device=a.device)
    lo = torch.zeros_like(hi)
    if nchunks == 1:
        _chunk_sums(da, db, kk, hi, lo)
    else:
        for c in range(nchunks):
            sl = slice(c * kk, (c + 1) * kk)
            _chunk_sums(da[..., sl].contiguous(), db[:, :, sl].contiguous(), kk, hi, lo)
    # Carry normalisation: S = hi 2**21 + lo with 0 <= lo < 2**21.
    hi.add_(lo >> _LO_BITS)
    f = _to_f64(hi, lo.bitwise_and_((1 << _LO_BITS) - 1))
    # 2**(e_i + f_j - W - 7) as two exact float64 scalings, then the one rounding.
    out = f.mul_(_pow2(ea)).mul_(_pow2(eb - (WIDTH + DIGIT_BITS))).to(torch.float32)
    if not all_finite:
        bad = ~(fin_a & fin_b)
        out = torch.where(bad, torch.full_like(out, float("nan")), out)
    out = out[:, :m0, :n0]
    return out.reshape(*out_lead, m0, n0)


def matmul_error_bound(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The tested absolute error bound of `matmul`, excluding its final rounding (float64)."""
    k = a.shape[-1]
    ma = torch.amax(torch.abs(a.double()), dim=-1, keepdim=True)
    mb = torch.amax(torch.abs(b.double()), dim=-2, keepdim=True)
    return (4.0 * N_SLICES + 5.0) * k * 2.0**-WIDTH * ma * mb
