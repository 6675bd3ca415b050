"""The positional keccak256 Merkle tree that the contracts verify."""

from __future__ import annotations

import hashlib

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from repops import RepopsError
from repops.merkle import merkle_proof, merkle_root, verify_merkle_proof


def leaf(i: int) -> bytes:
    return hashlib.sha256(str(i).encode()).digest()


def test_merkle_root_single_leaf_is_the_leaf() -> None:
    assert merkle_root([leaf(0)]) == leaf(0)
    assert merkle_proof([leaf(0)], 0) == []
    assert verify_merkle_proof(leaf(0), leaf(0), 0, [])


def test_merkle_root_three_leaves_pads_with_zero_leaf() -> None:
    a, b, c = leaf(1), leaf(2), leaf(3)
    want = keccak(keccak(a + b) + keccak(c + b"\x00" * 32))
    assert merkle_root([a, b, c]) == want
    assert merkle_proof([a, b, c], 2) == [b"\x00" * 32, keccak(a + b)]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(min_value=1, max_value=33), data=st.data())
def test_merkle_proof_any_size_and_index_verifies(n: int, data: st.DataObject) -> None:
    leaves = [leaf(i) for i in range(n)]
    idx = data.draw(st.integers(min_value=0, max_value=n - 1))
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, idx)
    assert verify_merkle_proof(root, leaves[idx], idx, proof)


def test_verify_merkle_proof_tampering_rejected() -> None:
    leaves = [leaf(i) for i in range(6)]
    root = merkle_root(leaves)
    proof = merkle_proof(leaves, 4)
    assert verify_merkle_proof(root, leaves[4], 4, proof)
    assert not verify_merkle_proof(root, leaves[3], 4, proof)
    assert not verify_merkle_proof(root, leaves[4], 5, proof)
    assert not verify_merkle_proof(root, leaves[4], 4 + 8, proof)
    bad = list(proof)
    bad[1] = leaf(99)
    assert not verify_merkle_proof(root, leaves[4], 4, bad)
    assert not verify_merkle_proof(root, leaves[4], 4, proof[:-1])


def test_merkle_invalid_inputs_raise() -> None:
    with pytest.raises(RepopsError):
        merkle_root([])
    with pytest.raises(RepopsError):
        merkle_root([b"short"])
    with pytest.raises(RepopsError):
        merkle_proof([leaf(0)], 1)
