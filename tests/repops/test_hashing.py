"""tensorHash and stateHash: canonical, documented, layout-independent."""

from __future__ import annotations

import hashlib
import struct

import pytest
import torch

from repops import RepopsError
from repops.hashing import (
    state_hash,
    state_hash_from_manifest,
    tensor_hash,
)


def test_tensor_hash_preimage_matches_documented_encoding() -> None:
    t = torch.tensor([[1.5, -2.0, 0.0]], dtype=torch.float32)
    pre = (
        b"repops.tensor.v1\x00"
        + bytes([7])
        + b"float32"
        + struct.pack("<Q", 2)
        + struct.pack("<QQ", 1, 3)
        + struct.pack("<3f", 1.5, -2.0, 0.0)
    )
    assert tensor_hash(t) == hashlib.sha256(pre).digest()


def test_tensor_hash_noncontiguous_layout_equals_contiguous() -> None:
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    t = base.t()
    assert not t.is_contiguous()
    assert tensor_hash(t) == tensor_hash(t.contiguous())


@pytest.mark.parametrize(
    "other",
    [
        torch.tensor([1.0, 2.0], dtype=torch.float64),
        torch.tensor([[1.0, 2.0]], dtype=torch.float32),
        torch.tensor([1.0, 2.5], dtype=torch.float32),
        torch.tensor([1, 2], dtype=torch.int64),
    ],
)
def test_tensor_hash_dtype_shape_or_value_change_changes_hash(other: torch.Tensor) -> None:
    assert tensor_hash(torch.tensor([1.0, 2.0], dtype=torch.float32)) != tensor_hash(other)


def test_tensor_hash_nan_payloads_canonicalized() -> None:
    a = torch.tensor([0x7FC00000, 0xFFC00001 - (1 << 32), 0x7F800001], dtype=torch.int32)
    nans = a.view(torch.float32)
    assert bool(torch.isnan(nans).all())
    canon = torch.full((3,), float("nan"))
    assert tensor_hash(nans) == tensor_hash(canon)


def test_tensor_hash_negative_zero_differs_from_positive_zero() -> None:
    assert tensor_hash(torch.tensor([0.0])) != tensor_hash(torch.tensor([-0.0]))


def test_tensor_hash_unsupported_dtype_raises() -> None:
    with pytest.raises(RepopsError):
        tensor_hash(torch.zeros(2, dtype=torch.float16))


def test_state_hash_insertion_order_irrelevant_names_matter() -> None:
    a = {"b": torch.ones(2), "a": torch.zeros(3)}
    b = {"a": torch.zeros(3), "b": torch.ones(2)}
    assert state_hash(a) == state_hash(b)
    assert state_hash(a) != state_hash({"a": torch.ones(2), "b": torch.zeros(3)})
    assert state_hash(a) != state_hash({"c": torch.ones(2), "a": torch.zeros(3)})


def test_state_hash_from_manifest_equals_state_hash() -> None:
    st = {"x": torch.arange(4), "y": torch.ones(2, 2)}
    manifest = {k: tensor_hash(v) for k, v in st.items()}
    assert state_hash_from_manifest(manifest) == state_hash(st)
    with pytest.raises(RepopsError):
        state_hash_from_manifest({"x": b"short"})
