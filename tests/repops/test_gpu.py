"""CUDA vs CPU: the repops-2 CUDA matmul kernel and every op give the CPU bits, and the same
program gives the same hash for every op (skipped without CUDA; written without a GPU at
hand, so UNVERIFIED until run on one, e.g. by bench/gpu_check.sh)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from repops import conformance, data, numerics
from repops.hashing import tensor_hash
from repops.program import build_program, init_state, train
from repops.trace import replay_step, step_batch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
CUDA = torch.device("cuda")


@pytest.mark.parametrize("tf32", [False, True])
def test_gpu_matmul_and_transcendentals_equal_cpu(tf32: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 700, generator=g) * torch.exp(4 * torch.randn(300, 700, generator=g))
    b = torch.randn(700, 130, generator=g)
    assert tensor_hash(numerics.matmul(a.to(CUDA), b.to(CUDA))) == tensor_hash(
        numerics.matmul(a, b)
    )
    x = torch.randn(100000, generator=g) * 20
    for fn in (numerics.exp, numerics.tanh):
        assert tensor_hash(fn(x.to(CUDA))) == tensor_hash(fn(x))
    assert tensor_hash(numerics.log(x.abs().to(CUDA))) == tensor_hash(numerics.log(x.abs()))
    assert tensor_hash(numerics.tree_sum(x.to(CUDA), 0)) == tensor_hash(numerics.tree_sum(x, 0))


def test_gpu_conformance_cases_match_the_committed_cpu_vectors() -> None:
    bad = [r.line() for r in conformance.report("cuda") if not r.ok]
    assert bad == []


def test_gpu_matmul_batched_strided_and_multi_chunk_equal_cpu() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 45, 1000, generator=g) * torch.exp(3 * torch.randn(3, 45, 1000, generator=g))
    b = torch.randn(3, 1000, 37, generator=g)
    want = tensor_hash(numerics.matmul(a, b))
    assert tensor_hash(numerics.matmul(a.to(CUDA), b.to(CUDA))) == want
    bt = b.transpose(1, 2).contiguous().to(CUDA).transpose(1, 2)
    assert tensor_hash(numerics.matmul(a.to(CUDA), bt)) == want


def test_gpu_every_op_hash_equals_cpu(zoo: tuple[dict[str, Any], data.Dataset]) -> None:
    spec, ds = zoo
    prog = build_program(spec)
    st, _ = train(prog, init_state(prog), ds, 1)
    batch = step_batch(prog, st, ds)
    cpu = replay_step(prog, st, batch, "cpu")
    gpu = replay_step(prog, st, batch, CUDA)
    for j, (x, y) in enumerate(zip(cpu.out_hashes, gpu.out_hashes, strict=True), 1):
        assert x == y, f"op {j} ({prog.tape.nodes[prog.tape.chain[j - 1]].op.value}) differs"
    assert cpu.chain == gpu.chain


def test_gpu_training_run_equals_cpu(gpt_spec: dict[str, Any], chars: data.Dataset) -> None:
    from repops.hashing import state_hash

    prog = build_program(gpt_spec)
    st = init_state(prog)
    a, _ = train(prog, st, chars, 3, "cpu")
    b, _ = train(prog, init_state(prog, CUDA), chars, 3, CUDA)
    assert state_hash(a) == state_hash(b)


@pytest.mark.parametrize("name", ["sgd + clipping + cosine", "adamw + clipping"])
def test_gpu_recipe_run_equals_cpu(name: str, digits: data.Dataset) -> None:
    from repops.hashing import state_hash
    from tests.repops.test_recipe import RECIPES

    prog = build_program(RECIPES[name])
    a, _ = train(prog, init_state(prog), digits, 4, "cpu")
    b, _ = train(prog, init_state(prog, CUDA), digits, 4, CUDA)
    assert state_hash(a) == state_hash(b)


@pytest.mark.parametrize("kernel", ["simple", "tiled", "auto"])
def test_gpu_kernels_equal_their_host_emulation(kernel: str) -> None:
    # The device runs what tests/support/cuda_emu.py emulates on the host (launch, shared
    # tiles and the device's IEEE arithmetic included), on shapes spanning several tiles.
    from repops import cuda_kernels
    from tests.support import cuda_emu

    g = torch.Generator().manual_seed(2)
    for nb, m, k, n in ((1, 300, 517, 130), (3, 129, 128, 65), (2, 7, 1, 300)):
        a = torch.randn(nb, m, k, generator=g) * torch.exp(3 * torch.randn(nb, m, k, generator=g))
        b = torch.randn(nb, k, n, generator=g)
        want = tensor_hash(cuda_emu.matmul(a, b, 128, kernel))
        got = cuda_kernels.matmul(a.to(CUDA), b.to(CUDA), 128, kernel)
        assert tensor_hash(got) == want, (kernel, nb, m, k, n)
