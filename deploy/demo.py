"""`make demo`: a whole market on one machine, every role its own process.

Starts an anvil devnet (a block a second), deploys the contracts, starts Redis, the REST
API (uvicorn), a Celery worker (the relayer), the indexer, two solvers — one honest, one
cheating (the cheater is test-support code: the shipped `solver` cannot cheat) —, a
whistleblower and a committee of three staked arbiters.  A submitter signs two
MLP-on-digits jobs locally and posts them through the REST API.  Once both are claimed, a
third job trains a user's own model: a small nn.Module exported with torch.export, lowered
on the submitter's side (`submitter.model`, as `assay job submit --model` does), its graph
and weights uploaded to POST /artifacts, taken by a second honest solver started for it
(its stake is above the cap of the first two).
The demo streams every process's log, waits until the jobs are settled (the MLP jobs: one
paid, one slashed after a dispute bisected to a single operator and re-executed by the
committee, two of three votes deciding; the own-model job paid), prints a table of jobs,
outcomes and balances, stops every process it started and exits 0.  Everything lives in
one work directory (--workdir).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
from rich.console import Console
from rich.table import Table

from chain.client import ChainClient
from chain.deploy import Deployment, deploy
from chain.devnet import Devnet, free_port, start_devnet
from chain.errors import ChainError
from chain.generated import JobStatus
from chain.keys import write_key
from chain.types import JobId
from frontend_api.redis_server import RedisServer
from jobspec.factory import artifact, graph_spec, mlp_spec
from repops import data as data_mod
from submitter.cli import bisection_lines
from submitter.client import ApiClient, MarketTerms, prepare_spec, sign_submission
from submitter.model import check_job, lower_model, with_model

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
ONE = 10**18
TIMEOUT_S = 480
CHALLENGE_WINDOW_S = 40
ROLE_COLOURS = {
    "api": "blue",
    "worker": "blue",
    "indexer": "blue",
    "solver": "green",
    "solver2": "green",
    "cheater": "red",
    "whistleblower": "magenta",
    "arbiter0": "yellow",
    "arbiter1": "yellow",
    "arbiter2": "yellow",
}
QUIET_ROLES = ("api", "worker", "indexer")


def job_spec(seed: int) -> dict[str, Any]:
    return mlp_spec(batch_size=32, steps=40, checkpoint_interval=8, seed=seed)


def own_model_files(workdir: Path) -> tuple[Path, bytes]:
    """A user's own model (exported .pt2) and its ``tensors`` dataset."""
    import torch
    from torch import nn
    from torch.nn import functional as F

    from repops import stio

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(6, 16)
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 3)

        def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            h = self.norm(F.gelu(self.body(inputs), approximate="tanh"))
            return F.cross_entropy(self.head(h), targets)

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(256, 6, generator=gen)
    y = ((x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()).clamp(0, 2)
    torch.manual_seed(0)
    b = torch.export.Dim("batch")
    ep = torch.export.export(Net(), (x[:4], y[:4]), dynamic_shapes=({0: b}, {0: b}))
    path = workdir / "own_model.pt2"
    torch.export.save(ep, str(path))
    return path, stio.dumps({"inputs": x, "targets": y})


def own_model_spec(api: ApiClient, workdir: Path) -> tuple[dict[str, Any], bytes]:
    """Lower, check, upload graph + weights: the spec of the own-model job and its data."""
    model, dataset = own_model_files(workdir)
    spec = graph_spec(
        artifact("0" * 64), artifact("0" * 64), batch_size=16, steps=24, checkpoint_interval=6
    )
    lowered = lower_model(model, None, None, 16)
    spec = with_model(spec, lowered)
    check_job(spec, lowered, dataset)
    refs = spec["program"]["model"]
    for name, blob in (("graph", lowered.graph), ("weights", lowered.weights)):
        refs[name]["cid"] = str(api.upload_artifact(blob)["cid"])
    return spec, dataset


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    pump: threading.Thread


@dataclass
class Stack:
    console: Console
    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    devnet: Devnet | None = None
    redis: RedisServer | None = None

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Proc:
        log_file = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed in stop)
        process = subprocess.Popen(
            args,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        pump = threading.Thread(target=self._pump, args=(name, process, log_file), daemon=True)
        pump.start()
        proc = Proc(name, process, log_file, pump)
        self.procs.append(proc)
        return proc

    def _pump(self, name: str, process: subprocess.Popen[bytes], log_file: IO[bytes]) -> None:
        assert process.stdout is not None
        colour = ROLE_COLOURS.get(name, "white")
        for raw in process.stdout:
            log_file.write(raw)
            log_file.flush()
            line = raw.decode(errors="replace").rstrip()
            if line and name not in QUIET_ROLES:
                self.console.print(
                    f"[{colour}]{name:>13}[/] │ {line}", highlight=False, soft_wrap=True
                )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in self.procs:
            try:
                proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.process.pid, signal.SIGKILL)
                proc.process.wait(timeout=5)
            proc.pump.join(timeout=2)
            proc.log.close()
        if self.redis is not None:
            self.redis.stop()
        if self.devnet is not None:
            self.devnet.stop()


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code < 500:
                return
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f}s")


@contextlib.contextmanager
def market_stack(console: Console, workdir: Path) -> Iterator[Stack]:
    stack = Stack(console, workdir)
    try:
        yield stack
    finally:
        stack.stop()


def run(console: Console, workdir: Path) -> int:
    with market_stack(console, workdir) as stack:
        devnet = stack.devnet = start_devnet(log_path=workdir / "anvil.log", block_time=1)
        accounts = devnet.accounts
        deployer, submitter, honest, cheater, whistle = accounts[:5]
        relayer, arbiters, honest2 = accounts[5], accounts[6:9], accounts[9]
        client = ChainClient(devnet.web3(), deployer)
        # The founding committee: three staked arbiters, two agreeing votes decide.
        deployment = deploy(client, arbiters=[a.address for a in arbiters])
        deployment_path = workdir / "deployment.json"
        deployment.write(deployment_path)
        token, market = deployment.token(client), deployment.market(client)
        for account in (submitter, honest, cheater, whistle, honest2):
            token.mint(account.address, 100 * ONE)
        keys = workdir / "keys"
        roles = {
            "submitter": submitter,
            "solver": honest,
            "solver2": honest2,
            "cheater": cheater,
            "whistleblower": whistle,
            "relayer": relayer,
            **{f"arbiter{i}": a for i, a in enumerate(arbiters)},
        }
        for role, account in roles.items():
            write_key(keys / f"{role}.key", account)
        console.print(
            f"[bold]devnet[/] {devnet.rpc_url}; contracts {json.dumps(deployment.addresses)}"
        )

        stack.redis = RedisServer(str(workdir / "redis")).start()
        api_port = free_port()
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ASSAY_RPC_URL": devnet.rpc_url,
            "ASSAY_DEPLOYMENT": str(deployment_path),
            "ASSAY_STORE": f"embedded:{workdir / 'ipfs'}",
            "ASSAY_REDIS_URL": stack.redis.url,
            "ASSAY_DATABASE_URL": f"sqlite:///{workdir / 'assay.db'}",
            "ASSAY_RELAYER_KEY_FILE": str(keys / "relayer.key"),
            "ASSAY_API_URL": f"http://127.0.0.1:{api_port}",
            "ASSAY_POLL_INTERVAL": "0.5",
            "COLUMNS": "150",
        }
        py = str(VENV_BIN / "python")
        stack.start(
            "api",
            [
                *(str(VENV_BIN / "uvicorn"), "--factory", "frontend_api.app:create_app"),
                *("--host", "127.0.0.1", "--port", str(api_port), "--log-level", "warning"),
            ],
            env,
        )
        stack.start(
            "worker",
            [
                *(str(VENV_BIN / "celery"), "-A", "frontend_api.worker", "worker", "-Q", "assay"),
                *("--pool", "solo", "--loglevel", "WARNING"),
            ],
            env,
        )
        stack.start("indexer", [py, "-m", "market.indexer", "--poll", "0.5"], env)
        # the first two solvers stake at most 5 WORK: the own-model job (6) is solver2's
        capped = {**env, "ASSAY_MAX_STAKE_WEI": str(5 * ONE)}
        state = workdir / "state"
        solver_flags = ["--state-dir", str(state), "run", "--max-jobs", "1", "--device", "cpu"]
        stack.start(
            "solver",
            [str(VENV_BIN / "solver"), "--key-file", str(keys / "solver.key"), *solver_flags],
            capped,
        )
        stack.start(
            "cheater",
            [
                *(py, "-m", "tests.support.cheating_solver", "--kind", "ulp", "--at-step", "13"),
                *("--key-file", str(keys / "cheater.key"), *solver_flags),
            ],
            capped,
        )
        stack.start(
            "whistleblower",
            [
                *(str(VENV_BIN / "whistleblower"), "--key-file", str(keys / "whistleblower.key")),
                *("run", "--check", "all", "--arity", "4"),
                *("--state-dir", str(workdir / "whistleblower")),
            ],
            env,
        )
        for i in range(len(arbiters)):
            stack.start(
                f"arbiter{i}",
                [str(VENV_BIN / "arbiter"), "--key-file", str(keys / f"arbiter{i}.key"), "run"],
                env,
            )
        _wait_http(f"http://127.0.0.1:{api_port}/health", 60)
        console.print(f"[bold]api[/] http://127.0.0.1:{api_port} (OpenAPI docs at /docs)")

        api = ApiClient(f"http://127.0.0.1:{api_port}")
        dataset = data_mod.build_digits()
        terms = MarketTerms(
            reward=10 * ONE,
            solver_stake=5 * ONE,
            challenger_bond=2 * ONE,
            claim_ttl_s=600,
            submit_window_s=600,
            challenge_window_s=CHALLENGE_WINDOW_S,
        )
        own_terms = dataclasses.replace(terms, solver_stake=6 * ONE)
        job_ids: list[JobId] = []
        jobs: list[tuple[str, dict[str, Any], bytes]] = [
            (f"demo-{seed}", job_spec(seed), dataset) for seed in (1, 2)
        ]
        for key, spec, data in jobs:
            if key == "demo-own-model":
                # both MLP jobs claimed: a second honest solver takes the own-model job
                # (its stake is above what the first two accept)
                while any(market.get_job(j).status == JobStatus.Open for j in job_ids):
                    time.sleep(1)
                stack.start(
                    "solver2",
                    [
                        *(str(VENV_BIN / "solver"), "--key-file", str(keys / "solver2.key")),
                        *("--state-dir", str(workdir / "state2"), "run", "--max-jobs", "1"),
                        *("--device", "cpu"),
                    ],
                    env,
                )
            sealed = prepare_spec(spec, data)
            chain_info = api.chain()
            nonces = api.nonces(submitter.address)
            body = sign_submission(
                submitter,
                sealed,
                own_terms if key == "demo-own-model" else terms,
                chain_info,
                int(nonces["order_nonce"]),
                int(nonces["permit_nonce"]),
            )
            accepted = api.submit(body, dataset=data, idempotency_key=key)
            posted = api.wait_posted(accepted["id"], timeout_s=120)
            if posted["state"] != "posted":
                console.print(f"[red]submission failed:[/] {posted}")
                return 1
            job_ids.append(JobId(int(posted["job_id"])))
            console.print(f"[bold]submitted[/] job {posted['job_id']} through the REST API")
            if len(jobs) == 2 and key == "demo-2":
                console.print("[bold]own model[/]: exporting, lowering, uploading graph + weights")
                own_spec, own_data = own_model_spec(api, workdir)
                jobs.append(("demo-own-model", own_spec, own_data))

        deadline = time.monotonic() + TIMEOUT_S
        while True:
            records = [market.get_job(j) for j in job_ids]
            settled = all(
                r.status in (JobStatus.Finalized, JobStatus.Slashed) and r.open_disputes == 0
                for r in records
            )
            roles_done = all(
                p.process.poll() is not None
                for p in stack.procs
                if p.name in ("solver", "solver2", "cheater")
            )
            if settled and roles_done:
                break
            if time.monotonic() > deadline:
                console.print("[red]the market did not settle in time[/]")
                return 1
            time.sleep(1)
        refund = market.credits(submitter.address)
        if refund:
            market.as_account(submitter).withdraw()
            console.print(
                f"[bold]submitter[/] withdrew its refunded reward ({refund / ONE:g} WORK)"
            )
        time.sleep(3)  # let the whistleblower withdraw and the indexer catch up
        _summary(console, api, deployment, client, job_ids, roles)
    return 0


def _dispute_outcome(dispute: dict[str, Any]) -> str:
    if not dispute["resolved"]:
        return "open"
    return "solver won" if dispute["solver_won"] else "challenger won"


def _dispute_story(
    console: Console, api: ApiClient, job_id: int, game_id: int, names: dict[str, str]
) -> None:
    """How the dispute went: each round and level, the disputed step and operator, the
    arbiter's re-execution and who was paid what."""
    game = api.dispute(game_id)
    solver = names.get(game["solver"], game["solver"])
    challenger = names.get(game["challenger"], game["challenger"])
    console.rule(f"[bold]dispute game {game_id}[/] on job {job_id}: {challenger} vs {solver}")
    for line in bisection_lines(game):
        console.print(f"  {line}", highlight=False)
    asked = [m for m in game["moves"] if m["name"] == "BundleRequested"]
    if asked:
        a = asked[-1]["args"]
        verdict = {
            "ChallengerWon": "the solver's committed output was wrong",
            "SolverWon": "the solver's committed output was right",
        }.get(game["status"], game["status"])
        console.print(
            f"  the arbiter re-executed operator {a['position']} of step {a['base']} from the"
            f" operand bundle {game.get('bundle_cid') or '-'}: {verdict}",
            highlight=False,
        )
    entered = {"GameCreated", "LevelEntered"}
    levels = {m["args"].get("level") for m in game["moves"] if m["name"] in entered}
    console.print(
        f"  {game['rounds']} rounds over {len(levels)} levels; result: [bold]{game['status']}[/]",
        highlight=False,
    )
    for event in api.job(job_id).get("events") or []:
        args = event["args"]
        if event["name"] == "SolverSlashed":
            winner = names.get(args["winner"], args["winner"])
            console.print(
                f"  payout: {int(args['to_winner']) / ONE:g} WORK of the solver's stake to"
                f" {winner}, {int(args['burned']) / ONE:g} WORK burned",
                highlight=False,
            )
        elif event["name"] == "DisputeResolved":
            who = names.get(args["challenger"], args["challenger"])
            won = "lost" if not args["solver_won"] else "won"
            console.print(f"  the solver {won} against {who}", highlight=False)


def _summary(
    console: Console,
    api: ApiClient,
    deployment: Deployment,
    client: ChainClient,
    job_ids: list[JobId],
    roles: dict[str, Any],
) -> None:
    token, market = deployment.token(client), deployment.market(client)
    names = {account.address: role for role, account in roles.items()}
    jobs = Table(title="Jobs")
    for column in ("job", "solver", "status", "disputes", "final loss", "outcome"):
        jobs.add_column(column)
    for job_id in job_ids:
        record = market.get_job(job_id)
        view = api.job(job_id)
        losses = view.get("loss_curve") or []
        outcome = {
            JobStatus.Finalized: "[green]paid[/]",
            JobStatus.Slashed: "[red]slashed[/]",
        }.get(record.status, record.status.name)
        disputes = [
            f"game {d.get('game_id')}: "
            + (
                "open"
                if not d["resolved"]
                else "solver won"
                if d["solver_won"]
                else "challenger won"
            )
            for d in view.get("disputes") or []
        ]
        jobs.add_row(
            str(job_id),
            names.get(record.solver, record.solver),
            record.status.name,
            ", ".join(disputes) or "-",
            f"{losses[-1]['loss']:.4f}" if losses else "-",
            outcome,
        )
    console.print(jobs)
    for job_id in job_ids:
        for dispute in api.job(job_id).get("disputes") or []:
            if dispute.get("game_id"):
                _dispute_story(console, api, job_id, int(dispute["game_id"]), names)
    balances = Table(title="Balances (WORK)")
    balances.add_column("account")
    balances.add_column("address")
    balances.add_column("balance", justify="right")
    for role in ("submitter", "solver", "solver2", "cheater", "whistleblower"):
        address = roles[role].address
        balances.add_row(role, address, f"{token.balance_of(address) / ONE:,.2f}")
    balances.add_row("JobMarket", market.address, f"{token.balance_of(market.address) / ONE:,.2f}")
    console.print(balances)
    console.print(
        f"supply {token.total_supply() / ONE:,.2f} WORK, minted {token.total_minted() / ONE:,.2f},"
        f" burned {market.total_burned() / ONE:,.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep logs, keys, state and the database here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    started = time.monotonic()
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            code = run(console, args.workdir.resolve())
        else:
            with tempfile.TemporaryDirectory(prefix="assay-demo-") as tmp:
                code = run(console, Path(tmp))
    except (ChainError, RuntimeError, OSError) as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    console.print(f"demo finished in {time.monotonic() - started:.0f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
