"""The real referee oracle: rebuild the tape from the job spec, re-execute ONE link on CPU.

For a game narrowed to [p, p + 1] this computes the honest value at p + 1 from the agreed
value at p, using only public data: the spec and dataset (by CID, verified), and for an
operator link the solver's operand bundle.  Links by level (DisputeTypes.sol positions):

- CHECKPOINT [0, 1]: the initial state's hash, rebuilt from the spec's seed;
- OP [0, 1]: h_0 = sha256(stateHash_t ‖ batchHash_t); the batch of step t is a function
  of (dataset, data seed, t) alone, so no bundle is needed;
- OP [j, j + 1], 1 <= j <= M + 1: link j re-executed by `repops.trace.reexecute` from the
  bundle, which must reproduce the agreed h_{j-1};
- File games: the checkpoint file at the revealed CID, checked against the revealed file
  root, loaded, and its state hash computed (`referee.file_state`).

Every bundle failure the solver causes is a ruling against it (BundleRejected): a CID
that does not parse, content nobody serves, content that does not verify, a directory, a
file larger than an honest bundle for that link can be (`max_bundle_bytes`, bounded by
the op, never by the model), bytes that are not a bundle, a bundle for another link or
program, missing or extra tensors, wrong shapes, or hashes that do not reproduce the
agreed chain.  Only the referee's own trouble (store unreachable or misbehaving: any
StoreError that is not an ArtifactUnusable) raises ArbiterError (rule later).
"""

from __future__ import annotations

import logging

from arbiter.referee import ArbiterError, BundleRejected, file_state
from chain.contracts import JobMarketClient
from chain.dispute import GameRecord
from chain.generated import GameKind, Level
from chain.types import JobId
from market.store import ArtifactStore, ArtifactTooLarge, ArtifactUnusable, StoreError
from repops import hashing
from repops.errors import RepopsError
from repops.program import batch_for, batch_hash, init_state, load_checkpoint
from repops.trace import OperandBundle, chain_start, max_bundle_bytes, reexecute
from roles.jobcontext import JobContext, JobUnusable, load_job

log = logging.getLogger(__name__)

MAX_CHECKPOINT_BYTES = 1 << 34
"""Largest checkpoint file the referee fetches for a File game."""


def _loaded_hash(job: JobContext, data: bytes) -> bytes:
    try:
        return hashing.state_hash(load_checkpoint(job.program, data))
    except RepopsError as exc:
        raise ValueError(str(exc)) from exc


class RepopsOracle:
    """Honest link values for real jobs (see the module docstring)."""

    def __init__(self, store: ArtifactStore, market: JobMarketClient) -> None:
        self.store = store
        self.market = market
        self._jobs: dict[JobId, JobContext] = {}

    def value_after(self, game: GameRecord) -> bytes | None:
        job = self._job(game.job_id)
        if game.kind == GameKind.File:
            return file_state(game, self._file(game), lambda data: _loaded_hash(job, data))
        if game.level == Level.CHECKPOINT:
            if game.lo != 0:
                raise ArbiterError(f"game {game.game_id}: CHECKPOINT ruling at position {game.lo}")
            return hashing.state_hash(init_state(job.program))
        if game.level != Level.OP:
            raise ArbiterError(f"game {game.game_id}: no ruling at level {game.level.name}")
        if game.lo == 0:
            try:
                batch = batch_for(job.program, job.dataset, game.base)
            except RepopsError as exc:  # no honest step t exists, so no honest h_0 either
                log.info("game %d: step %d has no batch: %s", game.game_id, game.base, exc)
                return None
            return chain_start(game.hash_lo, batch_hash(batch))
        link = game.lo
        if link > job.program.tape.num_ops + 1:
            return None
        bundle = self._bundle(game, max_bundle_bytes(job.program, link))
        if bundle.op_index != link:
            raise BundleRejected(f"bundle is for link {bundle.op_index}, the game is at {link}")
        try:
            return reexecute(job.program, bundle, game.hash_lo).h
        except RepopsError as exc:  # BundleInvalid, or any other inconsistency it carries
            raise BundleRejected(str(exc)) from exc

    def _file(self, game: GameRecord) -> bytes | None:
        # As for bundles: whatever the CID causes (bad CID, not found, not a file, too large,
        # corrupt) is the solver's; only the store's own trouble is the referee's.
        try:
            return self.store.get_bytes(game.bundle_cid, max_size=MAX_CHECKPOINT_BYTES)
        except ArtifactUnusable as exc:
            log.info("game %d: checkpoint file unavailable: %s", game.game_id, exc)
            return None
        except StoreError as exc:
            raise ArbiterError(f"cannot fetch checkpoint file {game.bundle_cid}: {exc}") from exc

    def _bundle(self, game: GameRecord, limit: int) -> OperandBundle:
        if not game.bundle_cid:
            raise BundleRejected("no bundle was posted")
        try:
            raw = self.store.get_bytes(game.bundle_cid, max_size=limit)
        except ArtifactTooLarge as exc:
            raise BundleRejected(f"bundle oversize: {exc}") from exc
        except ArtifactUnusable as exc:
            raise BundleRejected(f"bundle {game.bundle_cid} unavailable: {exc}") from exc
        except StoreError as exc:
            raise ArbiterError(f"cannot fetch bundle {game.bundle_cid}: {exc}") from exc
        try:
            return OperandBundle.from_bytes(raw)
        except RepopsError as exc:
            raise BundleRejected(f"bundle {game.bundle_cid} malformed: {exc}") from exc

    def _job(self, job_id: JobId) -> JobContext:
        cached = self._jobs.get(job_id)
        if cached is None:
            try:
                cached = load_job(self.market, self.store, job_id, check_fit=False)
            except JobUnusable as exc:
                raise ArbiterError(str(exc)) from exc
            self._jobs[job_id] = cached
        return cached
