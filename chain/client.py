"""Sending transactions and reading contracts, with reverts turned into typed exceptions.

`ChainClient` pairs a Web3 connection with the local account that signs.  Every write is
simulated first (gas estimation), so a revert surfaces before anything is broadcast as the
generated exception class of the same name as the Solidity error, carrying its arguments.
Keys never leave this process: transactions are signed locally and sent raw.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError
from web3.types import Nonce, TxParams

from chain.errors import (
    ChainError,
    ContractRevert,
    NodeUnreachable,
    TransactionFailed,
    UnknownRevert,
)
from chain.events import EventLog, decode_logs
from chain.generated import ERRORS_BY_SELECTOR, ContractEvent

log = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parent.parent / "contracts" / "artifacts"
RECEIPT_TIMEOUT_S = 120
GAS_HEADROOM = 1.2

T = TypeVar("T")
E = TypeVar("E", bound=ContractEvent)


@dataclass(frozen=True)
class Artifact:
    """A compiled contract as contracts/build.py wrote it."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@cache
def load_artifact(name: str) -> Artifact:
    """Read contracts/artifacts/<name>.json (built by `python -m contracts.build`)."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.is_file():
        raise ChainError(f"no artifact {path}: run `python -m contracts.build`")
    data = json.loads(path.read_text())
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
    )


@dataclass(frozen=True)
class Receipt:
    """A mined, successful transaction and the events it emitted."""

    tx_hash: str
    block_number: int
    gas_used: int
    logs: tuple[EventLog, ...]

    @property
    def events(self) -> tuple[ContractEvent, ...]:
        return tuple(entry.event for entry in self.logs)

    def one(self, kind: type[E]) -> E:
        """The single event of type `kind` (raises if there is not exactly one)."""
        found = [e for e in self.events if isinstance(e, kind)]
        if len(found) != 1:
            raise ChainError(f"expected one {kind.__name__} in {self.tx_hash}, got {len(found)}")
        return found[0]


def decode_revert(data: bytes) -> ContractRevert:
    """The typed exception for raw revert data (selector + ABI-encoded arguments)."""
    error_cls = ERRORS_BY_SELECTOR.get(data[:4])
    if error_cls is None:
        return UnknownRevert(data)
    types = _signature_types(error_cls.signature)
    values = tuple(abi_decode(types, data[4:])) if types else ()
    shown = tuple(
        to_checksum_address(v) if t == "address" else v for t, v in zip(types, values, strict=True)
    )
    return error_cls(shown)


def _signature_types(signature: str) -> list[str]:
    inner = signature[signature.index("(") + 1 : -1]
    if not inner:
        return []
    # Our errors take no tuple arguments, so a plain split is exact.
    return inner.split(",")


def _revert_data(exc: ContractLogicError) -> bytes | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x") and len(data) >= 10:
        return bytes.fromhex(data[2:])
    return None


def _translate(exc: ContractLogicError) -> ChainError:
    data = _revert_data(exc)
    if data is not None:
        return decode_revert(data)
    return TransactionFailed(str(exc))


class ChainClient:
    """A Web3 connection plus the account that signs (None for a read-only client)."""

    def __init__(self, w3: Web3, account: LocalAccount | None = None) -> None:
        self.w3 = w3
        self.account = account

    @classmethod
    def connect(
        cls,
        rpc_url: str,
        account: LocalAccount | None = None,
        *,
        timeout_s: float = 60.0,
        retry: bool = True,
    ) -> ChainClient:
        """Connect to `rpc_url`, failing with a one-line NodeUnreachable if it does not answer.

        `timeout_s` bounds every request; `retry=False` turns off web3's own retries with
        backoff, so that a server answering users fails fast when the node hangs.
        """
        provider = (
            HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s})
            if retry
            else HTTPProvider(
                rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
            )
        )
        w3 = Web3(provider)
        try:
            w3.eth.chain_id  # noqa: B018 (a cheap round trip that proves the node answers)
        except Exception as exc:  # requests/urllib3 raise many types; all mean "unreachable"
            raise NodeUnreachable(rpc_url, type(exc).__name__) from exc
        return cls(w3, account)

    def with_account(self, account: LocalAccount) -> ChainClient:
        """The same connection signing as `account`."""
        return ChainClient(self.w3, account)

    @property
    def address(self) -> str:
        if self.account is None:
            raise ChainError("this client has no account: it can only read")
        return str(self.account.address)

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract object for artifact `name` at `address`."""
        abi = load_artifact(name).abi
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=abi)

    def call(self, fn: Callable[[], T]) -> T:
        """Run a read, translating a revert into its typed exception."""
        try:
            return fn()
        except ContractLogicError as exc:
            raise _translate(exc) from exc

    def transact(self, fn: ContractFunction, *, gas: int | None = None) -> Receipt:
        """Simulate, sign, send and wait for `fn`; raise the decoded error on a revert."""
        params: TxParams = {"from": self.address, "nonce": self._nonce()}
        if gas is not None:
            params["gas"] = gas
        try:
            tx = fn.build_transaction(params)
        except ContractLogicError as exc:
            raise _translate(exc) from exc
        if gas is None:
            tx["gas"] = int(int(tx["gas"]) * GAS_HEADROOM)
        return self._sign_and_wait(tx)

    def deploy(self, name: str, args: Sequence[Any] = ()) -> tuple[str, Receipt]:
        """Deploy artifact `name` with constructor `args`; returns (address, receipt)."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        params: TxParams = {"from": self.address, "nonce": self._nonce()}
        try:
            tx = factory.constructor(*args).build_transaction(params)
        except ContractLogicError as exc:
            raise _translate(exc) from exc
        tx["gas"] = int(int(tx["gas"]) * GAS_HEADROOM)
        receipt = self._sign_and_wait(tx)
        raw = self.w3.eth.get_transaction_receipt(receipt.tx_hash)  # type: ignore[arg-type]
        address = raw["contractAddress"]
        if address is None:
            raise TransactionFailed(f"deploying {name} created no contract", receipt.tx_hash)
        log.info("deployed %s at %s (gas %d)", name, address, receipt.gas_used)
        return str(address), receipt

    def _explain_revert(self, tx: TxParams, block: int, tx_hash: str) -> ChainError:
        """Why a mined transaction reverted, as the typed error when one can be recovered.

        The pre-flight simulation runs on the latest block, but the transaction lands in a
        later one (a deadline may pass in between), so replay it on the state of the block
        it was mined in, with that block's timestamp.
        """
        replay: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["data"]}
        if "value" in tx:
            replay["value"] = tx["value"]
        try:
            self.w3.eth.call(replay, block_identifier=block)
        except ContractLogicError as exc:
            error = _translate(exc)
            if isinstance(error, ContractRevert):
                error.tx_hash = tx_hash  # type: ignore[attr-defined]
            return error
        except ValueError:
            pass
        return TransactionFailed(f"transaction {tx_hash} reverted", tx_hash)

    def _nonce(self) -> Nonce:
        return self.w3.eth.get_transaction_count(Web3.to_checksum_address(self.address), "pending")

    def _sign_and_wait(self, tx: TxParams) -> Receipt:
        assert self.account is not None
        signed = self.account.sign_transaction(tx)  # type: ignore[arg-type]
        tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
        raw = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        if raw["status"] != 1:
            raise self._explain_revert(tx, int(raw["blockNumber"]), "0x" + tx_hash.hex())
        return Receipt(
            tx_hash="0x" + bytes(raw["transactionHash"]).hex(),
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            logs=tuple(decode_logs(raw["logs"])),
        )
