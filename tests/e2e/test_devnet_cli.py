"""A user's path through `assay` on a fresh work directory, every step a real subprocess:

devnet up -> dataset build -> job submit -> job watch (to Finalized) -> job result
(verified against the chain) -> a killed solver restarted by the supervisor -> devnet down
(no process left) -> devnet up again (the chain, and so the job, are still there) -> down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.devnet import _alive, read_state

REPO = Path(__file__).resolve().parents[2]


def assay(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _pids(state: dict[str, Any]) -> list[int]:
    return [int(state["supervisor"]), *(int(p) for p in state["processes"].values())]


@pytest.mark.slow
def test_devnet_up_submit_watch_result_down(tmp_path: Path) -> None:
    workdir = tmp_path / "devnet"
    up = json.loads(assay("devnet", "up", "--workdir", str(workdir), "--port", "0", "--json"))
    state = read_state(workdir)
    assert state is not None and state["ready"]
    try:
        env = {
            "ASSAY_API_URL": up["api_url"],
            "ASSAY_RPC_URL": up["rpc_url"],
            "ASSAY_SUBMITTER_KEY_FILE": up["accounts"]["submitter"]["key_file"],
        }
        data = tmp_path / "digits.safetensors"
        assay("dataset", "build", "digits", "--out", str(data))
        out = assay(
            *("job", "submit", "deploy/examples/mlp-digits.json", "--data", str(data)),
            *("--reward", "10", "--stake", "5", "--bond", "2", "--challenge-window", "20"),
            "--wait",
            env=env,
        )
        assert "posted job 1" in out
        assay("job", "watch", "1", "--timeout", "240", "--interval", "1", env=env)
        job = json.loads(assay("job", "status", "1", "--json", env=env))
        assert job["status"] == "Finalized"
        assert job["progress"]["unit"] == "samples/s"  # the solver reported, signed
        assert job["progress"]["step"] == job["progress"]["total_steps"] == 40
        result = json.loads(assay("job", "result", "1", "--out", str(tmp_path), "--json", env=env))
        assert result["verified"] and result["state_hash"] == result["chain_final_state_hash"]

        solver_pid = int(state["processes"]["solver1"])
        os.kill(solver_pid, 15)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = read_state(workdir) or {}
            if now.get("restarts", {}).get("solver1", 0) >= 1:
                break
            time.sleep(0.5)
        assert (read_state(workdir) or {})["restarts"]["solver1"] >= 1
        assert "solver1 exited" in (workdir / "supervisor.log").read_text()
        status = assay("devnet", "status", "--workdir", str(workdir))
        assert "running" in status
    finally:
        before = read_state(workdir) or state
        assay("devnet", "down", "--workdir", str(workdir))
    time.sleep(0.5)
    assert [p for p in _pids(before) if _alive(p)] == []

    again = json.loads(assay("devnet", "up", "--workdir", str(workdir), "--json"))
    try:
        assert again["api_url"] == up["api_url"]
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.get(up["api_url"] + "/jobs/1", timeout=5)
            if answer.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert answer.json()["status"] == "Finalized"  # the chain survived the restart
    finally:
        state = read_state(workdir) or again
        assay("devnet", "down", "--workdir", str(workdir))
    time.sleep(0.5)
    assert [p for p in _pids(state) if _alive(p)] == []
