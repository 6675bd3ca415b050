"""Load what every role needs to reason about a job: its record, spec, program and data.

The spec is fetched by CID and checked against the on-chain specHash; the dataset is
fetched by the CID the spec names and parsed by repops in the format the spec names.  A
user's own model (``"name": "graph"``) has two more artifacts, its canonical graph and
its initial weights, fetched by their CIDs through `artifact_fetch` (repops checks each
against the sha256 the spec binds, then parses them as untrusted data).  The dataset is
checked against the model's batch inputs.  Nothing here trusts the bytes it fetches: a
mismatch is a JobUnusable saying what is wrong, so a solver never claims such a job and
a verifier or referee re-executing it blames whoever published it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chain.contracts import JobMarketClient, JobRecord
from chain.types import Cid, JobId
from market.store import ArtifactStore, ArtifactUnusable, StoreError
from repops import data as data_mod
from repops.errors import RepopsError
from repops.program import DATASETS, Fetch, Program, build_program, check_dataset

MAX_SPEC_BYTES = 1 << 20
MAX_DATASET_BYTES = 1 << 31
MAX_GRAPH_BYTES = 1 << 28
MAX_WEIGHTS_BYTES = 1 << 31


class JobUnusable(Exception):
    """The job's spec or dataset cannot be fetched, does not match, or does not build."""


class StoreTrouble(JobUnusable):
    """The artifact store could not be reached (try again later; not the job's fault)."""


class ArtifactBad(JobUnusable):
    """The artifact itself cannot be had (bad CID, absent, corrupt, too large, not a file):
    the fault of whoever published its CID, not the store's."""


@dataclass(frozen=True)
class JobContext:
    record: JobRecord
    spec: dict[str, Any]
    program: Program
    dataset: data_mod.Dataset


def fetch(store: ArtifactStore, cid: Cid, max_size: int) -> bytes:
    """Verified bytes of `cid`: ArtifactBad when the artifact is at fault, StoreTrouble
    when the store itself fails."""
    try:
        return store.get_bytes(cid, max_size=max_size)
    except ArtifactUnusable as exc:
        raise ArtifactBad(f"artifact {cid} unusable: {exc}") from exc
    except StoreError as exc:
        raise StoreTrouble(f"cannot fetch {cid}: {exc}") from exc


def artifact_fetch(store: ArtifactStore) -> Fetch:
    """The `fetch` of `repops.program.build_program`: a graph model's artifact by its CID.

    A reference without a CID, or with one that is not in the store (or is corrupt), is
    the spec's fault (ArtifactBad); the sha256 check is build_program's.
    """

    def get(path: str, ref: Mapping[str, Any]) -> bytes:
        cid = ref.get("cid")
        if not isinstance(cid, str):
            raise ArtifactBad(f"{path}: no cid to fetch the artifact from")
        limit = MAX_GRAPH_BYTES if path.endswith(".graph") else MAX_WEIGHTS_BYTES
        try:
            return fetch(store, Cid(cid), limit)
        except ArtifactBad as exc:
            raise ArtifactBad(f"{path}: {exc}") from exc

    return get


def build_job_program(store: ArtifactStore, spec: Mapping[str, Any]) -> Program:
    """`build_program` with a graph model's artifacts fetched from `store`."""
    return build_program(spec, artifact_fetch(store))


def parse_dataset(program: Program, raw: bytes, check_fit: bool = True) -> data_mod.Dataset:
    """The dataset file in the format the spec names, checked against the program's inputs
    unless `check_fit` is False (raises RepopsError)."""
    ds = data_mod.Dataset.of_format(DATASETS[program.dataset], raw)
    if check_fit:
        check_dataset(program, ds)
    return ds


def load_spec(store: ArtifactStore, record: JobRecord) -> dict[str, Any]:
    raw = fetch(store, record.spec_cid, MAX_SPEC_BYTES)
    if hashlib.sha256(raw).digest() != record.spec_hash:
        raise JobUnusable(f"job {record.job_id}: spec {record.spec_cid} does not match specHash")
    try:
        spec = json.loads(raw)
    except ValueError as exc:
        raise JobUnusable(f"job {record.job_id}: spec is not JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise JobUnusable(f"job {record.job_id}: spec is not a JSON object")
    return spec


def load_job(
    market: JobMarketClient, store: ArtifactStore, job_id: JobId, check_fit: bool = True
) -> JobContext:
    """The job's record, verified spec, built program and parsed dataset.

    With `check_fit` False a dataset that parses but does not fit the model's inputs is
    returned as it is: the referee decides such a job step by step (a step with no batch
    has no honest trace, so the solver's link does not exist) instead of abstaining.
    """
    record = market.get_job(job_id)
    spec = load_spec(store, record)
    try:
        program = build_job_program(store, spec)
        data_cid = Cid(str(spec["data"]["cid"]))
    except (RepopsError, KeyError, TypeError) as exc:
        raise JobUnusable(f"job {job_id}: spec does not build: {exc}") from exc
    if program.checkpoint_interval != record.steps_per_checkpoint or (
        program.steps // program.checkpoint_interval + 1 != record.checkpoint_count
    ):
        raise JobUnusable(f"job {job_id}: on-chain checkpoint terms disagree with the spec")
    try:
        dataset = parse_dataset(program, fetch(store, data_cid, MAX_DATASET_BYTES), check_fit)
    except RepopsError as exc:
        raise JobUnusable(f"job {job_id}: dataset unusable: {exc}") from exc
    return JobContext(record, spec, program, dataset)
