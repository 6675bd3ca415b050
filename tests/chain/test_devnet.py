"""The anvil launcher, snapshots, time travel, and the one-line errors of chain/ set-up."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from chain.client import ChainClient
from chain.deploy import DEFAULT_MIN_CHALLENGER_BOND, Deployment
from chain.devnet import DEVNET_CHAIN_ID, Devnet, free_port, running_devnet, start_devnet
from chain.errors import DeploymentError, DevnetError, NodeUnreachable
from chain.types import Address
from tests.fixtures.anvil import INITIAL_BALANCE, MarketEnv


def test_snapshot_revert_restores_balances_and_block(market_env: MarketEnv) -> None:
    env = market_env
    who = env.accounts[4].address
    block = env.client.w3.eth.block_number
    snapshot = env.devnet.snapshot()
    env.token.mint(who, 777)
    env.token_as(env.accounts[4]).transfer(env.accounts[5].address, 1_000)
    assert env.token.balance_of(who) == INITIAL_BALANCE + 777 - 1_000

    env.devnet.revert(snapshot)

    assert env.token.balance_of(who) == INITIAL_BALANCE
    assert env.token.balance_of(env.accounts[5].address) == INITIAL_BALANCE
    assert env.token.total_minted() == 9 * INITIAL_BALANCE
    assert env.client.w3.eth.block_number == block


def test_snapshot_reverted_once_is_forgotten(market_env: MarketEnv) -> None:
    snapshot = market_env.devnet.snapshot()
    market_env.devnet.revert(snapshot)

    with pytest.raises(DevnetError):
        market_env.devnet.revert(snapshot)


def test_increase_time_moves_block_timestamp_forward(market_env: MarketEnv) -> None:
    devnet = market_env.devnet
    before = devnet.timestamp()
    block = devnet.web3().eth.block_number

    devnet.increase_time(86_400)

    after = devnet.timestamp()
    assert devnet.web3().eth.block_number == block + 1
    assert 86_400 <= after - before < 86_400 + 60


def test_devnet_reports_chain_id_and_funded_accounts(devnet: Devnet) -> None:
    w3 = devnet.web3()

    assert w3.eth.chain_id == DEVNET_CHAIN_ID == devnet.chain_id
    assert [a.address for a in devnet.accounts] == w3.eth.accounts
    assert w3.eth.get_balance(devnet.accounts[0].address) > 0


def test_stopped_devnet_leaves_no_process_and_refuses_connections(tmp_path: Path) -> None:
    log_path = tmp_path / "anvil.log"
    node = start_devnet(accounts=2, log_path=log_path)
    pid = node.process.pid
    url = node.rpc_url
    assert ChainClient.connect(url).w3.eth.chain_id == DEVNET_CHAIN_ID

    node.stop()

    assert node.process.poll() is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(NodeUnreachable):
        ChainClient.connect(url)
    node.stop()  # stopping twice is harmless
    assert log_path.exists()


def test_running_devnet_context_stops_node_on_error() -> None:
    with pytest.raises(RuntimeError, match="boom"), running_devnet(accounts=1) as node:
        process = node.process
        raise RuntimeError("boom")

    assert process.poll() is not None


def test_connect_to_dead_port_raises_node_unreachable_with_one_line_message() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    with pytest.raises(NodeUnreachable) as info:
        ChainClient.connect(url)

    message = str(info.value)
    assert message.startswith(f"cannot reach the chain node at {url}")
    assert "\n" not in message
    assert info.value.url == url


def test_deployment_check_on_matching_chain_passes(market_env: MarketEnv) -> None:
    market_env.deployment.check(market_env.client)


def test_deployment_check_on_wrong_chain_raises_deployment_error(market_env: MarketEnv) -> None:
    wrong = dataclasses.replace(market_env.deployment, chain_id=1)

    with pytest.raises(DeploymentError, match="chain 1, the node is chain 31337"):
        wrong.check(market_env.client)


def test_deployment_check_with_stale_address_raises_deployment_error(
    market_env: MarketEnv, tmp_path: Path
) -> None:
    empty = Address("0x00000000000000000000000000000000DeaDBeef")
    stale = dataclasses.replace(
        market_env.deployment,
        addresses={**market_env.deployment.addresses, "JobMarket": empty},
    )
    path = tmp_path / "deployment.json"
    stale.write(path)

    loaded = Deployment.load(path)

    assert loaded == stale
    with pytest.raises(DeploymentError, match=r"no code for JobMarket at .*stale"):
        loaded.check(market_env.client)


def test_deployment_load_missing_or_garbled_file_raises_deployment_error(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="no deployment file"):
        Deployment.load(tmp_path / "absent.json")
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"chain_id": 31337}')
    with pytest.raises(DeploymentError, match="is not a deployment file"):
        Deployment.load(garbled)


def test_deployment_json_round_trip_keeps_every_field(market_env: MarketEnv) -> None:
    deployment = market_env.deployment

    again = Deployment.from_json(deployment.to_json())

    assert again == deployment
    assert again.params == {
        "winner_share_bps": 5_000,
        "late_share_bps": 5_000,
        "min_challenger_bond": DEFAULT_MIN_CHALLENGER_BOND,
    }
    assert set(again.addresses) == {"WorkToken", "JobMarket"}
