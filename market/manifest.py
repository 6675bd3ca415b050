"""The result manifest: what a solver publishes next to its on-chain commitment.

A manifest lists every committed checkpoint (index, step, CID of its safetensors file,
stateHash, and the fileRoot of the file's bytes as ArtifactLib defines it) and the per-step
training loss, so that a whistleblower can fetch checkpoint i, rebuild the Merkle proofs of
DESIGN.md §5, and the API can show a loss curve.  Its bytes are canonical JSON (sorted keys,
no whitespace); it is stored under its own CID, which the solver passes to `submitResult`.
Parsing never trusts it: every field is checked here, and readers check the state hashes
against the on-chain trace root (and the file roots against filesRoot) before relying on them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain.types import Cid

MANIFEST_FORMAT = "assay-manifest-v2"


class ManifestInvalid(ValueError):
    """The bytes are not a well-formed manifest."""


@dataclass(frozen=True)
class CheckpointEntry:
    index: int
    step: int
    cid: Cid
    state_hash: bytes
    file_root: bytes


@dataclass(frozen=True)
class Manifest:
    spec_cid: Cid
    steps: int
    checkpoint_interval: int
    checkpoints: tuple[CheckpointEntry, ...]
    losses: tuple[float, ...]

    @property
    def leaves(self) -> list[bytes]:
        return [c.state_hash for c in self.checkpoints]

    @property
    def file_roots(self) -> list[bytes]:
        return [c.file_root for c in self.checkpoints]

    def to_bytes(self) -> bytes:
        doc = {
            "format": MANIFEST_FORMAT,
            "spec_cid": self.spec_cid,
            "steps": self.steps,
            "checkpoint_interval": self.checkpoint_interval,
            "checkpoints": [
                {
                    "index": c.index,
                    "step": c.step,
                    "cid": c.cid,
                    "state_hash": c.state_hash.hex(),
                    "file_root": c.file_root.hex(),
                }
                for c in self.checkpoints
            ],
            "losses": list(self.losses),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ManifestInvalid(f"manifest is not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ManifestInvalid(f"manifest format must be {MANIFEST_FORMAT!r}")
        steps = _int(doc, "steps", 1)
        interval = _int(doc, "checkpoint_interval", 1)
        if steps % interval:
            raise ManifestInvalid("steps is not a multiple of checkpoint_interval")
        raw = doc.get("checkpoints")
        if not isinstance(raw, list) or len(raw) != steps // interval + 1:
            raise ManifestInvalid(f"manifest must list {steps // interval + 1} checkpoints")
        entries = tuple(_entry(item, i, interval) for i, item in enumerate(raw))
        losses = doc.get("losses")
        if not isinstance(losses, list) or not all(isinstance(x, int | float) for x in losses):
            raise ManifestInvalid("losses must be a list of numbers")
        spec_cid = doc.get("spec_cid")
        if not isinstance(spec_cid, str) or not spec_cid:
            raise ManifestInvalid("spec_cid missing")
        return cls(Cid(spec_cid), steps, interval, entries, tuple(float(x) for x in losses))


def _int(doc: dict[str, Any], key: str, minimum: int) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ManifestInvalid(f"{key} must be an integer >= {minimum}")
    return value


def _entry(item: Any, i: int, interval: int) -> CheckpointEntry:
    if not isinstance(item, dict):
        raise ManifestInvalid(f"checkpoint {i} is not an object")
    if item.get("index") != i or item.get("step") != i * interval:
        raise ManifestInvalid(f"checkpoint {i} has the wrong index or step")
    cid = item.get("cid")
    if not isinstance(cid, str) or not cid:
        raise ManifestInvalid(f"checkpoint {i} has no CID")
    return CheckpointEntry(
        i, i * interval, Cid(cid), _hash32(item, "state_hash", i), _hash32(item, "file_root", i)
    )


def _hash32(item: dict[str, Any], key: str, i: int) -> bytes:
    value = item.get(key)
    try:
        digest = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise ManifestInvalid(f"checkpoint {i} {key} must be 32 hex bytes")
    return digest


def build_manifest(
    spec_cid: Cid,
    steps: int,
    checkpoint_interval: int,
    cids: Sequence[Cid],
    state_hashes: Sequence[bytes],
    file_roots: Sequence[bytes],
    losses: Sequence[float],
) -> Manifest:
    """A manifest from the per-checkpoint CIDs, state hashes and file roots, in order."""
    entries = tuple(
        CheckpointEntry(i, i * checkpoint_interval, cid, h, f)
        for i, (cid, h, f) in enumerate(zip(cids, state_hashes, file_roots, strict=True))
    )
    return Manifest(spec_cid, steps, checkpoint_interval, entries, tuple(losses))
