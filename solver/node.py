"""The solver's chain side: find jobs, claim, train, submit, defend, finalize, withdraw.

`SolverNode.tick()` does one pass of everything that can be done now; `run()` repeats it.
State that must survive a crash is in the journal (solver/journal.py); everything else is
re-read from the chain and the store on restart.  Disputes are played with the honest
strategy of arbiter/strategy.py from this solver's own trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount

from arbiter.actor import GameActor
from arbiter.strategy import PostBundle
from chain.client import ChainClient
from chain.contracts import JobRecord
from chain.deploy import Deployment
from chain.dispute import GameRecord
from chain.errors import ChainError, ContractRevert, NodeUnreachable
from chain.events import LogCursor
from chain.generated import GameCreated, JobClaimed, JobPosted, JobStatus, Party
from chain.types import Address, Cid, Hash32, JobId
from market.manifest import Manifest, ManifestInvalid, build_manifest
from market.store import ArtifactStore, StoreError
from repops.merkle import merkle_root
from repops.trace import trace_root
from repops.version import REPOPS_VERSION
from roles import dataparallel
from roles.jobcontext import JobContext, JobUnusable, StoreTrouble, fetch, load_job
from roles.realtrace import RealTrace, Stepper
from solver.journal import Checkpoint, JobJournal, Journal, Phase, checkpoint_cids
from solver.settings import SolverSettings
from solver.trainer import (
    ProgressSink,
    Trainer,
    TrainingError,
    pick_device,
    state_bytes_estimate,
    training_seconds,
)

log = logging.getLogger(__name__)

CLAIM_MARGIN_S = 5
"""Skip jobs whose claim deadline is closer than this: the claim would likely revert."""
_RETRY = "retry later"


@dataclass
class Event:
    """A line for the human log: what the solver just did."""

    job_id: int
    what: str


class SolverNode:
    """One solver account working the market."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ArtifactStore,
        settings: SolverSettings,
        stepper: Stepper | None = None,
        progress: ProgressSink | None = None,
        report: Callable[[Event], None] | None = None,
        worker_cmd: Sequence[str] = dataparallel.WORKER_CMD,
    ) -> None:
        self.client = client
        self.account: LocalAccount = _account(client)
        self.address = Address(self.account.address)
        self.market = deployment.market(client)
        self.token = deployment.token(client)
        self.games = deployment.game(client)
        self.store = store
        self.settings = settings
        self.journal = Journal(settings.state_dir / self.account.address)
        self.trainer = Trainer(
            self.journal,
            store,
            pick_device(settings.device),
            stepper=stepper,
            progress=progress,
            world_size=settings.world_size,
            worker_cmd=worker_cmd,
        )
        self.report = report or (lambda e: log.info("job %d: %s", e.job_id, e.what))
        self.actor = GameActor(
            self.games, Party.Solver, self._trace_for, self._publish_bundle, self._artifacts_for
        )
        self._events = LogCursor(
            client.w3, [self.market.address, self.games.address], deployment.block
        )
        self._posted: list[JobId] = []
        self._skipped: dict[JobId, str] = {}
        self._contexts: dict[JobId, JobContext] = {}
        self._traces: dict[JobId, RealTrace] = {}
        self._games: set[int] = set()

    # -------------------------------------------------------------- the loop

    def run(self, should_stop: Callable[[], bool]) -> None:
        while not should_stop():
            self.tick()
            if self.settings.max_jobs and self.settled_count() >= self.settings.max_jobs:
                return
            time.sleep(self.settings.poll_interval)

    def tick(self) -> None:
        """Everything that can be done now, in order of urgency."""
        self._scan()
        self._defend()
        active = self._active()
        if active is None:
            self._maybe_claim()
            active = self._active()
        if active is not None and active.phase in (Phase.CLAIMED, Phase.TRAINING):
            self._train(active)
        for entry in self.journal.all():
            if entry.phase == Phase.SUBMITTING:
                self._submit_guarded(entry)
        self._defend()
        self._settle()

    def settled_count(self) -> int:
        return sum(1 for e in self.journal.all() if e.phase in (Phase.SETTLED, Phase.ABANDONED))

    # ----------------------------------------------------------------- scan

    def _scan(self) -> None:
        mine = {JobId(e.job_id) for e in self.journal.all()}
        for entry in self._events.poll():
            event = entry.event
            if isinstance(event, JobPosted):
                self._posted.append(JobId(event.job_id))
            elif isinstance(event, JobClaimed) and event.solver == self.address:
                if JobId(event.job_id) not in mine and self._adopt(JobId(event.job_id)):
                    mine.add(JobId(event.job_id))
            elif isinstance(event, GameCreated) and JobId(event.job_id) in mine:
                self._games.add(event.game_id)
                self.report(Event(event.job_id, f"challenged: game {event.game_id}"))

    def _adopt(self, job_id: JobId) -> bool:
        """Journal a job the chain says we hold but the journal lost (a crash right after the
        claim transaction): training it beats losing the stake at the submit deadline."""
        record = self.market.get_job(job_id)
        if record.solver != self.address or record.status not in (
            JobStatus.Claimed,
            JobStatus.Submitted,
        ):
            return False
        entry = JobJournal(job_id=job_id)
        if record.status == JobStatus.Submitted:
            # Our own manifest says which checkpoints we committed: enough to defend them.
            try:
                manifest = Manifest.from_bytes(fetch(self.store, record.manifest_cid, 1 << 26))
            except (JobUnusable, ManifestInvalid) as exc:
                log.warning("job %d: cannot adopt the submitted result: %s", job_id, exc)
                return False
            entry.checkpoints = [
                Checkpoint(c.index, str(c.cid), c.state_hash.hex(), c.file_root.hex())
                for c in manifest.checkpoints
            ]
            entry.losses = list(manifest.losses)
            entry.manifest_cid = str(record.manifest_cid)
            entry.phase = Phase.SUBMITTED
            entry.note = "adopted after a restart; submitted before the journal knew"
        self.journal.save(entry)
        self.report(Event(job_id, "adopted a claim the journal had lost"))
        return True

    # ---------------------------------------------------------------- claim

    def _active(self) -> JobJournal | None:
        for entry in self.journal.all():
            if entry.phase in (Phase.CLAIMED, Phase.TRAINING, Phase.SUBMITTING):
                return entry
        return None

    def _maybe_claim(self) -> None:
        for job_id in list(self._posted):
            if job_id in self._skipped or self.journal.load(job_id) is not None:
                continue
            reason = self._unfit(job_id)
            if reason == _RETRY:
                continue
            if reason is not None:
                self._skipped[job_id] = reason
                if reason.startswith("status "):  # someone else's now: nothing to say
                    log.info("job %d: skipped (%s)", job_id, reason)
                else:
                    self.report(Event(job_id, f"skipped: {reason}"))
                continue
            record = self._contexts[job_id].record
            self.token.approve(self.market.address, record.solver_stake)
            try:
                self.market.claim(job_id)
            except ContractRevert as exc:
                self._skipped[job_id] = f"claim failed: {exc}"
                log.info("job %d: claim failed (%s)", job_id, exc)
                continue
            self.journal.save(JobJournal(job_id=job_id))
            self.report(Event(job_id, f"claimed (stake {record.solver_stake / 1e18:g} WORK)"))
            return

    def _unfit(self, job_id: JobId) -> str | None:
        record = self.market.get_job(job_id)
        now = self._now()
        if record.status != JobStatus.Open:
            return f"status {record.status.name}"
        if record.claim_deadline < now + CLAIM_MARGIN_S:
            return "claim deadline too close"
        if record.solver_stake > self.settings.max_stake_wei:
            return "stake above the configured maximum"
        if record.solver_stake > self.token.balance_of(self.account.address):
            return "not enough WORK for the stake"
        try:
            ctx = load_job(self.market, self.store, job_id)
        except StoreTrouble as exc:
            log.warning("job %d: store trouble, will retry: %s", job_id, exc)
            return _RETRY
        except JobUnusable as exc:
            return str(exc)
        if ctx.spec.get("repops_version") != REPOPS_VERSION:
            return f"repops version {ctx.spec.get('repops_version')!r} unsupported"
        if state_bytes_estimate(ctx) > self.settings.memory_limit_bytes:
            return "does not fit in the memory limit"
        try:
            per_step = self.trainer.calibrate(ctx)
        except TrainingError as exc:
            return str(exc)
        need = training_seconds(ctx, per_step)
        if need > record.submit_window:
            return (
                f"needs ~{need:.0f} s to train ({ctx.program.steps} steps at "
                f"{per_step * 1e3:.1f} ms), the submit window is {record.submit_window} s"
            )
        self._contexts[job_id] = ctx
        return None

    # ---------------------------------------------------------------- train

    def _context(self, job_id: JobId) -> JobContext:
        ctx = self._contexts.get(job_id)
        if ctx is None:
            ctx = load_job(self.market, self.store, job_id)
            self._contexts[job_id] = ctx
        return ctx

    def _train(self, entry: JobJournal) -> None:
        job_id = JobId(entry.job_id)
        record = self.market.get_job(job_id)
        if record.status != JobStatus.Claimed or record.solver != self.address:
            entry.phase = Phase.ABANDONED
            entry.note = f"lost the job while training (status {record.status.name})"
            self.journal.save(entry)
            self.report(Event(job_id, entry.note))
            return
        try:
            ctx = self._context(job_id)
            world, why = self.trainer.world_for(ctx)
            where = str(self.trainer.device)
            if world > 1:
                where = f"{world} workers ({where})"
            if why is not None:
                self.report(Event(job_id, f"training in one process: {why}"))
            self.report(Event(job_id, f"training {ctx.program.steps} steps on {where}"))
            self.trainer.train(ctx, entry, on_checkpoint=self._defend)
        except (StoreTrouble, StoreError, ChainError) as exc:
            # Not the job's fault: the journal keeps it, the next tick tries again.
            log.warning("job %d: training interrupted, will retry: %s", job_id, exc)
            return
        except Exception as exc:
            self._abandon(entry, f"cannot train: {_one_line(exc)}")
            return
        entry.phase = Phase.SUBMITTING
        self.journal.save(entry)

    def _abandon(self, entry: JobJournal, reason: str) -> None:
        """Give a job up for good: journaled, so a restart never re-enters it."""
        entry.phase = Phase.ABANDONED
        entry.note = reason
        self.journal.save(entry)
        log.warning("job %d: abandoned: %s", entry.job_id, reason)
        self.report(Event(entry.job_id, f"abandoned: {reason}"))

    # --------------------------------------------------------------- submit

    def _submit_guarded(self, entry: JobJournal) -> None:
        """Submit, retrying only what can succeed later: never a crash loop."""
        try:
            self._submit(entry)
        except (StoreTrouble, StoreError, NodeUnreachable) as exc:
            log.warning("job %d: cannot submit yet, will retry: %s", entry.job_id, exc)
        except JobUnusable as exc:
            self._abandon(entry, f"cannot submit: {_one_line(exc)}")

    def _submit(self, entry: JobJournal) -> None:
        job_id = JobId(entry.job_id)
        ctx = self._context(job_id)
        record = self.market.get_job(job_id)
        if record.status == JobStatus.Submitted and record.solver == self.address:
            entry.phase = Phase.SUBMITTED  # the tx landed before a crash; never send it again
            self.journal.save(entry)
            return
        if record.status != JobStatus.Claimed or record.solver != self.address:
            entry.phase = Phase.ABANDONED
            entry.note = f"could not submit (status {record.status.name})"
            self.journal.save(entry)
            self.report(Event(job_id, entry.note))
            return
        if self._now() > record.submit_deadline:  # the transaction could only revert
            self._abandon(entry, f"submit deadline {record.submit_deadline} passed")
            return
        self._publish_result(ctx, record, entry)
        entry.phase = Phase.SUBMITTED
        self.journal.save(entry)

    def _publish_result(self, ctx: JobContext, record: JobRecord, entry: JobJournal) -> None:
        """Pin the manifest, then commit traceRoot, finalStateHash and filesRoot on-chain."""
        job_id = JobId(entry.job_id)
        program = ctx.program
        manifest = build_manifest(
            record.spec_cid,
            program.steps,
            program.checkpoint_interval,
            checkpoint_cids(entry),
            entry.leaves,
            entry.file_roots,
            entry.losses,
        )
        manifest_cid = self.store.add_bytes(manifest.to_bytes())
        entry.manifest_cid = str(manifest_cid)
        self.journal.save(entry)
        root = trace_root(entry.leaves)
        self.market.submit_result(
            job_id,
            Hash32(root),
            len(entry.leaves),
            manifest_cid,
            Hash32(entry.leaves[-1]),
            Hash32(merkle_root(entry.file_roots)),
        )
        self.report(
            Event(job_id, f"submitted trace root 0x{root.hex()[:16]}…, manifest {manifest_cid}")
        )

    # --------------------------------------------------------------- defend

    def _trace_for(self, game: GameRecord) -> RealTrace:
        trace = self._traces.get(game.job_id)
        if trace is None:
            entry = self.journal.load(game.job_id)
            if entry is None:
                raise RuntimeError(f"game {game.game_id} is on job {game.job_id}, not ours")
            ctx = self._context(game.job_id)
            trace = RealTrace(
                ctx.program,
                ctx.dataset,
                ctx.record.spec_hash,
                entry.leaves,
                lambda i: self.trainer.load_checkpoint(ctx, entry, i),
                stepper=self.trainer.stepper,
            )
            self._traces[game.job_id] = trace
        return trace

    def _artifacts_for(self, game: GameRecord) -> JournalArtifacts:
        entry = self.journal.load(game.job_id)
        if entry is None:
            raise RuntimeError(f"game {game.game_id} is on job {game.job_id}, not ours")
        return JournalArtifacts(self.journal, entry, self.store)

    def _publish_bundle(self, game: GameRecord, move: PostBundle) -> Cid:
        data = self._trace_for(game).bundle(move.step, move.position)
        cid = self.store.add_bytes(data)
        self.report(Event(game.job_id, f"game {game.game_id}: operand bundle {cid}"))
        return cid

    def _defend(self) -> None:
        for game_id in sorted(self._games):
            game = self.actor.play(game_id)
            if game.finished:
                self._games.discard(game_id)
                self.report(Event(game.job_id, f"game {game_id} ended: {game.status.name}"))

    # --------------------------------------------------------------- settle

    def _settle(self) -> None:
        for entry in self.journal.all():
            if entry.phase != Phase.SUBMITTED:
                continue
            job_id = JobId(entry.job_id)
            record = self.market.get_job(job_id)
            if record.status == JobStatus.Submitted and self._finalizable(record):
                try:
                    self.market.finalize(job_id)
                except ContractRevert as exc:
                    log.info("job %d: finalize refused: %s", job_id, exc)
                    continue
                record = self.market.get_job(job_id)
            if record.status in (JobStatus.Finalized, JobStatus.Slashed):
                entry.phase = Phase.SETTLED
                entry.note = record.status.name.lower()
                self.journal.save(entry)
                self.report(Event(job_id, f"settled: {entry.note}"))
        credit = self.market.credits(self.account.address)
        if credit > 0:
            self.market.withdraw()
            self.report(Event(0, f"withdrew {credit / 1e18:g} WORK"))

    def _finalizable(self, record: JobRecord) -> bool:
        return record.open_disputes == 0 and self._now() > record.challenge_deadline

    def _now(self) -> int:
        return int(self.client.w3.eth.get_block("latest")["timestamp"])


class JournalArtifacts:
    """This solver's committed checkpoint files: from disk, else from the store."""

    def __init__(self, journal: Journal, entry: JobJournal, store: ArtifactStore) -> None:
        self.journal = journal
        self.entry = entry
        self.store = store

    def file_bytes(self, checkpoint: int) -> bytes:
        path = self.journal.checkpoint_path(JobId(self.entry.job_id), checkpoint)
        if path.is_file():
            return path.read_bytes()
        return fetch(self.store, self.file_cid(checkpoint), 1 << 34)

    def file_cid(self, checkpoint: int) -> Cid:
        return Cid(self.entry.checkpoints[checkpoint].cid)

    def file_roots(self) -> list[bytes]:
        return self.entry.file_roots


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _account(client: ChainClient) -> LocalAccount:
    if client.account is None:
        raise ValueError("the solver needs a signing account")
    return client.account
