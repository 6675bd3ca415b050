"""The GPU code path of repops, run on CPU tensors (no GPU needed): `tests.support.gpu_path`
makes every tensor answer is_cpu False / is_cuda True, so the ops take their torch twins and
the CUDA matmul entry (a stand-in here), and audits every torch call the op code makes.

Established here: (1) the twins give the native CPU kernels' bits, op by op (every
conformance case, full-range bit patterns) and for whole training steps (zoo MLP and GPT,
the exported bring-your-own-model examples: state hashes and every op's output hash);
(2) the twins call only the torch functions of `gpu_path.ALLOWED`, each exact per element
under IEEE-754 or integer/data-movement semantics, and never a native CPU kernel.  Assumed:
torch's CUDA kernels of the allowed functions are IEEE-exact, and the CUDA matmul kernel
equals the CPU one (bench/gpu_check.sh, the host emulator).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import repops
import repops.cuda_kernels
from repops import conformance, data, numerics
from repops.hashing import state_hash, tensor_hash
from repops.lowering import examples
from repops.ops import KERNELS, Op, execute
from repops.program import build_program, init_state, train
from repops.trace import replay_step, step_batch
from tests.support import gpu_path as gp

# ----------------------------------------------------------------------------------------
# The harness itself
# ----------------------------------------------------------------------------------------


def test_harness_fakes_the_device_and_restores_everything() -> None:
    x = torch.ones(3)
    real_lib, real_mm = repops.kernels.lib, repops.cuda_kernels.matmul
    with gp.gpu_path() as mode:
        assert (x.is_cpu, x.is_cuda) == (False, True)
        assert x.device.type == "cpu"  # the data really stays on the CPU
        with mode.real_devices():
            assert (x.is_cpu, x.is_cuda) == (True, False)
        assert repops.cuda_kernels.matmul is not real_mm
    assert (x.is_cpu, x.is_cuda) == (True, False)
    assert repops.kernels.lib is real_lib and repops.cuda_kernels.matmul is real_mm


def test_matmul_goes_to_the_cuda_entry_with_folded_batch_dims() -> None:
    seen: list[tuple[tuple[int, ...], tuple[int, ...], int]] = []

    def spy(a: torch.Tensor, b: torch.Tensor, kc: int) -> torch.Tensor:
        seen.append((tuple(a.shape), tuple(b.shape), kc))
        return gp.CUDA_MATMUL_STANDIN(a, b, kc)

    a, b = conformance._floats(40, (2, 3, 5, 300)), conformance._floats(41, (300, 4))
    want = tensor_hash(numerics.matmul(a, b))
    with gp.gpu_path(matmul=spy) as mode:
        got = numerics.matmul(a, b)
    assert seen == [((30, 300), (300, 4), numerics.KC)]
    assert tuple(got.shape) == (2, 3, 5, 4) and tensor_hash(got) == want
    assert gp.problems(mode) == []


def test_conformance_cases_cover_every_op_kind() -> None:
    kinds = {Op(name) for name, _, _ in conformance._cases()}
    assert kinds == set(KERNELS)


def test_ieee_sqrt_is_correctly_rounded() -> None:
    # binary64 carries > 2*24 + 2 bits, so f32(sqrt64(x)) is the correctly rounded binary32
    # square root (double rounding is innocuous for sqrt).
    x = _bits(70, 1 << 14).abs()
    with np.errstate(invalid="ignore"):
        want = torch.from_numpy(np.sqrt(x.numpy().astype(np.float64)).astype(np.float32))
    assert tensor_hash(gp.ieee_sqrt(x)) == tensor_hash(want)


def test_torch_cpu_sqrt_is_not_ieee_so_the_harness_replaces_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without the host IEEE sqrt, torch's CPU kernel (not the device's) would decide the
    sqrt bits: the conformance case fails exactly when that kernel misrounds its input
    (torch 2.13 with AVX-512: about 1 in 6 results one ulp off)."""
    pos = conformance._floats(3, (48, 33), -20, 20).abs()  # the sqrt case's input
    misrounds = tensor_hash(torch.sqrt(pos)) != tensor_hash(gp.ieee_sqrt(pos))
    monkeypatch.setattr(gp, "HOST_IEEE", {})
    with gp.gpu_path():
        bad = {r.name for r in conformance.report() if not r.ok}
    assert ("sqrt/torch" in bad) == misrounds
    sqrt_users = {"layer_norm/native", "layer_norm_grad/native", "adamw_param/native"}
    assert bad <= {"sqrt/torch", "adamw_param/native/decay", *sqrt_users}


# ----------------------------------------------------------------------------------------
# Op by op
# ----------------------------------------------------------------------------------------


def test_every_conformance_case_on_the_gpu_path_gives_the_cpu_bits_with_exact_calls() -> None:
    with gp.gpu_path() as mode:
        rep = conformance.report()
    assert [r.line() for r in rep if not r.ok] == []
    assert gp.problems(mode) == []
    sites = {c.site.split()[-1] for c in mode.calls}
    for twin in ("exp_torch", "tree_sum_torch", "softmax_torch", "take_torch", "sin_torch"):
        assert twin in sites  # the twins really ran
    assert set(mode.native) <= gp.NATIVE_ALLOWED


def _bits(seed: int, n: int) -> torch.Tensor:
    """n float32 of uniformly random bit patterns (every exponent, subnormals, inf, NaN)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    raw = rng.integers(0, 1 << 32, n, dtype=np.uint64).astype(np.uint32)
    return conformance._specials(torch.from_numpy(raw.view(np.int32).copy()).view(torch.float32))


def _mid(seed: int, shape: tuple[int, ...], lo: int = -8, hi: int = 8) -> torch.Tensor:
    return conformance._specials(conformance._floats(seed, shape, lo, hi))


def _stress_cases() -> list[tuple[str, Op, Any, list[torch.Tensor]]]:
    n = 1 << 12
    full, full2, mid, g = _bits(50, n), _bits(51, n), _mid(52, (n,)), _mid(53, (n,), -4, 4)
    wide = conformance._floats(54, (n,), -60, 60)
    sc = [conformance._floats(55 + i, (), -12, 0).abs() for i in range(5)]
    rows = _mid(60, (24, 77), -6, 6)
    rows_g = conformance._floats(61, (24, 77))
    ties = torch.from_numpy(
        np.random.Generator(np.random.PCG64(62)).integers(-3, 3, (16, 9)).astype(np.float32)
    )
    ties[0, 3] = math.nan
    ties[1, :] = -0.0
    ties[2, :4] = 0.0
    ints = torch.from_numpy(
        np.random.Generator(np.random.PCG64(63)).integers(-(2**62), 2**62, n, dtype=np.int64)
    )
    cases: list[tuple[str, Op, Any, list[torch.Tensor]]] = []
    for op in (
        Op.NEG,
        Op.RELU,
        Op.EXP,
        Op.LOG,
        Op.TANH,
        Op.SIGMOID,
        Op.GELU,
        Op.GELU_ERF,
        Op.SIN,
        Op.COS,
    ):
        cases += [(f"{op.value}/full", op, None, [full]), (f"{op.value}/mid", op, None, [mid])]
    cases += [
        ("sqrt/full", Op.SQRT, None, [full.abs()]),
        ("sqrt/wide", Op.SQRT, None, [wide.abs()]),
        ("sin/wide", Op.SIN, None, [wide]),
        ("gelu_erf/tails", Op.GELU_ERF, None, [conformance._floats(56, (n,), 1, 5)]),
    ]
    for op in (Op.RELU_GRAD, Op.GELU_GRAD, Op.GELU_ERF_GRAD):
        cases += [
            (f"{op.value}/full", op, None, [full, g]),
            (f"{op.value}/mid", op, None, [mid, g]),
        ]
    for op in (Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MAXIMUM, Op.MINIMUM):
        cases.append((f"{op.value}/full", op, None, [full, full2]))
    cases += [
        ("add/broadcast", Op.ADD, None, [rows, rows_g[:1]]),
        ("mul/strided", Op.MUL, None, [rows.t(), rows_g.t()]),
        *[(f"compare/{c}", Op.COMPARE, c, [full, full2]) for c in ("gt", "ge", "lt", "le", "eq")],
        ("compare/ne", Op.COMPARE, "ne", [full, full]),
        ("where", Op.WHERE, None, [(full > 0).to(torch.int64), full, full2]),
        ("sum/0", Op.SUM, 0, [rows]),
        ("sum/1", Op.SUM, 1, [rows]),
        ("sum/full", Op.SUM, 0, [full.reshape(64, 64)]),
        ("max/ties", Op.MAX, 1, [ties]),
        ("amax/ties", Op.AMAX, 0, [ties]),
        ("max_grad/ties", Op.MAX_GRAD, 1, [ties, rows_g[:16, :1]]),
        ("max_grad/axis0", Op.MAX_GRAD, 0, [ties, rows_g[:1, :9]]),
        ("softmax/rows", Op.SOFTMAX, None, [rows]),
        ("softmax/3d", Op.SOFTMAX, None, [conformance._floats(64, (4, 6, 50), -4, 6)]),
        ("softmax_grad", Op.SOFTMAX_GRAD, None, [rows.abs(), rows_g]),
        ("layer_norm", Op.LAYER_NORM, 1e-5, [rows]),
        ("layer_norm/wide", Op.LAYER_NORM, 1e-5, [conformance._floats(65, (9, 130), -30, 30)]),
        ("layer_norm_grad", Op.LAYER_NORM_GRAD, 1e-5, [rows, rows_g]),
        ("adam_moment", Op.ADAM_MOMENT, False, [mid, g, sc[0], sc[1]]),
        ("adam_moment/square", Op.ADAM_MOMENT, True, [mid.abs(), g, sc[0], sc[1]]),
        ("adamw_param", Op.ADAMW_PARAM, False, [mid, g, wide.abs(), *sc]),
        ("adamw_param/decay", Op.ADAMW_PARAM, True, [mid, g, wide.abs(), *sc]),
        ("to_f32/full", Op.TO_F32, None, [ints]),
        ("take/lead0", Op.TAKE, 0, [rows, torch.tensor([[3, -1, 7], [0, 76, -1]])]),
        ("gather_rows", Op.GATHER_ROWS, None, [rows, torch.tensor([[1, 23], [5, 5]])]),
        ("onehot", Op.ONEHOT, 7, [torch.tensor([0, 6, 3, 3])]),
        ("cat/0", Op.CAT, 0, [rows, rows_g]),
        ("expand", Op.EXPAND, (5, 77), [rows[:1]]),
        ("permute", Op.PERMUTE, (1, 0), [rows]),
        ("reshape", Op.RESHAPE, (77, 24), [rows]),
        (
            "dropout_mask",
            Op.DROPOUT_MASK,
            (99, 1 << 23, 2.0, (7, 33)),
            [torch.tensor(-5, dtype=torch.int64), torch.tensor(3, dtype=torch.int64)],
        ),
        ("matmul/batched", Op.MATMUL, None, [_mid(66, (3, 9, 260)), _mid(67, (3, 260, 11))]),
        ("matmul/2d-b", Op.MATMUL, None, [_mid(68, (2, 9, 140)), _mid(69, (11, 140)).t()]),
    ]
    return cases


STRESS = _stress_cases()


def test_stress_cases_cover_every_op_kind() -> None:
    assert {op for _, op, _, _ in STRESS} == set(KERNELS)


@pytest.mark.parametrize(("name", "op", "arg", "xs"), STRESS, ids=[c[0] for c in STRESS])
def test_gpu_path_op_gives_the_cpu_bits_with_exact_calls(
    name: str, op: Op, arg: Any, xs: list[torch.Tensor]
) -> None:
    want = execute(op, arg, xs)
    with gp.gpu_path() as mode:
        got = execute(op, arg, xs)
    assert (got.dtype, tuple(got.shape)) == (want.dtype, tuple(want.shape))
    assert tensor_hash(got) == tensor_hash(want), name
    assert gp.problems(mode) == []


# ----------------------------------------------------------------------------------------
# The audit can fail: forbidden calls injected into twins are caught
# ----------------------------------------------------------------------------------------


def _f64(x: torch.Tensor) -> torch.Tensor:
    return x.to(torch.float64)


INJECTIONS: dict[str, tuple[str, Callable[..., torch.Tensor], Op, str]] = {
    "float sum": (
        "tree_sum_torch",
        lambda x, dim: torch.sum(x, dim, keepdim=True),
        Op.SOFTMAX,
        "torch.sum(float32)",
    ),
    "libm exp": ("exp_torch", lambda x: torch.exp(x), Op.EXP, "torch.exp(float32)"),
    "fused gelu": (
        "gelu_torch",
        lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
        Op.GELU,
        "torch._C._nn.gelu(float32)",
    ),
    "fused addcmul": (
        "tanh_torch",
        lambda x: torch.addcmul(x, x, x),
        Op.TANH,
        "torch.addcmul(float32, float32, float32)",
    ),
    "scalar over tensor": (
        "sigmoid_torch",
        lambda x: (2.5 / (_f64(x).abs() + 1.0)).to(torch.float32),
        Op.SIGMOID,
        "scalar 2.5 / tensor",
    ),
    "add with alpha": (
        "log_torch",
        lambda x: torch.add(x, x, alpha=0.5),
        Op.LOG,
        "alpha=0.5",
    ),
    "NaN to int": (
        "cos_torch",
        lambda x: x.to(torch.int64).to(torch.float32),
        Op.COS,
        "->torch.int64 of",
    ),
    "tensor over scalar": ("exp_torch", lambda x: x / 3.0, Op.EXP, "tensor / scalar 3.0"),
    "tensor off the device": (
        "tanh_torch",
        lambda x: x * torch.tensor(2.0),
        Op.TANH,
        "created without device=",
    ),
    "shift by a tensor": (
        "cos_torch",
        lambda x: torch.bitwise_left_shift(x.view(torch.int32), x.view(torch.int32)).view(
            torch.float32
        ),
        Op.COS,
        "shift by tensor(",
    ),
    "mixed float widths": (
        "exp_torch",
        lambda x: x * torch.tensor(2.0, dtype=torch.float64, device=x.device),
        Op.EXP,
        "mixed float dtypes",
    ),
    "float arange": (
        "softmax_torch",
        lambda x: x * torch.arange(0.0, x.shape[-1], 1.0, device=x.device),
        Op.SOFTMAX,
        "float arange",
    ),
    "float64 matmul": (
        "sin_torch",
        lambda x: (_f64(x).reshape(1, -1) @ _f64(x).reshape(-1, 1)).to(torch.float32),
        Op.SIN,
        "Tensor.matmul(float64, float64)",
    ),
}


@pytest.mark.parametrize("what", list(INJECTIONS))
def test_a_forbidden_call_in_a_twin_is_caught(what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    twin, bad, op, needle = INJECTIONS[what]
    monkeypatch.setattr(numerics, twin, bad)
    x = _mid(80, (6, 40))
    with gp.gpu_path() as mode:
        execute(op, None, [x])
    found = gp.problems(mode)
    assert any(needle in line for line in found), found
    assert all("numerics.py" in line or "test_gpu_path" in line for line in found)


def test_a_native_kernel_reached_on_the_gpu_path_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dropout mask used to test `seed.device.type`, which the GPU path cannot fake:
    such a CPU-only branch is reported (here: forced by an always-native exp)."""
    monkeypatch.setitem(KERNELS, Op.EXP, lambda arg, x: numerics._native_unary("exp", x[0]))
    with gp.gpu_path() as mode:
        execute(Op.EXP, None, [_mid(81, (40,))])
    assert any("native CPU kernel repops_unary" in line for line in gp.problems(mode))


OP_SOURCES = ["ops.py", "numerics.py", "matmul.py", "cuda_kernels.py"]


@pytest.mark.parametrize("name", OP_SOURCES)
def test_op_code_decides_the_device_only_by_is_cpu_or_is_cuda(name: str) -> None:
    """`x.device.type`/`x.device ==` tests are invisible to the harness: none may exist."""
    src = (Path(repops.__file__).parent / name).read_text()
    assert re.findall(r"device\.type|device\s*[!=]=", src) == []


# ----------------------------------------------------------------------------------------
# Whole training steps
# ----------------------------------------------------------------------------------------


def _check_training(prog: Any, ds: data.Dataset, steps: int = 2) -> None:
    cpu, cpu_losses = train(prog, init_state(prog), ds, steps)
    with gp.gpu_path() as mode:
        gpu, gpu_losses = train(prog, init_state(prog), ds, steps)
    assert gp.problems(mode) == []
    assert mode.calls  # the op code really ran under the harness
    assert state_hash(gpu) == state_hash(cpu)
    assert gpu_losses == cpu_losses
    batch = step_batch(prog, cpu, ds)
    want = replay_step(prog, cpu, batch)
    with gp.gpu_path() as mode:
        got = replay_step(prog, cpu, batch)
    assert gp.problems(mode) == []
    nodes = [prog.tape.nodes[i].op.value for i in prog.tape.chain]
    diff = [
        f"op {j} ({nodes[j - 1]})"
        for j, (x, y) in enumerate(zip(want.out_hashes, got.out_hashes, strict=True), 1)
        if x != y
    ]
    assert diff == []
    assert got.chain == want.chain and got.new_state_hash == want.new_state_hash


def test_zoo_training_steps_on_the_gpu_path_equal_cpu(
    zoo: tuple[dict[str, Any], data.Dataset],
) -> None:
    spec, ds = zoo
    _check_training(build_program(spec), ds)


@pytest.mark.parametrize(
    "name",
    ["dropout", "encoder", "cnn", "rope"],
)
def test_exported_model_training_steps_on_the_gpu_path_equal_cpu(name: str) -> None:
    from tests.repops.test_byom_archs import _lowered, _program

    _, lg = _lowered(name)
    _check_training(_program(lg, name, steps=4), examples.dataset(name))
