"""Sending transactions and reading contracts, with reverts turned into typed exceptions.

`ChainClient` pairs a Web3 connection with the local account that signs.  Every write is
simulated first (gas estimation), so a revert surfaces before anything is broadcast as the
generated exception class of the same name as the Solidity error, carrying its arguments.
Keys never leave this process: transactions are signed locally and sent raw.

Every failure below this module surfaces as a `chain.errors.ChainError` with a one-line
message: `RpcProvider` turns transport errors (refused, reset, timed out, HTTP 5xx) into
`NodeUnreachable` for every request, whoever makes it through `client.w3`, and
`as_chain_error` maps web3's own exceptions (`TimeExhausted`, `TransactionNotFound`,
JSON-RPC errors, malformed answers, undecoded reverts) for the client's methods and for
the CLIs' last-resort handlers (`web3_errors`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from eth_abi.abi import decode as abi_decode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from requests import RequestException
from web3 import HTTPProvider, Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import (
    BadFunctionCallOutput,
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import Nonce, RPCEndpoint, RPCResponse, TxParams

from chain.errors import (
    BadNodeResponse,
    ChainError,
    ContractRevert,
    NodeRejected,
    NodeUnreachable,
    TransactionFailed,
    TransactionTimeout,
    TransactionUnknown,
    UnknownRevert,
    Web3Failure,
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


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _transport_reason(exc: BaseException) -> str:
    """A short reason for a requests/urllib3/socket failure (their messages run to lines)."""
    text = str(exc).lower()
    timed_out = "timeout" in type(exc).__name__.lower() or "timed out" in text
    if isinstance(exc, TimeoutError) or timed_out:
        return "no answer before the timeout"
    if "refused" in text:
        return "connection refused"
    if "reset" in text or "aborted" in text or "remotedisconnected" in text:
        return "connection dropped"
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status is not None:
        return f"HTTP {status}"
    return type(exc).__name__


def as_chain_error(
    exc: BaseException, rpc_url: str = "the chain node", *, transport: bool = True
) -> ChainError | None:
    """The project's exception for a web3/requests failure, or None if `exc` is not one.

    `transport=False` leaves requests' exceptions alone: a CLI's last-resort handler cannot
    tell the node's from the artifact store's (RpcProvider already maps the node's).
    """
    if isinstance(exc, ChainError):
        return exc
    if isinstance(exc, ContractLogicError):
        return _translate(exc)
    if isinstance(exc, TimeExhausted):
        return TransactionTimeout(f"transaction not mined in time: {_first_line(str(exc))}")
    if isinstance(exc, TransactionNotFound):
        return TransactionUnknown(f"the chain node knows no such transaction: {exc.message}")
    if isinstance(exc, RequestTimedOut | ProviderConnectionError):
        return NodeUnreachable(rpc_url, _first_line(str(exc)) or type(exc).__name__)
    if isinstance(exc, Web3RPCError):
        return NodeRejected(f"the chain node refused the request: {_first_line(exc.message)}")
    if isinstance(exc, BadResponseFormat | BadFunctionCallOutput):
        return BadNodeResponse(f"unreadable answer from {rpc_url}: {_first_line(str(exc))}")
    if isinstance(exc, Web3Exception):
        return Web3Failure(f"{type(exc).__name__}: {_first_line(str(exc))}")
    if transport and isinstance(exc, RequestException):
        return NodeUnreachable(rpc_url, _transport_reason(exc))
    return None


@contextmanager
def web3_errors(rpc_url: str = "the chain node", *, transport: bool = True) -> Iterator[None]:
    """Re-raise any web3 (and, with `transport`, requests) failure in the block as a ChainError."""
    try:
        yield
    except ChainError:
        raise
    except Exception as exc:
        mapped = as_chain_error(exc, rpc_url, transport=transport)
        if mapped is None:
            raise
        raise mapped from exc


class RpcProvider(HTTPProvider):
    """web3's HTTP provider whose transport failures are `NodeUnreachable` (one line).

    web3's own retries with backoff (when configured) run first, inside `make_request`.
    """

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except OSError as exc:
            raise NodeUnreachable(str(self.endpoint_uri), _transport_reason(exc)) from exc

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            return super().is_connected(show_traceback)
        except NodeUnreachable:
            if show_traceback:
                raise
            return False


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
            RpcProvider(rpc_url, request_kwargs={"timeout": timeout_s})
            if retry
            else RpcProvider(
                rpc_url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None
            )
        )
        w3 = Web3(provider)
        try:
            w3.eth.chain_id  # noqa: B018 (a cheap round trip that proves the node answers)
        except NodeUnreachable:
            raise
        except Exception as exc:  # anything else from the first answer also means "no node"
            raise NodeUnreachable(rpc_url, type(exc).__name__) from exc
        return cls(w3, account)

    @property
    def rpc_url(self) -> str:
        return str(getattr(self.w3.provider, "endpoint_uri", "the chain node"))

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
        """Run a read, translating a revert (or any web3 failure) into its typed exception."""
        with web3_errors(self.rpc_url):
            return fn()

    def transact(self, fn: ContractFunction, *, gas: int | None = None) -> Receipt:
        """Simulate, sign, send and wait for `fn`; raise the decoded error on a revert."""
        with web3_errors(self.rpc_url):
            params: TxParams = {"from": self.address, "nonce": self._nonce()}
            if gas is not None:
                params["gas"] = gas
            tx = fn.build_transaction(params)
            if gas is None:
                tx["gas"] = int(int(tx["gas"]) * GAS_HEADROOM)
            return self._sign_and_wait(tx)

    def deploy(self, name: str, args: Sequence[Any] = ()) -> tuple[str, Receipt]:
        """Deploy artifact `name` with constructor `args`; returns (address, receipt)."""
        artifact = load_artifact(name)
        factory = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        with web3_errors(self.rpc_url):
            params: TxParams = {"from": self.address, "nonce": self._nonce()}
            tx = factory.constructor(*args).build_transaction(params)
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
        try:
            raw = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S)
        except TimeExhausted:
            raise TransactionTimeout(
                f"transaction 0x{tx_hash.hex()} was not mined within {RECEIPT_TIMEOUT_S} s",
                "0x" + tx_hash.hex(),
            ) from None
        if raw["status"] != 1:
            raise self._explain_revert(tx, int(raw["blockNumber"]), "0x" + tx_hash.hex())
        return Receipt(
            tx_hash="0x" + bytes(raw["transactionHash"]).hex(),
            block_number=int(raw["blockNumber"]),
            gas_used=int(raw["gasUsed"]),
            logs=tuple(decode_logs(raw["logs"])),
        )
