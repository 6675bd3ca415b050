"""The closed operator vocabulary: every op documented and implemented; edge semantics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from repops.ops import KERNELS, Op, execute


def test_op_vocabulary_every_member_documented_and_implemented() -> None:
    for op in Op:
        assert op.__doc__ and op.__doc__ != Op.__doc__, op
        assert op.is_leaf or op in KERNELS, op
    assert set(KERNELS) == {op for op in Op if not op.is_leaf}
    assert Op.MATMUL.is_matmul and Op.SUM.is_reduction and Op.EXP.is_elementwise


def f32(*v: float) -> torch.Tensor:
    return torch.tensor(v, dtype=torch.float32)


def bits(t: torch.Tensor) -> list[int]:
    return t.contiguous().view(torch.int32).tolist()


def test_relu_negative_zero_gives_positive_zero_and_nan_propagates() -> None:
    y = execute(Op.RELU, None, [f32(-0.0, -1.0, 2.0, math.nan)])
    assert bits(y[:3]) == bits(f32(0.0, 0.0, 2.0))
    assert math.isnan(y[3].item())


def test_max_reduction_zero_maximum_is_positive_zero() -> None:
    y = execute(Op.MAX, 0, [f32(-0.0, -0.0, -1.0)])
    assert bits(y) == [0]


def test_maximum_minimum_nan_and_ties_follow_definition() -> None:
    a = f32(math.nan, 1.0, -0.0, 2.0)
    b = f32(1.0, math.nan, 0.0, 2.0)
    mx = execute(Op.MAXIMUM, None, [a, b])
    mn = execute(Op.MINIMUM, None, [a, b])
    assert math.isnan(mx[0].item()) and math.isnan(mx[1].item())
    assert bits(mx[2:3]) == bits(f32(0.0)) and bits(mn[2:3]) == bits(f32(0.0))
    assert math.isnan(mn[0].item()) and math.isnan(mn[1].item())


@pytest.mark.parametrize(
    ("op", "npop"),
    [(Op.ADD, np.add), (Op.SUB, np.subtract), (Op.MUL, np.multiply), (Op.DIV, np.divide)],
)
def test_elementwise_binary_is_one_ieee_float32_operation(op: Op, npop: np.ufunc) -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(10000, generator=g) * torch.exp(20 * torch.randn(10000, generator=g))
    b = torch.randn(10000, generator=g) * torch.exp(20 * torch.randn(10000, generator=g))
    scalar = torch.tensor(0.3, dtype=torch.float32)
    with np.errstate(all="ignore"):
        want = npop(a.numpy(), b.numpy())
        want_s = npop(a.numpy(), scalar.numpy())
    assert bits(execute(op, None, [a, b])) == bits(torch.from_numpy(want))
    assert bits(execute(op, None, [a, scalar])) == bits(torch.from_numpy(want_s))


def test_sqrt_correctly_rounded_and_subnormals_kept() -> None:
    x = torch.tensor([2.0, 1e-45, 3e-39, 0.5], dtype=torch.float32)
    assert bits(execute(Op.SQRT, None, [x])) == bits(torch.from_numpy(np.sqrt(x.numpy())))
    tiny = execute(Op.MUL, None, [f32(1e-20), f32(1e-20)])
    assert tiny.item() != 0.0  # 1e-40 is subnormal, not flushed


def test_onehot_gather_to_f32_exact() -> None:
    idx = torch.tensor([[2, 0]], dtype=torch.int64)
    oh = execute(Op.ONEHOT, 3, [idx])
    assert oh.tolist() == [[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]]
    table = torch.arange(6, dtype=torch.float32).reshape(3, 2)
    assert execute(Op.GATHER_ROWS, None, [table, idx]).tolist() == [[[4.0, 5.0], [0.0, 1.0]]]
    big = torch.tensor([2**24 + 1], dtype=torch.int64)
    assert execute(Op.TO_F32, None, [big]).item() == 2.0**24
