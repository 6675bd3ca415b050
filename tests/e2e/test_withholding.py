"""No pay without verifiable work, end to end on anvil with the real roles.

Each test is one way a rational solver could hope to be paid for work nobody can check:
committing garbage, withholding the manifest, publishing files that do not match its
commitments, or committing a finalStateHash that is not its last leaf.  In every case the
result is not paid, the cheater loses its stake, the submitter is refunded, the honest
whistleblower earns the winner's share, and no token is created or lost.  The solver side is
the real SolverNode with only `_publish_result` replaced (the adversary's code lives here,
never in `solver/`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from chain.contracts import JobRecord
from chain.generated import AvailabilityAnswered, GameKind, GameStatus, JobStatus
from chain.types import Cid, Hash32, JobId
from market.manifest import build_manifest
from market.store import ArtifactStore, open_store
from repops.artifact import chunk, chunk_count, commit_file
from repops.merkle import merkle_root
from roles.jobcontext import JobContext
from solver.journal import JobJournal, Phase, checkpoint_cids
from solver.node import SolverNode
from solver.settings import SolverSettings
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.support import publish_job, referee, run_market, whistleblower
from tests.fixtures.dispute import BOND, REWARD, STAKE, DisputeEnv

TO_WINNER = STAKE // 2  # WINNER_SHARE_BPS = 5_000


class CommitmentCheater(SolverNode):
    """Trains honestly, then commits what `lie(...)` returns instead of the truth."""

    lie: Callable[[CommitmentCheater, JobContext, JobRecord, JobJournal], None]

    def _publish_result(self, ctx: JobContext, record: JobRecord, entry: JobJournal) -> None:
        type(self).lie(self, ctx, record, entry)


def _manifest_cid(node: SolverNode, ctx: JobContext, entry: JobJournal, **swap: object) -> Cid:
    program = ctx.program
    fields: dict[str, object] = {
        "cids": checkpoint_cids(entry),
        "leaves": entry.leaves,
        "roots": entry.file_roots,
    }
    fields.update(swap)
    manifest = build_manifest(
        ctx.record.spec_cid,
        program.steps,
        program.checkpoint_interval,
        fields["cids"],  # type: ignore[arg-type]
        fields["leaves"],  # type: ignore[arg-type]
        fields["roots"],  # type: ignore[arg-type]
        entry.losses,
    )
    return node.store.add_bytes(manifest.to_bytes())


def _submit(
    node: SolverNode,
    entry: JobJournal,
    root: bytes,
    manifest: Cid,
    final: bytes,
    files: bytes,
) -> None:
    entry.manifest_cid = str(manifest)
    node.market.submit_result(
        JobId(entry.job_id), Hash32(root), len(entry.leaves), manifest, Hash32(final), Hash32(files)
    )


def random_root_no_manifest(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """Paid for no work: a random trace root, a manifest CID that names nothing."""
    nothing = Cid("bafkreinothingatallhere")
    _submit(node, entry, os.urandom(32), nothing, os.urandom(32), os.urandom(32))


def random_root_short_manifest(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """A random root with a manifest that lists one checkpoint too few."""
    doc = json.loads(node.store.get_bytes(_manifest_cid(node, ctx, entry)))
    doc["checkpoints"].pop()
    short = node.store.add_bytes(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    _submit(node, entry, os.urandom(32), short, entry.leaves[-1], os.urandom(32))


def leaves_not_hashing_to_root(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """The real manifest beside a root it does not hash to."""
    cid = _manifest_cid(node, ctx, entry)
    _submit(node, entry, os.urandom(32), cid, entry.leaves[-1], merkle_root(entry.file_roots))


def final_not_leaf_m(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """Honest trace and manifest, but a finalStateHash that is not leaf m."""
    cid = _manifest_cid(node, ctx, entry)
    root, files = merkle_root(entry.leaves), merkle_root(entry.file_roots)
    _submit(node, entry, root, cid, os.urandom(32), files)


def unloadable_final_model(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """Every hash right, but the published (and committed) final file is not a model."""
    garbage = b"\x00" * 64 + os.urandom(4_000)
    cids = checkpoint_cids(entry)
    cids[-1] = node.store.add_bytes(garbage)
    entry.checkpoints[-1].cid = str(cids[-1])
    roots = entry.file_roots
    roots[-1] = commit_file(garbage).root
    entry.checkpoints[-1].file_root = roots[-1].hex()
    path = node.journal.checkpoint_path(JobId(entry.job_id), len(cids) - 1)
    path.write_bytes(garbage)
    cid = _manifest_cid(node, ctx, entry, cids=cids, roots=roots)
    _submit(node, entry, merkle_root(entry.leaves), cid, entry.leaves[-1], merkle_root(roots))


def uncommitted_final_file(
    node: SolverNode, ctx: JobContext, record: JobRecord, entry: JobJournal
) -> None:
    """The committed file roots are right, but the final checkpoint's CID holds other bytes."""
    cids = checkpoint_cids(entry)
    cids[-1] = node.store.add_bytes(b"not the model" * 100)
    entry.checkpoints[-1].cid = str(cids[-1])
    cid = _manifest_cid(node, ctx, entry, cids=cids)
    files = merkle_root(entry.file_roots)
    _submit(node, entry, merkle_root(entry.leaves), cid, entry.leaves[-1], files)


CASES = {
    "random-root-no-manifest": (random_root_no_manifest, GameKind.Trace),
    "random-root-short-manifest": (random_root_short_manifest, GameKind.Trace),
    "leaves-not-hashing-to-root": (leaves_not_hashing_to_root, GameKind.Trace),
    "final-not-leaf-m": (final_not_leaf_m, GameKind.Final),
    "unloadable-final-model": (unloadable_final_model, GameKind.File),
    "uncommitted-final-file": (uncommitted_final_file, GameKind.File),
}


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return open_store(f"embedded:{tmp_path / 'ipfs'}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_unverifiable_result_is_not_paid_and_the_cheater_is_slashed(
    dispute_env: DisputeEnv, store: ArtifactStore, tmp_path: Path, case: str
) -> None:
    env = dispute_env
    lie, kind = CASES[case]
    ledger = Ledger.take(env)
    job_id = publish_job(env, store)
    cheater_cls = type("Cheater", (CommitmentCheater,), {"lie": staticmethod(lie)})
    settings = SolverSettings(state_dir=tmp_path / "solver", device="cpu", poll_interval=0.0)
    cheater = cheater_cls(env.client.with_account(env.solver()), env.deployment, store, settings)
    wb = whistleblower(env, store, state_dir=tmp_path / "wb")

    def settled() -> bool:
        entry = cheater.journal.load(job_id)
        return entry is not None and entry.phase == Phase.SETTLED

    run_market(env, [cheater.tick, wb.tick], referee(env, store), settled)

    assert env.market.get_job(job_id).status == JobStatus.Slashed
    game = env.game.get_game(1)
    assert (game.kind, game.status) == (kind, GameStatus.ChallengerWon)
    wb.tick()  # withdraws
    assert ledger.delta(env.solver().address) == -STAKE
    assert ledger.delta(env.challenger().address) == TO_WINNER
    assert ledger.delta(env.submitter.address) == -REWARD  # escrowed ...
    assert env.market.credits(env.submitter.address) == REWARD  # ... and refunded
    assert ledger.burned_since() == STAKE - TO_WINNER
    total, minted = ledger.conserved()
    assert total == minted


def test_honest_solver_answers_availability_challenges_from_its_files_and_is_paid(
    dispute_env: DisputeEnv, store: ArtifactStore, tmp_path: Path
) -> None:
    """Griefers asking for chunks of real checkpoint files (first, last, past the end of the
    final model) only pay the honest solver: each answer takes the bond's winner share, the
    posted bytes are the published file's, and the result finalizes with reward and stake."""
    env = dispute_env
    job_id = publish_job(env, store)
    settings = SolverSettings(state_dir=tmp_path / "solver", device="cpu", poll_interval=0.0)
    node = SolverNode(env.client.with_account(env.solver()), env.deployment, store, settings)
    node.tick()
    record = env.market.get_job(job_id)
    assert record.status == JobStatus.Submitted
    ledger = Ledger.take(env)
    manifest_entries = json.loads(store.get_bytes(record.manifest_cid))["checkpoints"]
    m = len(manifest_entries) - 1
    final = store.get_bytes(Cid(manifest_entries[m]["cid"]))
    asks = [(0, 0), (m, 0), (m, chunk_count(len(final)) - 1), (m, 10**6)]
    games = env.game.as_account(env.challenger())
    env.token.as_account(env.challenger()).approve(env.market.address, len(asks) * BOND)
    for checkpoint, index in asks:
        game_id, _ = games.challenge_availability(job_id, checkpoint, index)
        node.tick()
        assert env.game.get_game(game_id).status == GameStatus.SolverWon
    answered = market_events(env, AvailabilityAnswered)
    assert [(a.checkpoint, a.chunk) for a in answered] == asks
    assert answered[2].data == chunk(final, asks[2][1]) and answered[3].data == b""

    def settled() -> bool:
        entry = node.journal.load(job_id)
        return entry is not None and entry.phase == Phase.SETTLED

    run_market(env, [node.tick], referee(env, store), settled)
    assert env.market.get_job(job_id).status == JobStatus.Finalized
    gained = ledger.delta(env.solver().address)
    assert gained == REWARD + STAKE + len(asks) * (BOND // 2)
    total, minted = ledger.conserved()
    assert total == minted
