"""The solver's on-disk journal: what it has claimed, trained, published and submitted.

Everything a restarted solver needs lives here, written atomically (temp file, fsync,
rename) before the action it records is relied on, so a solver killed at any point resumes
from its last checkpoint and never submits a result twice.  One directory per job:
``<state_dir>/jobs/<id>/journal.json`` plus the checkpoint files ``ckpt-<i>.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

from chain.types import Cid, JobId
from roles.files import write_atomic


class Phase(StrEnum):
    """Where the solver is with a job (only ever moves forward)."""

    CLAIMED = "claimed"
    TRAINING = "training"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    SETTLED = "settled"
    ABANDONED = "abandoned"


@dataclass
class Checkpoint:
    index: int
    cid: str
    state_hash: str
    # hex of the file's root (repops.artifact): what availability challenges are answered against
    file_root: str = ""


@dataclass
class JobJournal:
    job_id: int
    phase: Phase = Phase.CLAIMED
    checkpoints: list[Checkpoint] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    manifest_cid: str = ""
    note: str = ""

    @property
    def leaves(self) -> list[bytes]:
        return [bytes.fromhex(c.state_hash) for c in self.checkpoints]

    @property
    def file_roots(self) -> list[bytes]:
        return [bytes.fromhex(c.file_root) for c in self.checkpoints]


class Journal:
    """All jobs of one solver, under `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)

    def job_dir(self, job_id: JobId) -> Path:
        return self.root / str(job_id)

    def checkpoint_path(self, job_id: JobId, index: int) -> Path:
        return self.job_dir(job_id) / f"ckpt-{index}.safetensors"

    def load(self, job_id: JobId) -> JobJournal | None:
        path = self.job_dir(job_id) / "journal.json"
        if not path.is_file():
            return None
        doc = json.loads(path.read_text())
        return JobJournal(
            job_id=int(doc["job_id"]),
            phase=Phase(doc["phase"]),
            checkpoints=[Checkpoint(**c) for c in doc["checkpoints"]],
            losses=[float(x) for x in doc["losses"]],
            manifest_cid=str(doc["manifest_cid"]),
            note=str(doc.get("note", "")),
        )

    def all(self) -> list[JobJournal]:
        found = [self.load(JobId(int(p.name))) for p in self.root.iterdir() if p.name.isdigit()]
        return sorted((j for j in found if j is not None), key=lambda j: j.job_id)

    def save(self, journal: JobJournal) -> None:
        doc = asdict(journal)
        doc["phase"] = str(journal.phase)
        write_atomic(self.job_dir(JobId(journal.job_id)) / "journal.json", json.dumps(doc).encode())

    def save_checkpoint(self, job_id: JobId, index: int, data: bytes) -> Path:
        path = self.checkpoint_path(job_id, index)
        write_atomic(path, data)
        return path


def checkpoint_cids(journal: JobJournal) -> list[Cid]:
    return [Cid(c.cid) for c in journal.checkpoints]
