"""A user's own model as a job: lower it here, check it and its dataset, name it in the spec.

`assay job submit --model MODEL.pt2 | --model-dir DIR [--weights FILE] --data FILE` runs
this on the submitter's machine, before any upload or transaction:

1. a ``.pt2`` (torch.export) is lowered by `repops.lowering` at the job's batch size; a
   directory from `assay model lower` is read as ``graph.json`` + ``weights.safetensors``
   (parsed as untrusted data, nothing in it runs); ``--weights`` replaces the initial state
   (fine-tuning from a safetensors file);
2. the spec gets ``program.model = {"name": "graph", "graph": {"sha256"}, "weights":
   {"sha256"}}`` and repops builds the program from those exact bytes and checks the
   dataset against the model's input signature, as every solver and verifier will;
3. the CLI then uploads both artifacts (POST /artifacts) and fills their CIDs.

Every problem is a `ModelProblem` with one line saying what and where.  torch and repops
are imported only when a model is given, so the rest of the CLI stays light.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRAPH_FILE = "graph.json"
WEIGHTS_FILE = "weights.safetensors"


class ModelProblem(Exception):
    """The model, its weights or its dataset cannot make this job (one line)."""


@dataclass(frozen=True)
class LoweredModel:
    """The two artifacts of a graph model: canonical graph JSON and safetensors weights."""

    graph: bytes
    weights: bytes

    @property
    def graph_sha256(self) -> str:
        return hashlib.sha256(self.graph).hexdigest()

    @property
    def weights_sha256(self) -> str:
        return hashlib.sha256(self.weights).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelProblem(f"cannot read {path}: {exc.strerror}") from None


def lower_model(
    model: Path | None, model_dir: Path | None, weights: Path | None, batch_size: int
) -> LoweredModel:
    """The artifacts of a ``.pt2`` lowered at `batch_size`, or of a lowered directory."""
    from repops.lowering import graph_json

    try:
        if model_dir is not None:
            lg = graph_json.loads(_read(model_dir / GRAPH_FILE))
            lg.weights = graph_json.load_weights(lg, _read(model_dir / WEIGHTS_FILE))
        else:
            assert model is not None
            lg = _lower_export(model, batch_size)
        if weights is not None:
            lg.weights = graph_json.load_weights(lg, _read(weights))
    except graph_json.GraphInvalid as exc:
        raise ModelProblem(f"{weights or model_dir or model}: {exc}") from None
    return LoweredModel(lg.to_json(), lg.weights_bytes())


def _lower_export(path: Path, batch_size: int) -> Any:
    import torch

    from repops.lowering.export import LoweringFailed, lower

    if not path.is_file():
        raise ModelProblem(f"cannot read {path}: no such file")
    try:
        ep = torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for a file that is not an export
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ModelProblem(f"{path} is not a torch.export program: {first}") from None
    try:
        return lower(ep, batch_size)
    except LoweringFailed as exc:
        raise ModelProblem(f"{path} does not lower: {exc}") from None


def with_model(
    spec: dict[str, Any], lowered: LoweredModel, loss: str | None = None
) -> dict[str, Any]:
    """A copy of `spec` whose model is the lowered graph (CIDs to be filled); `loss`
    ("cross_entropy" | "mse") is ``program.loss`` for a model that returns logits."""
    program = dict(spec.get("program") or {})
    program["model"] = {
        "name": "graph",
        "graph": {"sha256": lowered.graph_sha256},
        "weights": {"sha256": lowered.weights_sha256},
    }
    if loss is not None:
        program["loss"] = loss
    program.setdefault("loss", "graph")
    return {**spec, "program": program}


def check_job(spec: dict[str, Any], lowered: LoweredModel, dataset: bytes) -> None:
    """Build the job's program from these bytes and fit the dataset to its inputs, as a
    solver will (raises ModelProblem naming the field or the tensor)."""
    from repops import data as data_mod
    from repops.errors import RepopsError
    from repops.program import DATASETS, build_program, check_dataset

    blobs = {lowered.graph_sha256: lowered.graph, lowered.weights_sha256: lowered.weights}
    try:
        program = build_program(spec, lambda _path, ref: blobs[ref["sha256"]])
        fmt = DATASETS[program.dataset]
        if fmt not in (data_mod.TOKENS_FORMAT, data_mod.TENSORS_FORMAT):
            raise ModelProblem(f"data.format: a graph model trains on tensors or tokens, not {fmt}")
        ds = data_mod.Dataset.of_format(fmt, dataset)
        check_dataset(program, ds)
    except RepopsError as exc:
        raise ModelProblem(f"the job does not build: {exc}") from None
