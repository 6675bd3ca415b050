"""Every web3/requests failure below chain/ surfaces as a chain.errors type with one line.

The mapping table itself is tested on constructed exceptions (web3's classes, no node);
the transport side against real sockets: a closed port and a port that accepts but never
answers; the CLIs against a dead RPC port in tests/e2e/test_cli_dead_rpc.py.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
import requests
from web3 import Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    BadResponseFormat,
    ContractLogicError,
    ProviderConnectionError,
    RequestTimedOut,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
    Web3ValueError,
)

from chain.client import ChainClient, RpcProvider, as_chain_error, web3_errors
from chain.devnet import free_port
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
from chain.generated import ERRORS_BY_SELECTOR
from tests.fixtures.anvil import MarketEnv

URL = "http://127.0.0.1:1"


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (
            TimeExhausted("Transaction HexBytes('0xab') is not in the chain after 120 seconds"),
            TransactionTimeout,
        ),
        (TransactionNotFound("Transaction with hash: '0xab' not found."), TransactionUnknown),
        (Web3RPCError("nonce too low: next nonce 7, tx nonce 6"), NodeRejected),
        (RequestTimedOut("request timed out"), NodeUnreachable),
        (ProviderConnectionError("Problem connecting to provider"), NodeUnreachable),
        (BadResponseFormat("The response was in an unexpected format"), BadNodeResponse),
        (BadFunctionCallOutput("Could not decode contract function call"), BadNodeResponse),
        (ContractLogicError("execution reverted"), TransactionFailed),
        (Web3ValueError("something web3 did not like\nsecond line"), Web3Failure),
        (requests.ConnectionError("Max retries exceeded (Connection refused)"), NodeUnreachable),
        (requests.ReadTimeout("Read timed out. (read timeout=5)"), NodeUnreachable),
        (requests.HTTPError("502 Server Error: Bad Gateway"), NodeUnreachable),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_web3_failure_maps_to_chain_error_with_one_line(
    raised: BaseException, expected: type[ChainError]
) -> None:
    mapped = as_chain_error(raised, URL)

    assert isinstance(mapped, expected)
    assert "\n" not in str(mapped) and str(mapped)


def test_revert_with_known_selector_maps_to_generated_error_class() -> None:
    selector, cls = next((s, c) for s, c in ERRORS_BY_SELECTOR.items() if not c.fields)
    raised = ContractLogicError("execution reverted", data="0x" + selector.hex())

    mapped = as_chain_error(raised)

    assert type(mapped) is cls and isinstance(mapped, ContractRevert)


def test_revert_with_unknown_selector_keeps_its_data() -> None:
    mapped = as_chain_error(ContractLogicError("execution reverted", data="0xdeadbeef00"))

    assert isinstance(mapped, UnknownRevert) and mapped.data == bytes.fromhex("deadbeef00")


def test_unrelated_errors_are_not_mapped() -> None:
    assert as_chain_error(KeyError("x")) is None
    assert as_chain_error(ValueError("bad spec")) is None
    # A CLI's last-resort handler cannot tell the node's requests errors from the store's.
    assert as_chain_error(requests.ConnectionError("refused"), transport=False) is None


def test_web3_errors_block_reraises_mapped_and_passes_others() -> None:
    with pytest.raises(TransactionTimeout) as info, web3_errors(URL):
        raise TimeExhausted("not in the chain after 1 seconds")
    assert isinstance(info.value.__cause__, TimeExhausted)
    with pytest.raises(KeyError), web3_errors(URL):
        raise KeyError("not ours")


def test_client_connect_to_closed_port_is_node_unreachable_in_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(NodeUnreachable) as info:
        ChainClient.connect(url, retry=False)

    assert str(info.value) == f"cannot reach the chain node at {url}: connection refused"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a paused node)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    try:
        yield int(server.getsockname()[1])
    finally:
        server.close()


def test_reads_through_rpc_provider_on_a_hung_node_are_node_unreachable(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    w3 = Web3(RpcProvider(url, request_kwargs={"timeout": 0.3}, exception_retry_configuration=None))

    with pytest.raises(NodeUnreachable) as info:
        w3.eth.get_block("latest")  # a raw read, not through ChainClient

    assert "no answer before the timeout" in str(info.value)
    assert not w3.is_connected()


def test_client_call_on_a_hung_node_is_node_unreachable(silent_port: int) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    w3 = Web3(RpcProvider(url, request_kwargs={"timeout": 0.3}, exception_retry_configuration=None))
    client = ChainClient(w3)

    with pytest.raises(NodeUnreachable):
        client.call(lambda: w3.eth.chain_id)


def test_transaction_never_mined_is_transaction_timeout_with_its_hash(
    market_env: MarketEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = market_env
    w3 = env.client.w3
    monkeypatch.setattr("chain.client.RECEIPT_TIMEOUT_S", 1)
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        with pytest.raises(TransactionTimeout) as info:
            env.token_as(env.accounts[4]).transfer(env.accounts[5].address, 1)
    finally:
        w3.provider.make_request("anvil_dropAllTransactions", [])  # type: ignore[arg-type]
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]

    assert info.value.tx_hash is not None and info.value.tx_hash in str(info.value)
    assert str(info.value).endswith("was not mined within 1 s")
