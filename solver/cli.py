"""`solver`: earn WorkTokens by training jobs with reproducible operators.

    solver run       stake on and train posted jobs, publish, defend disputes, get paid
    solver status    this solver's jobs, their on-chain status, balance and credits

Settings come from ASSAY_* environment variables, overridden by flags.  With
ASSAY_API_URL set, `run` also reports its training progress to that API, signed.  The solver keeps
its state under --state-dir; killed at any point and restarted, it resumes from its last
checkpoint with identical bits and never submits a result twice.  With --world-size W it
trains each job whose data.micro_batches W divides on W local data-parallel workers, with
the same bits as one process (README: "A solver with several workers").
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

from eth_account.signers.local import LocalAccount
from pydantic import ValidationError
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

from chain.client import web3_errors
from chain.errors import ChainError
from chain.types import JobId
from market.store import StoreError
from repops import conformance
from roles.jobcontext import JobUnusable
from roles.startup import (
    TRANSIENT_ROLE_ERRORS,
    Backoff,
    add_common_flags,
    connect,
    overrides,
    setup_logging,
    stop_flag,
)
from solver.journal import Journal
from solver.node import Event, SolverNode
from solver.settings import SolverSettings
from solver.trainer import TrainingError
from submitter.client import ApiClient, progress_report

log = logging.getLogger("solver")


class RichProgress:
    """Step, loss, rate (in the job's units) and ETA of the job being trained; with
    `world` > 1 also each data-parallel worker's step time and flag (STRAGGLER, LOST)."""

    def __init__(self, console: Console, world: int = 1) -> None:
        columns = [
            TextColumn("[bold]job {task.fields[job]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("{task.fields[rate]} {task.fields[unit]}"),
            TimeRemainingColumn(),
        ]
        if world > 1:
            columns.append(TextColumn("{task.fields[workers]}"))
        self.progress = Progress(*columns, console=console, transient=False)
        self.task: TaskID | None = None

    def start(self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s") -> None:
        self.progress.start()
        self.task = self.progress.add_task(
            "train",
            total=total_steps,
            completed=done,
            job=job_id,
            loss="-",
            rate="-",
            unit=unit,
            workers="",
        )

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
        if self.task is not None:
            self.progress.update(
                self.task, completed=step, loss=f"{loss:.4f}", rate=f"{tokens_per_s:,.0f}"
            )

    def workers(self, line: str) -> None:
        if self.task is not None:
            self.progress.update(self.task, workers=line)

    def event(self, text: str) -> None:
        self.progress.console.print(f"[yellow]workers:[/] {text}")

    def finish(self) -> None:
        self.progress.stop()
        self.task = None


class ApiProgress:
    """Also report step, loss, rate and ETA to the API (signed), at most once a second.

    Reports go out on a background thread and never slow or stop training: an API that is
    down only loses the live view (logged at debug level).
    """

    def __init__(self, inner: RichProgress, api_url: str, account: LocalAccount) -> None:
        self.inner = inner
        self.api = ApiClient(api_url)
        self.account = account
        self.job_id: JobId | None = None
        self.total = 0
        self.unit = "samples/s"
        self.started = 0.0
        self.first_step = 0
        self.last_sent = 0.0
        self._chain: dict[str, object] | None = None
        self._pending: threading.Thread | None = None

    def start(self, job_id: JobId, total_steps: int, done: int, unit: str = "samples/s") -> None:
        self.inner.start(job_id, total_steps, done, unit)
        self.job_id, self.total, self.unit = job_id, total_steps, unit
        self.started, self.first_step = time.monotonic(), done

    def advance(self, step: int, loss: float, tokens_per_s: float) -> None:
        self.inner.advance(step, loss, tokens_per_s)
        now = time.monotonic()
        busy = self._pending is not None and self._pending.is_alive()
        if self.job_id is None or busy or (now - self.last_sent < 1.0 and step < self.total):
            return
        self.last_sent = now
        per_step = (now - self.started) / max(1, step - self.first_step)
        eta = per_step * (self.total - step)
        args = (self.job_id, step, loss, tokens_per_s, eta)
        self._pending = threading.Thread(target=self._send, args=args, daemon=True)
        self._pending.start()

    def _send(self, job_id: JobId, step: int, loss: float, rate: float, eta: float) -> None:
        try:
            if self._chain is None:
                self._chain = self.api.chain()
            body = progress_report(
                self.account,
                self._chain,
                job_id,
                step=step,
                total_steps=self.total,
                loss=loss,
                rate=rate,
                unit=self.unit,
                eta_s=eta,
            )
            self.api.report_progress(job_id, body)
        except Exception as exc:  # the live view is best effort; training goes on
            log.debug("progress report for job %d not sent: %s", job_id, exc)

    def workers(self, line: str) -> None:
        self.inner.workers(line)

    def event(self, text: str) -> None:
        self.inner.event(text)

    def finish(self) -> None:
        if self._pending is not None:
            self._pending.join(timeout=5)
        self.inner.finish()


def settings_from_args(args: argparse.Namespace) -> SolverSettings:
    return SolverSettings(**overrides(args, "state_dir", "device", "max_jobs", "world_size"))


def cmd_run(settings: SolverSettings, console: Console) -> int:
    role = connect(settings)
    account = role.account

    def report(event: Event) -> None:
        prefix = f"job {event.job_id}: " if event.job_id else ""
        console.print(f"[cyan]solver {account.address[:10]}[/] {prefix}{event.what}")

    rich_progress = RichProgress(console, settings.world_size)
    api_url = os.environ.get("ASSAY_API_URL")
    progress = ApiProgress(rich_progress, api_url, account) if api_url else rich_progress
    node = SolverNode(
        role.client,
        role.deployment,
        role.store,
        settings,
        progress=progress,
        report=report,
    )
    should_stop = stop_flag()
    console.print(f"solver {account.address} on {settings.rpc_url}, state in {settings.state_dir}")
    backoff = Backoff()
    while not should_stop():
        try:
            node.run(should_stop)
            break
        except TRANSIENT_ROLE_ERRORS as exc:  # IPFS or the chain is away: wait, go on
            backoff.failed("solver", exc, should_stop)
    console.print(f"solver stopped; {node.settled_count()} job(s) settled")
    return 0


def cmd_status(settings: SolverSettings, console: Console) -> int:
    role = connect(settings)
    account, client = role.account, role.client
    market, token = role.deployment.market(client), role.deployment.token(client)
    journal = Journal(settings.state_dir / account.address)
    table = Table(title=f"solver {account.address}")
    for column in ("job", "local phase", "chain status", "checkpoints", "stake", "reward"):
        table.add_column(column)
    table.add_column("earned", justify="right")
    table.add_column("note")
    earned = lost = 0
    for entry in journal.all():
        record = market.get_job(JobId(entry.job_id))
        mine = str(record.solver) == str(account.address)
        gain = 0
        if mine and record.status.name == "Finalized":
            gain = int(record.reward)
        elif mine and record.status.name == "Slashed":
            gain = -int(record.solver_stake)
        earned += max(gain, 0)
        lost += max(-gain, 0)
        table.add_row(
            str(entry.job_id),
            entry.phase.value,
            record.status.name,
            str(len(entry.checkpoints)),
            f"{record.solver_stake / 1e18:g}",
            f"{record.reward / 1e18:g}",
            f"{gain / 1e18:+g}" if gain else "-",
            entry.note,
        )
    console.print(table)
    console.print(
        f"earned {earned / 1e18:,.4f} WORK in rewards, lost {lost / 1e18:,.4f} WORK of stake; "
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
    run.add_argument(
        "--world-size",
        type=int,
        metavar="W",
        help="train each job on W local data-parallel worker processes (gloo on CPU, one GPU "
        "each with --device cuda), the same bits as one process; a job whose "
        "data.micro_batches W does not divide trains in one process (ASSAY_WORLD_SIZE, "
        "default 1)",
    )
    sub.add_parser("status", help="jobs, stakes and earnings of this solver")
    args = parser.parse_args(argv)
    if getattr(args, "world_size", None) is not None and args.world_size < 1:
        parser.error("--world-size must be at least 1")
    console = Console()
    setup_logging(args.verbose)
    if args.command == "run" and (refused := conformance.refusal()) is not None:  # conformance gate
        console.print(f"[red]solver:[/] {refused}")
        return 2
    try:
        settings = settings_from_args(args)
    except ValidationError as exc:  # e.g. ASSAY_WORLD_SIZE=0
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        console.print(f"[red]solver:[/] setting {where}: {first['msg']}")
        return 2
    try:
        with web3_errors(settings.rpc_url, transport=False):
            if args.command == "status":
                return cmd_status(settings, console)
            return cmd_run(settings, console)
    except (ChainError, StoreError, JobUnusable, TrainingError) as exc:
        console.print(f"[red]solver:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
