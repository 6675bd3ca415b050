"""The repops-2 CUDA matmul kernels emulated on the host (test support).

`tests/support/cuda_host_emu.cpp` includes the kernels' own arithmetic header
(`repops/kernels/repops_cuda_core.h`) and runs the grid of either kernel sequentially (the
extension's `kernel` codes, `repops.cuda_kernels.KERNELS`: 0 the simple kernel, one thread
per output; 1 the register-tiled one; -1, the default, the one the extension's
`choose_kernel` picks for the shape, so `matmul` emulates what the extension would
launch).  It is built here with g++ and the same flags as the CPU kernels
(`repops.kernels.FLAGS`: -O3, -ffp-contract=off, never fast math).  `matmul(a, b, kc)` has
the signature of `repops.cuda_kernels.matmul` for CPU float32 tensors, and goes through the
same Python batching (`cuda_kernels.batched`), so a harness can route the CUDA matmul to it.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import torch

from repops import cuda_kernels, kernels

EMU_SOURCE = Path(__file__).with_name("cuda_host_emu.cpp")
MAX_GRID_YZ = 65535
_lib: ctypes.CDLL | None = None


def _build() -> Path:
    return kernels.compile_shared(
        EMU_SOURCE,
        kernels.build_dir().parent / "repops-cuda-emu",
        "cuda_host_emu",
        key_files=(cuda_kernels.CORE,),
        extra_args=(f"-I{cuda_kernels.CORE.parent}",),
    )


def lib() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        handle = ctypes.CDLL(str(_build()))
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        handle.repops_cuda_emu_matmul.argtypes = [
            ptr,
            ptr,
            ptr,
            *([i64] * 12),
            ctypes.c_int,
            ctypes.c_int,
        ]
        handle.repops_cuda_emu_matmul.restype = ctypes.c_int
        handle.repops_cuda_emu_choose.argtypes = [i64] * 4
        handle.repops_cuda_emu_choose.restype = ctypes.c_int
        _lib = handle
    return _lib


def choose_kernel(nb: int, m: int, k: int, n: int) -> str:
    """Which kernel the extension launches for (nb, m, k) x (nb, k, n): its choose_kernel."""
    code = lib().repops_cuda_emu_choose(nb, m, k, n)
    return next(name for name, c in cuda_kernels.KERNELS.items() if c == code)


def extension_matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    kc: int,
    kernel: int = -1,
    *,
    max_grid_yz: int = MAX_GRID_YZ,
    reverse_threads: bool = False,
    guard: int = 0,
) -> torch.Tensor:
    """The extension's `matmul` (3-D operands, any strides) with the kernel emulated.

    `guard` 1 (2): the kernel reads copies of a and b flush against an inaccessible page
    after (before) them, so a read out of range kills the process (SIGSEGV)."""
    if kernel not in cuda_kernels.KERNELS.values():
        raise ValueError(f"kernel code is one of -1, 0, 1, got {kernel}")
    if a.dtype != torch.float32 or b.dtype != torch.float32:
        raise TypeError(f"float32 operands, got {a.dtype} and {b.dtype}")
    if a.dim() != 3 or b.dim() != 3 or a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"(nb, m, k) x (nb, k, n), got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.is_cuda or b.is_cuda:
        raise ValueError("the emulator takes CPU tensors")
    nb, m, k = a.shape
    n = b.shape[2]
    c = torch.empty((nb, m, n), dtype=torch.float32)
    rc = lib().repops_cuda_emu_matmul(
        a.data_ptr(),
        b.data_ptr(),
        c.data_ptr(),
        nb,
        m,
        k,
        n,
        *a.stride(),
        *b.stride(),
        kc,
        max_grid_yz,
        int(reverse_threads),
        kernel,
        guard,
    )
    if rc != 0:
        raise ValueError(f"emulated repops_matmul refused the geometry (code {rc})")
    return c


def matmul(a: torch.Tensor, b: torch.Tensor, kc: int, kernel: str = "auto") -> torch.Tensor:
    """`repops.cuda_kernels.matmul` for CPU float32 tensors, with the kernel emulated."""
    code = cuda_kernels.kernel_code(kernel)
    return cuda_kernels.batched(lambda x, y, c: extension_matmul(x, y, c, code), a, b, kc)
