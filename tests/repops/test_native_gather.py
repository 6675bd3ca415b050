"""The native TAKE, MAX_GRAD and DROPOUT_MASK kernels give the bits of their torch twins
(`numerics.take_torch`, `numerics.max_grad_torch`, `ops.dropout_mask_torch`), which
are the definitions as torch calls, on edge cases: -1 indices, int64 values, NaN, signed
zeros, ties, non-contiguous inputs, negative seeds and large counters."""

from __future__ import annotations

import math

import pytest
import torch

from repops import numerics, rng
from repops.ops import KERNELS, Op, dropout_mask_torch
from tests.repops.test_numerics import gen, same_bits


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


@pytest.mark.parametrize("dtype", [torch.float32, torch.int64])
@pytest.mark.parametrize(("shape", "lead"), [((3, 4, 5), 1), ((2, 3, 4), 2), ((7, 6), 0)])
def test_take_native_equals_torch(dtype: torch.dtype, shape: tuple[int, ...], lead: int) -> None:
    g = gen(1)
    x = (torch.randn(shape, generator=g) * 100).to(dtype)
    if dtype == torch.float32:
        x.view(-1)[:3] = torch.tensor([-0.0, math.nan, -math.inf])
    per = math.prod(shape[lead:])
    idx = torch.randint(-1, per, (5, 3), generator=g)
    idx[0, 0] = -1
    got = numerics.take(x, idx, lead)
    want = numerics.take_torch(x, idx, lead)
    assert got.shape == want.shape and got.dtype == want.dtype
    assert torch.equal(_bits(got), _bits(want))
    # a permuted (non-contiguous) input
    xt = x.transpose(0, 1)
    per_t = math.prod(xt.shape[lead:])
    idx_t = torch.randint(-1, per_t, (4,), generator=g)
    assert torch.equal(
        _bits(numerics.take(xt, idx_t, lead)), _bits(numerics.take_torch(xt, idx_t, lead))
    )


def test_take_out_of_range_is_refused() -> None:
    with pytest.raises(IndexError, match="out of range"):
        numerics.take(torch.zeros(2, 3), torch.tensor([3]), 1)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_max_grad_native_equals_torch(axis: int) -> None:
    g = gen(2)
    x = torch.randint(-2, 3, (4, 5, 6), generator=g).to(torch.float32)  # many ties
    x[0, 0, 0] = math.nan
    x[1, 2, 3] = math.nan
    x[2] = -0.0
    x[2, 1, 1] = 0.0
    x[3, :, 0] = -math.inf
    gshape = list(x.shape)
    gshape[axis] = 1
    gv = torch.randn(gshape, generator=g)
    gv.view(-1)[0] = -0.0
    gv.view(-1)[1] = math.nan
    got = numerics.max_grad(x, gv, axis)
    want = numerics.max_grad_torch(x, gv, axis)
    assert same_bits(got, want)
    xp = x.permute(2, 0, 1)
    gp = torch.randn([1 if k == axis else xp.shape[k] for k in range(3)], generator=g)
    assert same_bits(numerics.max_grad(xp, gp, axis), numerics.max_grad_torch(xp, gp, axis))


@pytest.mark.parametrize("seed", [0, 7, -3, 2**40 + 5])
def test_dropout_mask_native_equals_torch(seed: int) -> None:
    for p, step, shape in ((0.25, 3, (33, 17)), (0.0, 0, (5,)), (0.9, 2**33 + 1, (4, 4, 4))):
        arg = (rng.stream_id("dropout.0"), round(p * (1 << 24)), 1 / (1 - p), shape)
        s, st = torch.tensor(seed), torch.tensor(step)
        got = KERNELS[Op.DROPOUT_MASK](arg, [s, st])
        assert same_bits(got, dropout_mask_torch(s, st, arg))


def test_bits32_int_equals_the_tensor_mixer() -> None:
    for seed, stream, c in ((0, 0, 0), (-1, 12345, 2**32 - 1), (2**63 - 1, 2**31, 77)):
        want = int(rng.bits32(seed, stream, torch.tensor([c]))[0])
        assert rng.bits32_int(seed, stream, c) == want


def test_relu_and_relu_grad_native_equal_the_definition() -> None:
    g = gen(3)
    x = torch.randn(4097, generator=g)
    x[:6] = torch.tensor([-0.0, 0.0, math.nan, -math.inf, 1e-45, -1e-45])
    gv = torch.randn(4097, generator=g)
    zero = torch.zeros(())
    assert same_bits(KERNELS[Op.RELU](None, [x]), torch.where(x <= 0, zero, x))
    want = torch.where(x > 0, gv, zero)
    assert same_bits(KERNELS[Op.RELU_GRAD](None, [x, gv]), want)
    xt = x[:4096].reshape(64, 64).t()  # non-contiguous operands
    gt = gv[:4096].reshape(64, 64).t()
    assert same_bits(KERNELS[Op.RELU_GRAD](None, [xt, gt]), torch.where(xt > 0, gt, zero))
    assert same_bits(KERNELS[Op.RELU](None, [xt]), torch.where(xt <= 0, zero, xt))
