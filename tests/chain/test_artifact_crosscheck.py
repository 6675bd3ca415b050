"""repops/artifact.py and the Solidity ArtifactLib agree on file roots and chunk proofs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web3.contract import Contract

from chain.client import ChainClient
from chain.devnet import Devnet
from repops.artifact import CHUNK_SIZE, chunk, chunk_count, commit_file

# Sizes around the chunk boundaries matter most: empty, one byte, exact multiples, +-1.
sizes = st.one_of(
    st.sampled_from([0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE]),
    st.integers(0, 6 * CHUNK_SIZE),
)


@pytest.fixture(scope="module")
def harness(devnet: Devnet) -> Iterator[Contract]:
    client = ChainClient(devnet.web3(), devnet.accounts[0])
    address, _ = client.deploy("ArtifactHarness")
    yield client.contract("ArtifactHarness", address)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=sizes, data=st.data())
def test_artifact_python_and_solidity_agree_on_every_chunk(
    harness: Contract, size: int, data: st.DataObject
) -> None:
    content = data.draw(st.binary(min_size=size, max_size=size), label="file")
    c = commit_file(content)
    assert harness.functions.chunkCount(size).call() == chunk_count(size) == len(c.leaves)
    assert harness.functions.fileRoot(size, c.chunk_root).call() == c.root
    index = data.draw(st.integers(0, chunk_count(size) - 1), label="chunk")
    part, proof = chunk(content, index), c.chunk_proof(index)
    assert harness.functions.verifyChunk(c.root, size, c.chunk_root, index, part, proof).call()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(size=st.integers(1, 4 * CHUNK_SIZE), data=st.data())
def test_artifact_forged_chunks_and_lengths_are_rejected(
    harness: Contract, size: int, data: st.DataObject
) -> None:
    content = data.draw(st.binary(min_size=size, max_size=size), label="file")
    c = commit_file(content)
    index = data.draw(st.integers(0, chunk_count(size) - 1), label="chunk")
    part, proof = chunk(content, index), c.chunk_proof(index)
    verify = harness.functions.verifyChunk
    flip = data.draw(st.integers(0, len(part) - 1), label="byte")
    forged = part[:flip] + bytes([part[flip] ^ 0x01]) + part[flip + 1 :]
    assert not verify(c.root, size, c.chunk_root, index, forged, proof).call()
    assert not verify(c.root, size, c.chunk_root, index, part + b"\x00", proof).call()
    assert not verify(c.root, size + 1, c.chunk_root, index, part, proof).call()
    assert not verify(c.root, size, c.chunk_root, chunk_count(size), b"", proof).call()
