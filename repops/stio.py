"""Canonical safetensors bytes: deterministic writing and strict reading.

Checkpoints, datasets and operand bundles are files that other parties hash, pin and
re-read, so the same tensors must always give the same bytes.  The writer therefore
emits a canonical safetensors file:

* 8-byte little-endian header length, then a JSON header, then the data section;
* the header is JSON with sorted keys and no whitespace (`separators=(",", ":")`),
  ASCII only, padded with spaces to a multiple of 8 bytes;
* tensors are laid out in the data section in sorted name order, back to back;
* `__metadata__` (string -> string) is always present, possibly empty.

Any safetensors reader can load these files.  The reader here is strict because it
parses untrusted bundles: it checks sizes, dtypes, shapes, offsets and overlaps and
raises `CheckpointInvalid` instead of trusting the header.  It never executes or
unpickles anything.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

import numpy as np
import torch

from repops.errors import CheckpointInvalid

_TO_ST: dict[torch.dtype, str] = {
    torch.float32: "F32",
    torch.float64: "F64",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.uint8: "U8",
    torch.int8: "I8",
    torch.uint16: "U16",
    torch.uint32: "U32",
    torch.bool: "BOOL",
}
_FROM_ST: dict[str, tuple[torch.dtype, str, int]] = {
    "F32": (torch.float32, "<f4", 4),
    "F64": (torch.float64, "<f8", 8),
    "I64": (torch.int64, "<i8", 8),
    "I32": (torch.int32, "<i4", 4),
    "U8": (torch.uint8, "u1", 1),
    "U16": (torch.uint16, "<u2", 2),
    "U32": (torch.uint32, "<u4", 4),
    "I8": (torch.int8, "i1", 1),
    "BOOL": (torch.bool, "u1", 1),
}
MAX_HEADER_BYTES = 1 << 26


def dumps(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """Canonical safetensors bytes of `tensors` (moved to CPU, made contiguous)."""
    header: dict[str, object] = {"__metadata__": dict(metadata or {})}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise CheckpointInvalid("a tensor may not be named __metadata__")
        t = tensors[name].detach().to("cpu").contiguous()
        if t.dtype not in _TO_ST:
            raise CheckpointInvalid(f"tensor {name!r}: unsupported dtype {t.dtype}")
        arr = t.to(torch.uint8).numpy() if t.dtype == torch.bool else t.numpy()
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {
            "dtype": _TO_ST[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = text.encode("ascii")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(chunks)


def loads(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parse safetensors bytes strictly; returns (tensors on CPU, metadata)."""
    if len(data) < 8:
        raise CheckpointInvalid("file shorter than the 8-byte header length")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > MAX_HEADER_BYTES or 8 + hlen > len(data):
        raise CheckpointInvalid(f"header length {hlen} does not fit the file")
    try:
        header = json.loads(data[8 : 8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointInvalid(f"header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise CheckpointInvalid("header is not a JSON object")
    meta_raw = header.pop("__metadata__", {})
    if not isinstance(meta_raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta_raw.items()
    ):
        raise CheckpointInvalid("__metadata__ must map strings to strings")
    body = memoryview(data)[8 + hlen :]
    spans: list[tuple[int, int, str]] = []
    tensors: dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise CheckpointInvalid(f"tensor {name!r}: malformed header entry")
        st = info["dtype"]
        shape = info["shape"]
        offs = info["data_offsets"]
        if st not in _FROM_ST:
            raise CheckpointInvalid(f"tensor {name!r}: unsupported dtype {st!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in shape
        ):
            raise CheckpointInvalid(f"tensor {name!r}: bad shape {shape!r}")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise CheckpointInvalid(f"tensor {name!r}: bad data_offsets")
        tdtype, npdtype, size = _FROM_ST[st]
        numel = 1
        for d in shape:
            numel *= d
        begin, end = offs
        if not 0 <= begin <= end <= len(body) or end - begin != numel * size:
            raise CheckpointInvalid(f"tensor {name!r}: data_offsets {offs} do not fit")
        spans.append((begin, end, name))
        arr = np.frombuffer(body[begin:end], dtype=npdtype).copy()
        t = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=False))
        if tdtype == torch.bool:
            if bool((t > 1).any()):
                raise CheckpointInvalid(f"tensor {name!r}: bool bytes must be 0 or 1")
            t = t.to(torch.bool)
        tensors[name] = t.reshape(shape)
    spans.sort()
    pos = 0
    for begin, end, name in spans:
        if begin != pos:
            raise CheckpointInvalid(f"tensor {name!r}: data overlaps or leaves a gap")
        pos = end
    if pos != len(body):
        raise CheckpointInvalid("trailing bytes after the last tensor")
    return tensors, dict(meta_raw)
