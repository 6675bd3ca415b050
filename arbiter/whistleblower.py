"""The whistleblower: verify submitted results, turn every finding into a challenge, play it.

For every submitted result still inside its challenge window, earliest deadline first, it
fetches the manifest and checks it against the on-chain commitments, then re-executes the
checked segments (all, or a fraction sampled with a secret of its own) from the solver's
checkpoints, each verified against its leaf.  A checkpoint that cannot be had, or does not
load to its leaf, is a finding and never a reason to skip: the segment is re-executed from
this party's own state instead (every segment up to it is then checked on the way).  The
final model must load to leaf m.  Checking stops at the first mismatch, which is
challenged at once.  Independent jobs are checked in parallel, one process each, up to
`workers`; every state it computes is cached in its state directory, so a restart resumes
its games without recomputing what it already holds.

Every problem is a `Finding` with a `FindingKind`; `Whistleblower.act_on` is the one place
a finding becomes a move (`ACTIONS`).  The moves the chain does not offer yet (a proofless
challenge, availability challenges) are reported loudly and left to be wired.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from enum import StrEnum
from heapq import heappop, heappush
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from arbiter.actor import GameActor
from chain.client import ChainClient, Receipt
from chain.contracts import JobRecord
from chain.deploy import Deployment
from chain.dispute import GameRecord
from chain.events import LogCursor
from chain.generated import GameCreated, GameKind, JobStatus, Level, Party, ResultSubmitted
from chain.types import Cid, JobId
from market.jobcheck import reexecution_seconds
from market.manifest import Manifest, ManifestInvalid
from market.store import ArtifactStore, EmbeddedStore, open_store
from repops import data as data_mod
from repops import hashing, merkle
from repops.artifact import chunk_count, commit_file
from repops.errors import RepopsError
from repops.program import (
    Program,
    State,
    init_state,
    load_checkpoint,
    save_checkpoint,
)
from roles.files import own_secret, write_atomic
from roles.jobcontext import (
    MAX_DATASET_BYTES,
    ArtifactBad,
    JobContext,
    JobUnusable,
    StoreTrouble,
    build_job_program,
    fetch,
    load_job,
    parse_dataset,
)
from roles.realtrace import HonestStepper, RealTrace, Stepper

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 1 << 26
MAX_CHECKPOINT_BYTES = 1 << 34


# ----------------------------------------------------------------------- findings


class FindingKind(StrEnum):
    """What a check can find wrong with a result (each maps to one `Action`)."""

    WRONG_INITIAL_STATE = "wrong-initial-state"
    """Leaf 0 is not the spec's initial state."""
    SEGMENT_MISMATCH = "segment-mismatch"
    """Re-executing segment i from agreed leaf i does not reach leaf i + 1."""
    MANIFEST_MISSING = "manifest-missing"
    """The manifest CID names nothing that can be had (absent, bad CID, too large)."""
    MANIFEST_MALFORMED = "manifest-malformed"
    """The manifest's bytes are not a manifest."""
    MANIFEST_INCONSISTENT = "manifest-inconsistent"
    """The manifest's leaves do not hash to traceRoot, or it is for another job shape."""
    FINAL_HASH_MISMATCH = "final-hash-mismatch"
    """The on-chain finalStateHash is not leaf m."""
    CHECKPOINT_UNAVAILABLE = "checkpoint-unavailable"
    """Interior checkpoint i cannot be had."""
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    """Interior checkpoint i does not load, or loads to a state other than leaf i."""
    FILE_NOT_COMMITTED = "file-not-committed"
    """Checkpoint i's published bytes are not the file its fileRoot commits to (they may
    still load to leaf i: the commitment, not the model, is wrong)."""
    FINAL_MODEL_UNUSABLE = "final-model-unusable"
    """Checkpoint m (the model the submitter pays for) cannot be had or does not load to
    leaf m."""


class Action(StrEnum):
    """The challenge a finding calls for."""

    CHALLENGE_TOP = "challenge-top"
    """DisputeGame.challenge: a game over [0, m + 1], played against the manifest's leaves."""
    CHALLENGE_AT = "challenge-at"
    """DisputeGame.challengeAt(i, i + 1) with both leaves' proofs: a STEP-level game."""
    PROOFLESS = "proofless"
    """DisputeGame.challenge with nothing from the solver, played from our own trace: the
    solver must reveal every leaf it dissects with a proof, or lose at its clock."""
    PROVE_FINAL = "prove-final"
    """DisputeGame.proveFinalMismatch with leaf m's proof: settled in one call."""
    FILE = "file"
    """DisputeGame.challengeFile(i): the solver must name a CID whose bytes are the committed
    file and load to leaf i, or lose."""
    AVAILABILITY = "availability"
    """DisputeGame.challengeAvailability(i, chunk), chunk drawn from our secret: the solver
    must post that chunk of the committed file on-chain, or lose."""


ACTIONS: dict[FindingKind, Action] = {
    FindingKind.WRONG_INITIAL_STATE: Action.CHALLENGE_TOP,
    FindingKind.SEGMENT_MISMATCH: Action.CHALLENGE_AT,
    FindingKind.MANIFEST_MISSING: Action.PROOFLESS,
    FindingKind.MANIFEST_MALFORMED: Action.PROOFLESS,
    FindingKind.MANIFEST_INCONSISTENT: Action.PROOFLESS,
    FindingKind.FINAL_HASH_MISMATCH: Action.PROVE_FINAL,
    # Interior checkpoints only spare verifiers work (we re-execute from our own state when
    # one is withheld), so an unavailable one gets the cheap chain-decided sample; a file
    # that is there but wrong, and the final model the submitter pays for, get a File game,
    # which makes the solver serve the whole committed file or lose.
    FindingKind.CHECKPOINT_UNAVAILABLE: Action.AVAILABILITY,
    FindingKind.CHECKPOINT_MISMATCH: Action.FILE,
    FindingKind.FINAL_MODEL_UNUSABLE: Action.FILE,
    FindingKind.FILE_NOT_COMMITTED: Action.FILE,
}
"""Finding kind -> the challenge it calls for (`Whistleblower.act_on` sends it)."""

PRIORITY: tuple[FindingKind, ...] = (
    FindingKind.WRONG_INITIAL_STATE,
    FindingKind.SEGMENT_MISMATCH,
    FindingKind.MANIFEST_MISSING,
    FindingKind.MANIFEST_MALFORMED,
    FindingKind.MANIFEST_INCONSISTENT,
    FindingKind.FINAL_HASH_MISMATCH,
    FindingKind.FINAL_MODEL_UNUSABLE,
    FindingKind.CHECKPOINT_MISMATCH,
    FindingKind.CHECKPOINT_UNAVAILABLE,
    FindingKind.FILE_NOT_COMMITTED,
)
"""Which finding decides when a job has several: a proven wrong computation first (the
cheapest game that cannot fail), then commitments that cannot be checked, then
availability."""


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    index: int | None  # the leaf or checkpoint concerned (None: the whole manifest)
    detail: str

    def __str__(self) -> str:
        where = "" if self.index is None else f" {self.index}"
        return f"{self.kind}{where}: {self.detail}"


@dataclass(frozen=True)
class Report:
    """What a check of one result did and concluded."""

    job_id: int
    checked: tuple[int, ...]  # segments re-executed, in order
    mismatch: int | None  # first leaf shown wrong (0 = initial state), None if none
    reason: str
    findings: tuple[Finding, ...] = ()
    not_checked: tuple[int, ...] = ()  # segments neither re-executed nor shown wrong
    seconds: float = 0.0
    steps_run: int = 0

    def decisive(self) -> Finding | None:
        """The finding that decides the challenge (see `PRIORITY`)."""
        for kind in PRIORITY:
            for f in self.findings:
                if f.kind == kind:
                    return f
        return None

    def summary(self) -> str:
        parts = [f"checked segments {list(self.checked)}"]
        if self.not_checked:
            parts.append(f"not checked {list(self.not_checked)}")
        parts.extend(str(f) for f in self.findings)
        if not self.findings:
            parts.append(self.reason)
        return "; ".join(parts)


def availability_chunk(secret: bytes, job_id: int, checkpoint: int, file_bytes: int) -> int:
    """The chunk an availability challenge asks for: drawn with HMAC-SHA256(secret,
    "chunk/<job>/<checkpoint>") over the chunks a file of `file_bytes` bytes has."""
    key = hmac.new(secret, f"chunk/{job_id}/{checkpoint}".encode(), hashlib.sha256).digest()
    return int.from_bytes(key, "big") % chunk_count(file_bytes)


def expected_checkpoint_bytes(program: Program) -> int:
    """The size of an honest checkpoint file of `program` (its initial state's file)."""
    return len(save_checkpoint(program, init_state(program)))


def sample_segments(secret: bytes, job_id: int, count: int, fraction: float) -> list[int]:
    """The segments checked for a job: all, or ceil(fraction * count) drawn with a key only
    this whistleblower knows (HMAC-SHA256(secret, "segments/<job id>"))."""
    if fraction >= 1:
        return list(range(count))
    key = hmac.new(secret, f"segments/{job_id}".encode(), hashlib.sha256).digest()
    rng = random.Random(key)
    return sorted(rng.sample(range(count), max(1, math.ceil(fraction * count))))


# --------------------------------------------------------------- state cache


class StateCache:
    """States this party computed or verified for one job, on disk, named by stateHash;
    plus its own chain from the spec's initial state (index -> hash) and the step and
    operator hashes its games asked for."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def get(self, program: Program, state_hash: bytes) -> State | None:
        path = self.root / f"{state_hash.hex()}.safetensors"
        try:
            state = load_checkpoint(program, path.read_bytes())
        except (OSError, RepopsError):
            return None
        return state if hashing.state_hash(state) == state_hash else None

    def put(self, program: Program, state: State) -> bytes:
        h = hashing.state_hash(state)
        path = self.root / f"{h.hex()}.safetensors"
        if not path.is_file():
            write_atomic(path, save_checkpoint(program, state))
        return h

    def own_chain(self) -> dict[int, bytes]:
        return {int(k): bytes.fromhex(v) for k, v in self._doc("own.json").items()}

    def record_own(self, index: int, state_hash: bytes) -> None:
        doc = self._doc("own.json")
        doc[str(index)] = state_hash.hex()
        write_atomic(self.root / "own.json", json.dumps(doc, sort_keys=True).encode())

    def _doc(self, name: str) -> dict[str, Any]:
        try:
            doc = json.loads((self.root / name).read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def hashes(self) -> dict[str, Any]:
        return self._doc("trace.json")

    def save_hashes(self, doc: dict[str, Any]) -> None:
        write_atomic(self.root / "trace.json", json.dumps(doc, sort_keys=True).encode())


class CachedTrace(RealTrace):
    """A RealTrace whose step-state and operator-chain hashes persist in a `StateCache`,
    so a resumed game never replays what it already answered."""

    def __init__(self, cache: StateCache, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cache = cache
        self._doc = cache.hashes()
        self._doc.setdefault("steps", {})
        self._doc.setdefault("ops", {})

    def _key(self, checkpoint: int, offset: int) -> str:
        # Keyed by the state the values descend from, not by position: an own-trace game
        # and a game from the solver's checkpoint may hold different states at one index.
        return f"{self.leaves[checkpoint].hex()}/{offset}"

    def step_state(self, checkpoint: int, offset: int) -> bytes:
        key = self._key(checkpoint, offset)
        held = self._doc["steps"].get(key)
        if held is not None:
            return bytes.fromhex(held)
        value = super().step_state(checkpoint, offset)
        self._doc["steps"][key] = value.hex()
        self.cache.save_hashes(self._doc)
        return value

    def op_link(self, step: int, j: int) -> bytes:
        k = self.program.checkpoint_interval
        key = self._key(step // k, step % k)
        held = self._doc["ops"].get(key)
        if held is None:
            held = [h.hex() for h in self._chain(step).chain]
            self._doc["ops"][key] = held
            self.cache.save_hashes(self._doc)
        return bytes.fromhex(held[j])


# ------------------------------------------------------------ the check itself


@dataclass(frozen=True)
class CheckTask:
    """Everything one check needs, picklable for a worker process."""

    job_id: int
    spec: dict[str, Any]
    dataset_cid: str
    store: str  # open_store location
    leaves: tuple[bytes, ...]
    checkpoint_cids: tuple[str, ...]
    file_roots: tuple[bytes, ...]
    segments: tuple[int, ...]
    cache_dir: Path
    stepper: Stepper = field(default_factory=HonestStepper)


def _worker_init() -> None:
    torch.set_num_threads(1)


def run_check(
    task: CheckTask,
    program: Program | None = None,
    dataset: data_mod.Dataset | None = None,
    store: ArtifactStore | None = None,
) -> Report:
    """Verify one result against its manifest's leaves (no chain I/O: runs in a worker).

    Raises StoreTrouble when the store itself fails (check again later).
    """
    started = time.perf_counter()
    if store is None:
        store = open_store(task.store)
    if program is None:
        program = build_job_program(store, task.spec)
    if dataset is None:
        dataset = parse_dataset(program, fetch(store, Cid(task.dataset_cid), MAX_DATASET_BYTES))
    leaves, k, job_id = task.leaves, program.checkpoint_interval, task.job_id
    m = len(leaves) - 1
    cache = StateCache(task.cache_dir)
    findings: list[Finding] = []
    checked: list[int] = []
    steps_run = 0

    def report(mismatch: int | None, reason: str) -> Report:
        done = set(checked)
        rest = tuple(i for i in range(m) if i not in done and (mismatch is None or i < mismatch))
        return Report(
            job_id,
            tuple(checked),
            mismatch,
            reason,
            tuple(findings),
            rest,
            time.perf_counter() - started,
            steps_run,
        )

    def run_segment(state: State) -> State:
        nonlocal steps_run
        for _ in range(k):
            state, _ = task.stepper.step(program, state, dataset)
        steps_run += k
        return state

    def mismatch_at(i: int) -> Report:
        reason = f"segment {i} (steps {i * k}..{(i + 1) * k}) ends in a different state"
        findings.insert(0, Finding(FindingKind.SEGMENT_MISMATCH, i + 1, reason))
        return report(i + 1, reason)

    own0 = init_state(program)
    own0_hash = cache.put(program, own0)
    cache.record_own(0, own0_hash)
    if own0_hash != leaves[0]:
        reason = "the committed initial state is not the spec's"
        findings.append(Finding(FindingKind.WRONG_INITIAL_STATE, 0, reason))
        return report(0, reason)

    final, problem = _solver_checkpoint(store, program, task, m)
    if final is None:
        findings.append(Finding(FindingKind.FINAL_MODEL_UNUSABLE, m, problem))
    # `latest`: the furthest state this party holds, computed or verified (index, state).
    latest: tuple[int, State] = (0, own0)
    pure = True  # whether `latest` descends from our own initial state alone
    for i in task.segments:
        start: State
        if latest[0] == i:
            start = latest[1]
        else:
            theirs, problem = _solver_checkpoint(store, program, task, i)
            if theirs is not None:
                cache.put(program, theirs)
                start, pure = theirs, False
            else:
                findings.append(Finding(_checkpoint_kind(problem), i, problem))
                # Withheld or wrong: re-execute from our own furthest state instead.
                while latest[0] < i:
                    j = latest[0]
                    nxt = run_segment(latest[1])
                    checked.append(j)
                    if hashing.state_hash(nxt) != leaves[j + 1]:
                        return mismatch_at(j)
                    h = cache.put(program, nxt)
                    if pure:
                        cache.record_own(j + 1, h)
                    latest = (j + 1, nxt)
                start = latest[1]
        end = run_segment(start)
        checked.append(i)
        if hashing.state_hash(end) != leaves[i + 1]:
            return mismatch_at(i)
        h = cache.put(program, end)
        if pure:
            cache.record_own(i + 1, h)
        latest = (i + 1, end)
    return report(None, "all checked segments match")


def _checkpoint_kind(problem: str) -> FindingKind:
    """The finding for an interior checkpoint that `_solver_checkpoint` refused."""
    if problem.startswith("unavailable"):
        return FindingKind.CHECKPOINT_UNAVAILABLE
    if problem.startswith("not committed"):
        return FindingKind.FILE_NOT_COMMITTED
    return FindingKind.CHECKPOINT_MISMATCH


def _solver_checkpoint(
    store: ArtifactStore, program: Program, task: CheckTask, index: int
) -> tuple[State, str] | tuple[None, str]:
    """The solver's checkpoint `index` verified against its leaf, or why it is not usable."""
    cid = task.checkpoint_cids[index]
    try:
        raw = fetch(store, Cid(cid), MAX_CHECKPOINT_BYTES)
    except ArtifactBad as exc:
        return None, f"unavailable: {exc}"
    if commit_file(raw).root != task.file_roots[index]:
        return None, f"not committed: {cid} is not the file that fileRoot {index} commits to"
    try:
        state = load_checkpoint(program, raw)
    except RepopsError as exc:
        return None, f"{cid} does not load: {exc}"
    if hashing.state_hash(state) != task.leaves[index]:
        return None, f"{cid} loads to a state other than leaf {index}"
    return state, ""


# --------------------------------------------------------------------- the role


@dataclass
class _Pending:
    ctx: JobContext
    manifest: Manifest
    future: Future[Report] | None = None
    found: tuple[Finding, ...] = ()  # findings about the commitments, before re-execution


class Whistleblower:
    """Checks results and challenges the wrong ones."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ArtifactStore,
        *,
        state_dir: Path,
        check_fraction: float = 1.0,
        arity: int = 4,
        workers: int = 1,
        store_address: str | None = None,
        stepper: Stepper | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < check_fraction <= 1:
            raise ValueError("check_fraction must be in (0, 1]")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.client = client
        self.market = deployment.market(client)
        self.token = deployment.token(client)
        self.games = deployment.game(client)
        self.store = store
        self.state_dir = state_dir
        self.secret = own_secret(state_dir / "sampling.secret")
        self.check_fraction = check_fraction
        self.arity = arity
        self.workers = workers
        self.store_address = store_address or _store_address(store)
        self.stepper: Stepper = stepper or HonestStepper()
        self.report = report or (lambda line: log.info("%s", line))
        self.actor = GameActor(self.games, Party.Challenger, self._trace_for)
        self._events = LogCursor(
            client.w3, [self.market.address, self.games.address], deployment.block
        )
        self._queue: list[tuple[int, JobId]] = []  # (challenge deadline, job): a heap
        self._seen: set[JobId] = set()
        self._running: dict[JobId, _Pending] = {}
        self._traces: dict[JobId, RealTrace] = {}
        self._games: dict[int, JobId] = {}
        self._challenged: set[JobId] = set()
        self._to_resume: list[GameCreated] = []
        self._rates: dict[bytes, float] = {}  # program hash -> measured seconds per step
        self._pool: ProcessPoolExecutor | None = None
        self.findings: list[Report] = []
        """Every completed check, in completion order."""

    # -------------------------------------------------------------- the loop

    def tick(self) -> None:
        self._scan()
        while self._to_resume:
            created = self._to_resume[0]
            try:
                self._resume(created)
            except StoreTrouble as exc:
                log.warning("game %d: store trouble, will retry: %s", created.game_id, exc)
                break
            self._to_resume.pop(0)
        self._harvest()
        self._start_checks()
        self._harvest()
        self._play()
        credit = self.market.credits(self.client.address)
        if credit > 0:
            self.market.withdraw()
            self.report(f"withdrew {credit / 1e18:g} WORK")

    @property
    def active_games(self) -> int:
        return len(self._games)

    @property
    def busy(self) -> bool:
        """Checks queued or running."""
        return bool(self._queue or self._running)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _scan(self) -> None:
        me = self.client.address
        for entry in self._events.poll():
            event = entry.event
            if isinstance(event, ResultSubmitted):
                job_id = JobId(event.job_id)
                if job_id not in self._seen:
                    self._seen.add(job_id)
                    deadline = self.market.get_job(job_id).challenge_deadline
                    heappush(self._queue, (deadline, job_id))
            elif isinstance(event, GameCreated) and event.challenger == me:
                # Ours, perhaps from before a restart: play it, never open a second one.
                self._challenged.add(JobId(event.job_id))
                if event.game_id not in self._games:
                    self._to_resume.append(event)

    def _resume(self, created: GameCreated) -> None:
        job_id = JobId(created.job_id)
        if self.games.get_game(created.game_id).finished:
            return
        if created.kind != GameKind.Trace:  # nothing to replay: we only wait for the solver
            self._games[created.game_id] = job_id
            self.report(f"job {job_id}: resumed game {created.game_id}")
            return
        ctx = load_job(self.market, self.store, job_id)
        manifest, _ = check_manifest(self.store, ctx.record)  # None: our own trace only
        start = int(created.base) if created.level == Level.STEP else None
        self._traces[job_id] = self._trace_from(ctx, manifest, start)
        self._games[created.game_id] = job_id
        self.report(f"job {job_id}: resumed game {created.game_id}")

    # ------------------------------------------------------------- checking

    def _start_checks(self) -> None:
        """Start checks, earliest challenge deadline first, while workers are free."""
        while self._queue and len(self._running) < self.workers:
            deadline, job_id = heappop(self._queue)
            try:
                pending = self._prepare(job_id)
            except StoreTrouble as exc:
                log.warning("job %d: store trouble, will retry: %s", job_id, exc)
                heappush(self._queue, (deadline, job_id))
                return
            if pending is None:
                continue
            task = self._task(pending)
            self._warn_if_late(pending, task)
            if self.workers == 1:
                try:
                    result = run_check(task, pending.ctx.program, pending.ctx.dataset, self.store)
                except StoreTrouble as exc:
                    log.warning("job %d: store trouble, will retry: %s", job_id, exc)
                    heappush(self._queue, (deadline, job_id))
                    return
                self._conclude(pending, result)
            else:
                if self._pool is None:
                    self._pool = ProcessPoolExecutor(
                        self.workers, mp_context=get_context("spawn"), initializer=_worker_init
                    )
                pending.future = self._pool.submit(run_check, task)
                self._running[job_id] = pending

    def _harvest(self) -> None:
        for job_id, pending in list(self._running.items()):
            future = pending.future
            if future is None or not future.done():
                continue
            del self._running[job_id]
            try:
                result = future.result()
            except StoreTrouble as exc:
                log.warning("job %d: store trouble, will retry: %s", job_id, exc)
                heappush(self._queue, (pending.ctx.record.challenge_deadline, job_id))
                continue
            except Exception as exc:  # a worker that died must not take the role with it
                log.error("job %d: check failed in its worker: %s: %s", job_id, type(exc), exc)
                continue
            self._conclude(pending, result)

    def _prepare(self, job_id: JobId) -> _Pending | None:
        """The job's context and manifest, or None when there is nothing to check (the
        commitment findings that need no re-execution are acted on here)."""
        record = self.market.get_job(job_id)
        if record.status != JobStatus.Submitted or job_id in self._challenged:
            return None
        now = self._now()
        if now > record.challenge_deadline:
            log.warning(
                "job %d: challenge window closed at %d, %d s before this whistleblower "
                "reached it (%d jobs still queued): result NOT checked",
                job_id,
                record.challenge_deadline,
                now - record.challenge_deadline,
                len(self._queue),
            )
            return None
        try:
            ctx = load_job(self.market, self.store, job_id)
        except StoreTrouble:
            raise
        except JobUnusable as exc:
            self.report(f"job {job_id}: cannot verify (the job itself is unusable): {exc}")
            return None
        manifest, finding = check_manifest(self.store, record)
        if manifest is None:
            assert finding is not None
            report = Report(job_id, (), None, finding.detail, (finding,))
            self.findings.append(report)
            self.report(f"job {job_id}: {report.summary()}")
            self.act_on(ctx, None, report)
            return None
        return _Pending(ctx, manifest, found=() if finding is None else (finding,))

    def _task(self, pending: _Pending) -> CheckTask:
        ctx, manifest = pending.ctx, pending.manifest
        count = len(manifest.leaves) - 1
        return CheckTask(
            job_id=ctx.record.job_id,
            spec=ctx.spec,
            dataset_cid=str(ctx.spec["data"]["cid"]),
            store=self.store_address,
            leaves=tuple(manifest.leaves),
            checkpoint_cids=tuple(str(c.cid) for c in manifest.checkpoints),
            file_roots=tuple(manifest.file_roots),
            segments=tuple(
                sample_segments(self.secret, ctx.record.job_id, count, self.check_fraction)
            ),
            cache_dir=self._cache_dir(ctx.record.job_id),
            stepper=self.stepper,
        )

    def _warn_if_late(self, pending: _Pending, task: CheckTask) -> None:
        """Log loudly when the check cannot finish inside the challenge window."""
        record, program = pending.ctx.record, pending.ctx.program
        per_step = self._rates.get(program.program_hash)
        if per_step is None:  # nothing measured yet: the market's stated reference rate
            try:
                params = sum(math.prod(p.shape) for p in program.params.values())
                per_step = (
                    reexecution_seconds(pending.ctx.spec, graph_params=params) / program.steps
                )
            except ValueError:
                per_step = 0.01
        need = len(task.segments) * program.checkpoint_interval * per_step
        left = record.challenge_deadline - self._now()
        if need > left:
            log.warning(
                "job %d: the challenge window closes in %d s but checking %d segments of %d "
                "steps needs ~%.0f s (%.1f ms/step): the window cannot be met, checking anyway",
                record.job_id,
                left,
                len(task.segments),
                program.checkpoint_interval,
                need,
                per_step * 1e3,
            )

    def _conclude(self, pending: _Pending, result: Report) -> None:
        ctx = pending.ctx
        job_id = ctx.record.job_id
        if result.steps_run:
            self._rates[ctx.program.program_hash] = result.seconds / result.steps_run
        result = replace(result, findings=result.findings + pending.found)
        self.findings.append(result)
        count = len(pending.manifest.leaves) - 1
        self.report(f"job {job_id}: {result.summary()} (of {count} segments)")
        if result.decisive() is None:
            return
        if self._now() > ctx.record.challenge_deadline:
            log.warning(
                "job %d: %s, but the challenge window closed at %d: cannot challenge",
                job_id,
                result.decisive(),
                ctx.record.challenge_deadline,
            )
            return
        self.act_on(ctx, pending.manifest, result)

    # ------------------------------------------------------------- challenge

    def act_on(self, ctx: JobContext, manifest: Manifest | None, report: Report) -> None:
        """The one place a finding becomes a challenge (`ACTIONS` says which)."""
        finding = report.decisive()
        if finding is None:
            return
        action = ACTIONS[finding.kind]
        job_id = ctx.record.job_id
        if action is Action.CHALLENGE_AT and manifest is not None and finding.index:
            self.report(f"job {job_id}: {finding}; challenging")
            self._challenge(ctx, manifest, finding.index)
        elif action is Action.CHALLENGE_TOP and manifest is not None:
            self.report(f"job {job_id}: {finding}; challenging from the top")
            self._challenge(ctx, manifest, 0)
        elif action is Action.PROOFLESS:
            self._challenge_proofless(ctx, finding)
        elif action is Action.PROVE_FINAL and manifest is not None:
            self._prove_final(ctx, manifest, finding)
        elif action is Action.FILE and finding.index is not None:
            self._challenge_file(ctx, finding)
        elif action is Action.AVAILABILITY and finding.index is not None:
            self._challenge_availability(ctx, finding)
        else:  # pragma: no cover - ACTIONS covers every kind
            raise AssertionError(f"no action for {finding}")

    def _challenge_proofless(self, ctx: JobContext, finding: Finding) -> None:
        """A game that needs nothing from the solver, played from our own trace (the solver's
        leaves are unknown: it must reveal each with a proof as it dissects)."""
        job_id = ctx.record.job_id
        self.report(f"job {job_id}: {finding}; challenging from the top with no proofs")
        trace = self._trace_from(ctx, None, None)
        self._open(ctx, lambda: self.games.challenge(job_id, self.arity), trace)

    def _prove_final(self, ctx: JobContext, manifest: Manifest, finding: Finding) -> None:
        """finalStateHash is not leaf m: shown on-chain in one call."""
        job_id, leaves = ctx.record.job_id, manifest.leaves
        m = len(leaves) - 1
        self.report(f"job {job_id}: {finding}; proving it on-chain")
        self._open(
            ctx,
            lambda: self.games.prove_final_mismatch(
                job_id, leaves[m], merkle.merkle_proof(leaves, m)
            ),
        )

    def _challenge_file(self, ctx: JobContext, finding: Finding) -> None:
        """The solver must serve checkpoint `finding.index` as committed, loading to its leaf."""
        job_id, index = ctx.record.job_id, finding.index
        assert index is not None
        self.report(f"job {job_id}: {finding}; file challenge on checkpoint {index}")
        self._open(ctx, lambda: self.games.challenge_file(job_id, index))

    def _challenge_availability(self, ctx: JobContext, finding: Finding) -> None:
        """The solver must post one chunk of checkpoint `finding.index`, drawn from our secret
        (it cannot predict which), on-chain."""
        job_id, index = ctx.record.job_id, finding.index
        assert index is not None
        chunk = availability_chunk(
            self.secret, job_id, index, expected_checkpoint_bytes(ctx.program)
        )
        self.report(f"job {job_id}: {finding}; availability challenge on chunk {chunk}")
        self._open(ctx, lambda: self.games.challenge_availability(job_id, index, chunk))

    def _open(
        self,
        ctx: JobContext,
        send: Callable[[], tuple[int, Receipt]],
        trace: RealTrace | None = None,
    ) -> None:
        """Lock the bond, open the game `send` opens, and follow it."""
        job_id = ctx.record.job_id
        self.token.approve(self.market.address, ctx.record.challenger_bond)
        game_id, _ = send()
        self._challenged.add(job_id)
        if trace is not None:
            self._traces[job_id] = trace
        self._games[game_id] = job_id
        bond = ctx.record.challenger_bond / 1e18
        self.report(f"job {job_id}: opened game {game_id} (bond {bond:g} WORK)")

    def _challenge(self, ctx: JobContext, manifest: Manifest, bad_leaf: int) -> None:
        job_id = ctx.record.job_id
        leaves = manifest.leaves
        start = None if bad_leaf == 0 else bad_leaf - 1
        trace = self._trace_from(ctx, manifest, start)
        if start is None:
            self._open(ctx, lambda: self.games.challenge(job_id, self.arity), trace)
            return
        agreed = start
        self._open(
            ctx,
            lambda: self.games.challenge_at(
                job_id,
                self.arity,
                agreed,
                (leaves[agreed], leaves[bad_leaf]),
                (merkle.merkle_proof(leaves, agreed), merkle.merkle_proof(leaves, bad_leaf)),
            ),
            trace,
        )

    # ---------------------------------------------------------------- traces

    def _cache_dir(self, job_id: int) -> Path:
        return self.state_dir / "jobs" / str(job_id)

    def _trace_from(
        self, ctx: JobContext, manifest: Manifest | None, start: int | None
    ) -> RealTrace:
        """Our trace for a game opened at checkpoint pair (start, start + 1), or from the top
        (`manifest` None: the solver's leaves are unknown, ours are all we have)."""
        cache = StateCache(self._cache_dir(ctx.record.job_id))
        if start is None or manifest is None:
            return self._own_trace(ctx, cache)
        program = ctx.program
        agreed = cache.get(program, manifest.leaves[start])
        if agreed is None:
            task = replace(self._task(_Pending(ctx, manifest)), segments=())
            agreed, _ = _solver_checkpoint(self.store, program, task, start)
        if agreed is None:  # only reachable when the segment began at our own state
            agreed = self._own_state_at(ctx, cache, start)
        first = agreed
        return CachedTrace(
            cache,
            program,
            ctx.dataset,
            ctx.record.spec_hash,
            list(manifest.leaves),
            lambda i: first if i == start else self._own_state_at(ctx, cache, i),
            stepper=self.stepper,
        )

    def _own_state_at(self, ctx: JobContext, cache: StateCache, index: int) -> State:
        """Our own state at checkpoint `index`, from the nearest cached own state below it."""
        program = ctx.program
        chain = cache.own_chain()
        base, state = 0, None
        for i in sorted((i for i in chain if i <= index), reverse=True):
            state = cache.get(program, chain[i])
            if state is not None:
                base = i
                break
        if state is None:
            state = init_state(program)
            cache.record_own(0, cache.put(program, state))
        for i in range(base, index):
            for _ in range(program.checkpoint_interval):
                state, _ = self.stepper.step(program, state, ctx.dataset)
            cache.record_own(i + 1, cache.put(program, state))
        return state

    def _own_trace(self, ctx: JobContext, cache: StateCache) -> RealTrace:
        """This party's whole trace (when the very first state, or the manifest, is disputed)."""
        program = ctx.program
        m = program.steps // program.checkpoint_interval
        self._own_state_at(ctx, cache, m)  # computes (and caches) only what is missing
        chain = cache.own_chain()
        leaves = [chain[i] for i in range(m + 1)]
        return CachedTrace(
            cache,
            program,
            ctx.dataset,
            ctx.record.spec_hash,
            leaves,
            lambda i: self._own_state_at(ctx, cache, i),
            stepper=self.stepper,
        )

    # ------------------------------------------------------------------ play

    def _trace_for(self, game: GameRecord) -> RealTrace:
        return self._traces[game.job_id]

    def _play(self) -> None:
        for game_id in sorted(self._games):
            game = self.actor.play(game_id)
            if game.finished:
                job_id = self._games.pop(game_id)
                self.report(f"job {job_id}: game {game_id} ended: {game.status.name}")

    def _now(self) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"])


def check_manifest(
    store: ArtifactStore, record: JobRecord
) -> tuple[Manifest, Finding | None] | tuple[None, Finding]:
    """The result's manifest checked against the on-chain commitments: (manifest, None),
    (None, why there is no usable manifest), or (manifest, finalStateHash finding).

    Raises StoreTrouble when the store itself fails.
    """

    def bad(kind: FindingKind, detail: str) -> tuple[None, Finding]:
        return None, Finding(kind, None, detail)

    try:
        raw = fetch(store, record.manifest_cid, MAX_MANIFEST_BYTES)
    except ArtifactBad as exc:
        return bad(FindingKind.MANIFEST_MISSING, str(exc))
    try:
        manifest = Manifest.from_bytes(raw)
    except ManifestInvalid as exc:
        return bad(FindingKind.MANIFEST_MALFORMED, str(exc))
    leaves = manifest.leaves
    inconsistent = FindingKind.MANIFEST_INCONSISTENT
    if len(leaves) != record.checkpoint_count:
        return bad(
            inconsistent,
            f"manifest lists {len(leaves)} leaves, the job commits to {record.checkpoint_count}",
        )
    if manifest.checkpoint_interval != record.steps_per_checkpoint:
        return bad(inconsistent, "manifest is for another checkpoint interval")
    if manifest.spec_cid != record.spec_cid:
        return bad(inconsistent, "manifest is for another spec")
    if merkle.merkle_root(leaves) != record.trace_root:
        return bad(inconsistent, "manifest leaves do not hash to the committed trace root")
    if merkle.merkle_root(manifest.file_roots) != record.files_root:
        return bad(inconsistent, "manifest file roots do not hash to the committed filesRoot")
    if record.final_state_hash != leaves[-1]:
        m = len(leaves) - 1
        detail = "the committed finalStateHash is not leaf m"
        return manifest, Finding(FindingKind.FINAL_HASH_MISMATCH, m, detail)
    return manifest, None


def _store_address(store: ArtifactStore) -> str:
    """How a worker process opens the same store."""
    if isinstance(store, EmbeddedStore):
        return f"embedded:{store.root}"
    return store.location
