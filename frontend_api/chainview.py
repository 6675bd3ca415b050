"""What the API and the relayer read from, and send to, the deployed contracts.

`MarketGateway` wraps one deployment: chain id, the contracts' addresses, the order and
permit nonces, balances, the chain's clock, a simulation of `postJobFor` (eth_call, no
transaction) and the `postJobFor` call itself for the relayer to sign.  `job_terms` is
the one place JobTerms is built from a verified order.

This module must never sign: the API only reads and simulates; the worker signs with the
relayer key it loads itself (frontend_api.tasks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from web3 import Web3
from web3.contract.contract import ContractFunction

from chain.client import ChainClient
from chain.contracts import JobTerms
from chain.deploy import Deployment
from chain.errors import ChainError
from chain.types import Address, Cid, Hash32, Wei
from frontend_api.orders import OrderTerms

T = TypeVar("T")

MARKET = "JobMarket"
TOKEN = "WorkToken"
GAME = "DisputeGame"
ZERO_ADDRESS = "0x" + "00" * 20


def job_terms(order: OrderTerms) -> JobTerms:
    """The on-chain JobTerms of a verified order (the one place they are built)."""
    return JobTerms(
        spec_hash=Hash32(order.spec_hash),
        spec_cid=Cid(order.spec_cid),
        reward=Wei(order.reward),
        solver_stake=Wei(order.solver_stake),
        challenger_bond=Wei(order.challenger_bond),
        claim_deadline=order.claim_deadline,
        submit_window=order.submit_window,
        challenge_window=order.challenge_window,
        steps_per_checkpoint=order.steps_per_checkpoint,
        checkpoint_count=order.checkpoint_count,
    )


class _TtlCache:
    """A few seconds of memory for chain reads hit on every request (token name, nonces)."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._data: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], load: Callable[[], T], ttl_s: float | None = None) -> T:
        ttl = self.ttl_s if ttl_s is None else ttl_s
        now = time.monotonic()
        with self._lock:
            hit = self._data.get(key)
            if hit is not None and now - hit[0] < ttl:
                value: T = hit[1]
                return value
        value = load()
        with self._lock:
            self._data[key] = (now, value)
        return value


class MarketGateway:
    """Reads and simulations against one deployment (no key)."""

    def __init__(self, client: ChainClient, deployment: Deployment, cache_s: float = 2.0) -> None:
        self.client = client
        self.deployment = deployment
        self.market_address = Address(Web3.to_checksum_address(deployment.addresses[MARKET]))
        self.token_address = Address(Web3.to_checksum_address(deployment.addresses[TOKEN]))
        game = deployment.addresses.get(GAME)
        self.game_address = Address(Web3.to_checksum_address(game)) if game else None
        self.market = client.contract(MARKET, self.market_address)
        self.token = client.contract(TOKEN, self.token_address)
        self._cache = _TtlCache(cache_s)

    @property
    def chain_id(self) -> int:
        return self.deployment.chain_id

    def _read(self, fn: Callable[[], T]) -> T:
        return self.client.call(fn)

    def supports_orders(self) -> bool:
        """Whether the deployed JobMarket's ABI has postJobFor (the relayer path)."""
        return any(
            item.get("type") == "function" and item.get("name") == "postJobFor"
            for item in self.market.abi
        )

    def token_name(self) -> str:
        return self._cache.get(
            ("name",), lambda: str(self._read(self.token.functions.name().call)), 3600
        )

    def order_nonce(self, submitter: str) -> int:
        """The next JobOrder nonce JobMarket expects from `submitter`."""
        if not self.supports_orders():
            raise ChainError("the deployed JobMarket has no postJobFor: redeploy the contracts")
        return int(self._read(self.market.functions.orderNonces(submitter).call))

    def permit_nonce(self, owner: str) -> int:
        return int(self._read(self.token.functions.nonces(owner).call))

    def balance_of(self, owner: str) -> int:
        return int(self._read(self.token.functions.balanceOf(owner).call))

    def credit_of(self, account: str) -> int:
        """What `account` may withdraw from JobMarket (refunds, payouts, winnings)."""
        return int(self._read(self.market.functions.credits(account).call))

    def allowance(self, owner: str) -> int:
        fn = self.token.functions.allowance(owner, self.market_address)
        return int(self._read(fn.call))

    def max_window(self) -> int:
        return self._cache.get(
            ("max_window",), lambda: int(self._read(self.market.functions.MAX_WINDOW().call)), 3600
        )

    def now(self) -> int:
        """Timestamp of the latest block (the contracts' clock, not ours)."""
        return int(self.client.w3.eth.get_block("latest")["timestamp"])

    def order_digest(self, order: OrderTerms) -> bytes:
        """The contract's own digest of `order` (uses the submitter's current nonce)."""
        fn = self.market.functions.orderDigest(
            job_terms(order).as_tuple(), order.submitter, order.deadline
        )
        return bytes(self._read(fn.call))

    def post_job_for(
        self,
        order: OrderTerms,
        signature: bytes,
        permit_deadline: int,
        v: int,
        r: bytes,
        s: bytes,
    ) -> ContractFunction:
        """The postJobFor call for a signed order and permit (not sent)."""
        return self.market.functions.postJobFor(
            job_terms(order).as_tuple(),
            order.submitter,
            order.deadline,
            signature,
            (permit_deadline, v, r, s),
        )

    def simulate(self, fn: ContractFunction) -> None:
        """eth_call `fn`; raise the contract's typed error if it would revert."""
        self._read(lambda: fn.call({"from": ZERO_ADDRESS}))
