"""Crash safety of the roles: the solver's journal survives a write cut short, a solver that
died around a transaction neither repeats it nor forgets it, a restarted whistleblower keeps
playing its game, and `solver status` shows what the journal and the chain say.

The journal unit checks use a temp dir only; everything else runs on anvil + js-ipfs.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from chain.generated import GameStatus, JobClaimed, JobStatus, ResultSubmitted
from chain.types import JobId
from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore
from roles import files as files_mod
from solver.journal import Checkpoint, JobJournal, Journal, Phase
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.procs import RoleFiles, run_role
from tests.e2e.support import WINDOW_S, publish_job, referee, run_market, solver_node, whistleblower
from tests.fixtures.dispute import STAKE, DisputeEnv
from tests.support.cheaters import UlpCheater

# --------------------------------------------------------------------- journal


def _entry(phase: Phase, count: int) -> JobJournal:
    return JobJournal(
        job_id=7,
        phase=phase,
        checkpoints=[Checkpoint(i, f"bafk{i}", f"{i:064x}") for i in range(count)],
        losses=[2.5, 2.25][: max(0, count - 1)],
    )


def test_journal_partial_temp_file_from_crash_leaves_last_save_intact(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    saved = _entry(Phase.TRAINING, 2)
    journal.save(saved)
    # A solver killed mid-write leaves half of the next journal in a temp file (any pid).
    final = journal.job_dir(JobId(7)) / "journal.json"
    half = json.dumps({"job_id": 7, "phase": "submitted", "checkpoints": []})[:30]
    (final.parent / "journal.json.tmp-424242").write_text(half)
    (final.parent / f"journal.json.tmp-{os.getpid()}").write_text(half)

    restarted = Journal(tmp_path)
    assert restarted.load(JobId(7)) == saved
    assert restarted.all() == [saved]
    # The next save goes through and replaces the stale temp file of this pid.
    advanced = _entry(Phase.TRAINING, 3)
    restarted.save(advanced)
    assert Journal(tmp_path).load(JobId(7)) == advanced
    assert not (final.parent / f"journal.json.tmp-{os.getpid()}").exists()


def test_journal_write_killed_before_rename_keeps_old_checkpoint_and_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = Journal(tmp_path)
    saved = _entry(Phase.TRAINING, 2)
    journal.save(saved)
    journal.save_checkpoint(JobId(7), 1, b"old checkpoint bytes")

    def killed(src: object, dst: object) -> None:
        raise KeyboardInterrupt("SIGKILL between fsync and rename")

    monkeypatch.setattr(files_mod.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        journal.save(_entry(Phase.SUBMITTING, 3))
    with pytest.raises(KeyboardInterrupt):
        journal.save_checkpoint(JobId(7), 1, b"new checkpoint bytes, never renamed")
    monkeypatch.undo()

    assert Journal(tmp_path).load(JobId(7)) == saved
    assert journal.checkpoint_path(JobId(7), 1).read_bytes() == b"old checkpoint bytes"


# ------------------------------------------------------- solver around a tx


def test_solver_restarted_after_submit_tx_before_journal_never_submits_twice(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path)
    node.tick()
    assert env.market.get_job(job_id).status == JobStatus.Submitted
    # Rewind the journal to what it held when the submit tx was sent: killed right after.
    entry = node.journal.load(job_id)
    assert entry is not None and entry.phase == Phase.SUBMITTED
    entry.phase = Phase.SUBMITTING
    node.journal.save(entry)

    restarted = solver_node(env, ipfs_store, tmp_path)
    restarted.tick()
    restarted.tick()

    assert len(market_events(env, ResultSubmitted)) == 1
    resumed = restarted.journal.load(job_id)
    assert resumed is not None and resumed.phase == Phase.SUBMITTED
    assert env.market.get_job(job_id).status == JobStatus.Submitted


def test_solver_killed_between_claim_tx_and_journal_trains_its_claimed_job(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    # What `_maybe_claim` does before `journal.save`: approve, claim, then the kill.
    env.market.as_account(env.solver(0)).claim(job_id)
    restarted = solver_node(env, ipfs_store, tmp_path)

    restarted.tick()

    assert restarted.journal.load(job_id) is not None, "the claimed job was forgotten"
    assert env.market.get_job(job_id).status == JobStatus.Submitted
    assert len(market_events(env, JobClaimed)) == 1


# -------------------------------------------------- whistleblower restarted


def test_whistleblower_restarted_mid_game_resumes_its_game_and_wins(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path, stepper=UlpCheater(at_step=1))
    node.tick()
    first = whistleblower(env, ipfs_store)
    first.tick()  # challenges segment 0 and makes its first move, then "dies"
    assert env.game.game_count() == 1
    restarted = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    def settled() -> bool:
        games = [env.game.get_game(g) for g in range(1, env.game.game_count() + 1)]
        return env.market.get_job(job_id).status == JobStatus.Slashed and all(
            g.finished for g in games
        )

    run_market(env, [node.tick, restarted.tick], ref, done=settled, max_rounds=60)
    restarted.tick()  # withdraws the winnings it was credited

    assert env.game.game_count() == 1
    assert env.game.get_game(1).status == GameStatus.ChallengerWon
    assert ledger.delta(env.challenger(0).address) == STAKE // 2


# ------------------------------------------------------------- solver status


def _status_rows(stdout: str) -> list[list[str]]:
    rows = []
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) >= 10 and cells[1].isdigit():
            rows.append(cells[1:-1])
    return rows


def test_solver_status_lists_job_with_local_phase_and_chain_status(
    dispute_env: DisputeEnv,
    ipfs_daemon: IpfsDaemon,
    ipfs_store: ArtifactStore,
    tmp_path: Path,
) -> None:
    env = dispute_env
    job_id = publish_job(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path / "state")
    node.tick()
    files = RoleFiles.write(env, tmp_path)
    key = files.key("solver", env.solver(0))
    argv = [
        "solver",
        *files.common(env, key, ipfs_daemon.api_url),
        "--state-dir",
        str(tmp_path / "state"),
        "status",
    ]

    submitted = run_role(argv)
    assert submitted.returncode == 0, submitted.stderr
    assert _status_rows(submitted.stdout) == [
        [str(job_id), "submitted", "Submitted", "5", "6", "10", "-", ""]
    ]
    assert f"solver {env.solver(0).address}" in submitted.stdout
    assert "balance 999,994.0000 WORK, withdrawable credit 0.0000 WORK" in submitted.stdout

    env.devnet.increase_time(WINDOW_S + 1)
    node.tick()
    settled = run_role(argv)
    assert settled.returncode == 0, settled.stderr
    assert _status_rows(settled.stdout) == [
        [str(job_id), "settled", "Finalized", "5", "6", "10", "+10", "finalized"]
    ]
    assert "earned 10.0000 WORK in rewards, lost 0.0000 WORK of stake" in settled.stdout
    assert "balance 1,000,010.0000 WORK, withdrawable credit 0.0000 WORK" in settled.stdout
