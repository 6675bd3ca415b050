"""Canonical tensor hashes and the training-state hash (DESIGN.md section 4).

tensorHash(t) = sha256( b"repops.tensor.v1\\x00"
                        ‖ uint8(len(dtype_name)) ‖ dtype_name (ASCII, e.g. b"float32", b"int64")
                        ‖ uint64_le(ndim) ‖ uint64_le(dim_0) ‖ ... ‖ uint64_le(dim_{ndim-1})
                        ‖ the elements in C (row-major) order, little-endian )

NaN is canonicalized before hashing: every float32 NaN is encoded as 0x7FC00000 and every
float64 NaN as 0x7FF8000000000000, because devices disagree on NaN sign and payload while
agreeing on everything that can be observed through repops ops.  Negative zero is NOT
canonicalized: repops ops define the sign of every zero they produce.

stateHash(named) = sha256( b"repops.state.v1\\x00" ‖ uint64_le(count)
                           ‖ for each name in sorted (UTF-8 byte) order:
                               uint64_le(len(name_utf8)) ‖ name_utf8 ‖ tensorHash )

The same construction (`state_hash_from_manifest`) works from a manifest name -> tensorHash,
which is what an operand bundle carries.  This module must never depend on device, thread
count or memory layout: it copies to CPU and makes the tensor contiguous first.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

import torch

from repops.errors import RepopsError

TENSOR_TAG = b"repops.tensor.v1\x00"
STATE_TAG = b"repops.state.v1\x00"

_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.uint8: "uint8",
    torch.int8: "int8",
    torch.bool: "bool",
}


def dtype_name(dtype: torch.dtype) -> str:
    """The canonical name of a supported dtype (raises RepopsError for others)."""
    try:
        return _DTYPE_NAMES[dtype]
    except KeyError:
        raise RepopsError(f"dtype {dtype} is not hashable by repops") from None


def canonical_bytes(t: torch.Tensor) -> bytes:
    """Little-endian, row-major element bytes with NaNs canonicalized."""
    c = t.detach().to("cpu").contiguous()
    if c.dtype == torch.float32:
        bits = c.view(torch.int32)
        bits = torch.where(torch.isnan(c), torch.full_like(bits, 0x7FC00000), bits)
        arr = bits.numpy().astype("<i4", copy=False)
    elif c.dtype == torch.float64:
        bits64 = c.view(torch.int64)
        bits64 = torch.where(torch.isnan(c), torch.full_like(bits64, 0x7FF8000000000000), bits64)
        arr = bits64.numpy().astype("<i8", copy=False)
    elif c.dtype == torch.bool:
        arr = c.to(torch.uint8).numpy()
    else:
        dtype_name(c.dtype)
        arr = c.numpy()
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    return arr.tobytes()


def tensor_header(dtype: torch.dtype, shape: tuple[int, ...]) -> bytes:
    """The bytes that precede the elements in the tensor-hash preimage."""
    name = dtype_name(dtype).encode("ascii")
    parts = [TENSOR_TAG, bytes([len(name)]), name, struct.pack("<Q", len(shape))]
    parts.extend(struct.pack("<Q", d) for d in shape)
    return b"".join(parts)


def tensor_hash(t: torch.Tensor) -> bytes:
    """sha256 of the canonical encoding of `t` (32 bytes); independent of device and layout."""
    h = hashlib.sha256(tensor_header(t.dtype, tuple(t.shape)))
    h.update(canonical_bytes(t))
    return h.digest()


def state_hash_from_manifest(manifest: Mapping[str, bytes]) -> bytes:
    """stateHash from a manifest name -> tensorHash (sorted by UTF-8 name bytes)."""
    h = hashlib.sha256(STATE_TAG)
    items = sorted((name.encode("utf-8"), digest) for name, digest in manifest.items())
    h.update(struct.pack("<Q", len(items)))
    for name_b, digest in items:
        if len(digest) != 32:
            raise RepopsError(f"tensor hash of {name_b!r} is {len(digest)} bytes, expected 32")
        h.update(struct.pack("<Q", len(name_b)))
        h.update(name_b)
        h.update(digest)
    return h.digest()


def manifest_of(named_tensors: Mapping[str, torch.Tensor]) -> dict[str, bytes]:
    """name -> tensorHash for every tensor of a state."""
    return {name: tensor_hash(t) for name, t in named_tensors.items()}


def state_hash(named_tensors: Mapping[str, torch.Tensor]) -> bytes:
    """stateHash of a training state (parameters, moments, counters) or of a batch."""
    return state_hash_from_manifest(manifest_of(named_tensors))
