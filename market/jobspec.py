"""The market's side of the job spec: CID syntax, canonical bytes, specHash, specCid, seal.

The schema itself (pydantic models, cross-field rules, `spec_errors`, `parse_spec`) is
`jobspec.schema`, the torch-free leaf package the training engine validates with too, so
the market refuses exactly the specs the engine refuses, *before* any transaction, naming
the bad field and why.  On top of it the market checks only what the store knows: that
``data.cid`` and a graph model's ``graph.cid``/``weights.cid`` parse as CIDs.

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
from typing import Any

from chain.types import Cid, Hash32
from jobspec import schema
from jobspec.schema import (
    DATASET_FORMATS,
    MAX_STEPS,
    MODEL_FORMATS,
    REPOPS_VERSION,
    ArtifactRef,
    Data,
    FieldError,
    GptConfig,
    GptModel,
    GraphModel,
    JobSpec,
    JobSpecError,
    MlpConfig,
    MlpModel,
    Program,
    SpecInvalid,
)
from market.store.cid import normalize_cid
from market.store.dag import compute_cid
from market.store.errors import InvalidCid

__all__ = [
    "DATASET_FORMATS",
    "MAX_STEPS",
    "MODEL_FORMATS",
    "REPOPS_VERSION",
    "ArtifactRef",
    "Data",
    "FieldError",
    "GptConfig",
    "GptModel",
    "GraphModel",
    "JobSpec",
    "JobSpecError",
    "MlpConfig",
    "MlpModel",
    "Program",
    "SealedSpec",
    "SpecInvalid",
    "canonical_bytes",
    "parse_spec",
    "seal",
    "spec_cid",
    "spec_errors",
    "spec_hash",
    "with_data_cid",
]

_CID_FIELDS: tuple[tuple[str, ...], ...] = (
    ("data", "cid"),
    ("program", "model", "graph", "cid"),
    ("program", "model", "weights", "cid"),
)


def _cid_errors(raw: Mapping[str, Any]) -> list[FieldError]:
    """A CID field that is a string but not a CID (the schema reports other types)."""
    errs: list[FieldError] = []
    for path in _CID_FIELDS:
        node: Any = raw
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, str):
            try:
                normalize_cid(node)
            except InvalidCid as exc:
                errs.append(FieldError(".".join(path), f"not a CID: {exc.reason}"))
    return errs


def spec_errors(raw: Any) -> list[FieldError]:
    """Every problem of `raw` as (field path, reason): the schema's, then bad CIDs."""
    errs = schema.spec_errors(raw)
    return errs + _cid_errors(raw) if isinstance(raw, dict) else errs


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
