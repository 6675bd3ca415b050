"""Canonical safetensors bytes: deterministic, standard, strictly parsed."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import load as st_load

from repops import CheckpointInvalid, stio


def sample() -> dict[str, torch.Tensor]:
    return {
        "b": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "a": torch.tensor([1.5, -0.0, float("inf")]),
        "c": torch.tensor([1, 2], dtype=torch.uint8),
    }


def test_stio_dumps_insertion_order_irrelevant_and_roundtrips() -> None:
    t = sample()
    raw = stio.dumps(t, {"k": "v"})
    assert raw == stio.dumps(dict(reversed(list(t.items()))), {"k": "v"})
    back, meta = stio.loads(raw)
    assert meta == {"k": "v"}
    for k, v in t.items():
        assert torch.equal(back[k], v) and back[k].dtype == v.dtype


def test_stio_output_readable_by_safetensors() -> None:
    raw = stio.dumps(sample())
    other = st_load(raw)
    assert torch.equal(other["b"], sample()["b"])


def _with_header(header: dict[str, object], body: bytes) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + body


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x05\x00\x00\x00\x00\x00\x00\x00abc",
        _with_header({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\x00" * 4),
        _with_header({"x": {"dtype": "F16", "shape": [1], "data_offsets": [0, 2]}}, b"\x00" * 2),
        _with_header(
            {
                "x": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]},
                "y": {"dtype": "U8", "shape": [2], "data_offsets": [1, 3]},
            },
            b"\x00" * 3,
        ),
        _with_header({"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\x00" * 2),
        _with_header({"x": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}}, b""),
        _with_header({"__metadata__": {"a": 1}}, b""),
    ],
)
def test_stio_loads_malformed_raises(raw: bytes) -> None:
    with pytest.raises(CheckpointInvalid):
        stio.loads(raw)
