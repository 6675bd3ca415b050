"""Operator kernels: accuracy against float64 with stated bounds, and bit-reproducibility
across thread counts and blockings.

Accuracy bounds tested here (u = 2**-24, float32 unit roundoff):
* matmul: |C - A.B| <= u |A.B| + 2**-150 + 33 k 2**-49 max|A_i| max|B_j|, and exactly the
  float32 rounding (RNE) of the documented kept slice sum (7 slices of 7 bits, p + q <= 6);
  on realistic and wide-range inputs its worst error (relative to sum|a||b|) is no worse
  than plain fp32 matmul's.
* tree_sum: |s - sum| <= ceil(log2 n) u sum|x| (plus the final rounding).
* exp/log/tanh: within 1 ulp of the float64 value (correctly rounded except in rare ties).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from repops import matmul_int, numerics
from repops.hashing import tensor_hash
from tests.repops.conftest import under_threads

U = 2.0**-24


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def wide(shape: tuple[int, ...], sigma: float, seed: int) -> torch.Tensor:
    g = gen(seed)
    return torch.randn(shape, generator=g) * torch.exp(sigma * torch.randn(shape, generator=g))


def spike(m: int, k: int, seed: int, size: float) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    a = torch.randn(m, k, generator=g)
    a[:, 0] = size
    b = torch.randn(k, m, generator=g)
    b[0, :] = 0.0
    return a, b


CASES = {
    "gauss": lambda: (
        torch.randn(64, 256, generator=gen(1)),
        torch.randn(256, 48, generator=gen(2)),
    ),
    "activations": lambda: (
        torch.relu(torch.randn(96, 128, generator=gen(3))),
        torch.randn(128, 64, generator=gen(4)) * 0.05,
    ),
    "lognormal_rows": lambda: (wide((64, 300), 5.0, 5), wide((300, 32), 2.0, 6)),
    "spike_1e6": lambda: spike(32, 200, 7, 1e6),
    "tiny_and_huge_rows": lambda: (
        torch.randn(16, 64, generator=gen(8)) * torch.logspace(-30, 30, 16).unsqueeze(1),
        torch.randn(64, 16, generator=gen(9)),
    ),
    "subnormal": lambda: (
        torch.randn(8, 32, generator=gen(10)) * 1e-39,
        torch.randn(32, 8, generator=gen(11)),
    ),
    "k_above_chunk": lambda: (wide((8, 4500), 3.0, 12), torch.randn(4500, 8, generator=gen(13))),
}


def rel_to_abs_sum(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float:
    ref = a.double() @ b.double()
    den = a.double().abs() @ b.double().abs()
    return float(((c.double() - ref).abs() / den.clamp_min(1e-300)).max())


@pytest.mark.parametrize("case", sorted(CASES))
def test_matmul_accuracy_within_stated_bound(case: str) -> None:
    a, b = CASES[case]()
    c = numerics.matmul(a, b)
    ref = a.double() @ b.double()
    bound = U * ref.abs() + 2.0**-150 + numerics.matmul_error_bound(a, b)
    assert bool(((c.double() - ref).abs() <= bound).all())


@pytest.mark.parametrize(
    "case", ["gauss", "activations", "lognormal_rows", "spike_1e6", "k_above_chunk"]
)
def test_matmul_wide_range_accuracy_at_least_fp32(case: str) -> None:
    a, b = CASES[case]()
    ours = rel_to_abs_sum(numerics.matmul(a, b), a, b)
    plain = rel_to_abs_sum(a @ b, a, b)
    assert ours <= plain


def round_f32(x: Fraction) -> float:
    """Exact round-to-nearest-even of a rational to binary32 (handles subnormals)."""
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    x = abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    q = max(e - 23, -149)
    scaled = x / Fraction(2) ** q
    n = scaled.numerator // scaled.denominator
    rem = scaled - n
    if rem > Fraction(1, 2) or (rem == Fraction(1, 2) and n % 2 == 1):
        n += 1
    return sign * float(np.float32(n * 2.0**q)) if n * 2.0**q < 2.0**128 else sign * math.inf


def exact_kept(a: torch.Tensor, b: torch.Tensor) -> list[list[float]]:
    """The documented definition, in Python integers: kept slice pairs, rounded once."""
    m, k = a.shape
    n = b.shape[1]
    s_, w = 7, 49

    def digits(v: float, e: int) -> list[int]:
        x = Fraction(v) * Fraction(2) ** (w - e)
        big = int(x)  # trunc toward zero
        s = -1 if big < 0 else 1
        mag = abs(big)
        return [s * ((mag >> (7 * (s_ - 1 - p))) & 127) for p in range(s_)]

    def exp_of(vals: list[float]) -> int:
        mx = max(abs(v) for v in vals)
        return 0 if mx == 0 else math.frexp(mx)[1]

    ea = [exp_of(a[i].tolist()) for i in range(m)]
    eb = [exp_of(b[:, j].tolist()) for j in range(n)]
    da = [[digits(a[i, kk].item(), ea[i]) for kk in range(k)] for i in range(m)]
    db = [[digits(b[kk, j].item(), eb[j]) for j in range(n)] for kk in range(k)]
    out = []
    for i in range(m):
        row = []
        for j in range(n):
            s = 0
            for p in range(s_):
                for q in range(s_ - p):
                    g = sum(da[i][kk][p] * db[kk][j][q] for kk in range(k))
                    s += g * 2 ** (7 * (2 * s_ - 2 - p - q))
            row.append(round_f32(Fraction(s) * Fraction(2) ** (ea[i] + eb[j] - 2 * w)))
        out.append(row)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matmul_equals_exact_definition_rounded_once(seed: int) -> None:
    g = gen(100 + seed)
    a = torch.randn(5, 7, generator=g) * torch.exp(6 * torch.randn(5, 7, generator=g))
    b = torch.randn(7, 4, generator=g) * torch.exp(3 * torch.randn(7, 4, generator=g))
    a[0, 0] = 0.0
    b[:, 1] = 0.0
    got = numerics.matmul(a, b).tolist()
    assert got == exact_kept(a, b)


def test_matmul_multi_chunk_path_equals_exact_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    # A short K_CHUNK forces several k-chunks, the last one zero-padded; the wide-range rows
    # give sums on both sides of the 2**53 split in the final conversion.
    g = gen(7)
    a = torch.randn(3, 40, generator=g) * torch.exp(4 * torch.randn(3, 40, generator=g))
    b = torch.randn(40, 3, generator=g)
    want = exact_kept(a, b)
    assert numerics.matmul(a, b).tolist() == want
    monkeypatch.setattr(matmul_int, "K_CHUNK", 16)
    assert numerics.matmul(a, b).tolist() == want


def test_matmul_cancellation_and_ties_equal_exact_definition() -> None:
    # Exact cancellation to tiny sums (|S| < 2**53) next to huge ones (|S| >> 2**53), and
    # sums sitting on or next to a binary32 tie, where a double rounding would go wrong.
    a = torch.tensor([[1.0, 1.0 + 2.0**-23, -1.0, 3.0], [2.0**-20, 1.0, 2.0**-24, 0.5]])
    b = torch.tensor([[1.0, 3.0], [1.0, -1.0], [1.0 + 2.0**-23, 2.0**-30], [2.0**-24, 1.0]])
    assert numerics.matmul(a, b).tolist() == exact_kept(a, b)
    g = gen(8)
    a = torch.randn(4, 33, generator=g).sign() * (1.0 + torch.rand(4, 33, generator=g))
    b = torch.ones(33, 5)
    b[0] = 2.0**-24
    assert numerics.matmul(a, b).tolist() == exact_kept(a, b)


def test_matmul_blockings_bit_identical(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = CASES["lognormal_rows"]()
    ref = tensor_hash(numerics.matmul(a, b))
    # Row and column blocks of the output are computed independently.
    rows = torch.cat([numerics.matmul(a[i : i + 7], b) for i in range(0, a.shape[0], 7)])
    cols = torch.cat([numerics.matmul(a, b[:, j : j + 5]) for j in range(0, b.shape[1], 5)], 1)
    assert tensor_hash(rows) == ref
    assert tensor_hash(cols) == ref
    # Any k-chunking sums the same exact integers.
    for chunk in (8, 64, 296):
        monkeypatch.setattr(matmul_int, "K_CHUNK", chunk)
        assert tensor_hash(numerics.matmul(a, b)) == ref
    monkeypatch.undo()
    # The batched kernel agrees with the 2-D one per batch entry.
    batched = numerics.matmul(a.reshape(2, 32, 300), b.unsqueeze(0).expand(2, 300, 32))
    assert tensor_hash(batched.reshape(64, 32)) == ref


def test_matmul_cuda_zero_padding_is_exact() -> None:
    # The zero padding used for cuBLASLt's shape rules must not change a bit (checked on CPU).
    a, b = CASES["lognormal_rows"]()
    a, b = a[:5, :297], b[:297, :13]
    ref = tensor_hash(numerics.matmul(a, b))
    a3 = matmul_int._cuda_pad(matmul_int._cuda_pad(a.unsqueeze(0), 2, 8), 1, 1, 17)
    b3 = matmul_int._cuda_pad(matmul_int._cuda_pad(b.unsqueeze(0), 1, 8), 2, 8)
    assert a3.shape == (1, 17, 304) and b3.shape == (1, 304, 16)
    assert tensor_hash(numerics.matmul(a3, b3)[0, :5, :13].contiguous()) == ref


def test_matmul_tiny_rows_float64_scaling_path_bit_identical() -> None:
    # Rows whose maximum is below 2**(W - 126) make the split scale through float64; rows
    # computed together with such rows (so on that path) keep their bits.
    g = gen(71)
    a = torch.randn(6, 50, generator=g)
    b = torch.randn(50, 4, generator=g)
    tiny = a * 2.0**-100
    together = numerics.matmul(torch.cat([a, tiny]), b)
    assert tensor_hash(together[:6]) == tensor_hash(numerics.matmul(a, b))
    assert tensor_hash(together[6:]) == tensor_hash(numerics.matmul(tiny, b))
    assert numerics.matmul(tiny[:2, :9], b[:9]).tolist() == exact_kept(tiny[:2, :9], b[:9])


def test_matmul_thread_counts_bit_identical() -> None:
    a, b = wide((200, 300), 3.0, 20), wide((300, 150), 1.0, 21)
    h1, h2 = under_threads(lambda: tensor_hash(numerics.matmul(a, b)))
    assert h1 == h2


def test_matmul_nonfinite_rows_give_nan_rows_only() -> None:
    a = torch.randn(3, 4, generator=gen(30))
    b = torch.randn(4, 2, generator=gen(31))
    a[1, 2] = float("inf")
    b[0, 1] = float("nan")
    c = numerics.matmul(a, b)
    assert bool(torch.isnan(c[1]).all()) and bool(torch.isnan(c[:, 1]).all())
    assert bool(torch.isfinite(c[[0, 2]][:, 0]).all())


def test_matmul_exact_zero_is_positive_zero() -> None:
    a = torch.tensor([[1.0, -1.0], [-0.0, -0.0]])
    b = torch.tensor([[1.0], [1.0]])
    c = numerics.matmul(a, b)
    assert c.view(torch.int32).tolist() == [[0], [0]]


def reference_tree(x: np.ndarray) -> np.float32:
    """The documented halving tree, element by element in numpy float32."""
    vals = [np.float32(v) for v in x]
    while len(vals) > 1:
        n = len(vals)
        half = 1 << ((n - 1).bit_length() - 1)
        vals = [vals[i] + vals[i + half] if i + half < n else vals[i] for i in range(half)]
    return vals[0]


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 100, 1000])
def test_tree_sum_matches_documented_tree_and_bound(n: int) -> None:
    x = wide((n,), 3.0, n)
    got = numerics.tree_sum(x, 0)
    assert got.item() == float(reference_tree(x.numpy()))
    exact = x.double().sum().item()
    depth = max(1, math.ceil(math.log2(n))) if n > 1 else 0
    assert abs(got.item() - exact) <= (depth + 1) * U * x.double().abs().sum().item()


def test_tree_sum_other_axis_and_threads_bit_identical() -> None:
    x = wide((37, 129), 2.0, 40)
    rows = numerics.tree_sum(x, 1)
    cols = numerics.tree_sum(x.t().contiguous(), 0).t()
    assert tensor_hash(rows) == tensor_hash(cols)
    per_row = torch.cat([numerics.tree_sum(x[i : i + 1], 1) for i in range(37)])
    assert tensor_hash(per_row) == tensor_hash(rows)
    h1, h2 = under_threads(lambda: tensor_hash(numerics.tree_sum(x, 1)))
    assert h1 == h2


def ulp_err(y: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """|y - ref| in units of the float32 spacing at ref (subnormal spacing 2**-149)."""
    r32 = ref.abs().clamp(max=3.4e38).to(torch.float32)
    spacing = (torch.nextafter(r32, torch.tensor(math.inf)) - r32).double()
    spacing = spacing.clamp_min(2.0**-149)
    return (y.double() - ref).abs() / spacing


def all_floats(seed: int, n: int) -> torch.Tensor:
    """Random float32 bit patterns: every exponent, subnormals included."""
    g = gen(seed)
    bits = torch.randint(0, 2**31 - 1, (n,), generator=g, dtype=torch.int64)
    return bits.to(torch.int32).view(torch.float32)


def test_exp_within_one_ulp_on_wide_range() -> None:
    x = torch.cat([torch.linspace(-103.0, 88.7, 20001), torch.randn(5000, generator=gen(50))])
    y = numerics.exp(x)
    ref = torch.exp(x.double())
    finite = ref < 3.4e38
    assert float(ulp_err(y[finite], ref[finite]).max()) <= 1.0
    assert numerics.exp(torch.tensor([-200.0, 200.0, float("-inf"), float("inf")])).tolist() == [
        0.0,
        math.inf,
        0.0,
        math.inf,
    ]
    assert math.isnan(numerics.exp(torch.tensor([float("nan")])).item())


def test_log_within_one_ulp_on_all_positive_floats() -> None:
    x = all_floats(51, 50000)
    x = x[torch.isfinite(x) & (x > 0)]
    y = numerics.log(x)
    ref = torch.log(x.double())
    assert float(ulp_err(y, ref).max()) <= 1.0
    special = numerics.log(torch.tensor([0.0, -0.0, -1.0, math.inf, 1.0]))
    assert special[0].item() == -math.inf and special[1].item() == -math.inf
    assert math.isnan(special[2].item()) and special[3].item() == math.inf
    assert special[4].item() == 0.0


def test_tanh_within_one_ulp_and_odd() -> None:
    x = torch.cat([torch.linspace(-12, 12, 20001), all_floats(52, 20000)])
    x = x[torch.isfinite(x)]
    y = numerics.tanh(x)
    ref = torch.tanh(x.double())
    assert float(ulp_err(y, ref).max()) <= 1.0
    assert tensor_hash(numerics.tanh(-x)) == tensor_hash(-y)
    z = numerics.tanh(torch.tensor([0.0, -0.0]))
    assert z.view(torch.int32).tolist() == [0, -(2**31)]


def test_transcendentals_thread_counts_bit_identical() -> None:
    x = torch.randn(300000, generator=gen(60)) * 10

    def run() -> tuple[bytes, bytes, bytes]:
        return (
            tensor_hash(numerics.exp(x)),
            tensor_hash(numerics.log(x.abs())),
            tensor_hash(numerics.tanh(x)),
        )

    a, b = under_threads(run)
    assert a == b
