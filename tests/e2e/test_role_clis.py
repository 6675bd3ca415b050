"""The shipped `whistleblower run` and `arbiter rule` commands as real processes, against
in-process solvers (one honest, one cheating): their logs say what was checked, why a
result was challenged, and how the referee ruled; the money ends where it should."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbiter.whistleblower import sample_segments
from chain.generated import GameStatus, JobStatus
from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore
from solver.journal import Phase
from tests.e2e.ledger import Ledger
from tests.e2e.procs import RoleFiles, role, run_role, wait_for
from tests.e2e.support import MLP_SPEC, WINDOW_S, publish_job, solver_node
from tests.fixtures.dispute import REWARD, STAKE, DisputeEnv
from tests.support.cheaters import UlpCheater

K = MLP_SPEC["checkpoint_interval"]
SEGMENTS = MLP_SPEC["steps"] // K
CHECK = 0.5
EXIT_AFTER_S = 3


SECRET = bytes(range(32))
"""The whistleblower's sampling secret, planted in its state dir so the test knows it."""


def sampled_segments(job_id: int) -> list[int]:
    """The segments `whistleblower run --check 0.5` re-executes for a job with SECRET."""
    return sample_segments(SECRET, job_id, SEGMENTS, CHECK)


@pytest.mark.slow
def test_whistleblower_and_arbiter_clis_catch_cheat_in_sampled_segment_and_log_why(
    dispute_env: DisputeEnv,
    ipfs_daemon: IpfsDaemon,
    ipfs_store: ArtifactStore,
    ledger: Ledger,
    tmp_path: Path,
) -> None:
    env = dispute_env
    honest_job = publish_job(env, ipfs_store, seed=3)
    cheated_job = publish_job(env, ipfs_store, seed=4)
    target = sampled_segments(cheated_job)[0]  # the cheat sits in the first sampled segment
    honest = solver_node(env, ipfs_store, tmp_path / "honest", index=0)
    cheater = solver_node(
        env, ipfs_store, tmp_path / "cheater", index=1, stepper=UlpCheater(at_step=target * K + 1)
    )
    honest.tick()
    cheater.tick()
    assert env.market.get_job(honest_job).solver == env.solver(0).address
    assert env.market.get_job(cheated_job).solver == env.solver(1).address

    files = RoleFiles.write(env, tmp_path)
    wb_key = files.key("whistleblower", env.challenger(0))
    wb_state = tmp_path / "wb-state"
    wb_state.mkdir()
    (wb_state / "sampling.secret").write_text(SECRET.hex())
    arbiter_keys = [files.key(f"arbiter{i}", env.arbiters[i]) for i in range(2)]
    wb_argv = [
        "whistleblower",
        *files.common(env, wb_key, ipfs_daemon.api_url),
        "run",
        "--check",
        str(CHECK),
        "--state-dir",
        str(wb_state),
        "--exit-after",
        str(EXIT_AFTER_S),
    ]
    arbiter_argvs = [
        ["arbiter", *files.common(env, key, ipfs_daemon.api_url), "rule", "1"]
        for key in arbiter_keys
    ]

    with role("whistleblower", wb_argv, tmp_path / "wb") as wb:

        def awaiting_ruling() -> bool:
            honest.tick()
            cheater.tick()  # defends the game the whistleblower opened
            return (
                env.game.game_count() == 1
                and env.game.get_game(1).status == GameStatus.AwaitingRuling
            )

        wait_for(awaiting_ruling, 180, "game 1 to await a ruling", interval=0.1, alive=wb)
        # Two of the three committee members vote: a majority, final at once.
        for argv in arbiter_argvs:
            ruled = run_role(argv)
            assert ruled.returncode == 0, ruled.stdout + ruled.stderr
            assert "game 1: challenger won — re-execution contradicts the solver" in ruled.stdout
        assert env.game.get_game(1).status == GameStatus.ChallengerWon
        again = run_role(arbiter_argvs[0])
        assert again.returncode == 1
        assert "game 1 awaits no vote of" in again.stdout

        assert wb.wait(120) == 0, wb.output()  # it stops by itself, --exit-after idle seconds
        out = " ".join(wb.stdout.split())  # rich may wrap a long line

    honest_checked = sampled_segments(honest_job)
    assert f"whistleblower {env.challenger(0).address}: checking 50% of segments" in out
    honest_rest = [i for i in range(SEGMENTS) if i not in honest_checked]
    assert (
        f"job {honest_job}: checked segments {honest_checked}; not checked {honest_rest}; "
        f"all checked segments match (of {SEGMENTS} segments)" in out
    )
    assert (
        f"job {cheated_job}: segment-mismatch {target + 1}: segment {target} "
        f"(steps {target * K}..{(target + 1) * K}) ends in a different state; challenging" in out
    )
    assert f"job {cheated_job}: opened game 1 (bond 4 WORK)" in out
    assert f"job {cheated_job}: game 1 ended: ChallengerWon" in out
    assert "withdrew 7 WORK" in out
    assert "whistleblower stopped: 2 result(s) checked, 1 challenged" in out
    assert f"job {honest_job}: opened game" not in out

    env.devnet.increase_time(WINDOW_S + 1)
    honest.tick()
    cheater.tick()
    assert env.market.get_job(honest_job).status == JobStatus.Finalized
    assert env.market.get_job(cheated_job).status == JobStatus.Slashed
    assert [e.phase for e in honest.journal.all() + cheater.journal.all()] == [Phase.SETTLED] * 2
    assert ledger.delta(env.challenger(0).address) == STAKE // 2
    assert ledger.delta(env.solver(0).address) == REWARD
    assert ledger.delta(env.solver(1).address) == -STAKE
    held, minted = ledger.conserved()
    assert held == minted
