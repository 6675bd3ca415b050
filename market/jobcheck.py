"""Checks of a job against its dataset and its market terms, before any transaction.

Two pure functions the API (and any role) runs on a validated spec:

- `check_dataset_fits(spec, dataset_bytes)`: is the dataset file one the spec's model can
  train on?  It parses the canonical safetensors file (`repops.stio`'s format) in pure
  Python, as strictly as repops will, and checks its format, tensors, shapes and values
  against the model: digits rows of ``in_features`` pixels in 0..16 with labels below
  ``classes``; a character corpus of tokens below ``vocab`` with a train split longer than
  one ``block + 1`` window.  Each problem names the field to change and why (``dataset``
  is the file itself).
- `min_challenge_window(spec, reference_rate)`: the shortest challenge window in which a
  verifier can re-execute the whole job.  Re-execution time is estimated from the model's
  size as ``steps * (overhead + flops_per_step / rate)`` with ``flops_per_step`` the usual
  6 * parameters * tokens (forward and backward) plus attention, and the reference rate
  below; the window must hold `WINDOW_SAFETY` times that plus `WINDOW_FIXED_S` for
  fetching the artifacts and opening a challenge.

The reference rate (`REFERENCE_RATE`) is one CPU core running repops: measured on a
2-core x86 machine under load, repops trains the demo MLP at ~3.5 ms per step (overhead
dominated), an MLP of 85 k parameters at ~2.6 GFLOP/s and a 2-layer GPT at ~2.3-6
GFLOP/s.  We state 1 GFLOP/s and 10 ms (+ 20 ms per GPT layer) of per-step overhead:
below every measurement, so a window the API accepts is long enough for a modest CPU
verifier, which is who DESIGN.md says must be able to check (§1.3).

This module must never import torch or repops (market's import contract).
"""

from __future__ import annotations

import itertools
import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Final

from market.jobspec import (
    DATASET_FORMATS,
    FieldError,
    GptModel,
    GraphModel,
    JobSpec,
    MlpModel,
    parse_spec,
)

MAX_HEADER_BYTES: Final = 1 << 26
"""As `repops.stio`: a longer safetensors header is refused."""

DIGITS_PIXEL_MAX: Final = 16
DATASET: Final = "dataset"
"""The path of problems with the dataset file itself."""


@dataclass(frozen=True)
class ReferenceRate:
    """How fast the reference verifier re-executes repops training (see the module doc)."""

    flops_per_s: float
    step_overhead_s: float
    layer_overhead_s: float


REFERENCE_RATE: Final = ReferenceRate(flops_per_s=1e9, step_overhead_s=0.01, layer_overhead_s=0.02)
WINDOW_SAFETY: Final = 3.0
"""The window must hold this many re-executions (a verifier shares its machine)."""
WINDOW_FIXED_S: Final = 10
"""Seconds for fetching spec, data and checkpoints and sending the challenge."""


# ------------------------------------------------------------------ dataset fit


@dataclass(frozen=True)
class _Tensor:
    dtype: str
    shape: tuple[int, ...]
    data: memoryview


def _parse_safetensors(data: bytes) -> tuple[dict[str, _Tensor], dict[str, str]]:
    """Tensors and metadata of safetensors bytes; ValueError saying what is wrong."""
    if len(data) < 8:
        raise ValueError("file shorter than the 8-byte safetensors header length")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > MAX_HEADER_BYTES or 8 + hlen > len(data):
        raise ValueError(f"safetensors header length {hlen} does not fit the file")
    try:
        header = json.loads(bytes(data[8 : 8 + hlen]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError("not a safetensors file (header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError("safetensors header is not a JSON object")
    meta = header.pop("__metadata__", {})
    if not isinstance(meta, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in meta.items()
    ):
        raise ValueError("safetensors __metadata__ must map strings to strings")
    body = memoryview(data)[8 + hlen :]
    sizes = {
        "U8": 1, "I8": 1, "BOOL": 1, "I16": 2, "U16": 2, "I32": 4, "U32": 4, "F32": 4,
        "I64": 8, "F64": 8,
    }  # fmt: skip
    spans: list[tuple[int, int, str]] = []
    out: dict[str, _Tensor] = {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"tensor {name!r}: malformed header entry")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in sizes:
            raise ValueError(f"tensor {name!r}: unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 1 << 40 for d in shape
        ):
            raise ValueError(f"tensor {name!r}: bad shape")
        if (
            not isinstance(offs, list)
            or len(offs) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offs)
        ):
            raise ValueError(f"tensor {name!r}: bad data_offsets")
        begin, end = offs
        if not 0 <= begin <= end <= len(body) or end - begin != math.prod(shape) * sizes[dtype]:
            raise ValueError(f"tensor {name!r}: data_offsets {offs} do not fit")
        spans.append((begin, end, name))
        out[name] = _Tensor(dtype, tuple(shape), body[begin:end])
    pos = 0
    for begin, end, name in sorted(spans):
        if begin != pos:
            raise ValueError(f"tensor {name!r}: data overlaps or leaves a gap")
        pos = end
    if pos != len(body):
        raise ValueError("trailing bytes after the last tensor")
    return out, meta


def _spec(spec: JobSpec | dict[str, Any]) -> JobSpec:
    return spec if isinstance(spec, JobSpec) else parse_spec(spec)


def check_dataset_fits(spec: JobSpec | dict[str, Any], dataset_bytes: bytes) -> list[FieldError]:
    """Every reason the spec's model cannot train on this dataset file (empty: it fits).

    `spec` must already be valid (`market.jobspec`); raw dicts are parsed first.
    """
    job = _spec(spec)
    try:
        tensors, meta = _parse_safetensors(dataset_bytes)
    except ValueError as exc:
        return [FieldError(DATASET, f"not a dataset file: {exc}")]
    dataset = job.data.name
    assert dataset is not None  # a valid spec names its dataset or its format
    if isinstance(job.program.model, GraphModel):
        return _graph_data_fit(dataset, tensors)
    want_format = DATASET_FORMATS[dataset]
    got_format = meta.get("format", "")
    if got_format != want_format:
        return [
            FieldError(
                "data.dataset",
                f"{dataset!r} needs a {want_format} file; the dataset file is "
                f"{got_format or 'of no format'!r}",
            )
        ]
    model = job.program.model
    if isinstance(model, MlpModel):
        return _digits_fit(model, tensors)
    return _chars_fit(model, tensors)


_INT_DTYPES: Final = ("U8", "I8", "I16", "I32", "I64")
_TOKEN_DTYPES: Final = ("U8", "U16", "U32", "I32", "I64")


def _graph_data_fit(fmt: str, tensors: dict[str, _Tensor]) -> list[FieldError]:
    """The shape rules of repops' ``tensors`` / ``tokens`` files (the fit to the graph's
    inputs needs the graph: the submitter's CLI and every role check that)."""
    if fmt == "tokens":
        t = tensors.get("tokens")
        if set(tensors) != {"tokens"} or t is None:
            return [
                FieldError(
                    DATASET, f"a tokens file holds one tensor 'tokens', not {sorted(tensors)}"
                )
            ]
        if len(t.shape) != 1 or t.dtype not in _TOKEN_DTYPES or t.shape[0] == 0:
            return [
                FieldError(
                    DATASET,
                    "'tokens' must be a non-empty 1-D integer stream, "
                    f"got {t.dtype}{list(t.shape)}",
                )
            ]
        return []
    if not tensors:
        return [FieldError(DATASET, "a tensors file holds at least one tensor")]
    for name, t in sorted(tensors.items()):
        if not t.shape:
            return [
                FieldError(DATASET, f"tensor {name!r} is 0-dim: each tensor needs a row dimension")
            ]
        if t.dtype not in _INT_DTYPES and t.dtype != "F32":
            return [
                FieldError(DATASET, f"tensor {name!r} is {t.dtype}: use F32 or an integer type")
            ]
    rows = {name: t.shape[0] for name, t in tensors.items()}
    if len(set(rows.values())) != 1 or min(rows.values()) < 1:
        return [FieldError(DATASET, f"tensors must share one row count >= 1, got {rows}")]
    return []


def _names_and_types(tensors: dict[str, _Tensor], want: set[str], fmt: str) -> list[FieldError]:
    if set(tensors) != want:
        return [FieldError(DATASET, f"{fmt} files hold exactly the tensors {sorted(want)}")]
    wrong = sorted(n for n, t in tensors.items() if t.dtype != "U8")
    if wrong:
        return [FieldError(DATASET, f"tensors {wrong} must be U8")]
    return []


def _digits_fit(model: MlpModel, tensors: dict[str, _Tensor]) -> list[FieldError]:
    errs = _names_and_types(tensors, {"train_x", "train_y", "test_x", "test_y"}, "repops-digits-v1")
    if errs:
        return errs
    cfg = model.config
    for split in ("train", "test"):
        x, y = tensors[f"{split}_x"], tensors[f"{split}_y"]
        if len(x.shape) != 2 or x.shape[1] != cfg.in_features:
            errs.append(
                FieldError(
                    "program.model.config.in_features",
                    f"is {cfg.in_features} but {split}_x has shape {list(x.shape)}",
                )
            )
            continue
        if y.shape != (x.shape[0],):
            errs.append(FieldError(DATASET, f"{split}_y must hold one label per {split}_x row"))
            continue
        if x.shape[0] == 0:
            errs.append(FieldError(DATASET, f"the {split} split is empty"))
            continue
        if max(x.data) > DIGITS_PIXEL_MAX:
            errs.append(FieldError(DATASET, f"{split}_x pixels must be in 0..{DIGITS_PIXEL_MAX}"))
        top = max(y.data)
        if top >= cfg.classes:
            errs.append(
                FieldError(
                    "program.model.config.classes",
                    f"is {cfg.classes} but {split}_y holds label {top}",
                )
            )
    return errs


def _chars_fit(model: GptModel, tensors: dict[str, _Tensor]) -> list[FieldError]:
    errs = _names_and_types(tensors, {"train", "val"}, "repops-chars-v1")
    if errs:
        return errs
    cfg = model.config
    for split in ("train", "val"):
        t = tensors[split]
        if len(t.shape) != 1:
            errs.append(FieldError(DATASET, f"{split} must be 1-D tokens"))
            continue
        top = max(t.data) if t.shape[0] else 0
        if top >= cfg.vocab:
            errs.append(
                FieldError(
                    "program.model.config.vocab", f"is {cfg.vocab} but {split} holds token {top}"
                )
            )
    train = tensors["train"]
    if len(train.shape) == 1 and train.shape[0] < cfg.block + 2:
        errs.append(
            FieldError(
                "program.model.config.block",
                f"is {cfg.block}; the train split has {train.shape[0]} tokens, fewer than one "
                f"window of block + 2",
            )
        )
    return errs


# ------------------------------------------------------------- challenge window


def flops_per_step(spec: JobSpec | dict[str, Any], graph_params: int | None = None) -> float:
    """Forward + backward arithmetic of one training step (6 * params * tokens + attention).

    A graph model's size is in its graph, not its spec: pass its parameter count
    (`graph_params`, 6 * params * rows is then the estimate); ValueError without it.
    """
    job = _spec(spec)
    model = job.program.model
    b = job.data.batch_size
    if isinstance(model, GraphModel):
        if graph_params is None:
            raise ValueError("a graph model's size is in its graph artifact, not its spec")
        return 6.0 * graph_params * b
    if isinstance(model, MlpModel):
        widths = [model.config.in_features, *model.config.hidden, model.config.classes]
        params = sum(a * c + c for a, c in itertools.pairwise(widths))
        return 6.0 * params * b
    c = model.config
    params = c.vocab * c.n_embd + c.block * c.n_embd + c.n_layer * 12 * c.n_embd * c.n_embd
    tokens = b * c.block
    attention = 12.0 * c.n_layer * b * c.block * c.block * c.n_embd
    return 6.0 * params * tokens + attention


def reexecution_seconds(
    spec: JobSpec | dict[str, Any],
    reference_rate: ReferenceRate = REFERENCE_RATE,
    graph_params: int | None = None,
) -> float:
    """Estimated seconds for the reference verifier to re-execute every step of the job."""
    job = _spec(spec)
    model = job.program.model
    layers = model.config.n_layer if isinstance(model, GptModel) else 0
    per_step = (
        reference_rate.step_overhead_s
        + layers * reference_rate.layer_overhead_s
        + flops_per_step(job, graph_params) / reference_rate.flops_per_s
    )
    return job.steps * per_step


def min_challenge_window(
    spec: JobSpec | dict[str, Any],
    reference_rate: ReferenceRate = REFERENCE_RATE,
    graph_params: int | None = None,
) -> int:
    """The shortest challenge window (seconds) that leaves time to re-execute the job
    (a graph model's parameter count is `graph_params`, see `safetensors_elements`)."""
    seconds = reexecution_seconds(spec, reference_rate, graph_params)
    return WINDOW_FIXED_S + math.ceil(WINDOW_SAFETY * seconds)


def safetensors_elements(data: bytes) -> int:
    """How many elements a safetensors file holds (a graph's weights: its parameter
    count); ValueError when the file is malformed."""
    tensors, _ = _parse_safetensors(data)
    return sum(math.prod(t.shape) for t in tensors.values())
