"""Every shipped CLI pointed at a dead RPC port prints one error line and exits nonzero.

Real processes, a real closed port: what a user sees when the node is down.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from eth_account import Account

from chain.devnet import free_port
from chain.keys import write_key
from tests.e2e.procs import role_env


def _check(commands: dict[str, list[str]], url: str, cwd: Path) -> None:
    procs = {
        name: subprocess.Popen(
            [sys.executable, *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=role_env(),
            cwd=cwd,
        )
        for name, argv in commands.items()
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=120)
        lines = [line for line in out.decode().splitlines() if line.strip()]
        assert proc.returncode == 2, (name, lines)
        assert len(lines) == 1, (name, lines)
        assert "Traceback" not in lines[0]
        assert f"cannot reach the chain node at {url}: connection refused" in lines[0], name


def _url_and_key(tmp_path: Path) -> tuple[str, Path]:
    key = tmp_path / "role.key"
    write_key(key, Account.create())
    return f"http://127.0.0.1:{free_port()}", key


def test_assay_against_a_dead_rpc_port_prints_one_line_and_fails(tmp_path: Path) -> None:
    url, key = _url_and_key(tmp_path)
    argv = ["-m", "deploy.cli", "deploy", "--rpc", url, "--key", str(key), "--yes"]
    _check({"assay deploy": argv}, url, tmp_path)


@pytest.mark.slow  # three role processes importing torch: ~45 s on two loaded cores
def test_roles_against_a_dead_rpc_port_print_one_line_and_fail(tmp_path: Path) -> None:
    url, key = _url_and_key(tmp_path)
    deployment = tmp_path / "deployment.json"  # never read: the node is reached first
    common = ["--rpc-url", url, "--deployment", str(deployment), "--key-file", str(key)]
    _check(
        {
            "arbiter": ["-m", "arbiter.cli", *common, "rule", "1"],
            "solver": ["-m", "solver.cli", *common, "status"],
            "whistleblower": ["-m", "arbiter.whistleblower_cli", *common, "run"],
        },
        url,
        tmp_path,
    )
