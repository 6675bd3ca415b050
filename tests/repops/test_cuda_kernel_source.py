"""The CUDA matmul kernels verified without a GPU.

(a) Their arithmetic (`repops/kernels/repops_cuda_core.h`, the same phase functions the
`__global__` kernels call) emulated on the host block by block, thread by thread
(`tests/support/cuda_emu.py`), for the simple kernel and the register-tiled one alike,
gives the bits of the CPU kernels and of the slow reference, over edge shapes, shapes of
several blocks in every dimension, strided views, wide-range data, subnormals and inf/NaN.
(b) The kernels compile with nvcc for sm_90, their PTX holds no float arithmetic but
`fma.rn.f32` and `add.rn.f32`, and ptxas reports no spills and the tiled kernel within its
launch bounds' 128 registers (skipped without nvcc).  (c) The whole extension compiles
against torch's headers (slow).  What only a GPU can show is in tests/repops/test_gpu.py.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import zlib
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from repops import cuda_kernels, kernels, numerics
from repops.matmul import KC, reference_matmul
from tests.support import cuda_emu

Shape = tuple[int, ...]
Pair = tuple[torch.Tensor, torch.Tensor]
Maker = Callable[[torch.Generator, Shape, Shape], Pair]
SIMPLE, TILED = cuda_kernels.KERNELS["simple"], cuda_kernels.KERNELS["tiled"]
# The two kernels of repops_cuda.cu, emulated (the extension's codes; ids by name).
each_kernel = pytest.mark.parametrize("kernel", [SIMPLE, TILED], ids=["simple", "tiled"])


def _cpu(a: torch.Tensor, b: torch.Tensor, kc: int) -> torch.Tensor:
    """The CPU kernel on (nb, m, k) x (nb, k, n) with any KC (the scalar path)."""
    nb, m, k = a.shape
    n = b.shape[2]
    c = torch.empty((nb, m, n), dtype=torch.float32)
    rc = kernels.lib().repops_matmul(
        a.data_ptr(), b.data_ptr(), c.data_ptr(), nb, m, k, n,
        *a.stride(), *b.stride(), kc, int(kernels.Isa.SCALAR), 1, 0, 0, 0,
    )  # fmt: skip
    assert rc == 0
    return c


def _reference(a: torch.Tensor, b: torch.Tensor, kc: int) -> torch.Tensor:
    return torch.stack(
        [
            torch.from_numpy(reference_matmul(x.numpy(), y.numpy(), kc))
            for x, y in zip(a, b, strict=True)
        ]
    ).reshape(a.shape[0], a.shape[1], b.shape[2])


def assert_same_bits(x: torch.Tensor, y: torch.Tensor) -> None:
    """Equal bits; NaN payloads are unspecified (repops-2), so any NaN matches any NaN."""
    assert x.shape == y.shape
    nx, ny = torch.isnan(x), torch.isnan(y)
    assert torch.equal(nx, ny), f"NaN at {int((nx != ny).sum())} different places"
    xb = torch.where(nx, 0, x.view(torch.int32))
    yb = torch.where(ny, 0, y.view(torch.int32))
    bad = (xb != yb).nonzero()
    assert bad.numel() == 0, f"{bad.shape[0]} elements differ, first at {bad[0].tolist()}"


def _gauss(g: torch.Generator, sa: Shape, sb: Shape) -> Pair:
    return torch.randn(sa, generator=g), torch.randn(sb, generator=g)


def _wide(g: torch.Generator, sa: Shape, sb: Shape) -> Pair:
    a, b = _gauss(g, sa, sb)  # lognormal sigma = 5 scales on both sides
    return a * torch.exp(5 * torch.randn(sa, generator=g)), b * torch.exp(
        5 * torch.randn(sb, generator=g)
    )


def _subnormal(g: torch.Generator, sa: Shape, sb: Shape) -> Pair:
    a, b = _gauss(g, sa, sb)
    a = a * 2.0**-66  # products near 2**-132: subnormal partials and sums
    b = b * 2.0**-66
    a.view(-1)[::3] = torch.randn(a.view(-1)[::3].shape, generator=g) * 2.0**-140  # inputs
    assert a.numel() == 0 or ((a.abs() < 2.0**-126) & (a != 0)).any()
    return a, b


def _nonfinite(g: torch.Generator, sa: Shape, sb: Shape) -> Pair:
    a, b = _gauss(g, sa, sb)
    if a.numel() == 0:
        return a, b
    fa, fb = a.view(-1), b.view(-1)
    fa[0] = float("inf")
    fa[fa.numel() // 2] = float("nan")
    fb[fb.numel() // 3] = float("-inf")
    fb[-1] = 0.0  # inf * 0 somewhere when shapes line up
    a.view(-1)[fa.numel() - 1] = 3.0e38  # overflow in a chain
    return a, b


def _negzero(g: torch.Generator, sa: Shape, sb: Shape) -> Pair:
    # chains from +0 of -0 products stay +0
    return torch.full(sa, -0.0), torch.randn(sb, generator=g)


DATA: dict[str, Maker] = {
    "gauss": _gauss,
    "wide": _wide,
    "subnormal": _subnormal,
    "nonfinite": _nonfinite,
    "negzero": _negzero,
}
# (nb, m, k, n): k across the tile (16) and the chunk (KC = 128) edges and 2 KC + 5; m, n
# not multiples of 16; batches.
SHAPES = [
    (1, 5, 0, 7),
    (1, 1, 1, 1),
    (2, 17, 1, 33),
    (1, 16, 15, 16),
    (1, 16, 16, 16),
    (3, 17, 17, 5),
    (1, 33, KC - 1, 18),
    (2, 20, KC, 31),
    (1, 31, KC + 1, 17),
    (2, 18, 2 * KC + 5, 19),
]
# Several blocks of the tiled kernel (128 x 64) in every dimension, m and n not multiples
# of its block, k over two chunks.
BIG_SHAPES = [(2, 130, 2 * KC + 5, 70), (1, 257, KC + 1, 129)]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the reference
@pytest.mark.parametrize("shape", SHAPES + BIG_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("kind", list(DATA))
@each_kernel
def test_emulated_cuda_kernel_equals_cpu_kernel_and_reference(
    shape: tuple[int, int, int, int], kind: str, kernel: int
) -> None:
    nb, m, k, n = shape
    g = torch.Generator().manual_seed(zlib.crc32(f"{shape}{kind}".encode()))
    a, b = DATA[kind](g, (nb, m, k), (nb, k, n))
    got = cuda_emu.extension_matmul(a, b, KC, kernel=kernel)
    assert_same_bits(got, numerics.matmul(a, b))
    assert_same_bits(got, _reference(a, b, KC))
    if k == 0:
        assert torch.equal(got.view(torch.int32), torch.zeros_like(got, dtype=torch.int32))
    elif kind == "subnormal" and m * n > 1:
        assert ((got != 0) & (got.abs() < 2.0**-126)).any()  # subnormal outputs kept
    elif kind == "nonfinite" and m * n > 1:
        assert got.isnan().any() and got.isinf().any() and got.isfinite().any()
    if kind == "negzero":
        assert (got.view(torch.int32) == 0).all()  # +0, never -0


@pytest.mark.parametrize("kc", [1, 5, 16, 48, 200])
@each_kernel
def test_emulated_cuda_kernel_other_chunk_sizes_equal_cpu_and_reference(
    kc: int, kernel: int
) -> None:
    # KC below and not a multiple of the tile: chunk ends inside a tile, several per tile;
    # KC = 200 > k / 2: one chunk end inside a tile, the last at k.
    g = torch.Generator().manual_seed(kc)
    a, b = _wide(g, (2, 19, 301), (2, 301, 23))
    got = cuda_emu.extension_matmul(a, b, kc, kernel=kernel)
    assert_same_bits(got, _cpu(a, b, kc))
    assert_same_bits(got, _reference(a, b, kc))


@each_kernel
def test_emulated_cuda_kernel_is_sensitive_to_the_chunking(kernel: int) -> None:
    # The comparisons above can fail: another KC gives other bits on the same data.
    g = torch.Generator().manual_seed(3)
    a, b = _wide(g, (1, 20, 300), (1, 300, 20))
    x = cuda_emu.extension_matmul(a, b, KC, kernel=kernel)
    y = cuda_emu.extension_matmul(a, b, 64, kernel=kernel)
    assert not torch.equal(x.view(torch.int32), y.view(torch.int32))


@each_kernel
def test_emulated_cuda_kernel_on_strided_views_equals_contiguous_cpu(kernel: int) -> None:
    g = torch.Generator().manual_seed(4)
    nb, m, k, n = 3, 21, 2 * KC + 5, 19
    a, b = _wide(g, (nb, m, k), (nb, k, n))
    want = numerics.matmul(a, b)
    at = a.transpose(1, 2).contiguous().transpose(1, 2)  # column-major A
    bt = b.transpose(1, 2).contiguous().transpose(1, 2)  # column-major B
    big = torch.zeros(nb, m + 3, k + 5)
    big[:, 2 : 2 + m, 3 : 3 + k] = a
    sliced = big[:, 2 : 2 + m, 3 : 3 + k]  # storage offset and padded rows
    bperm = b.permute(1, 0, 2).contiguous().permute(1, 0, 2)  # batch stride not outermost
    assert not at.is_contiguous() and not bt.is_contiguous() and not sliced.is_contiguous()
    for x, y in [(at, b), (a, bt), (at, bt), (sliced, bperm)]:
        assert_same_bits(cuda_emu.extension_matmul(x, y, KC, kernel=kernel), want)
    b0 = b[:1].expand(nb, k, n)  # batch stride 0
    assert_same_bits(
        cuda_emu.extension_matmul(a, b0, KC, kernel=kernel), numerics.matmul(a, b0.contiguous())
    )


# (1, 250, 46, 70): a partial second block of rows and a last k-tile just short of full (the
# checks that skip the per-element bounds tests must not be too loose).
GUARD_CASES = [(1, 5, 0, 7), (2, 17, 1, 33), (3, 17, 17, 5), (1, 31, KC + 1, 17), (1, 250, 46, 70)]
GUARD_CASES += BIG_SHAPES


@each_kernel
def test_emulated_cuda_kernel_reads_nothing_outside_its_operands(kernel: int) -> None:
    # Out-of-range values never reach an output (rows past m are not stored, k past k not
    # consumed), so the bits cannot show such a read: the operands are copied flush
    # against an inaccessible page after them, then before them (a read outside kills the
    # process), contiguous and as column-major / padded views.
    g = torch.Generator().manual_seed(8)
    for nb, m, k, n in GUARD_CASES:
        a, b = _gauss(g, (nb, m, k), (nb, k, n))
        big = torch.zeros(nb, m + 2, k + 3)
        big[:, 1 : 1 + m, 2 : 2 + k] = a
        views = [
            (a, b),
            (a.mT.contiguous().mT, b.mT.contiguous().mT),  # column-major A and B
            (big[:, 1 : 1 + m, 2 : 2 + k], b),  # padded rows, storage offset
        ]
        want = numerics.matmul(a, b)
        for x, y in views:
            for guard in (1, 2):
                got = cuda_emu.extension_matmul(x, y, KC, kernel, guard=guard)
                assert_same_bits(got, want)


@pytest.mark.parametrize("max_grid_yz", [1, 2])
@each_kernel
def test_emulated_cuda_kernel_launch_offsets_and_thread_order_change_no_bit(
    max_grid_yz: int, kernel: int
) -> None:
    # Grids over the device's y/z limit are split into launches with block offsets; the
    # emulator lowers the limit so 3 batches x 3 row blocks (of 16, and of 128 rows) take
    # several launches.
    g = torch.Generator().manual_seed(5)
    m = 40 if kernel == SIMPLE else 260
    a, b = _wide(g, (3, m, 150), (3, 150, 70))
    want = numerics.matmul(a, b)
    got = cuda_emu.extension_matmul(a, b, KC, max_grid_yz=max_grid_yz, kernel=kernel)
    assert_same_bits(got, want)
    got = cuda_emu.extension_matmul(a, b, KC, reverse_threads=True, kernel=kernel)
    assert_same_bits(got, want)


def test_the_wrapper_picks_the_tiled_kernel_for_large_outputs() -> None:
    # choose_kernel (the extension's rule, run here through the emulator's copy of it).
    pick = cuda_emu.choose_kernel
    assert pick(1, 4096, 4096, 4096) == "tiled"
    assert pick(8, 1024, 768, 3072) == "tiled"  # a GPT MLP matmul, batch folded
    assert pick(96, 1024, 64, 1024) == "tiled"  # attention scores, 8 x 12 heads
    assert pick(1, 256, 4096, 128) == "simple"  # 4 blocks of 128 x 64: too few
    assert pick(4096, 5, 7, 9) == "simple"  # padding would be 100x the outputs
    assert pick(64, 16, 512, 4096) == "simple"  # m = 16: 8x the simple kernel's padding


@each_kernel
def test_emulated_cuda_kernel_keeps_subnormals_under_a_host_flush_mode(kernel: int) -> None:
    # The device has no flush mode (-ftz=false); the emulator must not inherit the host's.
    g = torch.Generator().manual_seed(7)
    a, b = _subnormal(g, (1, 20, 40), (1, 40, 20))
    want = cuda_emu.extension_matmul(a, b, KC, kernel=kernel)
    lib = kernels.lib()
    lib.repops_set_ftz_daz_for_tests(1)
    try:
        got = cuda_emu.extension_matmul(a, b, KC, kernel=kernel)
        flushed = a * 1.0  # a small torch op on this thread: flushed when the mode is on
    finally:
        lib.repops_set_ftz_daz_for_tests(0)
    assert_same_bits(got, want)
    assert ((want != 0) & (want.abs() < 2.0**-126)).any()
    assert not torch.equal(flushed, a)  # the flush mode was on


@pytest.mark.parametrize("name", list(cuda_kernels.KERNELS))
def test_cuda_wrapper_batching_routed_to_the_emulator(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # repops.cuda_kernels.matmul's own code (batch folding, reshapes, the kernel code
    # passed as the extension's 4th argument) with the compiled extension replaced by the
    # emulated one: 4-D operands, a non-contiguous B.
    monkeypatch.setattr(cuda_kernels, "_mod", SimpleNamespace(matmul=cuda_emu.extension_matmul))
    g = torch.Generator().manual_seed(6)
    a, b = _wide(g, (2, 3, 9, 140), (2, 3, 140, 11))
    bt = b.transpose(-1, -2).contiguous().transpose(-1, -2)
    got = cuda_kernels.matmul(a, bt, KC, name)
    assert got.shape == (2, 3, 9, 11)
    assert_same_bits(got, numerics.matmul(a, b))
    assert_same_bits(cuda_emu.matmul(a, bt, KC, name), got)
    with pytest.raises(ValueError, match="kernel is one of"):
        cuda_kernels.matmul(a, bt, KC, "fast")


@each_kernel
def test_emulated_cuda_kernel_refuses_a_bad_chunk_size(kernel: int) -> None:
    a, b = torch.ones(1, 2, 3), torch.ones(1, 3, 2)
    with pytest.raises(ValueError, match="code 2"):
        cuda_emu.extension_matmul(a, b, 0, kernel=kernel)


# ---- (b), (c): nvcc ---------------------------------------------------------------------


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    cand = Path(home) / "bin" / "nvcc"
    return str(cand) if cand.exists() else None


NVCC = _nvcc()
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc not found (PATH, CUDA_HOME)")
SM90 = "-gencode=arch=compute_90,code=sm_90"

# Every float instruction the kernel may contain: loads, stores, moves, and the two IEEE
# operations of the semantics, both with explicit round-to-nearest (so ptxas cannot fuse
# or flush them).  Anything else with a float type is a finding.
ALLOWED_FLOAT_OPS = {
    "fma.rn.f32",
    "add.rn.f32",
    "mov.f32",
    "mov.b32",
    "ld.shared.f32",
    "ld.shared.v4.f32",
    "st.shared.f32",
    "ld.global.f32",
    "ld.global.nc.f32",
    "st.global.f32",
}


def ptx_findings(ptx: str) -> list[str]:
    """What in the PTX could change a bit of the repops-2 semantics (empty: none)."""
    ops: list[str] = []
    for line in ptx.splitlines():
        s = line.split("//")[0].strip()
        if not s or s[0] in ".{}" or s.endswith(":"):
            continue  # directives, braces, labels
        s = re.sub(r"^@!?%\w+\s+", "", s)  # a predicate guard
        ops.append(s.split()[0].rstrip(";"))
    findings = []
    for op in ops:
        parts = op.split(".")
        is_float = any(p in ("f16", "f16x2", "bf16", "f32", "f64", "tf32") for p in parts)
        if is_float and op not in ALLOWED_FLOAT_OPS:
            findings.append(f"float op {op}")
        if "ftz" in parts or "approx" in parts or "sat" in parts:
            findings.append(f"flush/approximate {op}")
        if parts[0] in ("mma", "wgmma", "wmma", "tcgen05") or parts[0].startswith("wgmma"):
            findings.append(f"tensor core {op}")
    for need in ("fma.rn.f32", "add.rn.f32", "bar.sync"):
        if need not in ops:
            findings.append(f"no {need}")
    return sorted(set(findings))


def _nvdisasm() -> str | None:
    # Not in every toolkit install (this project's dev machine has none; e.g. the PyPI wheel
    # nvidia-cuda-nvdisasm has one): ASSAY_NVDISASM, PATH, or next to nvcc.
    env = os.environ.get("ASSAY_NVDISASM")
    if env:
        return env
    found = shutil.which("nvdisasm")
    if found:
        return found
    cand = Path(NVCC).parent / "nvdisasm" if NVCC else None
    return str(cand) if cand is not None and cand.exists() else None


NVDISASM = _nvdisasm()
SASS_LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")
# Float-pipe or tensor-core SASS opcodes; of these only plain FFMA and FADD may appear
# (modifiers such as .FTZ, .SAT, .RM would be findings), and HFMA2.MMA only as ptxas's
# idiom for writing a constant to a register: R := (-0 * 0 + 0, -0 * 0 + c) as two halves
# is the 32-bit pattern of the fp16 literal c in the low half (e.g. 3.147e-05 = 0x0210 =
# 528, the tiled kernel's shared row stride in bytes), no rounding anywhere.
SASS_FLOAT = re.compile(r"^(F[A-Z0-9]*|H[A-Z0-9]*|D[A-Z0-9]*|MUFU|I2F|[A-Z]*MMA|[A-Z]*GMMA)\b")


def sass_findings(sass: str) -> list[str]:
    """What in the SASS could change a bit of the repops-2 semantics (empty: none)."""
    findings = []
    ops = []
    for line in sass.splitlines():
        m = SASS_LINE.search(line)
        if m is None:
            continue
        op, args = m.group(1), " ".join(m.group(2).split())
        ops.append(op)
        if op == "HFMA2.MMA" and re.fullmatch(r"R\d+, -RZ, RZ, 0, [0-9.e+-]+", args):
            continue
        if (SASS_FLOAT.match(op) or "MMA" in op) and op not in ("FFMA", "FADD"):
            findings.append(f"float/tensor op {op} {args}")
    for need in ("FFMA", "FADD"):
        if need not in ops:
            findings.append(f"no {need}")
    return sorted(set(findings))


def _compile_kernel(tmp: Path, *flags: str) -> tuple[str, str]:
    """The kernel alone (-DREPOPS_CUDA_KERNEL_ONLY: no torch headers): PTX and ptxas -v."""
    assert NVCC is not None
    src = str(cuda_kernels.SOURCE)
    common = ["-std=c++20", "-DREPOPS_CUDA_KERNEL_ONLY", SM90, *flags]
    ptx = tmp / "k.ptx"
    subprocess.run([NVCC, *common, "-ptx", src, "-o", str(ptx)], check=True, capture_output=True)
    proc = subprocess.run(
        [NVCC, *common, "-cubin", "-Xptxas", "-v", src, "-o", str(tmp / "k.cubin")],
        check=True,
        capture_output=True,
        text=True,
    )
    assert (tmp / "k.cubin").stat().st_size > 0
    return ptx.read_text(), proc.stdout + proc.stderr


def ptxas_resources(report: str) -> dict[str, dict[str, int]]:
    """ptxas -v per kernel: registers, spill bytes (stores + loads), barriers, smem bytes."""
    out: dict[str, dict[str, int]] = {}
    for part in report.split("Compiling entry function '")[1:]:
        name = part.split("'")[0]
        spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", part)
        used = re.search(r"Used (\d+) registers, used (\d+) barriers, (\d+) bytes smem", part)
        assert spill and used, part
        out["tiled" if "tiled" in name else "simple"] = {
            "registers": int(used.group(1)),
            "spill": int(spill.group(1)) + int(spill.group(2)),
            "barriers": int(used.group(2)),
            "smem": int(used.group(3)),
        }
    return out


@needs_nvcc
def test_cuda_kernel_compiles_for_sm90_and_its_ptx_has_only_ieee_fma_and_add(
    tmp_path: Path,
) -> None:
    ptx, ptxas = _compile_kernel(tmp_path, *cuda_kernels.CUDA_FLAGS)
    assert ".target sm_90" in ptx
    assert ptx_findings(ptx) == []
    assert ptx.count("bar.sync") == 4  # the two __syncthreads() per k-tile of each kernel
    ops = {line.split()[0] for line in ptx.splitlines() if line.startswith("\t") and line.split()}
    assert not [op for op in ops if op.startswith(("div.", "rem."))]  # no integer division
    # The tiled kernel's unrolled k-tile reads 2 + 1 float4s of shared memory per k.
    assert ptx.count("ld.shared.v4.f32") >= 3 * 16
    res = ptxas_resources(ptxas)
    assert set(res) == {"simple", "tiled"}
    assert res["simple"]["spill"] == 0 and res["tiled"]["spill"] == 0
    assert res["tiled"]["registers"] <= 128  # __launch_bounds__(256, 2)
    assert res["simple"]["barriers"] == 1 and res["tiled"]["barriers"] == 1
    # The shared tiles: 2 x 16 x 17 floats; 16 x (128 + 4) + 16 x (64 + 4) floats.
    assert res["simple"]["smem"] == 2176 and res["tiled"]["smem"] == 12800


@needs_nvcc
def test_ptx_audit_catches_flush_to_zero(tmp_path: Path) -> None:
    flags = [f for f in cuda_kernels.CUDA_FLAGS if f != "-ftz=false"]
    ptx, _ = _compile_kernel(tmp_path, *flags, "-ftz=true")
    assert "flush/approximate fma.rn.ftz.f32" in ptx_findings(ptx)


@needs_nvcc
@pytest.mark.skipif(NVDISASM is None, reason="no nvdisasm (ASSAY_NVDISASM, PATH, CUDA_HOME)")
def test_cuda_kernel_sass_for_sm90_has_only_ffma_and_fadd(tmp_path: Path) -> None:
    _compile_kernel(tmp_path, *cuda_kernels.CUDA_FLAGS)
    assert NVDISASM is not None
    sass = subprocess.run(
        [NVDISASM, str(tmp_path / "k.cubin")], capture_output=True, text=True, check=True
    ).stdout
    assert sass_findings(sass) == []
    assert sass.count("BAR.SYNC") == 4


@needs_nvcc
@pytest.mark.skipif(NVDISASM is None, reason="no nvdisasm (ASSAY_NVDISASM, PATH, CUDA_HOME)")
def test_sass_audit_catches_flush_to_zero(tmp_path: Path) -> None:
    flags = [f for f in cuda_kernels.CUDA_FLAGS if f != "-ftz=false"]
    _compile_kernel(tmp_path, *flags, "-ftz=true")
    assert NVDISASM is not None
    sass = subprocess.run(
        [NVDISASM, str(tmp_path / "k.cubin")], capture_output=True, text=True, check=True
    ).stdout
    assert any("FFMA.FTZ" in f for f in sass_findings(sass))


@pytest.mark.slow
@needs_nvcc
def test_cuda_extension_compiles_against_torch_headers(tmp_path: Path) -> None:
    # torch's extension builder's nvcc command (its flags, the sm_90 arch, CUDA_FLAGS), to
    # an object file: linking needs torch's CUDA libraries, which a CPU wheel lacks.
    from torch.utils import cpp_extension

    assert NVCC is not None
    inc = cpp_extension.include_paths()
    shim = []
    if not (Path(inc[0]) / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists():
        shim = ["-DC10_CUDA_NO_CMAKE_CONFIGURE_FILE"]  # generated only in CUDA wheels
    abi = int(torch._C._GLIBCXX_USE_CXX11_ABI)
    cmd = [
        NVCC, "-c", str(cuda_kernels.SOURCE), "-o", str(tmp_path / "repops_cuda.o"),
        *shim, "-DTORCH_API_INCLUDE_EXTENSION_H", "-DTORCH_EXTENSION_NAME=repops_cuda",
        f"-D_GLIBCXX_USE_CXX11_ABI={abi}",
        *[x for p in (*inc, sysconfig.get_paths()["include"]) for x in ("-isystem", p)],
        *cpp_extension.COMMON_NVCC_FLAGS, SM90, "--compiler-options", "-fPIC",
        *cuda_kernels.CUDA_FLAGS, "-std=c++20",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "repops_cuda.o").stat().st_size > 0
    sym = subprocess.run(
        ["nm", "-C", str(tmp_path / "repops_cuda.o")], capture_output=True, text=True, check=True
    ).stdout
    assert "repops_matmul(at::Tensor, at::Tensor, long, long)" in sym
    assert "PyInit_repops_cuda" in sym


def test_emulated_cuda_kernel_on_a_hand_checked_case() -> None:
    # k = 2 KC, one output.  Chunk 0: 1 then 127 x 2**-24 (each add a tie, to even: 1), so
    # P_0 = 1; chunk 1: 128 x 2**-24 = 2**-17 exactly; C = 1 + 2**-17.  One fmaf chain over
    # all k would give 1, a pairwise sum something else again.
    a = np.full((1, 1, 2 * KC), 2.0**-24, dtype=np.float32)
    a[0, 0, 0] = 1.0
    b = np.ones((1, 2 * KC, 1), dtype=np.float32)
    got = cuda_emu.extension_matmul(torch.from_numpy(a), torch.from_numpy(b), KC)
    assert got.item() == 1.0 + 2.0**-17
    assert cuda_emu.extension_matmul(torch.from_numpy(a), torch.from_numpy(b), 2 * KC).item() == 1


# ---- the build call (torch's builder replaced by a recorder: no GPU here) -----------------


def test_cuda_build_uses_the_audited_flags_and_the_device_arch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from torch.utils import cpp_extension

    seen: dict[str, object] = {}

    def load(**kw: object) -> object:
        seen.update(kw, arch=os.environ.get("TORCH_CUDA_ARCH_LIST"))
        return SimpleNamespace(matmul=cuda_emu.extension_matmul)

    monkeypatch.setattr(cpp_extension, "load", load)
    monkeypatch.setattr(cuda_kernels, "_mod", None)
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d: (9, 0))
    monkeypatch.setenv("ASSAY_REPOPS_BUILD_DIR", str(tmp_path / "repops-kernels"))
    cuda_kernels._module()
    assert seen["arch"] == "9.0"  # sm_90 for an H100/H200, set only while building
    assert "TORCH_CUDA_ARCH_LIST" not in os.environ
    assert seen["extra_cuda_cflags"] == list(cuda_kernels.CUDA_FLAGS)
    assert seen["sources"] == [str(cuda_kernels.SOURCE)]
    assert "-ffp-contract=off" in cuda_kernels.HOST_FLAGS
    assert not any("fast" in f for f in (*cuda_kernels.CUDA_FLAGS, *cuda_kernels.HOST_FLAGS))
    assert str(seen["build_directory"]) == str(cuda_kernels.build_directory("9.0"))
    # Another architecture or a changed header is another build directory.
    assert cuda_kernels.build_directory("8.0") != cuda_kernels.build_directory("9.0")
    core = tmp_path / "core.h"
    core.write_bytes(cuda_kernels.CORE.read_bytes() + b"\n")
    monkeypatch.setattr(cuda_kernels, "CORE", core)
    assert cuda_kernels.build_directory("9.0") != seen["build_directory"]
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    assert cuda_kernels.arch_list() == "8.0;9.0+PTX"


def test_cuda_build_without_a_device_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORCH_CUDA_ARCH_LIST", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(kernels.KernelBuildError, match="no CUDA device"):
        cuda_kernels.arch_list()
