"""The CUDA twin of the repops-2 matmul, built on first use on a machine with CUDA.

`repops/kernels/repops_cuda.cu` (arithmetic in `repops_cuda_core.h`) is compiled with
torch's extension builder (nvcc with `CUDA_FLAGS`: `--fmad=false -ftz=false -prec-div=true
-prec-sqrt=true`, never fast-math) for the visible devices' architectures
(`TORCH_CUDA_ARCH_LIST` when set, else e.g. `9.0` = sm_90 on an H100/H200) into
`<repo>/build/repops-cuda-<hash>/` (the hash covers sources, flags and architectures).
It holds two kernels with the same operations on every output element: a simple one (one
thread per output, 16 x 16 shared tiles) and a register-tiled one (256 threads per
128 x 64 block of C, 8 x 4 outputs per thread, 16-deep k-tiles of A and B in shared
memory); the extension picks the tiled one for large outputs (`choose_kernel` in the
header), `kernel=` forces one (`KERNELS`).  It runs on torch's current CUDA stream of the
operands' device.  Only matmul needs a kernel of its own: the other ops are sequences of
single IEEE operations that torch's CUDA elementwise kernels perform exactly.

Verified without a GPU (tests/repops/test_cuda_kernel_source.py): both kernels compile
with nvcc 13.0 for sm_90, alone and as the whole extension against torch's headers; their
PTX has no float arithmetic but `fma.rn.f32` and `add.rn.f32` (no `.ftz`, `approx`,
tensor-core `mma` or contracted `mad`) and no integer division, their SASS, where
`nvdisasm` is at hand, none but `FFMA` and `FADD`; ptxas reports no spills, and 128
registers and 12,800 bytes of shared memory for the tiled kernel (its launch bounds: 2
blocks of 256 threads per SM); and the same core header run as host C++ block by block,
thread by thread, phase by phase (tests/support/cuda_emu.py), for either kernel, gives the
bits of the CPU kernels and of the slow reference.  NOT verified: it has never run on a
GPU, so the launch, the device's IEEE behaviour, the speed of either kernel and this
module's build on a GPU machine are unchecked until `bench/gpu_check.sh` runs on one.
This module must never enable TF32, tensor cores or fast math.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from repops import kernels

SOURCE = Path(kernels.__file__).with_name("repops_cuda.cu")
CORE = Path(kernels.__file__).with_name("repops_cuda_core.h")
CUDA_FLAGS = ("-O3", "--fmad=false", "-ftz=false", "-prec-div=true", "-prec-sqrt=true")
HOST_FLAGS = ("-O2", "-ffp-contract=off")
# The extension's `kernel` argument: -1 lets its choose_kernel pick (what repops uses), the
# others force one kernel (benchmarks, tests); every choice gives the same bits.
KERNELS = {"auto": -1, "simple": 0, "tiled": 1}

_mod: Any = None


def arch_list() -> str:
    """`TORCH_CUDA_ARCH_LIST` if set, else the visible devices' capabilities ("9.0;...")."""
    env = os.environ.get("TORCH_CUDA_ARCH_LIST", "").strip()
    if env:
        return env
    caps = {torch.cuda.get_device_capability(d) for d in range(torch.cuda.device_count())}
    if not caps:
        raise kernels.KernelBuildError("repops CUDA kernel: no CUDA device to build for")
    return ";".join(f"{major}.{minor}" for major, minor in sorted(caps))


def build_directory(archs: str) -> Path:
    key = hashlib.sha256(SOURCE.read_bytes() + CORE.read_bytes())
    key.update(" ".join((*CUDA_FLAGS, *HOST_FLAGS, archs)).encode())
    return kernels.build_dir().parent / f"repops-cuda-{key.hexdigest()[:12]}"


def _module() -> Any:
    global _mod
    if _mod is None:
        from torch.utils import cpp_extension

        archs = arch_list()
        out = build_directory(archs)
        out.mkdir(parents=True, exist_ok=True)
        saved = os.environ.get("TORCH_CUDA_ARCH_LIST")
        os.environ["TORCH_CUDA_ARCH_LIST"] = archs  # read by torch's builder
        try:
            _mod = cpp_extension.load(
                name="repops_cuda",
                sources=[str(SOURCE)],
                build_directory=str(out),
                extra_include_paths=[str(CORE.parent)],
                extra_cflags=list(HOST_FLAGS),
                extra_cuda_cflags=list(CUDA_FLAGS),
                verbose=False,
            )
        finally:
            if saved is None:
                del os.environ["TORCH_CUDA_ARCH_LIST"]
            else:
                os.environ["TORCH_CUDA_ARCH_LIST"] = saved
    return _mod


def batched(
    ext: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    a: torch.Tensor,
    b: torch.Tensor,
    kc: int,
) -> torch.Tensor:
    """a (..., m, k) x b (..., k, n), equal batch dims, as one call of the 3-D `ext`."""
    lead = a.shape[:-2]
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    nb = 1
    for d in lead:
        nb *= d
    out = ext(a.reshape(nb, m, k), b.reshape(nb, k, n), kc)
    return out.reshape(*lead, m, n)


def kernel_code(kernel: str) -> int:
    """The extension's code for a kernel name ("auto", "simple", "tiled")."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel is one of {sorted(KERNELS)}, got {kernel!r}")
    return KERNELS[kernel]


def matmul(a: torch.Tensor, b: torch.Tensor, kc: int, kernel: str = "auto") -> torch.Tensor:
    """repops-2 matmul of CUDA float32 a (..., m, k) and b (..., k, n), equal batch dims.

    `kernel` forces one of the two CUDA kernels (for benchmarks; the bits are the same)."""
    code, ext = kernel_code(kernel), _module().matmul
    return batched(lambda x, y, c: ext(x, y, c, code), a, b, kc)
