"""Datasets built deterministically; batches a function of (dataset, seed, step) alone."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load

from repops import DatasetInvalid, data, stio
from repops.hashing import state_hash


def test_build_digits_twice_identical_bytes(digits_bytes: bytes) -> None:
    assert hashlib.sha256(data.build_digits()).digest() == hashlib.sha256(digits_bytes).digest()
    loaded = st_load(digits_bytes)
    assert loaded["train_x"].shape[1] == 64
    assert 300 < loaded["test_x"].shape[0] < 420


def test_build_digits_equals_sklearn_load_digits(digits: data.Dataset) -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    xs = torch.cat([digits.tensors["train_x"], digits.tensors["test_x"]]).to(torch.float64)
    ref = torch.tensor(raw.data, dtype=torch.float64)
    assert xs.shape == ref.shape
    assert sorted(map(tuple, xs.tolist())) == sorted(map(tuple, ref.tolist()))


def test_build_digits_bad_file_raises(tmp_path: Path) -> None:
    bad = tmp_path / "d.csv.gz"
    bad.write_bytes(gzip.compress(b"1,2,3\n"))
    with pytest.raises(DatasetInvalid, match="64 pixels"):
        data.build_digits(bad)


def test_build_stdlib_chars_twice_identical_bytes(chars_bytes: bytes) -> None:
    assert (
        hashlib.sha256(data.build_stdlib_chars()).digest() == hashlib.sha256(chars_bytes).digest()
    )
    ds = data.Dataset.from_bytes(chars_bytes)
    assert int(ds.tensors["train"].max()) < 128
    assert ds.tensors["train"].numel() > 100_000


def test_build_stdlib_chars_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalid, match=r"abc\.py"):
        data.build_stdlib_chars(str(tmp_path))


def test_batch_pure_function_of_seed_and_step(digits: data.Dataset, chars: data.Dataset) -> None:
    a = data.batch(digits, 1, 5, 8)
    assert state_hash(a) == state_hash(data.batch(digits, 1, 5, 8))
    assert state_hash(a) != state_hash(data.batch(digits, 1, 6, 8))
    assert state_hash(a) != state_hash(data.batch(digits, 2, 5, 8))
    c = data.batch(chars, 3, 0, 4, 16)
    assert c["x"].shape == (4, 16) and torch.equal(c["x"][:, 1:], c["y"][:, :-1])
    assert state_hash(c) == state_hash(data.batch(chars, 3, 0, 4, 16))


def test_dataset_from_bytes_rejects_garbage() -> None:
    with pytest.raises(DatasetInvalid):
        data.Dataset.from_bytes(b"not a dataset")
    wrong = stio.dumps(
        {
            "train": torch.tensor([200], dtype=torch.uint8),
            "val": torch.tensor([1], dtype=torch.uint8),
        },
        {"format": data.CHARS_FORMAT},
    )
    with pytest.raises(DatasetInvalid):
        data.Dataset.from_bytes(wrong)
