"""Deploy Assay's contracts and read/write the deployment JSON every component loads.

The deployment file names the chain id, each contract's address and the block of
deployment (where indexers start).  Loading one checks that the connected chain has the
same id and that code sits at every address, so a stale file after a devnet restart is
reported in one line instead of failing later with an opaque revert.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chain.client import ChainClient
from chain.contracts import JobMarketClient, WorkTokenClient
from chain.dispute import ArbiterRefereeClient, DisputeGameClient
from chain.errors import DeploymentError
from chain.types import Address

DEFAULT_WINNER_SHARE_BPS = 5_000
DEFAULT_LATE_SHARE_BPS = 5_000
DEFAULT_CLOCK_BUDGET_S = 3_600
DEFAULT_LEVEL_EXTENSION_S = 1_800
DEFAULT_RULING_WINDOW_S = 3_600
DEFAULT_APPEAL_WINDOW_S = 3_600
DEFAULT_ESCALATION_WINDOW_S = 3_600
DEFAULT_QUORUM = 2
DEFAULT_ARBITER_STAKE = 20 * 10**18
DEFAULT_APPEAL_BOND = 5 * 10**18
DEFAULT_MIN_CHALLENGER_BOND = 10**16
"""A game's gas (bench.dispute: <= 3 M) at 1 gwei, counted 1:1 in WORK's smallest unit
plus margin; a real deployment sets it from its gas price and the token's price."""
MAX_LEVEL_EXTENSIONS = 4
"""ArbiterReferee.MAX_LEVEL_EXTENSIONS: how many level extensions sizes the longest game."""


def membership_delay_for(clock_budget: int, level_extension: int) -> int:
    """The shortest membership delay ArbiterReferee.setGame accepts for these clocks."""
    return 2 * (clock_budget + MAX_LEVEL_EXTENSIONS * level_extension) + 1


@dataclass(frozen=True)
class Deployment:
    """Where Assay lives on one chain."""

    chain_id: int
    block: int
    deployer: Address
    addresses: dict[str, Address]
    params: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    @classmethod
    def from_json(cls, text: str) -> Deployment:
        data = json.loads(text)
        return cls(
            chain_id=int(data["chain_id"]),
            block=int(data["block"]),
            deployer=Address(data["deployer"]),
            addresses={k: Address(v) for k, v in data["addresses"].items()},
            params={k: int(v) for k, v in data.get("params", {}).items()},
        )

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError as exc:
            raise DeploymentError(f"no deployment file at {path}") from exc
        except (KeyError, ValueError) as exc:
            raise DeploymentError(f"{path} is not a deployment file: {exc}") from exc

    def check(self, client: ChainClient) -> None:
        """Raise DeploymentError unless `client` is on this chain with code at every address."""
        chain_id = client.w3.eth.chain_id
        if chain_id != self.chain_id:
            raise DeploymentError(
                f"deployment is for chain {self.chain_id}, the node is chain {chain_id}"
            )
        for name, address in self.addresses.items():
            if not client.w3.eth.get_code(address):  # type: ignore[arg-type]
                raise DeploymentError(f"no code for {name} at {address}: stale deployment file?")

    def token(self, client: ChainClient) -> WorkTokenClient:
        return WorkTokenClient(client, self.addresses["WorkToken"])

    def market(self, client: ChainClient) -> JobMarketClient:
        return JobMarketClient(client, self.addresses["JobMarket"])

    def game(self, client: ChainClient) -> DisputeGameClient:
        if "DisputeGame" not in self.addresses:
            raise DeploymentError("this deployment has no DisputeGame")
        return DisputeGameClient(client, self.addresses["DisputeGame"], start_block=self.block)

    def referee(self, client: ChainClient) -> ArbiterRefereeClient:
        if "ArbiterReferee" not in self.addresses:
            raise DeploymentError("this deployment has no ArbiterReferee")
        return ArbiterRefereeClient(client, self.addresses["ArbiterReferee"])


def deploy(
    client: ChainClient,
    *,
    winner_share_bps: int = DEFAULT_WINNER_SHARE_BPS,
    late_share_bps: int = DEFAULT_LATE_SHARE_BPS,
    with_dispute_game: bool = True,
    clock_budget: int = DEFAULT_CLOCK_BUDGET_S,
    level_extension: int = DEFAULT_LEVEL_EXTENSION_S,
    ruling_window: int = DEFAULT_RULING_WINDOW_S,
    appeal_window: int = DEFAULT_APPEAL_WINDOW_S,
    escalation_window: int = DEFAULT_ESCALATION_WINDOW_S,
    quorum: int = DEFAULT_QUORUM,
    arbiter_stake: int = DEFAULT_ARBITER_STAKE,
    appeal_bond: int = DEFAULT_APPEAL_BOND,
    min_challenger_bond: int = DEFAULT_MIN_CHALLENGER_BOND,
    membership_delay: int | None = None,
    arbiters: Sequence[str] = (),
    token: str | None = None,
) -> Deployment:
    """Deploy WorkToken (the signer is admin and minter), JobMarket over it and, unless
    `with_dispute_game` is False, ArbiterReferee and DisputeGame wired to the market.

    `token` names an existing WorkToken to deploy over instead (a second market on the
    same token; the signer must be its minter when `arbiters` are given). Each of
    `arbiters` becomes a founding committee member, active at once (no game exists yet),
    its stake minted to and paid by the deployer."""
    token_receipt = None
    if token is None:
        token_address, token_receipt = client.deploy("WorkToken", [client.address])
    else:
        token_address = token
    market_address, market_receipt = client.deploy(
        "JobMarket", [token_address, winner_share_bps, late_share_bps, min_challenger_bond]
    )
    first_block = (token_receipt or market_receipt).block_number
    addresses = {"WorkToken": Address(token_address), "JobMarket": Address(market_address)}
    params = {
        "winner_share_bps": winner_share_bps,
        "late_share_bps": late_share_bps,
        "min_challenger_bond": min_challenger_bond,
    }
    if with_dispute_game:
        delay = membership_delay
        if delay is None:
            delay = membership_delay_for(clock_budget, level_extension)
        referee_address, _ = client.deploy(
            "ArbiterReferee",
            [
                token_address,
                client.address,
                arbiter_stake,
                quorum,
                ruling_window,
                appeal_window,
                escalation_window,
                appeal_bond,
                delay,
            ],
        )
        game_address, _ = client.deploy(
            "DisputeGame", [market_address, referee_address, clock_budget, level_extension]
        )
        referee = ArbiterRefereeClient(client, referee_address)
        referee.set_game(game_address)
        if arbiters:
            work = WorkTokenClient(client, token_address)
            work.mint(client.address, arbiter_stake * len(arbiters))
            work.approve(referee_address, arbiter_stake * len(arbiters))
            for arbiter in arbiters:
                referee.join(arbiter)
        JobMarketClient(client, market_address).set_dispute_game(game_address)
        addresses["ArbiterReferee"] = Address(referee_address)
        addresses["DisputeGame"] = Address(game_address)
        params |= {
            "clock_budget": clock_budget,
            "level_extension": level_extension,
            "ruling_window": ruling_window,
            "appeal_window": appeal_window,
            "escalation_window": escalation_window,
            "quorum": quorum,
            "arbiter_stake": arbiter_stake,
            "appeal_bond": appeal_bond,
            "membership_delay": delay,
        }
    return Deployment(
        chain_id=client.w3.eth.chain_id,
        block=first_block,
        deployer=Address(client.address),
        addresses=addresses,
        params=params,
    )
