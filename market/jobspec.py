"""The job spec: its schema, its validation and its canonical bytes (DESIGN.md section 3).

A job spec is a JSON object that fixes every bit of a training run; the training engine
(`repops.program`) reads it, and the market must refuse a spec the engine would refuse,
*before* any transaction, naming the bad field and why.  This module is that gate, on the
market side of the import wall: it mirrors repops' rules with pydantic models and is
cross-tested against `repops.program.spec_errors` on the same good and bad specs
(tests/api/test_jobspec.py), so the two cannot drift apart silently.

The shape (keys repops ignores are allowed and kept; a model's config is closed)::

    {"repops_version": "repops-2",
     "program": {"model": {"name": "mlp", "config": {"in_features": 64, "hidden": [64],
                                                     "classes": 10}},
                 "loss": "cross_entropy",
                 "optimizer": {"name": "adamw", "lr": 0.001, ...}
                            | {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0},
                 "lr_schedule": {"name": "constant"} | {"name": "linear", "warmup_steps": 10}
                              | {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1},
                 "clip_grad_norm": 1.0},   (optional)
     "data": {"dataset": "digits", "format": "repops-digits-v1", "batch_size": 32, "seed": 1,
              "cid": "bafk..."},
     "steps": 100, "checkpoint_interval": 10, "seed": 0}

``data.cid`` names the dataset file in the artifact store; the API fills it when the
dataset is uploaded with the spec.  The canonical bytes of a spec are
``json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` in UTF-8,
``specHash = sha256(bytes)`` and ``specCid`` is the artifact store's CID of those bytes.

This module must never import torch or repops (an import-linter contract enforces it),
and never normalise a spec it hashes: the bytes hashed are the bytes the solver reads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
)

from chain.types import Cid, Hash32
from market.store.cid import normalize_cid
from market.store.dag import compute_cid
from market.store.errors import InvalidCid

REPOPS_VERSION: Final = "repops-2"
"""The operator-set version this market accepts (repops.version.REPOPS_VERSION)."""

MAX_STEPS: Final = 1 << 24
"""Bound on step counts (repops keeps the step counter exact in float32 below it)."""

DATASET_FORMATS: Final[dict[str, str]] = {
    "digits": "repops-digits-v1",
    "stdlib_chars": "repops-chars-v1",
    "tensors": "tensors",
    "tokens": "tokens",
}
"""Dataset name -> the file format its dataset file has."""

MODEL_FORMATS: Final[dict[str, tuple[str, ...]]] = {
    "mlp": ("repops-digits-v1",),
    "gpt": ("repops-chars-v1",),
    "graph": ("tensors", "tokens"),
}
"""Model name -> the dataset formats it can train on."""

U63: Final = (1 << 63) - 1


class JobSpecError(Exception):
    """Root of the errors this module raises."""


@dataclass(frozen=True)
class FieldError:
    """One problem with a spec: the dotted field path and why it is wrong."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SpecInvalid(JobSpecError, ValueError):
    """The spec would be refused by the training engine; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid spec")


def _check_cid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        normalize_cid(value)
    except InvalidCid as exc:
        raise ValueError(f"not a CID: {exc.reason}") from None
    return value


class _Open(BaseModel):
    """A spec object: strict JSON types, unknown keys kept (repops ignores them)."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True, allow_inf_nan=False)


class _Closed(BaseModel):
    """A model config: strict JSON types and no unknown keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class MlpConfig(_Closed):
    """repops.models.mlp.Config: an MLP over 8x8 digits."""

    in_features: Annotated[int, Field(ge=1, le=1 << 16)]
    hidden: Annotated[list[Annotated[int, Field(ge=1, le=4096)]], Field(max_length=8)] = []
    classes: Annotated[int, Field(ge=2, le=1 << 16)]

    @field_validator("in_features")
    @classmethod
    def _pixels(cls, value: int) -> int:
        if value != 64:
            raise ValueError("digits images have 64 pixels")
        return value

    @field_validator("classes")
    @classmethod
    def _classes(cls, value: int) -> int:
        if value != 10:
            raise ValueError("digits has 10 classes")
        return value


class GptConfig(_Closed):
    """repops.models.gpt.Config: a character-level GPT."""

    vocab: Annotated[int, Field(ge=2, le=1 << 16)]
    block: Annotated[int, Field(ge=1, le=4096)]
    n_layer: Annotated[int, Field(ge=1, le=64)]
    n_head: Annotated[int, Field(ge=1, le=256)]
    n_embd: Annotated[int, Field(ge=1, le=8192)]

    @field_validator("vocab")
    @classmethod
    def _vocab(cls, value: int) -> int:
        if value != 128:
            raise ValueError("the character corpus has 128 symbols")
        return value


class MlpModel(_Open):
    name: Literal["mlp"]
    config: MlpConfig


class GptModel(_Open):
    name: Literal["gpt"]
    config: GptConfig


class ArtifactRef(_Closed):
    """A content-bound artifact: its sha256 (what the spec hash binds) and where it lives."""

    sha256: str
    cid: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError("must be 64 lowercase hex digits")
        return value

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str | None) -> str | None:
        return _check_cid(value)


class GraphModel(_Closed):
    """A user's own model: a canonical repops graph lowered from torch.export, and its
    initial weights (safetensors), both fetched by CID and checked by sha256."""

    name: Literal["graph"]
    graph: ArtifactRef
    weights: ArtifactRef


class Optimizer(_Open):
    """AdamW hyper-parameters (decoupled weight decay)."""

    name: Literal["adamw"]
    lr: Annotated[float, Field(ge=0.0, le=10.0)]
    beta1: Annotated[float, Field(ge=0.0, le=0.999999)] = 0.9
    beta2: Annotated[float, Field(ge=0.0, le=0.999999999)] = 0.999
    eps: Annotated[float, Field(ge=1e-30, le=1.0)] = 1e-8
    weight_decay: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0


class AdamwDefault(Optimizer):
    """AdamW with its name left out (the name defaults to "adamw")."""

    name: Literal["adamw"] = "adamw"


class SgdOptimizer(_Open):
    """torch.optim.SGD: momentum with dampening 0, not nesterov; coupled weight decay."""

    name: Literal["sgd"]
    lr: Annotated[float, Field(ge=0.0, le=10.0)]
    momentum: Annotated[float, Field(ge=0.0, le=0.999999)] = 0.0
    weight_decay: Annotated[float, Field(ge=0.0, le=10.0)] = 0.0
    dampening: Annotated[float, Field(ge=0.0, le=0.0)] = 0.0
    nesterov: Literal[False] = False


class ConstantSchedule(_Open):
    name: Literal["constant"]


class LinearSchedule(_Open):
    """Linear warm-up to `lr` over `warmup_steps`, then linear decay to zero."""

    name: Literal["linear"]
    warmup_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)]


class CosineSchedule(_Open):
    """Linear warm-up to `lr` over `warmup_steps`, then cosine decay towards
    ``min_lr_ratio * lr`` (repops.program's module doc has the exact formula)."""

    name: Literal["cosine"]
    warmup_steps: Annotated[int, Field(ge=0, le=MAX_STEPS)] = 0
    min_lr_ratio: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0


class GraphLoss(_Closed):
    """``program.loss`` as an object, for a graph model that returns logits (repops
    `parse_graph_loss`); mse takes no options."""

    name: Literal["cross_entropy", "mse"]
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    ignore_index: Annotated[int, Field(ge=-(1 << 62), lt=1 << 62)] = -100


def _graph_loss_problem(loss: str | GraphLoss) -> list[FieldError]:
    """program.loss of a graph model (mirrors repops.program.parse_graph_loss): absent /
    "graph" (it returns its loss), "cross_entropy", "mse" or a `GraphLoss`; whether it
    fits the graph is checked by repops once the graph is fetched."""
    if isinstance(loss, GraphLoss) and loss.name == "mse":
        extra = {"label_smoothing", "ignore_index"} & loss.model_fields_set
        return [FieldError(f"program.loss.{k}", "unknown field for mse") for k in sorted(extra)]
    return []


def _optimizer_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        name = value.get("name", "adamw-default")
        return name if isinstance(name, str) else None
    return None


class Program(_Open):
    """What is trained and how."""

    model: Annotated[MlpModel | GptModel | GraphModel, Field(discriminator="name")]
    loss: Literal["cross_entropy", "graph", "mse"] | GraphLoss = "cross_entropy"
    optimizer: Annotated[
        Annotated[Optimizer, Tag("adamw")]
        | Annotated[AdamwDefault, Tag("adamw-default")]
        | Annotated[SgdOptimizer, Tag("sgd")],
        Discriminator(_optimizer_tag),
    ]
    lr_schedule: Annotated[
        ConstantSchedule | LinearSchedule | CosineSchedule, Field(discriminator="name")
    ] = ConstantSchedule(name="constant")
    clip_grad_norm: Annotated[float, Field(ge=1e-6, le=1e6)] | None = None


class Data(_Open):
    """Which dataset, in which deterministic order, and where its file is."""

    dataset: Literal["digits", "stdlib_chars", "tensors", "tokens"] | None = None
    format: Literal["repops-digits-v1", "repops-chars-v1", "tensors", "tokens"] | None = None
    batch_size: Annotated[int, Field(ge=1, le=1 << 16)]
    seed: Annotated[int, Field(ge=0, le=U63)]
    cid: str | None = None

    @field_validator("cid")
    @classmethod
    def _cid(cls, value: str | None) -> str | None:
        return _check_cid(value)

    @property
    def name(self) -> str | None:
        """The dataset, named or implied by its format (None when neither is given)."""
        if self.dataset is not None:
            return self.dataset
        by_format = {f: d for d, f in DATASET_FORMATS.items()}
        return None if self.format is None else by_format[self.format]


class JobSpec(_Open):
    """A validated job spec (build with `parse_spec`; hash the raw dict, not this model)."""

    repops_version: Literal["repops-2"]
    program: Program
    data: Data
    steps: Annotated[int, Field(ge=1, le=MAX_STEPS - 1)]
    checkpoint_interval: Annotated[int, Field(ge=1, le=MAX_STEPS - 1)]
    seed: Annotated[int, Field(ge=0, le=U63)]

    @property
    def checkpoint_count(self) -> int:
        """States a result commits to: the initial one plus one per checkpoint (m + 1)."""
        return self.steps // self.checkpoint_interval + 1


# ------------------------------------------------------------------------------ errors


_TAGS: Final = {
    "mlp",
    "gpt",
    "graph",
    "constant",
    "linear",
    "cosine",
    "adamw",
    "adamw-default",
    "sgd",
    "GraphLoss",  # program.loss as an object (the string form's literal stays in the path)
}


def _path(loc: tuple[int | str, ...]) -> str:
    # pydantic puts a union's tag right after the union field: drop it there only (a
    # graph model also has a field named "graph")
    parts = [
        str(p)
        for i, p in enumerate(loc)
        if not (
            (p in _TAGS or str(p).startswith("literal["))
            and i > 0
            and loc[i - 1] in ("model", "lr_schedule", "optimizer", "loss")
        )
    ]
    return ".".join(parts) or "$"


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "missing":
        return "required field is missing"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        ctx = error.get("ctx", {})
        return f"unknown value {ctx.get('tag')!r} (expected one of: {ctx.get('expected_tags')})"
    if kind == "union_tag_not_found":
        return "missing or not an object with a 'name'"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def _from_pydantic(exc: ValidationError) -> list[FieldError]:
    out: list[FieldError] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        path = _path(loc)
        if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = f"{path}.name"
        out.append(FieldError(path, _reason(error)))
    return out


def _cross_field(spec: JobSpec) -> list[FieldError]:
    """The rules that tie fields together (each names the field a user should change)."""
    errs: list[FieldError] = []
    if spec.steps % spec.checkpoint_interval:
        errs.append(
            FieldError(
                "checkpoint_interval",
                f"steps {spec.steps} is not divisible by checkpoint_interval "
                f"{spec.checkpoint_interval}",
            )
        )
    if "clip_grad_norm" in spec.program.model_fields_set and spec.program.clip_grad_norm is None:
        errs.append(FieldError("program.clip_grad_norm", "must be a number (or absent)"))
    schedule = spec.program.lr_schedule
    if (
        isinstance(schedule, LinearSchedule | CosineSchedule)
        and schedule.warmup_steps >= spec.steps
    ):
        errs.append(FieldError("program.lr_schedule.warmup_steps", "must be < steps"))
    model = spec.program.model
    if isinstance(model, GptModel) and model.config.n_embd % model.config.n_head:
        errs.append(
            FieldError(
                "program.model.config.n_embd",
                f"{model.config.n_embd} is not divisible by n_head",
            )
        )
    if isinstance(model, GraphModel):
        errs.extend(_graph_loss_problem(spec.program.loss))
    elif spec.program.loss != "cross_entropy":
        errs.append(FieldError("program.loss", "only 'cross_entropy' is supported"))
    dataset = spec.data.name
    if dataset is None:
        errs.append(FieldError("data.dataset", "required field is missing"))
        return errs
    expected_format = DATASET_FORMATS[dataset]
    if spec.data.format is not None and spec.data.format != expected_format:
        errs.append(FieldError("data.format", f"{dataset} files are {expected_format}"))
    if expected_format not in MODEL_FORMATS[model.name]:
        errs.append(FieldError("data.dataset", f"model {model.name} cannot train on {dataset}"))
    return errs


def spec_errors(raw: Any) -> list[FieldError]:
    """Every problem of `raw` as (field path, reason); empty when the spec is valid."""
    if not isinstance(raw, dict):
        return [FieldError("$", "spec must be a JSON object")]
    try:
        spec = JobSpec.model_validate(raw)
    except ValidationError as exc:
        return _from_pydantic(exc)
    return _cross_field(spec)


def parse_spec(raw: Any) -> JobSpec:
    """Validate `raw` (a dict from JSON); raise `SpecInvalid` naming every bad field."""
    errs = spec_errors(raw)
    if errs:
        raise SpecInvalid(errs)
    return JobSpec.model_validate(raw)


# --------------------------------------------------------------------------- bytes


def canonical_bytes(raw: Mapping[str, Any]) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8 (DESIGN.md section 3).

    Refuses NaN and infinities (JSON has no spelling for them).
    """
    try:
        return json.dumps(
            raw, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise SpecInvalid([FieldError("$", f"not representable as JSON: {exc}")]) from None


def spec_hash(data: bytes) -> Hash32:
    """specHash: sha256 of the canonical bytes."""
    return Hash32(hashlib.sha256(data).digest())


def spec_cid(data: bytes) -> Cid:
    """specCid: the CID the artifact store gives `data` (computed, nothing stored)."""
    return compute_cid(data).cid


def with_data_cid(raw: Mapping[str, Any], cid: str) -> dict[str, Any]:
    """A copy of `raw` whose ``data.cid`` is `cid` (other keys untouched)."""
    out = dict(raw)
    data = out.get("data")
    out["data"] = {**(data if isinstance(data, dict) else {}), "cid": cid}
    return out


@dataclass(frozen=True)
class SealedSpec:
    """A validated spec with the bytes, hash and CID that go on-chain."""

    raw: dict[str, Any]
    spec: JobSpec
    data: bytes
    hash: Hash32
    cid: Cid

    @property
    def steps_per_checkpoint(self) -> int:
        return self.spec.checkpoint_interval

    @property
    def checkpoint_count(self) -> int:
        return self.spec.checkpoint_count

    @property
    def dataset_cid(self) -> Cid | None:
        return None if self.spec.data.cid is None else Cid(self.spec.data.cid)

    @property
    def artifact_cids(self) -> dict[str, Cid | None]:
        """A graph model's artifacts by field path (empty for zoo models)."""
        model = self.spec.program.model
        if not isinstance(model, GraphModel):
            return {}
        return {
            f"program.model.{k}": None if ref.cid is None else Cid(ref.cid)
            for k, ref in (("graph", model.graph), ("weights", model.weights))
        }


def seal(raw: Any) -> SealedSpec:
    """Validate `raw` and compute its canonical bytes, specHash and specCid."""
    spec = parse_spec(raw)
    data = canonical_bytes(raw)
    return SealedSpec(raw=dict(raw), spec=spec, data=data, hash=spec_hash(data), cid=spec_cid(data))
