"""`arbiter`: rule on dispute games narrowed to a single operator.

    arbiter run               watch the chain; vote, appeal wrong proposals, settle rulings
                              (an unreachable node or store is waited out with back-off)
    arbiter rule GAME_ID      vote on one game now
    arbiter join              stake ARBITER_STAKE and join the committee

Settings come from ASSAY_* environment variables, overridden by flags: the RPC URL, the
deployment JSON, the arbiter's key file (a committee member) and the artifact store.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from arbiter.referee import ArbiterError, Referee, Ruling
from arbiter.repops_oracle import RepopsOracle
from chain.client import ChainClient, web3_errors
from chain.deploy import Deployment
from chain.errors import ChainError, ContractRevert
from chain.events import LogCursor
from chain.generated import ArbiterJoined, RulingPending
from market.store import StoreError
from repops import conformance
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

log = logging.getLogger("arbiter")


class ArbiterSettings(RoleSettings):
    """Where the arbiter finds the chain, its key and the artifact store."""

    key_file: Path = Path("var/keys/arbiter.key")


@dataclass
class Watcher:
    """Finds games awaiting a ruling from the referee's RulingPending events."""

    events: LogCursor
    pending: set[int] = field(default_factory=set)

    def poll(self) -> set[int]:
        for entry in self.events.poll():
            if isinstance(entry.event, RulingPending):
                self.pending.add(entry.event.game_id)
        return set(self.pending)


def _referee(settings: ArbiterSettings) -> tuple[Referee, Deployment, ChainClient]:
    role = connect(settings)
    client, deployment = role.client, role.deployment
    oracle = RepopsOracle(role.store, deployment.market(client))
    referee = Referee(deployment.referee(client), deployment.game(client), oracle)
    if referee.referee.member(role.account.address).stake == 0:
        raise ArbiterError(
            f"{role.account.address} is not a committee member: run `arbiter join` first"
        )
    return referee, deployment, client


def cmd_join(settings: ArbiterSettings, console: Console) -> int:
    role = connect(settings)
    client, deployment = role.client, role.deployment
    referee = deployment.referee(client)
    stake = referee.arbiter_stake()
    deployment.token(client).approve(referee.address, stake)
    receipt = referee.join(client.address)
    joined = receipt.one(ArbiterJoined)
    console.print(
        f"{client.address} staked {stake} and votes on rulings requested from {joined.active_from}"
    )
    return 0


def _show(console: Console, ruling: Ruling) -> None:
    verdict = "[green]solver won[/]" if ruling.solver_won else "[red]challenger won[/]"
    console.print(f"game {ruling.game_id}: {verdict} — {ruling.reason}")


def cmd_rule(settings: ArbiterSettings, game_id: int, console: Console) -> int:
    referee, _, _ = _referee(settings)
    ruling = referee.vote_if_pending(game_id)
    if ruling is None:
        console.print(f"game {game_id} awaits no vote of {referee.account}")
        return 1
    _show(console, ruling)
    return 0


def _vote_and_settle(console: Console, referee: Referee, watcher: Watcher, game_id: int) -> int:
    """Vote on and settle `game_id` where due; 1 if this arbiter voted.

    A dependency outage propagates to the caller's back-off; anything game-specific is
    logged and retried on the next poll.
    """
    try:
        ruling = referee.vote_if_pending(game_id)
        settled = referee.act(game_id)
    except TRANSIENT_ROLE_ERRORS:
        raise
    except ContractRevert as exc:  # a window closed under us, or another member settled
        log.info("game %d: %s", game_id, exc)
        return 0
    except (ChainError, ArbiterError, StoreError) as exc:  # a lost race, a node hiccup
        log.warning("game %d: will retry: %s", game_id, exc)
        return 0
    if ruling is not None:
        _show(console, ruling)
    if settled:
        watcher.pending.discard(game_id)
    return 1 if ruling is not None else 0


def cmd_run(settings: ArbiterSettings, console: Console) -> int:
    referee, deployment, client = _referee(settings)
    referee_address = deployment.addresses["ArbiterReferee"]
    watcher = Watcher(
        LogCursor(client.w3, [referee_address], deployment.block, RulingPending.topic)
    )
    should_stop = stop_flag()
    console.print(f"arbiter {client.address} watching {settings.rpc_url}")
    ruled = 0
    backoff = Backoff()
    while not should_stop():
        try:
            for game_id in sorted(watcher.poll()):
                ruled += _vote_and_settle(console, referee, watcher, game_id)
            backoff.succeeded()
        except TRANSIENT_ROLE_ERRORS as exc:  # the chain or IPFS is away: wait, go on
            backoff.failed("arbiter", exc, should_stop)
            continue
        time.sleep(settings.poll_interval)
    console.print(f"arbiter stopped after {ruled} vote(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arbiter", description=__doc__.split("\n\n")[0])
    add_common_flags(parser, "arbiter")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="watch the chain and rule on every pending game")
    rule = sub.add_parser("rule", help="vote on one game awaiting a ruling")
    rule.add_argument("game_id", type=int)
    sub.add_parser("join", help="stake and join the arbiter committee")
    args = parser.parse_args(argv)
    console = Console()
    setup_logging(args.verbose)
    if (refused := conformance.refusal()) is not None:  # conformance gate
        console.print(f"[red]arbiter:[/] {refused}")
        return 2
    settings = ArbiterSettings(**overrides(args))
    try:
        with web3_errors(settings.rpc_url, transport=False):
            if args.command == "rule":
                return cmd_rule(settings, args.game_id, console)
            if args.command == "join":
                return cmd_join(settings, console)
            return cmd_run(settings, console)
    except (ChainError, ArbiterError, StoreError) as exc:
        console.print(f"[red]arbiter:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
