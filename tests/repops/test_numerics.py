"""Operator kernels: accuracy against float64 with stated bounds, and bit-reproducibility
across thread counts and blockings.

Accuracy bounds tested here (u = 2**-24, float32 unit roundoff):
* matmul: bit-equal to the slow numpy transcription of the repops-2 definition on every
  ISA path, thread count, blocking and batch layout; |C - A.B| <= (KC + nchunks + 1) u
  sum|A||B|; mean error relative to sum|A||B| no worse than plain fp32 (within 5%), worst
  error within 1.5x of plain fp32, on gaussian, wide-range and real-gradient inputs.
* tree_sum: |s - sum| <= ceil(log2 n) u sum|x| (plus the final rounding).
* exp/log/tanh: within 1 ulp of the float64 value (correctly rounded except in rare ties).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from repops import kernels, numerics
from repops.hashing import tensor_hash
from repops.matmul import reference_matmul
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
    "lognormal_two_sided": lambda: (wide((64, 512), 5.0, 14), wide((512, 64), 5.0, 15)),
    "gauss_k2048": lambda: (
        torch.randn(64, 2048, generator=gen(16)),
        torch.randn(2048, 64, generator=gen(17)),
    ),
}


def rel_to_abs_sum(c: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """(mean, max) over outputs of |C - A.B| / sum|A||B| (float64 reference)."""
    ref = a.double() @ b.double()
    den = (a.double().abs() @ b.double().abs()).clamp_min(1e-300)
    r = (c.double() - ref).abs() / den
    return float(r.mean()), float(r.max())


def real_gradients() -> tuple[torch.Tensor, torch.Tensor]:
    """(h^T, dL/dlogits) of a small MLP on the digits data: a real weight-gradient matmul."""
    from repops import data

    ds = data.Dataset.from_bytes(data.build_digits())
    x = ds.tensors["train_x"][:256].to(torch.float32) / 16.0
    y = ds.tensors["train_y"][:256].to(torch.int64)
    g = gen(77)
    w1 = (torch.randn(x.shape[1], 64, generator=g) * 0.1).requires_grad_()
    w2 = (torch.randn(64, 10, generator=g) * 0.1).requires_grad_()
    h = torch.relu(x @ w1)
    logits = h @ w2
    logits.retain_grad()
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert logits.grad is not None
    return h.detach().t().contiguous(), logits.grad.detach()


def bits(t: torch.Tensor) -> list[int]:
    return t.contiguous().view(torch.int32).reshape(-1).tolist()


def same_bits(x: torch.Tensor, y: torch.Tensor) -> bool:
    return x.shape == y.shape and bool(torch.equal(x.view(torch.int32), y.view(torch.int32)))


ISAS = [isa for isa in kernels.Isa if kernels.supported(isa)]


@pytest.mark.parametrize("case", sorted(CASES))
def test_matmul_accuracy_no_worse_than_plain_fp32(case: str) -> None:
    a, b = CASES[case]()
    ours_mean, ours_max = rel_to_abs_sum(numerics.matmul(a, b), a, b)
    plain_mean, plain_max = rel_to_abs_sum(a @ b, a, b)
    assert ours_mean <= plain_mean * 1.05 + 1e-12
    assert ours_max <= plain_max * 1.5 + 1e-12


def test_matmul_accuracy_on_real_gradients_no_worse_than_plain_fp32() -> None:
    a, b = real_gradients()
    ours_mean, ours_max = rel_to_abs_sum(numerics.matmul(a, b), a, b)
    plain_mean, plain_max = rel_to_abs_sum(a @ b, a, b)
    assert ours_mean <= plain_mean * 1.05 + 1e-12
    assert ours_max <= plain_max * 1.5 + 1e-12


@pytest.mark.parametrize("case", sorted(CASES))
def test_matmul_within_chunked_fma_error_bound(case: str) -> None:
    # First-order bound of KC-long fmaf chains plus ceil(k/KC) - 1 adds: (KC + nchunks) u.
    a, b = CASES[case]()
    k = a.shape[1]
    c = numerics.matmul(a, b).double()
    ref = a.double() @ b.double()
    den = a.double().abs() @ b.double().abs()
    gamma = (min(k, numerics.KC) + -(-k // numerics.KC) + 1) * U
    assert bool(((c - ref).abs() <= gamma * 1.01 * den + 2.0**-148 * k).all())


SPEC_SHAPES = [
    (1, 1, 1),
    (5, 7, 3),
    (17, 129, 33),
    (30, 300, 20),
    (15, 256, 17),
    (3, 0, 4),
    (9, 1024, 4),  # narrow outputs (n <= 16: the AVX-512 path's 8 x 16 tile), many chunks
    (20, 130, 16),
]


@pytest.mark.parametrize("shape", SPEC_SHAPES)
def test_matmul_equals_spec_reference_on_every_isa(shape: tuple[int, int, int]) -> None:
    m, k, n = shape
    a, b = wide((m, k), 3.0, m + k), wide((k, n), 2.0, n + k)
    want = reference_matmul(a.numpy(), b.numpy())
    for isa in ISAS:
        got = numerics.matmul(a, b, isa=isa)
        assert bits(got) == want.view(np.int32).reshape(-1).tolist(), isa


@pytest.mark.parametrize("k", [200, 256, 257])
@pytest.mark.parametrize("n", [65, 129])
def test_matmul_in_place_and_packed_a_panels_equal_the_reference(k: int, n: int) -> None:
    # Full row panels of a row-major A (n <= 4 NR) or a column-major A, leading dimension
    # <= 256, are read in place; the rest are packed.  Both sides of each threshold, with
    # partial panels (31 rows), match the definition on every path.
    a, b = wide((31, k), 3.0, k + n), wide((k, n), 2.0, k - n)
    want = reference_matmul(a.numpy(), b.numpy()).view(np.int32).reshape(-1).tolist()
    a_cols = a.t().contiguous().t()  # column-major: row stride 1, leading dimension 31
    a_wide = torch.zeros(31, 300)[:, :k]  # row-major, leading dimension 300
    a_wide.copy_(a)
    for isa in ISAS:
        for operand in (a, a_cols, a_wide):
            assert bits(numerics.matmul(operand, b, isa=isa)) == want, (isa, operand.stride())


def test_matmul_equals_spec_reference_on_subnormals_ties_and_nonfinite() -> None:
    g = gen(90)
    a = torch.randn(9, 140, generator=g) * 1e-20
    b = torch.randn(140, 11, generator=g) * 1e-20  # products are subnormal or zero
    a[0, :] = torch.tensor([1.0, 2.0**-24] * 70)  # sums on binary32 ties
    b[:, 0] = 1.0
    a[3, 5] = math.inf
    b[7, 4] = math.nan
    a[5, 9] = -math.inf
    b[9, 6] = 0.0
    want = reference_matmul(a.numpy(), b.numpy())
    for isa in ISAS:
        got = numerics.matmul(a, b, isa=isa)
        assert bits(got) == want.view(np.int32).reshape(-1).tolist(), isa
        assert bool(torch.isfinite(got[[0, 1, 2, 4, 6, 7, 8]][:, [0, 1, 2, 3, 5]]).all())


# n = 130 takes the 8 x 32 AVX-512 tile, n = 192 the 6 x 64 one; k = 300 is three chunks,
# packed one, two, three or all at once by the third blocking number.
@pytest.mark.parametrize("n", [130, 192])
def test_matmul_isas_threads_blockings_bit_identical(n: int) -> None:
    a, b = wide((150, 300), 3.0, 20), wide((300, n), 1.0, 21)
    ref = numerics.matmul(a, b, isa=kernels.Isa.SCALAR, threads=1)
    assert same_bits(ref, torch.from_numpy(reference_matmul(a.numpy(), b.numpy())))
    blockings = (None, (1, 1), (14, 16), (8, 32), (100, 64), (1000, 1000))
    for isa in ISAS:
        for threads in (1, 2, 4):
            for blocking in (*blockings, (8, 32, 1), (14, 16, 2), (100, 64, 3), (1, 1, 1)):
                got = numerics.matmul(a, b, isa=isa, threads=threads, blocking=blocking)
                assert same_bits(got, ref), (isa, threads, blocking)
    h1, h2 = under_threads(lambda: tensor_hash(numerics.matmul(a, b)))
    assert h1 == h2 == tensor_hash(ref)


def test_matmul_batch_layouts_bit_identical() -> None:
    a, b = wide((4, 33, 200), 2.0, 22), wide((4, 200, 19), 1.0, 23)
    batched = numerics.matmul(a, b)
    per_entry = torch.stack([numerics.matmul(a[i], b[i]) for i in range(4)])
    assert same_bits(batched, per_entry)
    # Strided (transposed) operands and broadcast ones read the same values.
    at = a.transpose(1, 2).contiguous().transpose(1, 2)
    bt = b.transpose(1, 2).contiguous().transpose(1, 2)
    assert same_bits(numerics.matmul(at, bt), batched)
    shared = numerics.matmul(a, b[0])
    expanded = numerics.matmul(a, b[0].unsqueeze(0).expand(4, 200, 19))
    folded = numerics.matmul(a.reshape(132, 200), b[0]).reshape(4, 33, 19)
    assert same_bits(shared, expanded) and same_bits(shared, folded)
    four_d = numerics.matmul(a.reshape(2, 2, 33, 200), b.reshape(2, 2, 200, 19))
    assert same_bits(four_d.reshape(4, 33, 19), batched)


def test_matmul_rows_and_columns_independent() -> None:
    a, b = CASES["lognormal_rows"]()
    ref = numerics.matmul(a, b)
    rows = torch.cat([numerics.matmul(a[i : i + 7], b) for i in range(0, a.shape[0], 7)])
    cols = torch.cat([numerics.matmul(a, b[:, j : j + 5]) for j in range(0, b.shape[1], 5)], 1)
    assert same_bits(rows, ref) and same_bits(cols, ref)


def test_matmul_chunk_rule_is_visible_in_the_bits() -> None:
    # 1 at k=0, then KC - 1 tiny terms absorbed by the chain, then a new chunk from +0
    # whose tiny terms do add up: the chunk boundary is part of the semantics.
    kc = numerics.KC
    a = torch.ones(1, 2 * kc)
    b = torch.full((2 * kc, 1), 2.0**-25)
    b[0, 0] = 1.0
    got = numerics.matmul(a, b).item()
    assert got == np.float32(1.0) + np.float32((kc) * 2.0**-25)
    assert got == float(reference_matmul(a.numpy(), b.numpy())[0, 0])


def test_matmul_nonfinite_affects_only_its_row_and_column() -> None:
    a = torch.randn(3, 4, generator=gen(30))
    b = torch.randn(4, 2, generator=gen(31))
    a[1, 2] = float("inf")
    b[0, 1] = float("nan")
    c = numerics.matmul(a, b)
    assert bool(torch.isnan(c[:, 1]).all())
    assert not bool(torch.isfinite(c[1, 0]))
    assert bool(torch.isfinite(c[[0, 2], 0]).all())


def test_matmul_exact_zero_is_positive_zero() -> None:
    a = torch.tensor([[1.0, -1.0], [-0.0, -0.0]])
    b = torch.tensor([[1.0], [1.0]])
    c = numerics.matmul(a, b)
    assert c.view(torch.int32).tolist() == [[0], [0]]


def test_matmul_bad_operands_one_line_errors() -> None:
    with pytest.raises(TypeError, match="float32"):
        numerics.matmul(torch.ones(2, 2, dtype=torch.float64), torch.ones(2, 2))
    with pytest.raises(ValueError, match="shapes"):
        numerics.matmul(torch.ones(2, 3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="batch"):
        numerics.matmul(torch.ones(2, 2, 3), torch.ones(3, 3, 2))


def test_isa_forced_by_env_and_bad_value_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_REPOPS_ISA", "scalar")
    assert kernels.selected_isa() is kernels.Isa.SCALAR
    monkeypatch.setenv("ASSAY_REPOPS_ISA", "avx2")
    if kernels.supported(kernels.Isa.AVX2):
        assert kernels.selected_isa() is kernels.Isa.AVX2
    monkeypatch.setenv("ASSAY_REPOPS_ISA", "sse9")
    with pytest.raises(kernels.KernelBuildError, match="ASSAY_REPOPS_ISA"):
        kernels.selected_isa()


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


def test_native_transcendentals_equal_the_torch_sequences_bit_for_bit() -> None:
    x = torch.cat(
        [
            all_floats(61, 200000),
            -all_floats(62, 100000),
            torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 1e-45, -1e-45, 88.7, -110.5]),
            torch.linspace(-30, 30, 10001),
        ]
    )
    for native, ref in (
        (numerics.exp, numerics.exp_torch),
        (numerics.log, numerics.log_torch),
        (numerics.tanh, numerics.tanh_torch),
    ):
        assert tensor_hash(native(x)) == tensor_hash(ref(x)), native.__name__
        y = native(x)
        z = ref(x)
        ok = ~(torch.isnan(y) & torch.isnan(z))
        assert same_bits(y[ok], z[ok]), native.__name__


@pytest.mark.parametrize("shape", [(1,), (7,), (1000,), (37, 129), (3, 5, 300), (300, 3, 5)])
def test_native_tree_sum_equals_torch_sequence_on_every_axis(shape: tuple[int, ...]) -> None:
    x = wide(shape, 3.0, sum(shape))
    x.view(-1)[0] = 1e-41  # a subnormal operand
    for dim in range(len(shape)):
        got = numerics.tree_sum(x, dim)
        assert same_bits(got, numerics.tree_sum_torch(x, dim)), dim
        assert same_bits(
            numerics.tree_sum(x.transpose(0, -1), dim),
            numerics.tree_sum_torch(x.transpose(0, -1), dim),
        ), dim


def test_sqrt_is_correctly_rounded_where_torch_cpu_sqrt_is_not() -> None:
    x = wide((1 << 18,), 5.0, 80).abs()
    x[:4] = torch.tensor([0.0, math.inf, 1e-45, 2.0])
    exact = torch.sqrt(x.double()).to(torch.float32)  # sqrt: double rounding is exact
    assert same_bits(numerics.sqrt(x), exact)
    assert math.isnan(numerics.sqrt(torch.tensor([-1.0])).item())
    assert numerics.sqrt(torch.tensor([-0.0])).view(torch.int32).item() == -(2**31)


def test_fused_adamw_pieces_equal_their_op_sequences() -> None:
    g = gen(81)
    m, gr, p = torch.randn(5000, generator=g), torch.randn(5000, generator=g), wide((5000,), 3, 82)
    v = torch.rand(5000, generator=g) * 1e-4
    b, c = torch.tensor(0.9), torch.tensor(0.1)
    assert same_bits(numerics.adam_moment(m, gr, b, c, False), b * m + c * gr)
    assert same_bits(numerics.adam_moment(v, gr, b, c, True), b * v + c * (gr * gr))
    sc = [torch.tensor(x) for x in (0.19, 0.0019, 1e-8, 3e-4, 0.01)]
    bc1, bc2, eps, lr, wd = sc
    for decay in (False, True):
        u = (m / bc1) / (numerics.sqrt(v / bc2) + eps)
        if decay:
            u = u + wd * p
        assert same_bits(numerics.adamw_param(p, m, v, sc, decay), p - lr * u)


def test_native_gelu_and_its_gradient_equal_the_torch_sequences() -> None:
    x = torch.cat([torch.linspace(-12, 12, 40001), wide((50000,), 2.0, 83)])
    x[:3] = torch.tensor([0.0, -0.0, 1e-40])
    g = torch.randn(x.shape, generator=gen(84))
    assert same_bits(numerics.gelu(x), numerics.gelu_torch(x))
    assert same_bits(numerics.gelu_grad(x, g), numerics.gelu_grad_torch(x, g))
    # Against float64 calculus: the fused derivative is the derivative of the fused op.
    xd = x[:40001].double()
    c = math.sqrt(2 / math.pi)
    t = torch.tanh(c * (xd + 0.044715 * xd**3))
    want = 0.5 * (1 + t) + 0.5 * xd * (1 - t * t) * c * (1 + 3 * 0.044715 * xd * xd)
    got = numerics.gelu_grad(x[:40001], torch.ones(40001)).double()
    assert float((got - want).abs().max()) < 1e-5


def test_kernel_build_without_a_compiler_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setenv("ASSAY_REPOPS_BUILD_DIR", str(tmp_path / "build"))
    with pytest.raises(kernels.KernelBuildError, match=r"no C\+\+ compiler"):
        kernels._build()


def test_kernel_build_is_cached_by_source_and_flags(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ASSAY_REPOPS_BUILD_DIR", str(tmp_path))
    first = kernels._build()
    assert first.parent == tmp_path and first.exists()
    mtime = first.stat().st_mtime_ns
    assert kernels._build() == first and first.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("*.tmp"))


def test_native_softmax_and_its_gradient_equal_the_torch_sequences() -> None:
    x = wide((37, 4, 129), 2.0, 85)
    x[0, 0, 5:] = -math.inf  # a causal-mask row
    x[1, 1, 3] = math.nan
    x[2, 2] = 0.0
    y = numerics.softmax(x)
    assert tensor_hash(y) == tensor_hash(numerics.softmax_torch(x))
    g = torch.randn(x.shape, generator=gen(86))
    assert same_bits(numerics.softmax_grad(y, g), numerics.softmax_grad_torch(y, g))
    ok = torch.isfinite(y).all(-1, keepdim=True).expand(y.shape)
    ref = torch.softmax(x.double(), -1)
    assert int((~ok).sum()) == 129  # only the row with the NaN
    assert float((y.double() - ref).abs()[ok].max()) < 1e-6


def test_native_layer_norm_and_its_gradient_equal_the_torch_sequences() -> None:
    x = wide((37, 5, 130), 2.0, 87)
    x[0, 0] = 3.0  # a constant row: variance 0
    g = torch.randn(x.shape, generator=gen(88))
    y = numerics.layer_norm_core(x, 1e-5)
    assert same_bits(y, numerics.layer_norm_core_torch(x, 1e-5))
    assert same_bits(
        numerics.layer_norm_grad(x, g, 1e-5), numerics.layer_norm_grad_torch(x, g, 1e-5)
    )
    ref = torch.nn.functional.layer_norm(x.double(), (130,), eps=1e-5)
    assert float((y.double() - ref).abs().max()) < 1e-4
    # The fused backward is the derivative: compare with float64 autograd.
    xd = x.double().requires_grad_()
    torch.nn.functional.layer_norm(xd, (130,), eps=1e-5).backward(g.double())
    assert xd.grad is not None
    got = numerics.layer_norm_grad(x, g, 1e-5).double()
    assert float(((got - xd.grad).abs() / (xd.grad.abs() + 1)).max()) < 1e-3


def test_kernels_clear_ftz_daz_themselves_and_restore_the_callers_mode() -> None:
    a = torch.full((20, 300), 1e-20)
    b = torch.full((300, 24), 1e-20)  # products 1e-40: subnormal
    want = numerics.matmul(a, b)
    assert float(want[0, 0]) != 0.0
    tiny = torch.full((4,), 1e-39)
    lib = kernels.lib()
    lib.repops_set_ftz_daz_for_tests(1)
    try:
        assert float((tiny * 1.0)[0]) == 0.0  # the calling thread flushes now
        got = numerics.matmul(a, b, threads=1)
        exp = numerics.exp(torch.full((4,), -90.0))
        assert float((tiny * 1.0)[0]) == 0.0  # ... and still does: the mode was restored
    finally:
        lib.repops_set_ftz_daz_for_tests(0)
    assert same_bits(got, want)
    assert same_bits(exp, numerics.exp_torch(torch.full((4,), -90.0)))
    assert float(exp[0]) != 0.0
