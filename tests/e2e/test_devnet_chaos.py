"""Chaos on a supervised devnet: random roles killed (SIGKILL) and Redis and the chain
paused while three jobs go through the market; every job must still settle, tokens must
be conserved and no job paid twice.

The supervisor (deploy/devnet.py) restarts what was killed with back-off; the solver
resumes from its journal; the API's sweeper drives on submissions whose worker died.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chain.client import ChainClient
from chain.deploy import Deployment
from chain.generated import JobStatus
from chain.keys import load_key
from chain.types import JobId
from deploy.devnet import read_state
from repops import data as data_mod
from submitter.client import ApiClient, MarketTerms, prepare_spec, sign_submission

REPO = Path(__file__).resolve().parents[2]
ONE = 10**18
VICTIMS = ("solver1", "solver2", "whistleblower1", "worker", "indexer", "arbiter", "api")


def _devnet(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", "devnet", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _pause(pid: int, seconds: float) -> None:
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.mark.slow
def test_market_settles_every_job_through_kills_and_outages(tmp_path: Path) -> None:
    workdir = tmp_path / "devnet"
    env = {**os.environ, "ASSAY_STUCK_AFTER_S": "8", "ASSAY_SWEEP_INTERVAL_S": "2"}
    up = json.loads(
        _devnet(
            *("up", "--workdir", str(workdir), "--port", "0", "--solvers", "2", "--json"),
            env=env,
        )
    )
    rng = random.Random(14)
    try:
        submitter = load_key(Path(up["accounts"]["submitter"]["key_file"]))
        client = ChainClient.connect(up["rpc_url"])
        deployment = Deployment.load(Path(up["deployment"]))
        token, market = deployment.token(client), deployment.market(client)
        holders = [a["address"] for a in up["accounts"].values()] + [market.address]
        supply_before = token.total_supply()
        solvers = [up["accounts"][f"solver{i}"]["address"] for i in (1, 2)]
        solver_wealth_before = sum(token.balance_of(s) + market.credits(s) for s in solvers)
        api = ApiClient(up["api_url"])
        dataset = data_mod.build_digits()
        spec = json.loads((REPO / "deploy/examples/mlp-digits.json").read_text())
        terms = MarketTerms(
            reward=3 * ONE, solver_stake=ONE, challenger_bond=ONE, challenge_window_s=15
        )
        job_ids: list[JobId] = []
        for seed in (1, 2, 3):
            sealed = prepare_spec({**spec, "seed": seed, "steps": 24}, dataset)
            nonces = api.nonces(submitter.address)
            body = sign_submission(
                submitter, sealed, terms, api.chain(), nonces["order_nonce"], nonces["permit_nonce"]
            )
            posted = api.wait_posted(api.submit(body, dataset)["id"], timeout_s=120)
            assert posted["state"] == "posted", posted
            job_ids.append(JobId(posted["job_id"]))
            if seed == 2:  # kill the relayer while the last order is in flight
                state = read_state(workdir) or {}
                os.killpg(int(state["processes"]["worker"]), signal.SIGKILL)
        api.close()

        # The whole schedule runs while the jobs are being claimed, trained and settled.
        schedule = ["redis", "kill", "kill", "chain", "kill", "kill", "kill", "kill"]
        kills = 0
        for action in schedule:
            procs = (read_state(workdir) or {}).get("processes", {})
            if action == "redis":
                _pause(int(procs["redis"]), 5)
            elif action == "chain":
                _pause(int(procs["anvil"]), 3)
            else:
                victim = rng.choice([v for v in VICTIMS if v in procs])
                with contextlib.suppress(ProcessLookupError):  # it may be restarting
                    os.killpg(int(procs[victim]), signal.SIGKILL)
                    kills += 1
            time.sleep(5)
        deadline = time.monotonic() + 420
        while True:
            records = [market.get_job(j) for j in job_ids]
            if all(r.status == JobStatus.Finalized for r in records):
                break
            assert time.monotonic() < deadline, [r.status.name for r in records]
            time.sleep(2)

        restarts = (read_state(workdir) or {}).get("restarts", {})
        assert sum(restarts.values()) >= kills
        # Conservation: nothing minted or burned by the market, every token accounted for.
        assert token.total_supply() == supply_before
        assert sum(token.balance_of(h) for h in holders) == token.total_supply()
        # No double pay: the solvers gained exactly one reward per job (stakes returned).
        solver_wealth = sum(token.balance_of(s) + market.credits(s) for s in solvers)
        assert solver_wealth - solver_wealth_before == len(job_ids) * terms.reward
    finally:
        _devnet("down", "--workdir", str(workdir), env=env)
