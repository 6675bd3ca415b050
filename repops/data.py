"""Deterministic datasets and batches.

Two datasets, each built deterministically as one canonical safetensors file (see
`repops.stio`) that an artifact store can hold and content-address:

* ``digits`` (format ``repops-digits-v1``): scikit-learn's bundled 8x8 digits (read from
  its ``digits.csv.gz`` with the standard library; sklearn itself is never imported).  Tensors
  ``train_x``/``test_x`` (uint8, N x 64, pixel values 0..16), ``train_y``/``test_y``
  (uint8 labels 0..9).  The split puts sample i in the test set iff
  ``rng.bits32(0, stream_id("digits.split"), i) % 5 == 0`` (about 20 %).
* ``stdlib_chars`` (format ``repops-chars-v1``): a character corpus from the Python
  standard library's own source.  For each file of `CORPUS_FILES`, in that order, the
  bytes of ``"# ==== <relative path> ====\\n"`` then the file's bytes with CRLF -> LF, and
  every byte >= 128 replaced by ``?`` (so the vocabulary is the 128 ASCII codes).  The
  files are read from ``sysconfig.get_paths()["stdlib"]``; the bytes depend on the
  CPython minor version and patch level, so the metadata records ``python_version`` and
  the per-file sha256, and a job pins the result by its content hash/CID.  Tensors:
  ``train`` and ``val`` (uint8), the first 90 % and the last 10 % of the corpus.

* ``tensors`` (bring your own data): any safetensors file of named tensors sharing one
  row count N (integer tensors widened to int64, float tensors float32); each tensor
  named like one of the model's inputs.
* ``tokens`` (bring your own text): one 1-D integer tensor ``tokens`` (uint8/16/32 or
  int32/64); a batch is B windows of block + 1 tokens at seeded starts, ``inputs`` the
  first T and ``targets`` the last T (shifted by one), exactly like the chars batches.

Batches are a function of (dataset, seed, step) alone: sample b of step t uses
``rng.randint(seed, stream_id("batch.<t>"), B, n)`` (digits and tensors: row index;
chars and tokens: window start in [0, len - T - 1)).  This module must never depend on file
system order, environment variables or global random state.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import torch

from repops import rng, stio
from repops.errors import DatasetInvalid

DIGITS_FORMAT = "repops-digits-v1"
CHARS_FORMAT = "repops-chars-v1"
TENSORS_FORMAT = "tensors"
TOKENS_FORMAT = "tokens"
DATASETS = {
    "digits": DIGITS_FORMAT,
    "stdlib_chars": CHARS_FORMAT,
    "tensors": TENSORS_FORMAT,
    "tokens": TOKENS_FORMAT,
}
"""Dataset name (the spec's ``data.dataset``) -> the format of its file."""
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_TOKEN_DTYPES = (torch.uint8, torch.uint16, torch.uint32, torch.int32, torch.int64)
VOCAB = 128

# Pure-Python modules that Debian/Ubuntu/conda builds do not patch.
CORPUS_FILES: tuple[str, ...] = (
    "abc.py",
    "bisect.py",
    "heapq.py",
    "colorsys.py",
    "textwrap.py",
    "string.py",
    "fractions.py",
    "numbers.py",
    "statistics.py",
    "shlex.py",
    "graphlib.py",
    "difflib.py",
    "functools.py",
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/scanner.py",
    "dataclasses.py",
    "enum.py",
    "queue.py",
)


def sklearn_digits_path() -> Path:
    """Where scikit-learn keeps its bundled digits file (found without importing sklearn)."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetInvalid("scikit-learn is not installed: pass the digits.csv.gz path")
    return Path(next(iter(spec.submodule_search_locations))) / "datasets/data/digits.csv.gz"


def build_digits(csv_gz: str | Path | None = None) -> bytes:
    """The digits dataset file (deterministic bytes).

    Reads scikit-learn's bundled ``digits.csv.gz`` (the data behind
    ``sklearn.datasets.load_digits``: 1797 rows of 64 pixels and the label) with the
    standard library only.
    """
    path = Path(csv_gz) if csv_gz is not None else sklearn_digits_path()
    try:
        text = gzip.decompress(path.read_bytes()).decode("ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetInvalid(f"digits file {path} unreadable: {e}") from None
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    if not rows or any(len(r) != 65 for r in rows):
        raise DatasetInvalid("digits rows must have 64 pixels and a label")
    try:
        vals = [[int(float(v)) for v in r] for r in rows]
    except ValueError as e:
        raise DatasetInvalid(f"digits value not a number: {e}") from None
    table = torch.tensor(vals, dtype=torch.int64)
    if not bool(((table[:, :64] >= 0) & (table[:, :64] <= 16)).all()) or not bool(
        ((table[:, 64] >= 0) & (table[:, 64] <= 9)).all()
    ):
        raise DatasetInvalid("digits pixels must be in 0..16 and labels in 0..9")
    xs = table[:, :64].to(torch.uint8)
    ys = table[:, 64].to(torch.uint8)
    n = xs.shape[0]
    test = rng.bits32(0, rng.stream_id("digits.split"), torch.arange(n)) % 5 == 0
    tensors = {
        "train_x": xs[~test],
        "train_y": ys[~test],
        "test_x": xs[test],
        "test_y": ys[test],
    }
    return stio.dumps(tensors, {"format": DIGITS_FORMAT, "source": "scikit-learn digits.csv.gz"})


def build_stdlib_chars(stdlib_dir: str | None = None) -> bytes:
    """The character corpus file (deterministic for a given CPython version)."""
    root = Path(stdlib_dir or sysconfig.get_paths()["stdlib"])
    parts: list[bytes] = []
    digests: dict[str, str] = {}
    for rel in CORPUS_FILES:
        path = root / rel
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DatasetInvalid(f"stdlib file {rel} unreadable: {e}") from None
        digests[rel] = hashlib.sha256(data).hexdigest()
        data = data.replace(b"\r\n", b"\n")
        parts.append(f"# ==== {rel} ====\n".encode("ascii"))
        parts.append(data)
    text = bytearray(b"".join(parts))
    for i, ch in enumerate(text):
        if ch >= 128:
            text[i] = ord("?")
    tokens = torch.frombuffer(text, dtype=torch.uint8).clone()
    n_train = len(text) * 9 // 10
    meta = {
        "format": CHARS_FORMAT,
        "python_version": platform.python_version(),
        "files": json.dumps(digests, sort_keys=True, separators=(",", ":")),
    }
    return stio.dumps({"train": tokens[:n_train], "val": tokens[n_train:]}, meta)


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset file: its format, tensors (CPU) and content hash."""

    format: str
    tensors: dict[str, torch.Tensor]
    sha256: str

    @staticmethod
    def from_tensors_bytes(data: bytes) -> Dataset:
        """A ``tensors`` dataset: any safetensors file of named tensors with one row count.

        Integer tensors are widened exactly to int64; float tensors must be float32.
        """
        try:
            tensors, _ = stio.loads(data)
        except Exception as e:
            raise DatasetInvalid(f"dataset file unreadable: {e}") from None
        if not tensors:
            raise DatasetInvalid("tensors dataset holds no tensors")
        rows = {k: int(t.shape[0]) if t.dim() else -1 for k, t in tensors.items()}
        for k, t in sorted(tensors.items()):
            if t.dim() == 0:
                raise DatasetInvalid(f"tensor {k!r} is 0-dim: each tensor needs a row dimension")
            if t.dtype in _INT_DTYPES:
                tensors[k] = t.to(torch.int64)
            elif t.dtype != torch.float32:
                raise DatasetInvalid(f"tensor {k!r} is {t.dtype}: use float32 or an integer type")
        if len(set(rows.values())) != 1 or min(rows.values()) < 1:
            raise DatasetInvalid(f"tensors must share one row count >= 1, got {rows}")
        return Dataset(TENSORS_FORMAT, tensors, hashlib.sha256(data).hexdigest())

    @staticmethod
    def from_tokens_bytes(data: bytes) -> Dataset:
        """A ``tokens`` dataset: one 1-D tensor ``tokens`` (uint8/16/32 or int32/64, >= 0)."""
        try:
            tensors, _ = stio.loads(data)
        except Exception as e:
            raise DatasetInvalid(f"dataset file unreadable: {e}") from None
        if set(tensors) != {"tokens"}:
            raise DatasetInvalid(f"tokens dataset holds one tensor 'tokens', not {sorted(tensors)}")
        t = tensors["tokens"]
        if t.dim() != 1 or t.dtype not in _TOKEN_DTYPES:
            raise DatasetInvalid(
                f"'tokens' must be a 1-D integer stream, got {t.dtype}{list(t.shape)}"
            )
        t = t.to(torch.int64)
        if t.numel() == 0 or int(t.min()) < 0:
            raise DatasetInvalid("'tokens' must be non-empty and non-negative")
        return Dataset(TOKENS_FORMAT, {"tokens": t}, hashlib.sha256(data).hexdigest())

    @staticmethod
    def of_format(fmt: str, data: bytes) -> Dataset:
        """A dataset file read as the format a spec names: ``tensors``, ``tokens``, or a
        built-in format (`from_bytes`, which checks the file's own format tag)."""
        if fmt == TENSORS_FORMAT:
            return Dataset.from_tensors_bytes(data)
        if fmt == TOKENS_FORMAT:
            return Dataset.from_tokens_bytes(data)
        return Dataset.from_bytes(data)

    @staticmethod
    def from_bytes(data: bytes) -> Dataset:
        try:
            tensors, meta = stio.loads(data)
        except Exception as e:
            raise DatasetInvalid(f"dataset file unreadable: {e}") from None
        fmt = meta.get("format", "")
        want = {
            DIGITS_FORMAT: {"train_x", "train_y", "test_x", "test_y"},
            CHARS_FORMAT: {"train", "val"},
        }.get(fmt)
        if want is None:
            raise DatasetInvalid(f"unknown dataset format {fmt!r}")
        if set(tensors) != want or any(t.dtype != torch.uint8 for t in tensors.values()):
            raise DatasetInvalid(f"{fmt}: expected uint8 tensors {sorted(want)}")
        if fmt == DIGITS_FORMAT:
            for split in ("train", "test"):
                x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
                if x.dim() != 2 or x.shape[1] != 64 or y.shape != (x.shape[0],):
                    raise DatasetInvalid(f"{fmt}: bad {split} shapes")
                if x.shape[0] == 0 or bool((x > 16).any()) or bool((y > 9).any()):
                    raise DatasetInvalid(f"{fmt}: bad {split} values")
        elif any(t.dim() != 1 or bool((t >= VOCAB).any()) for t in tensors.values()):
            raise DatasetInvalid(f"{fmt}: tokens must be 1-D ASCII")
        return Dataset(fmt, tensors, hashlib.sha256(data).hexdigest())


def digits_features(x: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..16 -> float32 pixel / 16 (exact)."""
    return x.to(torch.float32) * 0.0625


def batch(
    ds: Dataset, seed: int, step: int, batch_size: int, block: int = 0
) -> dict[str, torch.Tensor]:
    """The batch of `step` (CPU tensors): {"x": ..., "y": ...}.

    digits: x float32 (B, 64), y int64 (B,).  chars: x, y int64 (B, block), y = x shifted.
    """
    stream = rng.stream_id(f"batch.{step}")
    if ds.format == TENSORS_FORMAT:
        n = next(iter(ds.tensors.values())).shape[0]
        idx = rng.randint(seed, stream, batch_size, n, torch.device("cpu"))
        return {k: t[idx] for k, t in sorted(ds.tensors.items())}
    if ds.format == DIGITS_FORMAT:
        n = ds.tensors["train_x"].shape[0]
        idx = rng.randint(seed, stream, batch_size, n, torch.device("cpu"))
        x = digits_features(ds.tensors["train_x"][idx])
        y = ds.tensors["train_y"][idx].to(torch.int64)
        return {"x": x, "y": y}
    tokens = ds.tensors["tokens" if ds.format == TOKENS_FORMAT else "train"]
    span = tokens.shape[0] - block - 1
    if span <= 0:
        raise DatasetInvalid(f"corpus of {tokens.shape[0]} tokens is shorter than block {block}")
    starts = rng.randint(seed, stream, batch_size, span, torch.device("cpu"))
    offs = starts.unsqueeze(1) + torch.arange(block + 1).unsqueeze(0)
    win = tokens[offs].to(torch.int64)
    if ds.format == TOKENS_FORMAT:
        return {"inputs": win[:, :-1].contiguous(), "targets": win[:, 1:].contiguous()}
    return {"x": win[:, :-1].contiguous(), "y": win[:, 1:].contiguous()}


def eval_windows(
    ds: Dataset, split: str, batch_size: int, block: int, count: int
) -> list[dict[str, torch.Tensor]]:
    """Fixed evaluation batches of a chars dataset: evenly spaced windows of `split`."""
    tokens = ds.tensors[split]
    span = tokens.shape[0] - block - 1
    total = batch_size * count
    starts = torch.arange(total, dtype=torch.int64) * max(span // total, 1) % max(span, 1)
    out = []
    for c in range(count):
        s = starts[c * batch_size : (c + 1) * batch_size]
        offs = s.unsqueeze(1) + torch.arange(block + 1).unsqueeze(0)
        win = tokens[offs].to(torch.int64)
        out.append({"x": win[:, :-1].contiguous(), "y": win[:, 1:].contiguous()})
    return out
