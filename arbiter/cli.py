"""`arbiter`: rule on dispute games narrowed to a single operator.

    arbiter run               watch the chain and rule on every game awaiting a ruling
    arbiter rule GAME_ID      rule on one game now

Settings come from ASSAY_* environment variables, overridden by flags: the RPC URL, the
deployment JSON, the arbiter's key file (a registered arbiter) and the artifact store.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.logging import RichHandler

from arbiter.referee import ArbiterError, Referee, Ruling
from arbiter.repops_oracle import RepopsOracle
from chain.client import ChainClient
from chain.deploy import Deployment
from chain.errors import ChainError, ContractRevert
from chain.events import decode_logs
from chain.generated import RulingPending
from chain.keys import load_key
from market.store import StoreError, open_store

log = logging.getLogger("arbiter")


class ArbiterSettings(BaseSettings):
    """Where the arbiter finds the chain, its key and the artifact store."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path = Path("var/deployment.json")
    key_file: Path = Path("var/keys/arbiter.key")
    store: str = "embedded:var/ipfs"
    poll_interval: float = 1.0


@dataclass
class Watcher:
    """Finds games awaiting a ruling from the referee's RulingPending events."""

    client: ChainClient
    referee_address: str
    next_block: int
    pending: set[int] = field(default_factory=set)

    def poll(self) -> set[int]:
        latest = int(self.client.w3.eth.block_number)
        if latest >= self.next_block:
            logs = self.client.w3.eth.get_logs(
                {
                    "address": self.client.w3.to_checksum_address(self.referee_address),
                    "fromBlock": self.next_block,
                    "toBlock": latest,
                    "topics": ["0x" + RulingPending.topic.hex()],
                }
            )
            for entry in decode_logs(logs):
                if isinstance(entry.event, RulingPending):
                    self.pending.add(entry.event.game_id)
            self.next_block = latest + 1
        return set(self.pending)


def _referee(settings: ArbiterSettings) -> tuple[Referee, Deployment, ChainClient]:
    account = load_key(settings.key_file)
    client = ChainClient.connect(settings.rpc_url, account)
    deployment = Deployment.load(settings.deployment)
    deployment.check(client)
    store = open_store(settings.store)
    oracle = RepopsOracle(store, deployment.market(client))
    referee = Referee(deployment.referee(client), deployment.game(client), oracle)
    if not referee.referee.is_arbiter(account.address):
        raise ArbiterError(f"{account.address} is not a registered arbiter")
    return referee, deployment, client


def _show(console: Console, ruling: Ruling) -> None:
    verdict = "[green]solver won[/]" if ruling.solver_won else "[red]challenger won[/]"
    console.print(f"game {ruling.game_id}: {verdict} — {ruling.reason}")


def cmd_rule(settings: ArbiterSettings, game_id: int, console: Console) -> int:
    referee, _, _ = _referee(settings)
    ruling = referee.rule_if_pending(game_id)
    if ruling is None:
        console.print(f"game {game_id} is not awaiting a ruling")
        return 1
    _show(console, ruling)
    return 0


def cmd_run(settings: ArbiterSettings, console: Console) -> int:
    referee, deployment, client = _referee(settings)
    watcher = Watcher(client, deployment.addresses["ArbiterReferee"], deployment.block)
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    console.print(f"arbiter {client.address} watching {settings.rpc_url}")
    ruled = 0
    while not stopping:
        for game_id in sorted(watcher.poll()):
            try:
                ruling = referee.rule_if_pending(game_id)
            except ContractRevert as exc:  # another arbiter ruled first, or the window closed
                log.info("game %d: not ruled (%s)", game_id, exc)
                watcher.pending.discard(game_id)
                continue
            except (ArbiterError, StoreError) as exc:
                log.warning("game %d: will retry: %s", game_id, exc)
                continue
            watcher.pending.discard(game_id)
            if ruling is not None:
                ruled += 1
                _show(console, ruling)
        time.sleep(settings.poll_interval)
    console.print(f"arbiter stopped after {ruled} ruling(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arbiter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpc-url", help="JSON-RPC endpoint (ASSAY_RPC_URL)")
    parser.add_argument("--deployment", type=Path, help="deployment JSON (ASSAY_DEPLOYMENT)")
    parser.add_argument("--key-file", type=Path, help="arbiter key file (ASSAY_KEY_FILE)")
    parser.add_argument("--store", help="embedded:DIR or http://host:port (ASSAY_STORE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="watch the chain and rule on every pending game")
    rule = sub.add_parser("rule", help="rule on one game awaiting a ruling")
    rule.add_argument("game_id", type=int)
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )
    overrides = {
        k: v
        for k, v in {
            "rpc_url": args.rpc_url,
            "deployment": args.deployment,
            "key_file": args.key_file,
            "store": args.store,
        }.items()
        if v is not None
    }
    settings = ArbiterSettings(**overrides)
    try:
        if args.command == "rule":
            return cmd_rule(settings, args.game_id, console)
        return cmd_run(settings, console)
    except (ChainError, ArbiterError, StoreError) as exc:
        console.print(f"[red]arbiter:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
