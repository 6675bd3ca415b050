"""A cheating solver process for the demo and end-to-end tests (NOT shipped: the `solver`
console script has no way to cheat).

    python -m tests.support.cheating_solver --kind ulp --at-step 3 [solver flags...] run

It is the real SolverNode with one dishonest stepper from tests/support/cheaters.py, so
it claims, trains, submits and defends its false trace exactly like a real cheater.
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from roles.realtrace import Stepper
from roles.startup import TRANSIENT_ROLE_ERRORS, Backoff, connect, stop_flag
from solver.cli import RichProgress, settings_from_args
from solver.node import Event, SolverNode
from tests.support.cheaters import (
    DataOrderCheater,
    PlainTorchCheater,
    SkipCheater,
    StopEarlyCheater,
    UlpCheater,
)

KINDS = ("ulp", "skip", "stop-early", "plain-torch", "data-order")


def make_stepper(kind: str, at_step: int) -> Stepper:
    if kind == "ulp":
        return UlpCheater(at_step=at_step)
    if kind == "skip":
        return SkipCheater(at_step=at_step)
    if kind == "stop-early":
        return StopEarlyCheater(at_step=at_step)
    if kind == "plain-torch":
        return PlainTorchCheater(at_step=at_step)
    return DataOrderCheater()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cheating_solver")
    parser.add_argument("--kind", choices=KINDS, default="ulp")
    parser.add_argument("--at-step", type=int, default=3)
    parser.add_argument("--rpc-url")
    parser.add_argument("--deployment")
    parser.add_argument("--key-file")
    parser.add_argument("--store")
    parser.add_argument("--state-dir")
    parser.add_argument("--device")
    parser.add_argument("--max-jobs", type=int)
    parser.add_argument("command", choices=["run"])
    args = parser.parse_args(argv)
    settings = settings_from_args(args)
    console = Console()
    role = connect(settings)
    account = role.account

    def report(event: Event) -> None:
        prefix = f"job {event.job_id}: " if event.job_id else ""
        console.print(f"[red]cheater {account.address[:10]}[/] {prefix}{event.what}")

    node = SolverNode(
        role.client,
        role.deployment,
        role.store,
        settings,
        stepper=make_stepper(args.kind, args.at_step),
        progress=RichProgress(console),
        report=report,
    )
    should_stop = stop_flag()
    console.print(f"cheating solver ({args.kind} at step {args.at_step}) {account.address}")
    backoff = Backoff()  # as the shipped solver: an IPFS or chain outage is waited out
    while not should_stop():
        try:
            node.run(should_stop)
            break
        except TRANSIENT_ROLE_ERRORS as exc:
            backoff.failed("cheater", exc, should_stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
