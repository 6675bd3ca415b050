"""`assay dataset build|pack`: make a dataset file in one of repops' formats.

    assay dataset build digits --out digits.safetensors     (scikit-learn's bundled digits)
    assay dataset build chars --out chars.safetensors       (a corpus of the Python stdlib)
    assay dataset pack digits --x X.npy --y y.npy --out mine.safetensors
    assay dataset pack chars --text corpus.txt --out mine.safetensors
    assay dataset pack --safetensors in.safetensors --out mine.safetensors

Formats (what a job spec's `data.format` names; every tensor uint8):
`repops-digits-v1`: train_x/test_x (N, 64) pixels 0..16, train_y/test_y (N,) labels 0..9;
`repops-chars-v1`: train/val 1-D ASCII tokens.  `pack` splits like `build` (a seeded 1 in
5 test split for digits, the last tenth for chars) and checks the file loads as the
trainer will load it before writing it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from repops import data as data_mod
from repops import rng, stio
from repops.errors import RepopsError


class DatasetError(Exception):
    """A dataset the CLI cannot build or pack (one line for the user)."""


def build(kind: str) -> bytes:
    if kind == "digits":
        return data_mod.build_digits()
    if kind == "chars":
        return data_mod.build_stdlib_chars()
    raise DatasetError(f"unknown dataset {kind!r}: digits or chars")


def _npy(path: Path) -> np.ndarray:
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read {path} as a .npy array: {exc}") from None
    if isinstance(loaded, np.lib.npyio.NpzFile):
        raise DatasetError(f"{path}: a .npz archive; pass one .npy array per flag")
    return np.asarray(loaded)


def pack_digits(x: np.ndarray, y: np.ndarray) -> bytes:
    """(N, 64) pixels in 0..16 and (N,) labels in 0..9 into `repops-digits-v1`."""
    if x.ndim != 2 or x.shape[1] != 64:
        raise DatasetError(f"--x must be shaped (N, 64), got {x.shape}")
    if y.shape != (x.shape[0],):
        raise DatasetError(f"--y must be shaped ({x.shape[0]},), got {y.shape}")
    if not np.issubdtype(x.dtype, np.integer) or x.min() < 0 or x.max() > 16:
        raise DatasetError("--x must hold integer pixels in 0..16")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise DatasetError("--y must hold integer labels in 0..9")
    xs = torch.from_numpy(x.astype(np.uint8))
    ys = torch.from_numpy(y.astype(np.uint8))
    test = rng.bits32(0, rng.stream_id("digits.split"), torch.arange(xs.shape[0])) % 5 == 0
    tensors = {"train_x": xs[~test], "train_y": ys[~test], "test_x": xs[test], "test_y": ys[test]}
    return stio.dumps(tensors, {"format": data_mod.DIGITS_FORMAT, "source": "assay dataset pack"})


def pack_chars(text: bytes) -> bytes:
    """ASCII text into `repops-chars-v1` (90% train, 10% val)."""
    if len(text) < 20:
        raise DatasetError("--text is too short (fewer than 20 characters)")
    if any(b >= 128 for b in text):
        raise DatasetError("--text must be ASCII (repops-chars-v1 has a 128-symbol vocabulary)")
    tokens = torch.frombuffer(bytearray(text), dtype=torch.uint8).clone()
    n_train = len(text) * 9 // 10
    meta = {"format": data_mod.CHARS_FORMAT, "source": "assay dataset pack"}
    return stio.dumps({"train": tokens[:n_train], "val": tokens[n_train:]}, meta)


def repack_safetensors(raw: bytes) -> bytes:
    """A safetensors file already in one of the formats, written canonically."""
    try:
        tensors, meta = stio.loads(raw)
    except RepopsError as exc:
        raise DatasetError(f"not a safetensors file: {exc}") from None
    return stio.dumps(tensors, meta)


def check(data: bytes) -> data_mod.Dataset:
    """The file as the trainer loads it (raises DatasetError naming what is wrong)."""
    try:
        return data_mod.Dataset.from_bytes(data)
    except RepopsError as exc:
        raise DatasetError(str(exc)) from None
