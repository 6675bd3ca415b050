"""The whistleblower: re-execute committed segments, challenge a mismatch, play it out.

For every submitted result still inside its challenge window it fetches the manifest,
checks it against the on-chain trace root, rebuilds the initial state from the spec, and
re-executes the K steps of each checked segment from the solver's checkpoint (verified
against its leaf).  The first segment whose end differs from the committed leaf is
challenged directly at STEP level with Merkle proofs (a wrong initial state is challenged
from the top); the game is then played with the honest strategy from this party's own
re-execution, and winnings are withdrawn.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from arbiter.actor import GameActor
from arbiter.realtrace import HonestStepper, RealTrace, Stepper
from chain.client import ChainClient
from chain.deploy import Deployment
from chain.dispute import GameRecord
from chain.events import LogCursor
from chain.generated import GameCreated, JobStatus, Level, Party, ResultSubmitted
from chain.types import JobId
from market.manifest import Manifest, ManifestInvalid
from market.store import ArtifactStore
from repops import hashing, merkle
from repops.errors import RepopsError
from repops.program import State, init_state, load_checkpoint
from roles.jobcontext import JobContext, JobUnusable, StoreTrouble, fetch, load_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """What a check concluded about one result."""

    job_id: int
    checked: tuple[int, ...]
    mismatch: int | None  # first bad leaf index (0 = initial state), None if all agreed
    reason: str


class Whistleblower:
    """Checks results and challenges the wrong ones."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        store: ArtifactStore,
        *,
        check_fraction: float = 1.0,
        arity: int = 4,
        seed: int = 0,
        stepper: Stepper | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < check_fraction <= 1:
            raise ValueError("check_fraction must be in (0, 1]")
        self.client = client
        self.market = deployment.market(client)
        self.token = deployment.token(client)
        self.games = deployment.game(client)
        self.store = store
        self.check_fraction = check_fraction
        self.arity = arity
        self.seed = seed
        self.stepper: Stepper = stepper or HonestStepper()
        self.report = report or (lambda line: log.info("%s", line))
        self.actor = GameActor(self.games, Party.Challenger, self._trace_for)
        self._events = LogCursor(
            client.w3, [self.market.address, self.games.address], deployment.block
        )
        self._queue: list[JobId] = []
        self._seen: set[JobId] = set()
        self._traces: dict[JobId, RealTrace] = {}
        self._games: dict[int, JobId] = {}
        self._challenged: set[JobId] = set()
        self._to_resume: list[GameCreated] = []
        self.findings: list[Finding] = []

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
        while self._queue:
            job_id = self._queue.pop(0)
            try:
                self.check(job_id)
            except StoreTrouble as exc:
                log.warning("job %d: store trouble, will retry: %s", job_id, exc)
                self._queue.append(job_id)
                break
        self._play()
        credit = self.market.credits(self.client.address)
        if credit > 0:
            self.market.withdraw()
            self.report(f"withdrew {credit / 1e18:g} WORK")

    @property
    def active_games(self) -> int:
        return len(self._games)

    def _scan(self) -> None:
        me = self.client.address
        for entry in self._events.poll():
            event = entry.event
            if isinstance(event, ResultSubmitted):
                job_id = JobId(event.job_id)
                if job_id not in self._seen:
                    self._seen.add(job_id)
                    self._queue.append(job_id)
            elif isinstance(event, GameCreated) and event.challenger == me:
                # Ours, perhaps from before a restart: play it, never open a second one.
                self._challenged.add(JobId(event.job_id))
                if event.game_id not in self._games:
                    self._to_resume.append(event)

    def _resume(self, created: GameCreated) -> None:
        job_id = JobId(created.job_id)
        if self.games.get_game(created.game_id).finished:
            return
        ctx = load_job(self.market, self.store, job_id)
        manifest = Manifest.from_bytes(fetch(self.store, ctx.record.manifest_cid, 1 << 26))
        start = int(created.base) if created.level == Level.STEP else None
        self._traces[job_id] = self._trace_from(ctx, manifest, start)
        self._games[created.game_id] = job_id
        self.report(f"job {job_id}: resumed game {created.game_id}")

    # ----------------------------------------------------------------- check

    def check(self, job_id: JobId) -> Finding | None:
        """Verify one submitted result; challenge it if a checked segment is wrong."""
        record = self.market.get_job(job_id)
        if record.status != JobStatus.Submitted or self._now() > record.challenge_deadline:
            return None
        if job_id in self._challenged:
            return None
        try:
            ctx = load_job(self.market, self.store, job_id)
            manifest = Manifest.from_bytes(fetch(self.store, record.manifest_cid, 1 << 26))
        except StoreTrouble:
            raise
        except (JobUnusable, ManifestInvalid) as exc:
            self.report(f"job {job_id}: cannot verify: {exc}")
            return None
        leaves = manifest.leaves
        if len(leaves) != record.checkpoint_count or (
            merkle.merkle_root(leaves) != record.trace_root
        ):
            self.report(f"job {job_id}: manifest does not match the committed trace root")
            return None
        finding = self._verify(ctx, manifest)
        self.findings.append(finding)
        if finding.mismatch is None:
            self.report(
                f"job {job_id}: checked segments {list(finding.checked)} of {len(leaves) - 1}: "
                "all match"
            )
            return finding
        self.report(f"job {job_id}: {finding.reason}; challenging")
        self._challenge(ctx, manifest, finding.mismatch)
        return finding

    def _segments(self, job_id: JobId, count: int) -> list[int]:
        if self.check_fraction >= 1:
            return list(range(count))
        rng = random.Random(f"{self.seed}/{job_id}")
        picked = rng.sample(range(count), max(1, math.ceil(self.check_fraction * count)))
        return sorted(picked)

    def _verify(self, ctx: JobContext, manifest: Manifest) -> Finding:
        job_id = ctx.record.job_id
        program, leaves = ctx.program, manifest.leaves
        k = program.checkpoint_interval
        own = init_state(program)
        if hashing.state_hash(own) != leaves[0]:
            return Finding(job_id, (), 0, "the committed initial state is not the spec's")
        segments = self._segments(job_id, len(leaves) - 1)
        checked: list[int] = []
        carried: tuple[int, State] | None = (0, own)
        for i in segments:
            start = carried[1] if carried is not None and carried[0] == i else None
            if start is None:
                start = self._solver_checkpoint(ctx, manifest, i)
            if start is None:
                self.report(f"job {job_id}: checkpoint {i} unavailable; segment skipped")
                carried = None
                continue
            state = start
            state = self._run_segment(ctx, state)
            checked.append(i)
            if hashing.state_hash(state) != leaves[i + 1]:
                reason = f"segment {i} (steps {i * k}..{(i + 1) * k}) ends in a different state"
                return Finding(job_id, tuple(checked), i + 1, reason)
            carried = (i + 1, state)
        return Finding(job_id, tuple(checked), None, "all checked segments match")

    def _run_segment(self, ctx: JobContext, state: State) -> State:
        for _ in range(ctx.program.checkpoint_interval):
            state, _ = self.stepper.step(ctx.program, state, ctx.dataset)
        return state

    def _solver_checkpoint(self, ctx: JobContext, manifest: Manifest, index: int) -> State | None:
        entry = manifest.checkpoints[index]
        try:
            state = load_checkpoint(ctx.program, fetch(self.store, entry.cid, 1 << 34))
        except (JobUnusable, RepopsError) as exc:
            log.info("job %d: checkpoint %d unusable: %s", ctx.record.job_id, index, exc)
            return None
        if hashing.state_hash(state) != entry.state_hash:
            return None
        return state

    # ------------------------------------------------------------- challenge

    def _challenge(self, ctx: JobContext, manifest: Manifest, bad_leaf: int) -> None:
        job_id = ctx.record.job_id
        leaves = manifest.leaves
        start = None if bad_leaf == 0 else bad_leaf - 1
        trace = self._trace_from(ctx, manifest, start)
        self.token.approve(self.market.address, ctx.record.challenger_bond)
        if start is None:
            game_id, _ = self.games.challenge(
                job_id, self.arity, leaves[-1], merkle.merkle_proof(leaves, len(leaves) - 1)
            )
        else:
            game_id, _ = self.games.challenge_at(
                job_id,
                self.arity,
                start,
                (leaves[start], leaves[bad_leaf]),
                (merkle.merkle_proof(leaves, start), merkle.merkle_proof(leaves, bad_leaf)),
            )
        self._challenged.add(job_id)
        self._traces[job_id] = trace
        self._games[game_id] = job_id
        bond = ctx.record.challenger_bond / 1e18
        self.report(f"job {job_id}: opened game {game_id} (bond {bond:g} WORK)")

    def _trace_from(self, ctx: JobContext, manifest: Manifest, start: int | None) -> RealTrace:
        """Our trace for a game opened at checkpoint pair (start, start + 1), or from the top."""
        if start is None:
            return self._own_trace(ctx)
        agreed = self._solver_checkpoint(ctx, manifest, start)
        if agreed is None:  # only reachable when the segment began at our own state
            agreed = self._own_state_at(ctx, start)
        first = agreed
        return RealTrace(
            ctx.program,
            ctx.dataset,
            ctx.record.spec_hash,
            list(manifest.leaves),
            lambda i: first if i == start else self._own_state_at(ctx, i),
            stepper=self.stepper,
        )

    def _own_state_at(self, ctx: JobContext, index: int) -> State:
        state = init_state(ctx.program)
        for _ in range(index):
            state = self._run_segment(ctx, state)
        return state

    def _own_trace(self, ctx: JobContext) -> RealTrace:
        """This party's whole trace (needed when the very first state is disputed)."""
        program = ctx.program
        states = [init_state(program)]
        for _ in range(program.steps // program.checkpoint_interval):
            states.append(self._run_segment(ctx, states[-1]))
        leaves = [hashing.state_hash(s) for s in states]
        return RealTrace(
            program,
            ctx.dataset,
            ctx.record.spec_hash,
            leaves,
            lambda i: states[i],
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
