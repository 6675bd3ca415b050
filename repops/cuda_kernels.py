"""The CUDA twin of the repops-2 matmul, built on first use on a machine with CUDA.

`repops/kernels/repops_cuda.cu` is compiled with torch's extension builder (nvcc with
`--fmad=false -ftz=false -prec-div=true -prec-sqrt=true`, never fast-math) into
`<repo>/build/repops-cuda/`.  Only matmul needs a kernel of its own: the other ops are
sequences of single IEEE operations that torch's CUDA elementwise kernels perform exactly.
UNVERIFIED on hardware when written; `bench/gpu_check.sh` compares it bit for bit with the
CPU kernels.  This module must never enable TF32, tensor cores or fast math.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from repops import kernels

_mod: Any = None


def _module() -> Any:
    global _mod
    if _mod is None:
        from torch.utils import cpp_extension

        src = Path(kernels.__file__).with_name("repops_cuda.cu")
        out = kernels.build_dir().parent / "repops-cuda"
        out.mkdir(parents=True, exist_ok=True)
        _mod = cpp_extension.load(
            name="repops_cuda",
            sources=[str(src)],
            build_directory=str(out),
            extra_cflags=["-O2", "-ffp-contract=off"],
            extra_cuda_cflags=[
                "-O3",
                "--fmad=false",
                "-ftz=false",
                "-prec-div=true",
                "-prec-sqrt=true",
            ],
            verbose=False,
        )
    return _mod


def matmul(a: torch.Tensor, b: torch.Tensor, kc: int) -> torch.Tensor:
    """repops-2 matmul of CUDA float32 a (..., m, k) and b (..., k, n), equal batch dims."""
    lead = a.shape[:-2]
    m, k, n = a.shape[-2], a.shape[-1], b.shape[-1]
    nb = 1
    for d in lead:
        nb *= d
    out: torch.Tensor = _module().matmul(a.reshape(nb, m, k), b.reshape(nb, k, n), kc)
    return out.reshape(*lead, m, n)
