"""Chaos on a supervised devnet with a js-ipfs store: four jobs go through the market, one
of them claimed by a cheating solver, while 18 random SIGKILLs hit every role (solvers,
whistleblower, arbiter, worker, indexer, API and the IPFS daemon), the IPFS daemon is also
paused mid-training, and Redis and the chain are paused.  Then every job must settle —
the cheater's Slashed with the whistleblower rewarded, the others Finalized —, tokens
must be conserved (supply down by exactly what the contracts burned, every token held by
a known account or contract) and nothing paid twice.

The supervisor (deploy/devnet.py) restarts what was killed with back-off, the IPFS
daemon included; the roles wait out outages with back-off; the solver resumes from its
journal; the API's sweeper drives on submissions whose worker died.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from chain.client import ChainClient
from chain.deploy import Deployment
from chain.generated import JobStatus
from chain.keys import load_key, write_key
from chain.types import JobId
from deploy.devnet import read_state
from repops import data as data_mod
from submitter.client import ApiClient, MarketTerms, prepare_spec, sign_submission

REPO = Path(__file__).resolve().parents[2]
ONE = 10**18
VICTIMS = (
    *("solver1", "solver2", "whistleblower1", "arbiter"),
    *("worker", "indexer", "api", "ipfs"),
)
STAKE = ONE
KILLS = 18
SETTLED = (JobStatus.Finalized, JobStatus.Slashed)


def _cli(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _processes(workdir: Path) -> dict[str, int]:
    return {k: int(v) for k, v in ((read_state(workdir) or {}).get("processes", {})).items()}


def _signal_group(pid: int, sig: int) -> bool:
    """Signal a process group; False when it is already gone (it may be restarting)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _pause(pid: int, seconds: float) -> None:
    _signal_group(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        _signal_group(pid, signal.SIGCONT)


@contextlib.contextmanager
def _cheater(up: dict[str, object], workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """A funded cheating solver (test-support code) against the devnet; yields its address."""
    account = Account.create()
    key = workdir / "keys" / "cheater.key"
    write_key(key, account)
    # Exactly one job's stake: once it holds the first job it cannot claim another.
    _cli("faucet", account.address, str(STAKE // ONE), "--workdir", str(workdir), env=env)
    log = open(workdir / "logs" / "cheater.log", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.support.cheating_solver"),
            *("--kind", "ulp", "--at-step", "13", "--key-file", str(key)),
            *("--rpc-url", str(up["rpc_url"]), "--deployment", str(up["deployment"])),
            *("--store", str(up["store"]), "--state-dir", str(workdir / "state" / "cheater")),
            *("--device", "cpu", "--max-jobs", "1", "run"),
        ],
        cwd=REPO,
        env={**env, "ASSAY_POLL_INTERVAL": "0.5"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield str(account.address)
    finally:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        log.close()


@pytest.mark.slow
def test_market_settles_every_job_through_kills_outages_and_a_cheater(tmp_path: Path) -> None:
    workdir = tmp_path / "devnet"
    env = {**os.environ, "ASSAY_STUCK_AFTER_S": "8", "ASSAY_SWEEP_INTERVAL_S": "2"}
    up = json.loads(
        _cli(
            *("devnet", "up", "--workdir", str(workdir), "--port", "0"),
            *("--solvers", "2", "--store", "ipfs", "--json"),
            env=env,
        )
    )
    rng = random.Random(14)
    try:
        with _cheater(up, workdir, env) as cheater:
            _run_market(up, workdir, cheater, rng)
    finally:
        _cli("devnet", "down", "--workdir", str(workdir), env=env)
    logs = {p.name: p.read_text(errors="replace") for p in (workdir / "logs").glob("*.log")}
    assert not [name for name, text in logs.items() if "Traceback" in text], logs.keys()


def _run_market(up: dict, workdir: Path, cheater: str, rng: random.Random) -> None:  # type: ignore[type-arg]
    accounts = up["accounts"]
    submitter = load_key(Path(accounts["submitter"]["key_file"]))
    client = ChainClient.connect(up["rpc_url"])
    deployment = Deployment.load(Path(up["deployment"]))
    token, market = deployment.token(client), deployment.market(client)
    referee = deployment.referee(client)
    holders = [a["address"] for a in accounts.values()] + [cheater]
    holders += list(deployment.addresses.values())
    solvers = [accounts[f"solver{i}"]["address"] for i in (1, 2)]
    whistleblower = accounts["whistleblower1"]["address"]

    def wealth(who: str) -> int:
        return token.balance_of(who) + market.credits(who) + referee.credits(who)

    supply_before = token.total_supply()
    burned_before = market.total_burned() + referee.total_burned()
    solvers_before = sum(wealth(s) for s in solvers)
    cheater_before, whistleblower_before = wealth(cheater), wealth(whistleblower)

    api = ApiClient(up["api_url"])
    dataset = data_mod.build_digits()
    spec = json.loads((REPO / "deploy/examples/mlp-digits.json").read_text())
    terms = MarketTerms(
        reward=3 * ONE, solver_stake=STAKE, challenger_bond=ONE, challenge_window_s=30
    )
    # The cheater's window outlasts the schedule's outages (IPFS down, the whistleblower
    # killed and restarting): a window shorter than an outage lets any cheat through, by
    # design.  Its job settles at the ruling, not at the window's end.
    cheat_terms = dataclasses.replace(terms, challenge_window_s=180)

    def submit(seed: int, terms: MarketTerms = terms) -> JobId:
        sealed = prepare_spec({**spec, "seed": seed, "steps": 24}, dataset)
        nonces = api.nonces(submitter.address)
        body = sign_submission(
            submitter, sealed, terms, api.chain(), nonces["order_nonce"], nonces["permit_nonce"]
        )
        posted = api.wait_posted(api.submit(body, dataset)["id"], timeout_s=120)
        assert posted["state"] == "posted", posted
        return JobId(posted["job_id"])

    # The honest solvers are paused while the cheater claims the first job.
    honest = [_processes(workdir)[s] for s in ("solver1", "solver2")]
    for pid in honest:
        _signal_group(pid, signal.SIGSTOP)
    try:
        cheated = submit(1, cheat_terms)
        deadline = time.monotonic() + 90
        while market.get_job(cheated).solver != cheater:
            assert time.monotonic() < deadline, "the cheater never claimed the first job"
            time.sleep(0.5)
    finally:
        for pid in honest:
            _signal_group(pid, signal.SIGCONT)
    job_ids = [cheated]
    for seed in (2, 3, 4):
        job_ids.append(submit(seed))
        if seed == 3:  # kill the relayer while the last order is in flight
            _signal_group(_processes(workdir)["worker"], signal.SIGKILL)
    api.close()

    # The whole schedule runs while the jobs are claimed, trained, disputed and settled.
    schedule = ["kill"] * KILLS
    schedule[1] = "ipfs-kill"  # mid-training: the solvers are fetching and pinning
    schedule[4] = "ipfs-pause"
    schedule[8] = "redis"
    schedule[12] = "chain"
    killed: set[int] = set()  # each needs one restart by the supervisor
    for action in schedule:
        procs = _processes(workdir)
        if action == "ipfs-pause" and "ipfs" in procs:
            _pause(procs["ipfs"], 6)
        elif action == "redis":
            _pause(procs["redis"], 5)
        elif action == "chain":
            _pause(procs["anvil"], 3)
        else:
            choices = [v for v in VICTIMS if v in procs]
            victim = "ipfs" if action == "ipfs-kill" and "ipfs" in procs else rng.choice(choices)
            if _signal_group(procs[victim], signal.SIGKILL):
                killed.add(procs[victim])
        time.sleep(2)

    deadline = time.monotonic() + 300
    while True:
        records = [market.get_job(j) for j in job_ids]
        if all(r.status in SETTLED for r in records):
            break
        assert time.monotonic() < deadline, [r.status.name for r in records]
        time.sleep(2)

    assert [r.status for r in records] == [JobStatus.Slashed] + [JobStatus.Finalized] * 3
    assert all(r.solver in solvers for r in records[1:])
    # Every process killed is restarted (the last ones may still be in their back-off).
    assert len(killed) >= KILLS // 2  # most kills hit a live process
    deadline = time.monotonic() + 60
    while sum((restarts := (read_state(workdir) or {}).get("restarts", {})).values()) < len(killed):
        assert time.monotonic() < deadline, (restarts, len(killed))
        time.sleep(1)
    # Conservation: supply fell by exactly what the contracts burned; every token is held
    # by a known account or contract.
    burned = market.total_burned() + referee.total_burned() - burned_before
    assert supply_before - token.total_supply() == burned > 0
    assert sum(token.balance_of(h) for h in holders) == token.total_supply()
    # No double pay: one reward per honest job, the cheater lost its stake, the
    # whistleblower was rewarded.
    assert sum(wealth(s) for s in solvers) - solvers_before == 3 * terms.reward
    assert wealth(cheater) - cheater_before == -terms.solver_stake
    assert wealth(whistleblower) > whistleblower_before
