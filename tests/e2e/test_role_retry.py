"""A role whose artifact store or chain node is unreachable waits it out with back-off (one
log line per attempt, the delay doubling) instead of exiting, and stops promptly when asked."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from chain.devnet import free_port
from market.ipfsd import IpfsDaemon
from market.store import ArtifactStore
from tests.e2e.procs import CuttableProxy, RoleFiles, role, wait_for
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


@pytest.mark.slow
def test_arbiter_run_waits_out_a_node_outage_with_doubling_backoff(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    env = dispute_env
    files = RoleFiles.write(env, tmp_path)
    key = files.key("arbiter", env.arbiter)
    proxy = CuttableProxy(int(env.devnet.rpc_url.rsplit(":", 1)[1]))
    common = files.common(env, key, f"embedded:{tmp_path / 'store'}")
    common[common.index("--rpc-url") + 1] = f"http://127.0.0.1:{proxy.port}"
    try:
        with role("arbiter", ["arbiter", *common, "run"], tmp_path) as proc:
            wait_for(lambda: "watching" in proc.stdout, timeout=90, what="start", alive=proc)
            proxy.cut()
            wait_for(
                lambda: proc.stderr.count("retrying in") >= 3,
                timeout=90,
                what="three retry lines",
                alive=proc,
            )
            delays = [
                int(line.rsplit("retrying in ", 1)[1].split()[0])
                for line in proc.stderr.splitlines()
                if "retrying in" in line
            ]
            assert delays[:3] == [1, 2, 4], proc.output()
            assert "NodeUnreachable" in proc.stderr
            proxy.restore()
            time.sleep(8 + 3)  # the longest wait so far, then a poll that succeeds
            settled = proc.stderr.count("retrying in")
            time.sleep(2)
            assert proc.stderr.count("retrying in") == settled, proc.output()
            assert proc.process.poll() is None, proc.output()
            assert "Traceback" not in proc.stdout + proc.stderr
            proc.process.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0, proc.output()
            assert "arbiter stopped" in proc.stdout
    finally:
        proxy.cut()
