"""`solver`: earn WorkTokens by training jobs with reproducible operators.

    solver run       stake on and train posted jobs, publish, defend disputes, get paid
    solver status    this solver's jobs, their on-chain status, balance and credits

Settings come from ASSAY_* environment variables, overridden by flags.  The solver keeps
its state under --state-dir; killed at any point and restarted, it resumes from its last
checkpoint with identical bits and never submits a result twice.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from chain.errors import ChainError
from chain.types import JobId
from market.store import StoreError
from repops import conformance
from roles.jobcontext import JobUnusable
from roles.startup import add_common_flags, connect, overrides, setup_logging, stop_flag
from solver.journal import Journal
from solver.node import Event, SolverNode
from solver.settings import SolverSettings
from solver.trainer import TrainingError

log = logging.getLogger("solver")


class RichProgress:
    """Step, loss, tokens/s and ETA of the job being trained."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("[bold]job {task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} tok/s"),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None

    def start(self, job_id: JobId, total_steps: int, done: int) -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=total_steps, completed=done, job=job_id, loss="-", rate="-"
        )

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self.task is not None:
            self.progress.update(
                self.task, completed=step, loss=f"{loss:.4f}", rate=f"{tokens_per_s:,.0f}"
            )

    def finish(self) -> None:
        self.progress.stop()
        self.task = None


def settings_from_args(args: argparse.Namespace) -> SolverSettings:
    return SolverSettings(**overrides(args, "state_dir", "device", "max_jobs"))


def cmd_run(settings: SolverSettings, console: Console) -> int:
    role = connect(settings)
    account = role.account

    def report(event: Event) -> None:
        prefix = f"job {event.job_id}: " if event.job_id else ""
        console.print(f"[cyan]solver {account.address[:10]}[/] {prefix}{event.what}")

    node = SolverNode(
        role.client,
        role.deployment,
        role.store,
        settings,
        progress=RichProgress(console),
        report=report,
    )
    should_stop = stop_flag()
    console.print(f"solver {account.address} on {settings.rpc_url}, state in {settings.state_dir}")
    node.run(should_stop)
    console.print(f"solver stopped; {node.settled_count()} job(s) settled")
    return 0


def cmd_status(settings: SolverSettings, console: Console) -> int:
    role = connect(settings)
    account, client = role.account, role.client
    market, token = role.deployment.market(client), role.deployment.token(client)
    journal = Journal(settings.state_dir / account.address)
    table = Table(title=f"solver {account.address}")
    for column in ("job", "local phase", "chain status", "checkpoints", "stake", "reward", "note"):
        table.add_column(column)
    for entry in journal.all():
        record = market.get_job(JobId(entry.job_id))
        table.add_row(
            str(entry.job_id),
            entry.phase.value,
            record.status.name,
            str(len(entry.checkpoints)),
            f"{record.solver_stake / 1e18:g}",
            f"{record.reward / 1e18:g}",
            entry.note,
        )
    console.print(table)
    console.print(
        f"balance {token.balance_of(account.address) / 1e18:,.4f} WORK, "
        f"withdrawable credit {market.credits(account.address) / 1e18:,.4f} WORK"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="solver", description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "solver")
    parser.add_argument("--state-dir", type=Path, help="journal + checkpoints (ASSAY_STATE_DIR)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="work the market until stopped")
    run.add_argument("--device", help="auto, cpu or cuda (ASSAY_DEVICE)")
    run.add_argument("--max-jobs", type=int, help="exit after settling this many jobs")
    sub.add_parser("status", help="jobs, stakes and earnings of this solver")
    args = parser.parse_args(argv)
    console = Console()
    setup_logging(args.verbose)
    if args.command == "run" and (refused := conformance.refusal()) is not None:  # conformance gate
        console.print(f"[red]solver:[/] {refused}")
        return 2
    try:
        settings = settings_from_args(args)
        if args.command == "status":
            return cmd_status(settings, console)
        return cmd_run(settings, console)
    except (ChainError, StoreError, JobUnusable, TrainingError) as exc:
        console.print(f"[red]solver:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
