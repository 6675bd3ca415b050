"""Exact accounting for end-to-end tests: balance deltas, burn, conservation, and events.

`Ledger.take` snapshots every devnet account's WORK balance, the market's balance and its
burn counter; `delta` and `burned_since` give exact changes; `conserved` checks DESIGN.md
§1.4 (accounts + market + burned == minted).  `market_events` reads the market's and the
game's event logs since deployment, decoded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from chain.events import decode_logs
from chain.generated import ContractEvent
from tests.fixtures.dispute import DisputeEnv

E = TypeVar("E", bound=ContractEvent)


@dataclass
class Ledger:
    """WORK balances of every devnet account, the market and the burn counter, at one time."""

    env: DisputeEnv
    balances: dict[str, int] = field(default_factory=dict)
    market_balance: int = 0
    burned: int = 0

    @classmethod
    def take(cls, env: DisputeEnv) -> Ledger:
        ledger = cls(env)
        ledger.balances = {a.address: env.token.balance_of(a.address) for a in env.accounts}
        ledger.market_balance = env.token.balance_of(env.market.address)
        ledger.burned = env.market.total_burned()
        return ledger

    def delta(self, address: str) -> int:
        """Change of `address`'s token balance since this snapshot."""
        return self.env.token.balance_of(address) - self.balances[address]

    def burned_since(self) -> int:
        return self.env.market.total_burned() - self.burned

    def conserved(self) -> tuple[int, int]:
        """(accounts + market + referee + burned, minted): equal when no token was lost or
        created (the referee holds the committee's stakes and burns slashed ones)."""
        env = self.env
        accounts = env.accounts + env.arbiters + env.spare_arbiters
        held = sum(env.token.balance_of(a.address) for a in accounts)
        held += env.token.balance_of(env.market.address) + env.token.balance_of(env.referee.address)
        return (
            held + env.market.total_burned() + env.referee.total_burned(),
            env.token.total_minted(),
        )


def market_events(
    env: DisputeEnv, kind: type[E], where: Callable[[E], bool] | None = None
) -> list[E]:
    """Every `kind` event the market or the game emitted since deployment, in chain order."""
    w3 = env.devnet.web3()
    logs = w3.eth.get_logs(
        {
            "address": [
                w3.to_checksum_address(env.market.address),
                w3.to_checksum_address(env.game.address),
            ],
            "fromBlock": env.deployment.block,
            "toBlock": "latest",
        }
    )
    found = [e.event for e in decode_logs(logs) if isinstance(e.event, kind)]
    return [e for e in found if where is None or where(e)]  # type: ignore[misc]


def event_blocks(
    env: DisputeEnv, kinds: Sequence[type[ContractEvent]]
) -> list[tuple[int, ContractEvent]]:
    """(block, event) for every event of `kinds`, in chain order."""
    w3 = env.devnet.web3()
    logs = w3.eth.get_logs(
        {
            "address": [w3.to_checksum_address(env.market.address)],
            "fromBlock": env.deployment.block,
            "toBlock": "latest",
        }
    )
    return [
        (e.block_number, e.event) for e in decode_logs(logs) if isinstance(e.event, tuple(kinds))
    ]
