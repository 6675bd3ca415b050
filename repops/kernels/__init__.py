"""The native repops kernels: built by the project itself with gcc at first use, loaded
with ctypes.

`repops_kernels.cpp` is compiled once per source/compiler/flags into
`<repo>/build/repops-kernels/` (git-ignored; `ASSAY_REPOPS_BUILD_DIR` overrides), with
`-O3 -fopenmp -ffp-contract=off` and never `-ffast-math`: every floating-point step of the
source is one IEEE operation.  The ISA path of matmul (AVX-512, AVX2 or portable scalar,
identical bits) is the best the CPU has, or the one `ASSAY_REPOPS_ISA=avx512|avx2|scalar`
forces.  The shared object links the same OpenMP runtime (libgomp) that torch loads, so
its threads are torch's pool.

This module must never compile with flags that let the compiler reassociate, contract or
flush floating-point operations.
"""

from __future__ import annotations

import ctypes
import enum
import functools
import hashlib
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from repops.errors import RepopsError

SOURCE = Path(__file__).with_name("repops_kernels.cpp")
FLAGS = (
    "-O3",
    "-std=c++17",
    "-fPIC",
    "-shared",
    "-fopenmp",
    "-ffp-contract=off",
    "-fno-fast-math",
    "-fno-math-errno",
    # Only lets selects be if-converted (exception flags are never read); values are
    # unchanged, which the bit tests against the torch sequences check.
    "-fno-trapping-math",
    "-fvisibility=hidden",
)


class KernelBuildError(RepopsError):
    """The native kernels could not be compiled or loaded (message names the cause)."""


class Isa(enum.IntEnum):
    """Matmul code paths; every one gives the same bits."""

    SCALAR = 0
    AVX2 = 1
    AVX512 = 2


_lib: ctypes.CDLL | None = None


def build_dir() -> Path:
    env = os.environ.get("ASSAY_REPOPS_BUILD_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "build" / "repops-kernels"


def _compiler() -> str:
    return os.environ.get("CXX", "g++")


def compile_shared(
    source: Path,
    out_dir: Path,
    stem: str,
    *,
    key_files: Sequence[Path] = (),
    extra_args: Sequence[str] = (),
) -> Path:
    """`source` compiled with `FLAGS` (then `extra_args`) into `out_dir/<stem>-<key>.so`,
    once per content of `source` and `key_files` (headers it includes), compiler version
    and flags; returns the path.  Compiled to a private name, then renamed: concurrent
    builders never see half a file."""
    cxx = _compiler()
    try:
        version = subprocess.run(
            [cxx, "--version"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise KernelBuildError(f"no C++ compiler {cxx!r} for {source.name}: {e}") from e
    content = b"".join(f.read_bytes() for f in (source, *key_files))
    key = hashlib.sha256(content + version.encode() + " ".join((*FLAGS, *extra_args)).encode())
    so = out_dir / f"{stem}-{key.hexdigest()[:16]}.so"
    if so.exists():
        return so
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".so.tmp")
    os.close(fd)
    proc = subprocess.run(
        [cxx, *FLAGS, *extra_args, str(source), "-o", tmp],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        Path(tmp).unlink(missing_ok=True)
        first = (proc.stderr.strip().splitlines() or ["?"])[0]
        raise KernelBuildError(f"compiling {source.name} failed: {first}")
    os.replace(tmp, so)
    return so


def _build() -> Path:
    return compile_shared(SOURCE, build_dir(), "repops_kernels")


def lib() -> ctypes.CDLL:
    """The loaded kernel library (built on first use)."""
    global _lib
    if _lib is None:
        import torch  # noqa: F401  (load torch's libgomp first: one OpenMP runtime)

        so = _build()
        handle = ctypes.CDLL(str(so))
        i64, ptr, cint = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
        handle.repops_matmul.argtypes = [ptr, ptr, ptr, *([i64] * 11), cint, cint, i64, i64, i64]
        handle.repops_matmul.restype = cint
        handle.repops_unary.argtypes = [cint, ptr, ptr, i64, cint]
        handle.repops_unary.restype = cint
        handle.repops_tree_sum.argtypes = [ptr, ptr, i64, i64, i64, cint]
        handle.repops_tree_sum.restype = cint
        handle.repops_gelu_grad.argtypes = [ptr, ptr, ptr, i64, cint]
        handle.repops_gelu_grad.restype = cint
        handle.repops_gelu_erf_grad.argtypes = [ptr, ptr, ptr, i64, cint]
        handle.repops_gelu_erf_grad.restype = cint
        handle.repops_softmax.argtypes = [ptr, ptr, i64, i64, cint]
        handle.repops_softmax.restype = cint
        handle.repops_softmax_grad.argtypes = [ptr, ptr, ptr, i64, i64, cint]
        handle.repops_softmax_grad.restype = cint
        f32 = ctypes.c_float
        handle.repops_layer_norm.argtypes = [ptr, ptr, i64, i64, f32, f32, cint]
        handle.repops_layer_norm.restype = cint
        handle.repops_layer_norm_grad.argtypes = [ptr, ptr, ptr, i64, i64, f32, f32, cint]
        handle.repops_layer_norm_grad.restype = cint
        handle.repops_adam_moment.argtypes = [cint, ptr, ptr, ptr, i64, f32, f32, cint]
        handle.repops_adam_moment.restype = cint
        handle.repops_adamw_param.argtypes = [ptr, ptr, ptr, ptr, i64, *([f32] * 5), cint, cint]
        handle.repops_adamw_param.restype = cint
        handle.repops_relu.argtypes = [ptr, ptr, i64]
        handle.repops_relu.restype = cint
        handle.repops_relu_grad.argtypes = [ptr, ptr, ptr, i64]
        handle.repops_relu_grad.restype = cint
        handle.repops_take.argtypes = [ptr, ptr, ptr, i64, i64, i64, cint]
        handle.repops_take.restype = cint
        handle.repops_max_grad.argtypes = [ptr, ptr, ptr, i64, i64, i64]
        handle.repops_max_grad.restype = cint
        u32 = ctypes.c_uint32
        handle.repops_dropout_mask.argtypes = [u32, u32, u32, u32, i64, f32, ptr, i64]
        handle.repops_dropout_mask.restype = cint
        handle.repops_isa_supported.argtypes = [cint]
        handle.repops_isa_supported.restype = cint
        handle.repops_sanitize_fp.argtypes = [cint]
        handle.repops_sanitize_fp.restype = cint
        handle.repops_set_ftz_daz_for_tests.argtypes = [cint]
        handle.repops_set_ftz_daz_for_tests.restype = None
        _lib = handle
    return _lib


@functools.cache
def supported(isa: Isa) -> bool:
    # Cached: CPU features never change in a process, and the matmul asks on every call.
    return bool(lib().repops_isa_supported(int(isa)))


def available_isas() -> list[Isa]:
    return [isa for isa in Isa if supported(isa)]


def selected_isa() -> Isa:
    """The matmul path: `ASSAY_REPOPS_ISA` if set, else the best this CPU supports."""
    forced = os.environ.get("ASSAY_REPOPS_ISA", "").strip().lower()
    if forced:
        try:
            isa = Isa[forced.upper()]
        except KeyError:
            raise KernelBuildError(
                f"ASSAY_REPOPS_ISA={forced!r}: use avx512, avx2 or scalar"
            ) from None
        if not supported(isa):
            raise KernelBuildError(f"ASSAY_REPOPS_ISA={forced}: this CPU lacks it")
        return isa
    return _best_isa()


@functools.cache
def _best_isa() -> Isa:
    return max(available_isas())
