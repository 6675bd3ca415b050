"""The embedded store: round trips, integrity under tampering, pins, sharing between processes."""

from __future__ import annotations

import io
import multiprocessing
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market.store import (
    ArtifactNotFound,
    ArtifactTooLarge,
    ArtifactUnusable,
    EmbeddedStore,
    IntegrityError,
    InvalidCid,
    NotAFile,
    compute_cid,
    open_store,
)
from market.store.cid import DAG_PB, BlockRef
from market.store.unixfs import PBLink, encode_file_data, encode_pbnode
from tests.market.helpers import CHUNK, leaves_of, pseudo_random


@pytest.fixture
def store(tmp_path: Path) -> EmbeddedStore:
    return EmbeddedStore(tmp_path / "store")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17])
def test_embedded_add_bytes_round_trips_and_matches_compute_cid(
    store: EmbeddedStore, size: int
) -> None:
    data = pseudo_random(size, seed=size)
    cid = store.add_bytes(data)
    assert cid == compute_cid(data).cid
    assert store.get_bytes(cid) == data


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=CHUNK * 2 + 100))
def test_embedded_any_content_round_trips(store: EmbeddedStore, data: bytes) -> None:
    assert store.get_bytes(store.add_bytes(data)) == data


def test_embedded_add_stream_and_file_give_same_cid_as_bytes(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    data = pseudo_random(2 * CHUNK + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    by_bytes = store.add_bytes(data)
    assert store.add_file(path) == by_bytes
    assert store.add_stream(io.BytesIO(data)) == by_bytes
    assert store.add_stream(iter([data[:7], data[7:100_000], data[100_000:]])) == by_bytes


def test_embedded_get_file_writes_verified_copy(store: EmbeddedStore, tmp_path: Path) -> None:
    data = pseudo_random(CHUNK * 2)
    cid = store.add_bytes(data)
    out = store.get_file(cid, tmp_path / "out.bin")
    assert out.read_bytes() == data


def test_embedded_corrupted_leaf_raises_integrity_error(store: EmbeddedStore) -> None:
    data = pseudo_random(3 * CHUNK)
    cid = store.add_bytes(data)
    victim = store.block_path(leaves_of(store, cid)[1].cid)
    raw = bytearray(victim.read_bytes())
    raw[1000] ^= 0x01
    victim.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError) as info:
        store.get_bytes(cid)
    assert leaves_of(store, cid)[1].cid in str(info.value)


def test_embedded_corrupted_root_raises_integrity_error(store: EmbeddedStore) -> None:
    cid = store.add_bytes(pseudo_random(2 * CHUNK))
    root = store.block_path(cid)
    root.write_bytes(root.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_embedded_substituted_valid_block_raises_integrity_error(store: EmbeddedStore) -> None:
    # Another real block (valid under its own CID) copied over a leaf's file.
    cid = store.add_bytes(pseudo_random(2 * CHUNK, seed=1))
    other = store.add_bytes(pseudo_random(CHUNK, seed=2))
    store.block_path(leaves_of(store, cid)[0].cid).write_bytes(store.block_path(other).read_bytes())
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_embedded_truncated_leaf_raises_integrity_error(store: EmbeddedStore) -> None:
    cid = store.add_bytes(pseudo_random(2 * CHUNK))
    leaf = store.block_path(leaves_of(store, cid)[1].cid)
    leaf.write_bytes(leaf.read_bytes()[: CHUNK // 2])
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_embedded_corruption_leaves_no_partial_output_file(
    store: EmbeddedStore, tmp_path: Path
) -> None:
    cid = store.add_bytes(pseudo_random(3 * CHUNK))
    leaf = store.block_path(leaves_of(store, cid)[2].cid)
    leaf.write_bytes(b"tampered")
    dest = tmp_path / "out" / "ckpt.bin"
    dest.parent.mkdir()
    with pytest.raises(IntegrityError):
        store.get_file(cid, dest)
    assert list(dest.parent.iterdir()) == []


def test_embedded_readd_repairs_corrupted_block(store: EmbeddedStore) -> None:
    data = pseudo_random(2 * CHUNK)
    cid = store.add_bytes(data)
    leaf = store.block_path(leaves_of(store, cid)[0].cid)
    leaf.write_bytes(b"rot")
    assert store.add_bytes(data) == cid
    assert store.get_bytes(cid) == data


def test_embedded_node_with_lying_sizes_raises_integrity_error(store: EmbeddedStore) -> None:
    # A node whose hash is right but whose blocksizes disagree with its leaves.
    leaf = BlockRef.parse(store.add_bytes(b"abc"))
    block = encode_pbnode([PBLink(leaf.binary, 3)], encode_file_data(4, [4]))
    ref = BlockRef.for_block(DAG_PB, block)
    path = store.block_path(ref.cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(block)
    with pytest.raises(IntegrityError, match="parent says 4"):
        store.get_bytes(ref.cid)


def test_embedded_directory_node_raises_store_error(store: EmbeddedStore) -> None:
    block = encode_pbnode([], b"\x08\x01")  # UnixFS Directory, no entries
    ref = BlockRef.for_block(DAG_PB, block)
    path = store.block_path(ref.cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(block)
    with pytest.raises(NotAFile, match="directory, not a file"):
        store.get_bytes(ref.cid)


def test_embedded_unknown_cid_raises_artifact_not_found(store: EmbeddedStore) -> None:
    missing = compute_cid(b"never added").cid
    with pytest.raises(ArtifactNotFound) as info:
        store.get_bytes(missing)
    assert missing in str(info.value)
    assert not store.has(missing)


def test_embedded_missing_inner_block_names_root(store: EmbeddedStore) -> None:
    cid = store.add_bytes(pseudo_random(2 * CHUNK))
    store.block_path(leaves_of(store, cid)[1].cid).unlink()
    with pytest.raises(ArtifactNotFound) as info:
        store.get_bytes(cid)
    assert info.value.cid == cid
    with pytest.raises(ArtifactNotFound):
        store.pin(cid)


def test_embedded_garbage_cid_raises_invalid_cid_at_call(store: EmbeddedStore) -> None:
    with pytest.raises(InvalidCid):
        store.stream("not-a-cid")
    with pytest.raises(InvalidCid):
        store.has("../../etc/passwd")


def test_embedded_pins_follow_add_pin_unpin(store: EmbeddedStore) -> None:
    pinned = store.add_bytes(b"kept")
    loose = store.add_bytes(b"loose", pin=False)
    assert store.pins() == {pinned}
    store.pin(loose)
    assert store.pins() == {pinned, loose}
    store.unpin(pinned)
    store.unpin(pinned)  # idempotent
    assert store.pins() == {loose}
    assert store.has(pinned)  # unpinning does not delete


def test_embedded_reopened_directory_serves_same_artifacts(tmp_path: Path) -> None:
    data = pseudo_random(CHUNK + 3)
    cid = EmbeddedStore(tmp_path / "s").add_bytes(data)
    assert open_store(f"embedded:{tmp_path / 's'}").get_bytes(cid) == data


def test_embedded_get_bytes_over_max_size_raises(store: EmbeddedStore) -> None:
    cid = store.add_bytes(pseudo_random(2 * CHUNK))
    with pytest.raises(ArtifactTooLarge, match=f"limit of {CHUNK} bytes") as caught:
        store.get_bytes(cid, max_size=CHUNK)
    assert caught.value.limit == CHUNK and isinstance(caught.value, ArtifactUnusable)


def test_embedded_add_stream_of_text_raises_type_error(store: EmbeddedStore) -> None:
    with pytest.raises(TypeError):
        store.add_stream(io.StringIO("text"))  # type: ignore[arg-type]


def _add_in_child(root: str, seed: int, results: multiprocessing.Queue[str]) -> None:
    store = EmbeddedStore(root)
    results.put(store.add_bytes(pseudo_random(5 * CHUNK, seed=seed % 2)))


def test_embedded_concurrent_processes_share_one_directory(tmp_path: Path) -> None:
    root = str(tmp_path / "shared")
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    workers = [context.Process(target=_add_in_child, args=(root, i, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cids = {results.get(timeout=5) for _ in workers}
    assert len(cids) == 2
    store = EmbeddedStore(root)
    for seed in (0, 1):
        assert store.get_bytes(compute_cid(pseudo_random(5 * CHUNK, seed=seed)).cid)
    assert not list((tmp_path / "shared" / "tmp").iterdir())
