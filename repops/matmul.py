"""repops-2 matmul: fixed-order binary32 FMA chains, chunked in k (the native kernel).

Semantics.  For A (m, k) and B (k, n) float32 (a batch applies it per batch entry), with
KC = 128 and the chunks c = 0, 1, .. of k indices [c KC, min((c + 1) KC, k)):

    P_c[i][j] = fmaf(A[i][t_last], B[t_last][j], ... fmaf(A[i][t_0], B[t_0][j], +0) ...)
                over the chunk's t in increasing order (binary32 FMA: one rounding each),
    C[i][j]   = ((P_0 + P_1) + P_2) + ...   (binary32 adds, left to right; C = P_0 for
                one chunk; C = +0 for k = 0).

Round-to-nearest-even everywhere, subnormals kept (never flushed, as inputs or results),
inf/NaN as IEEE-754 gives them (so one inf in a row makes only the affected outputs
inf/NaN; NaN payloads are unspecified).  Nothing else: no split-k, no reassociation, no
tensor cores.  Error: |C - A.B| <= (KC + ceil(k/KC)) u sum|A_it||B_tj| to first order
(u = 2**-24), the same shape of bound as a blocked BLAS.

Implementation: `repops/kernels/repops_kernels.cpp` (AVX-512, AVX2, scalar paths; OpenMP
over output tiles only; one call per batched matmul; FTZ/DAZ cleared inside).
`reference_matmul` is a slow numpy transcription of the definition above for tests.
"""

from __future__ import annotations

import numpy as np
import torch

from repops import kernels

KC = 128


def matmul(
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    isa: kernels.Isa | None = None,
    threads: int | None = None,
    blocking: tuple[int, int] | tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """repops-2 matmul of float32 a (..., m, k) and b (..., k, n).

    Batch dims of `a` and `b` must be equal, or `b` must be 2-D (then a's batch dims are
    folded into rows, which is the same computation per element).  `isa`, `threads` and
    `blocking` (rows and columns per output tile, optionally the k block in chunks of KC)
    never change a bit; they exist for tests.
    """
    if a.dtype != torch.float32 or b.dtype != torch.float32:
        raise TypeError(f"matmul needs float32 operands, got {a.dtype} and {b.dtype}")
    ad, bd = a.dim(), b.dim()
    if ad < 2 or bd < 2 or a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shapes {tuple(a.shape)} and {tuple(b.shape)}")
    out_shape: tuple[int, ...] | None = None
    a_str: tuple[int, ...]
    b_str: tuple[int, ...]
    if bd == 2 and ad > 2:  # a's batch dims folded into rows: the same computation
        out_shape = (*a.shape[:-1], b.shape[1])
        a = a.reshape(-1, a.shape[-1])
        ad = 2
    elif a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"matmul batch dims {tuple(a.shape)} and {tuple(b.shape)}")
    if a.is_cuda:
        from repops.cuda_kernels import matmul as cuda_matmul

        c = cuda_matmul(a, b, KC)
        return c if out_shape is None else c.reshape(out_shape)
    if ad == 2:  # the common case: no batch reshapes (per-op overhead matters)
        m, k = a.shape
        n = b.shape[1]
        nb = 1
        sa0, sa1 = a.stride()
        sb0, sb1 = b.stride()
        a_str = (0, sa0, sa1)
        b_str = (0, sb0, sb1)
        c = torch.empty((m, n), dtype=torch.float32)
    else:
        out_lead = a.shape[:-2]
        m, k = a.shape[-2], a.shape[-1]
        n = b.shape[-1]
        nb = 1
        for d in out_lead:
            nb *= d
        a3 = a.reshape(nb, m, k)
        b3 = b.reshape(nb, k, n)
        a, b = a3, b3
        a_str = a3.stride()
        b_str = b3.stride()
        c = torch.empty((nb, m, n), dtype=torch.float32)
        out_shape = (*out_lead, m, n)
    mc, nc, kbc = (*blocking, 0)[:3] if blocking is not None else (0, 0, 0)
    rc = kernels.lib().repops_matmul(
        a.data_ptr(),
        b.data_ptr(),
        c.data_ptr(),
        nb,
        m,
        k,
        n,
        *a_str,
        *b_str,
        KC,
        int(isa if isa is not None else kernels.selected_isa()),
        threads if threads is not None else torch.get_num_threads(),
        mc,
        nc,
        kbc,
    )
    if rc != 0:
        raise kernels.KernelBuildError(f"repops_matmul failed with code {rc}")
    return c if out_shape is None else c.reshape(out_shape)


def _fma_f32(x: np.ndarray, y: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Correctly rounded binary32 fma(x, y, acc), elementwise (numpy, from first principles).

    x*y is exact in float64 (24 + 24 bits); the exact sum p + acc is s + e (TwoSum); s
    rounded to odd (nudged one ulp toward e when e != 0 and s is even) then rounds to
    binary32 exactly as the exact sum would (53 >= 24 + 2).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        p = x.astype(np.float64) * y.astype(np.float64)
        c = acc.astype(np.float64)
        s = p + c
        bp = s - p
        e = (p - (s - bp)) + (c - bp)
        even = (s.view(np.int64) & 1) == 0
        nudge = np.isfinite(s) & (e != 0) & even
        s = np.where(nudge, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def reference_matmul(a: np.ndarray, b: np.ndarray, kc: int = KC) -> np.ndarray:
    """The definition above, transcribed: float32 (m, k) x (k, n) -> (m, n).  Slow."""
    m, k = a.shape
    n = b.shape[1]
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    out = np.zeros((m, n), dtype=np.float32)
    for c0 in range(0, k, kc):
        part = np.zeros((m, n), dtype=np.float32)
        for t in range(c0, min(c0 + kc, k)):
            part = _fma_f32(
                np.broadcast_to(a[:, t : t + 1], (m, n)), np.broadcast_to(b[t], (m, n)), part
            )
        with np.errstate(invalid="ignore", over="ignore"):
            out = part if c0 == 0 else (out + part).astype(np.float32)
    return out
