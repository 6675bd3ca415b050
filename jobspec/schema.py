"""The job spec's schema: the one validator the market and the training engine share.

A job spec is a JSON object that fixes every bit of a training run (DESIGN.md section 3).
`spec_errors` lists every problem of a raw spec as (dotted field path, one-line reason)
and `parse_spec` returns the typed `JobSpec`; the market (`market.jobspec`: canonical
bytes, specHash, specCid, seal, plus the CID syntax of the store) and the engine
(`repops.program.build_program`: tape building, plus the checks that need the zoo modules
or the fetched artifacts) both validate with it, so there is nothing to keep in step.

The shape (keys the engine ignores are allowed and kept; a model's config is closed)::

    {"repops_version": "repops-2",
     "program": {"model": {"name": "mlp", "config": {"in_features": 64, "hidden": [64],
                                                     "classes": 10}}
                        | {"name": "gpt", "config": {"vocab": 128, "block": 16, ...}}
                        | {"name": "graph", "graph": {"sha256": "<hex>", "cid": "..."},
                           "weights": {"sha256": "<hex>", "cid": "..."}},
                 "loss": "cross_entropy",   (a graph model: "graph" or absent when it
                                             returns its loss; else "cross_entropy", "mse"
                                             or {"name", "label_smoothing", "ignore_index"})
                 "optimizer": {"name": "adamw", "lr": 0.001, ...}
                            | {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0},
                 "lr_schedule": {"name": "constant"} | {"name": "linear", "warmup_steps": 10}
                              | {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1},
                 "clip_grad_norm": 1.0},   (optional)
     "data": {"dataset": "digits", "format": "repops-digits-v1", "batch_size": 32, "seed": 1,
              "cid": "bafk...", "micro_batches": 1},   (optional, default 1: divides batch_size)
     "steps": 100, "checkpoint_interval": 10, "seed": 0}

Either ``data.dataset`` or ``data.format`` names the dataset.  This module checks that a
``cid`` is a string; whether it parses as a CID is the market's check (`market.jobspec`).

This package is a leaf: pydantic and the standard library only (an import-linter contract
keeps torch and every Assay package out).  It never normalises a spec: the bytes hashed
are the bytes the solver reads.
"""

from __future__ import annotations

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

REPOPS_VERSION: Final = "repops-2"
"""The operator-set version accepted (equal to repops.version.REPOPS_VERSION)."""

MAX_STEPS: Final = 1 << 24
MAX_MICRO_BATCHES: Final = 1 << 10  # data.micro_batches: at most this many per step
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
    """Root of the errors raised about a job spec (market and engine alike)."""


@dataclass(frozen=True)
class FieldError:
    """One problem with a spec: the dotted field path and why it is wrong."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


class SpecInvalid(JobSpecError, ValueError):
    """The spec is refused; `errors` names each bad field (`repops.errors.SpecInvalid` is
    the engine's subclass, so catching this catches both)."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid spec")


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
    """``program.loss`` as an object, for a graph model that returns logits (repops turns
    it into `repops.program.GraphLoss`); mse takes no options."""

    name: Literal["cross_entropy", "mse"]
    label_smoothing: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    ignore_index: Annotated[int, Field(ge=-(1 << 62), lt=1 << 62)] = -100


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
    # M: each step's batch is M micro-batches of batch_size / M rows whose gradients the
    # program combines by a fixed tree (repops.program; docs/protocol.md section 8): a job
    # trains on any number of workers W that divides M with the same bits.
    micro_batches: Annotated[int, Field(ge=1, le=MAX_MICRO_BATCHES)] = 1

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
    # A plain union (program.loss: a string or an object) reports one error per branch; an
    # error inside a field says more than the branch's "wrong type" at the field itself.
    deeper = {e.path.rsplit(".", 1)[0] for e in out if "." in e.path}
    return [e for e in out if e.path not in deeper]


# ------------------------------------------------------------- the loss rule (one place)
# Which `program.loss` each model takes.  A graph model either returns its loss itself
# ("graph", or no loss field) or returns logits/predictions, and then the spec names the
# loss the program applies to its output and ``batch.targets``: "cross_entropy", "mse" or
# a `GraphLoss` object (whether it fits the graph is checked by repops once the graph is
# fetched).  Zoo models end in cross-entropy.  The `loss` field on `Program`, `GraphLoss`
# and this function are the only places this rule lives.


def _loss_errors(program: Program) -> list[FieldError]:
    loss = program.loss
    if isinstance(program.model, GraphModel):
        if isinstance(loss, GraphLoss) and loss.name == "mse":
            extra = {"label_smoothing", "ignore_index"} & loss.model_fields_set
            return [FieldError(f"program.loss.{k}", "unknown field for mse") for k in sorted(extra)]
        return []
    if loss != "cross_entropy":
        return [FieldError("program.loss", "only 'cross_entropy' is supported")]
    return []


# ------------------------------------------------------------------------ cross-field


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
    errs.extend(_loss_errors(spec.program))
    if spec.data.batch_size % spec.data.micro_batches:
        errs.append(
            FieldError(
                "data.micro_batches",
                f"{spec.data.micro_batches} does not divide batch_size {spec.data.batch_size}",
            )
        )
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
