"""Against a real js-ipfs daemon: CID parity with the embedded store, integrity, outages.

These are the acceptance tests of the artifact store: the same bytes added to
the daemon and to the embedded store must get the same CID.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from market.ipfsd import IpfsDaemon
from market.store import (
    ArtifactNotFound,
    EmbeddedStore,
    IntegrityError,
    KuboStore,
    StoreUnreachable,
    compute_cid,
    open_store,
)
from tests.market.helpers import CHUNK, pseudo_random, write_pseudo_random

PARITY_SIZES = {
    "empty": 0,
    "one-byte": 1,
    "exactly-256KiB": CHUNK,
    "256KiB-plus-1": CHUNK + 1,
    "10MB": 10_000_000,
    "174-chunks": 174 * CHUNK,
    "174-chunks-plus-1": 174 * CHUNK + 1,
    "more-than-174-chunks": 180 * CHUNK + 12345,
}


@pytest.fixture
def kubo(ipfs_daemon: IpfsDaemon) -> Iterator[KuboStore]:
    with KuboStore(ipfs_daemon.api_url, backoff=0.05) as store:
        yield store


@pytest.mark.parametrize("size", PARITY_SIZES.values(), ids=PARITY_SIZES.keys())
def test_daemon_and_embedded_same_input_give_identical_cid(
    kubo: KuboStore, tmp_path: Path, size: int
) -> None:
    path = write_pseudo_random(tmp_path / "input.bin", size, seed=size)
    embedded = EmbeddedStore(tmp_path / "embedded")
    from_daemon = kubo.add_file(path)
    from_embedded = embedded.add_file(path)
    assert from_daemon == from_embedded
    assert kubo.get_file(from_daemon, tmp_path / "back.bin").read_bytes() == path.read_bytes()


def test_daemon_reads_back_what_embedded_store_named(kubo: KuboStore) -> None:
    data = pseudo_random(5 * CHUNK + 7, seed=77)
    expected = compute_cid(data).cid
    cid = kubo.add_stream(iter([data]))
    assert cid == expected
    assert kubo.has(cid)
    assert kubo.get_bytes(cid) == data


def test_daemon_pins_follow_pin_and_unpin(kubo: KuboStore) -> None:
    cid = kubo.add_bytes(pseudo_random(CHUNK + 1, seed=5), pin=False)
    assert cid not in kubo.pins()
    kubo.pin(cid)
    assert cid in kubo.pins()
    kubo.unpin(cid)
    kubo.unpin(cid)
    assert cid not in kubo.pins()


def test_daemon_unknown_cid_raises_artifact_not_found(ipfs_daemon: IpfsDaemon) -> None:
    missing = compute_cid(b"no daemon has ever seen this text").cid
    with KuboStore(ipfs_daemon.api_url, fetch_timeout=0.5) as store:
        assert not store.has(missing)
        with pytest.raises(ArtifactNotFound):
            store.get_bytes(missing)


def test_daemon_version_reports_js_ipfs_core(kubo: KuboStore) -> None:
    assert kubo.version().count(".") == 2


def _daemon_block_files(repo: Path) -> list[Path]:
    return [p for p in (repo / "blocks").rglob("*.data") if p.is_file()]


def test_daemon_corrupted_block_on_disk_raises_integrity_error(tmp_path: Path) -> None:
    # Own daemon: we tamper with its block store, which must not leak into others' tests.
    data = pseudo_random(3 * CHUNK, seed=3)
    with IpfsDaemon(tmp_path / "repo") as daemon, KuboStore(daemon.api_url) as store:
        cid = store.add_bytes(data)
        middle = data[CHUNK : 2 * CHUNK]
        victims = [p for p in _daemon_block_files(daemon.repo) if p.read_bytes() == middle]
        assert len(victims) == 1
        victims[0].write_bytes(middle[:-1] + bytes([middle[-1] ^ 0xFF]))
        with pytest.raises(IntegrityError):
            store.get_bytes(cid)


def test_daemon_stopped_raises_unreachable_not_traceback(tmp_path: Path) -> None:
    daemon = IpfsDaemon(tmp_path / "repo")
    with daemon, KuboStore(daemon.api_url, retries=2, backoff=0.05) as store:
        cid = store.add_bytes(b"before the outage")
    assert not daemon.running
    with KuboStore(daemon.api_url, retries=2, backoff=0.05) as store:
        with pytest.raises(StoreUnreachable) as info:
            store.get_bytes(cid)
        assert "\n" not in str(info.value)
        assert daemon.api_url in str(info.value)
        with pytest.raises(StoreUnreachable):
            store.add_bytes(b"during the outage")


def test_open_store_http_url_talks_to_daemon(ipfs_daemon: IpfsDaemon) -> None:
    store = open_store(ipfs_daemon.api_url)
    assert isinstance(store, KuboStore)
    with store:
        assert store.get_bytes(store.add_bytes(b"via factory")) == b"via factory"
