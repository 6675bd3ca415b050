"""`make demo`: a whole job's life on a local devnet, with real transactions.

Starts anvil, deploys WorkToken and JobMarket, funds a submitter and a solver, posts a
job, claims it, submits a result, lets the challenge window pass, finalizes, withdraws,
and prints every step and the final balances.  Leaves no process behind.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from chain.client import ChainClient
from chain.contracts import JobTerms
from chain.deploy import deploy
from chain.devnet import running_devnet
from chain.errors import ChainError
from chain.types import Cid, Hash32, Wei

ONE = 10**18
CHALLENGE_WINDOW_S = 3600


def _fmt(amount: int) -> str:
    return f"{amount / ONE:,.2f} WORK"


def run(console: Console, workdir: Path) -> None:
    with running_devnet(log_path=workdir / "anvil.log") as devnet:
        console.print(f"[bold]devnet[/] anvil on {devnet.rpc_url} (chain {devnet.chain_id})")
        deployer, submitter, solver = devnet.accounts[:3]
        client = ChainClient(devnet.web3(), deployer)
        deployment = deploy(client)
        deployment.write(workdir / "deployment.json")
        console.print(f"[bold]deployed[/] {json.dumps(deployment.addresses)}")
        token = deployment.token(client)
        market = deployment.market(client)
        for account in (submitter, solver):
            token.mint(account.address, 100 * ONE)
        names = {deployer.address: "deployer", submitter.address: "submitter"}
        names[solver.address] = "solver"

        # A stand-in spec until the training engine joins the demo: its hash and CID are
        # computed the way the real ones are (sha256 of canonical JSON; CID of the bytes).
        spec = json.dumps({"demo": "foundation"}, sort_keys=True, separators=(",", ":"))
        spec_hash = Hash32(hashlib.sha256(spec.encode()).digest())
        terms = JobTerms(
            spec_hash=spec_hash,
            spec_cid=Cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"),
            reward=Wei(10 * ONE),
            solver_stake=Wei(5 * ONE),
            challenger_bond=Wei(2 * ONE),
            claim_deadline=devnet.timestamp() + 3600,
            submit_window=3600,
            challenge_window=CHALLENGE_WINDOW_S,
            steps_per_checkpoint=1,
            checkpoint_count=3,
        )
        token.as_account(submitter).approve(market.address, terms.reward)
        job_id, _ = market.as_account(submitter).post_job(terms)
        console.print(f"[bold]posted[/] job {job_id}, reward {_fmt(terms.reward)} escrowed")

        token.as_account(solver).approve(market.address, terms.solver_stake)
        market.as_account(solver).claim(job_id)
        console.print(f"[bold]claimed[/] by the solver, stake {_fmt(terms.solver_stake)} locked")

        states = [hashlib.sha256(f"state-{i}".encode()).digest() for i in range(3)]
        trace_root = Hash32(hashlib.sha256(b"".join(states)).digest())
        market.as_account(solver).submit_result(
            job_id, trace_root, len(states), Cid("bafkreidemo"), Hash32(states[-1])
        )
        console.print(f"[bold]submitted[/] trace root 0x{trace_root.hex()[:16]}...")

        devnet.increase_time(CHALLENGE_WINDOW_S + 1)
        market.as_account(solver).finalize(job_id)
        market.as_account(solver).withdraw()
        console.print("[bold]finalized[/] no challenge in the window; solver withdrew")

        table = Table(title=f"Balances after job {job_id}")
        table.add_column("account")
        table.add_column("address")
        table.add_column("WORK", justify="right")
        for address, name in names.items():
            table.add_row(name, address, _fmt(token.balance_of(address)))
        table.add_row("JobMarket", market.address, _fmt(token.balance_of(market.address)))
        console.print(table)
        console.print(
            f"status: {market.status_of(job_id).name}; "
            f"supply {_fmt(token.total_supply())}, burned {_fmt(market.total_burned())}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.demo", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep logs and deployment.json here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    console = Console()
    try:
        if args.workdir:
            args.workdir.mkdir(parents=True, exist_ok=True)
            run(console, args.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="assay-demo-") as tmp:
                run(console, Path(tmp))
    except ChainError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
