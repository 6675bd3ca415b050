"""`whistleblower`: re-execute submitted results and challenge the wrong ones for a reward.

    whistleblower run [--check all|FRACTION] [--arity D]

For each result in its challenge window it re-executes every checkpoint segment (`all`)
or a random FRACTION of them, logs what it checked, challenges the first mismatch with a
bond, plays the dispute to the end and withdraws its winnings.  Settings come from
ASSAY_* environment variables, overridden by flags.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.logging import RichHandler

from arbiter.jobcontext import JobUnusable
from arbiter.whistleblower import Whistleblower
from chain.client import ChainClient
from chain.deploy import Deployment
from chain.errors import ChainError
from chain.keys import load_key
from market.store import StoreError, open_store


class WhistleblowerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path = Path("var/deployment.json")
    key_file: Path = Path("var/keys/whistleblower.key")
    store: str = "embedded:var/ipfs"
    poll_interval: float = 1.0


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
    parser.add_argument("--rpc-url", help="JSON-RPC endpoint (ASSAY_RPC_URL)")
    parser.add_argument("--deployment", type=Path, help="deployment JSON (ASSAY_DEPLOYMENT)")
    parser.add_argument("--key-file", type=Path, help="key file (ASSAY_KEY_FILE)")
    parser.add_argument("--store", help="embedded:DIR or http://host:port (ASSAY_STORE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="watch results, check them, challenge mismatches")
    run.add_argument("--check", type=_fraction, default=1.0, help="'all' or a fraction")
    run.add_argument("--arity", type=int, default=4, help="parts per dissection (2..16)")
    run.add_argument("--seed", type=int, default=0, help="seed of the segment sampling")
    run.add_argument("--exit-after", type=float, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    console = Console()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    overrides = {
        "rpc_url": args.rpc_url,
        "deployment": args.deployment,
        "key_file": args.key_file,
        "store": args.store,
    }
    settings = WhistleblowerSettings(**{k: v for k, v in overrides.items() if v is not None})
    try:
        account = load_key(settings.key_file)
        client = ChainClient.connect(settings.rpc_url, account)
        deployment = Deployment.load(settings.deployment)
        deployment.check(client)
        node = Whistleblower(
            client,
            deployment,
            open_store(settings.store),
            check_fraction=args.check,
            arity=args.arity,
            seed=args.seed,
            report=lambda line: console.print(f"[magenta]whistleblower[/] {line}"),
        )
    except (ChainError, StoreError, JobUnusable, ValueError) as exc:
        console.print(f"[red]whistleblower:[/] {exc}")
        return 2
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"whistleblower {account.address}: checking {args.check:.0%} of segments")
    idle_since = time.monotonic()
    while not stopping:
        before = (len(node.findings), node.active_games)
        node.tick()
        if (len(node.findings), node.active_games) != before or node.active_games:
            idle_since = time.monotonic()
        if args.exit_after is not None and time.monotonic() - idle_since > args.exit_after:
            break
        time.sleep(settings.poll_interval)
    challenged = sum(1 for f in node.findings if f.mismatch is not None)
    console.print(
        f"whistleblower stopped: {len(node.findings)} result(s) checked, {challenged} challenged"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
