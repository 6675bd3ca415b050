"""repops/merkle.py and the Solidity MerkleLib agree on random trees (DESIGN.md §5)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from chain.client import ChainClient
from chain.devnet import Devnet
from repops.merkle import merkle_proof, merkle_root, verify_merkle_proof

leaves_strategy = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def harness(devnet: Devnet) -> Iterator[Contract]:
    client = ChainClient(devnet.web3(), devnet.accounts[0])
    address, _ = client.deploy("MerkleHarness")
    yield client.contract("MerkleHarness", address)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leaves=leaves_strategy, data=st.data())
def test_merkle_python_and_solidity_agree_on_root_and_proofs(
    harness: Contract, leaves: list[bytes], data: st.DataObject
) -> None:
    root = merkle_root(leaves)
    assert harness.functions.root(leaves).call() == root
    index = data.draw(st.integers(0, len(leaves) - 1), label="index")
    proof = merkle_proof(leaves, index)
    assert verify_merkle_proof(root, leaves[index], index, proof)
    assert harness.functions.verify(root, len(leaves), leaves[index], index, proof).call()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(leaves=leaves_strategy, data=st.data())
def test_merkle_tampered_proof_rejected_by_both(
    harness: Contract, leaves: list[bytes], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(leaves) - 1), label="index")
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, index)
    forged_leaf = bytes([leaves[index][0] ^ 0xFF]) + leaves[index][1:]
    assert not verify_merkle_proof(root, forged_leaf, index, proof)
    assert not harness.functions.verify(root, len(leaves), forged_leaf, index, proof).call()
    if proof:
        level = data.draw(st.integers(0, len(proof) - 1), label="level")
        bad = list(proof)
        bad[level] = bytes(32) if bad[level] != bytes(32) else b"\x01" * 32
        assert not verify_merkle_proof(root, leaves[index], index, bad)
        assert not harness.functions.verify(root, len(leaves), leaves[index], index, bad).call()
