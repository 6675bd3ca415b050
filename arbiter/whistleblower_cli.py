"""`whistleblower`: re-execute submitted results and challenge the wrong ones for a reward.

    whistleblower run [--check all|FRACTION] [--arity D]

For each result in its challenge window, earliest deadline first and up to --workers jobs
at once, it checks the manifest against the chain and re-executes every checkpoint segment
(`all`) or a FRACTION of them drawn with a secret of its own (kept in --state-dir, with
every state it computed, so a restart resumes without recomputing), logs what it checked
and what it could not, challenges the first mismatch with a bond, plays the dispute to the
end and withdraws its winnings.  Settings come from ASSAY_* environment variables,
overridden by flags.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from arbiter.whistleblower import Whistleblower
from chain.client import web3_errors
from chain.errors import ChainError
from market.store import StoreError
from repops import conformance
from roles.jobcontext import JobUnusable
from roles.startup import (
    TRANSIENT_ROLE_ERRORS,
    Backoff,
    RoleSettings,
    add_common_flags,
    connect,
    overrides,
    setup_logging,
    stop_flag,
)


class WhistleblowerSettings(RoleSettings):
    key_file: Path = Path("var/keys/whistleblower.key")
    state_dir: Path = Path("var/whistleblower")


def _fraction(text: str) -> float:
    if text == "all":
        return 1.0
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--check takes 'all' or a fraction in (0, 1]") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError("--check takes 'all' or a fraction in (0, 1]")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="whistleblower", description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "whistleblower")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch results, check them, challenge mismatches")
    run.add_argument("--check", type=_fraction, default=1.0, help="'all' or a fraction")
    run.add_argument("--arity", type=int, default=4, help="parts per dissection (2..16)")
    run.add_argument("--state-dir", type=Path, help="secret and cache (ASSAY_STATE_DIR)")
    run.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="jobs checked in parallel (default: the number of cores)",
    )
    run.add_argument("--exit-after", type=float, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    console = Console()
    setup_logging(args.verbose)
    if (refused := conformance.refusal()) is not None:  # conformance gate
        console.print(f"[red]whistleblower:[/] {refused}")
        return 2
    settings = WhistleblowerSettings(**overrides(args, "state_dir"))
    try:
        with web3_errors(settings.rpc_url, transport=False):
            return _run(args, settings, console)
    except (ChainError, StoreError, JobUnusable, ValueError, OSError) as exc:
        console.print(f"[red]whistleblower:[/] {exc}")
        return 2


def _run(args: argparse.Namespace, settings: WhistleblowerSettings, console: Console) -> int:
    """Connect, then tick until stopped (transient outages waited out with back-off)."""
    role = connect(settings)
    account = role.account
    node = Whistleblower(
        role.client,
        role.deployment,
        role.store,
        state_dir=settings.state_dir,
        check_fraction=args.check,
        arity=args.arity,
        workers=max(1, args.workers),
        store_address=settings.store,
        report=lambda line: console.print(f"[magenta]whistleblower[/] {line}"),
    )
    should_stop = stop_flag()
    console.print(f"whistleblower {account.address}: checking {args.check:.0%} of segments")
    idle_since = time.monotonic()
    backoff = Backoff()
    try:
        while not should_stop():
            before = (len(node.findings), node.active_games)
            try:
                node.tick()
                backoff.succeeded()
            except TRANSIENT_ROLE_ERRORS as exc:  # IPFS or the chain is away: wait, go on
                backoff.failed("whistleblower", exc, should_stop)
                continue
            changed = (len(node.findings), node.active_games) != before
            if changed or node.active_games or node.busy:
                idle_since = time.monotonic()
            if args.exit_after is not None and time.monotonic() - idle_since > args.exit_after:
                break
            time.sleep(settings.poll_interval)
    finally:
        node.close()
    challenged = sum(1 for f in node.findings if f.decisive() is not None)
    console.print(
        f"whistleblower stopped: {len(node.findings)} result(s) checked, {challenged} challenged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
