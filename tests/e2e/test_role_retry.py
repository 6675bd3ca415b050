"""A role whose artifact store is unreachable waits it out with back-off (one log line per
attempt) instead of exiting, and stops promptly when asked."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from chain.devnet import free_port
from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore
from tests.e2e.procs import RoleFiles, role, wait_for
from tests.e2e.support import publish_job
from tests.fixtures.dispute import DisputeEnv


@pytest.mark.slow
def test_solver_waits_out_an_unreachable_store_instead_of_exiting(
    dispute_env: DisputeEnv, ipfs_daemon: IpfsDaemon, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    publish_job(env, ipfs_store)
    files = RoleFiles.write(env, tmp_path)
    key = files.key("solver", env.solver(0))
    dead_store = f"http://127.0.0.1:{free_port()}"
    argv = [
        "solver",
        *files.common(env, key, dead_store),
        *("--state-dir", str(tmp_path / "state"), "run", "--device", "cpu"),
    ]
    with role("solver", argv, tmp_path) as proc:
        wait_for(
            lambda: (proc.stdout + proc.stderr).count("retry") >= 2,
            timeout=90,
            what="two retry lines",
            alive=proc,
        )
        assert proc.process.poll() is None, proc.output()
        assert "Traceback" not in proc.stdout + proc.stderr
        proc.process.send_signal(signal.SIGTERM)
        start = time.monotonic()
        assert proc.wait(timeout=30) == 0, proc.output()
        assert time.monotonic() - start < 30
