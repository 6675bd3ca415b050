"""arbiter/dissection.py and the Solidity PositionLib agree on every level's arithmetic."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from arbiter.dissection import (
    end_link,
    global_step,
    last_op_position,
    leaf_index,
    op_end,
    step_base,
)
from chain.client import ChainClient
from chain.devnet import Devnet

U32 = st.integers(0, 2**32 - 1)


@pytest.fixture(scope="module")
def harness(devnet: Devnet) -> Iterator[Contract]:
    client = ChainClient(devnet.web3(), devnet.accounts[0])
    address, _ = client.deploy("PositionHarness")
    yield client.contract("PositionHarness", address)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    position=st.integers(1, 2**32),
    checkpoint=U32,
    offset=U32,
    k=st.integers(1, 2**32 - 1),
    ops=st.integers(1, 2**40),
    h=st.binary(min_size=32, max_size=32),
    s=st.binary(min_size=32, max_size=32),
)
def test_position_python_and_solidity_agree(
    harness: Contract,
    position: int,
    checkpoint: int,
    offset: int,
    k: int,
    ops: int,
    h: bytes,
    s: bytes,
) -> None:
    got = harness.functions.all(position, checkpoint, offset, k, ops, h, s).call()
    assert tuple(got) == (
        leaf_index(position),
        step_base(position),
        global_step(checkpoint, offset, k),
        op_end(ops),
        last_op_position(ops),
        end_link(h, s),
    )
