"""The Kubo RPC backend against a scripted daemon (httpx.MockTransport): the hostile cases.

A real daemon does not lie, so lies (substituted, truncated or oversized
blocks, a different CID for an upload, flaky answers) are scripted here.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator

import httpx
import pytest

from market.store import (
    ArtifactNotFound,
    IntegrityError,
    InvalidCid,
    KuboStore,
    StoreError,
    StoreUnreachable,
    UnixFSImporter,
    compute_cid,
)
from market.store.cid import BlockRef
from tests.market.helpers import CHUNK, pseudo_random

Handler = Callable[[httpx.Request], httpx.Response]


class FakeDaemon:
    """Serves block/get from a dict; `tamper` rewrites a block before it is sent."""

    def __init__(self) -> None:
        self.blocks: dict[str, bytes] = {}
        self.calls: list[str] = []
        self.tamper: Callable[[str, bytes], bytes] = lambda cid, data: data
        self.fail_first = 0
        self.add_answer: str | None = None

    def load(self, data: bytes) -> str:
        importer = UnixFSImporter(lambda ref, block: self.blocks.__setitem__(ref.cid, block))
        importer.write(data)
        return importer.finish().cid

    def __call__(self, request: httpx.Request) -> httpx.Response:
        command = request.url.path.removeprefix("/api/v0/")
        self.calls.append(command)
        if self.fail_first:
            self.fail_first -= 1
            return httpx.Response(503, text="busy")
        if command == "block/get":
            cid = request.url.params["arg"]
            if cid not in self.blocks:
                return httpx.Response(500, json={"Message": "request timed out", "Type": "error"})
            return httpx.Response(200, content=self.tamper(cid, self.blocks[cid]))
        if command == "add":
            body = request.read()
            assert b'name="file"' in body
            content = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
            cid = self.add_answer or self.load(content)
            return httpx.Response(200, text=json.dumps({"Name": "artifact", "Hash": cid}) + "\n")
        if command == "pin/rm":
            return httpx.Response(500, json={"Message": "x is not pinned", "Type": "error"})
        if command == "version":
            return httpx.Response(200, json={"Version": "0.0-fake"})
        return httpx.Response(404, text="404 page not found")


@pytest.fixture
def fake() -> FakeDaemon:
    return FakeDaemon()


@pytest.fixture
def store(fake: FakeDaemon) -> KuboStore:
    return KuboStore(
        "http://fake:5001", transport=httpx.MockTransport(fake), backoff=0.001, prefetch=4
    )


def test_kubo_add_streams_multipart_and_returns_canonical_cid(
    store: KuboStore, fake: FakeDaemon
) -> None:
    data = pseudo_random(3 * CHUNK + 1)
    cid = store.add_stream(iter([data[:10], data[10:]]))
    assert cid == compute_cid(data).cid
    assert store.get_bytes(cid) == data


def test_kubo_add_daemon_reports_other_cid_raises_integrity_error(
    store: KuboStore, fake: FakeDaemon
) -> None:
    # A daemon importing with other settings (e.g. CIDv0 or 1 MiB chunks).
    fake.add_answer = "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"
    with pytest.raises(IntegrityError, match="differs from the standard layout"):
        store.add_bytes(b"content")


def test_kubo_substituted_block_raises_integrity_error(store: KuboStore, fake: FakeDaemon) -> None:
    cid = fake.load(pseudo_random(3 * CHUNK))
    decoy = pseudo_random(CHUNK, seed=9)
    fake.tamper = lambda c, data: decoy if len(data) == CHUNK else data
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_kubo_truncated_block_raises_integrity_error(store: KuboStore, fake: FakeDaemon) -> None:
    cid = fake.load(pseudo_random(2 * CHUNK))
    fake.tamper = lambda c, data: data[: len(data) // 2] if c != cid else data
    with pytest.raises(IntegrityError):
        b"".join(store.stream(cid))


def test_kubo_truncated_root_raises_integrity_error(store: KuboStore, fake: FakeDaemon) -> None:
    cid = fake.load(pseudo_random(2 * CHUNK))
    fake.tamper = lambda c, data: data[:-5] if c == cid else data
    with pytest.raises(IntegrityError):
        store.get_bytes(cid)


def test_kubo_oversized_block_raises_integrity_error(store: KuboStore, fake: FakeDaemon) -> None:
    cid = fake.load(b"small")
    fake.tamper = lambda c, data: data * 1_000_000
    with pytest.raises(IntegrityError, match="more than"):
        store.get_bytes(cid)


def test_kubo_block_timeout_raises_artifact_not_found(store: KuboStore) -> None:
    missing = compute_cid(b"nobody has this").cid
    with pytest.raises(ArtifactNotFound) as info:
        store.get_bytes(missing)
    assert info.value.cid == missing


def test_kubo_missing_inner_block_names_root(store: KuboStore, fake: FakeDaemon) -> None:
    cid = fake.load(pseudo_random(2 * CHUNK))
    leaf = next(c for c, data in fake.blocks.items() if len(data) == CHUNK)
    del fake.blocks[leaf]
    with pytest.raises(ArtifactNotFound) as info:
        store.get_bytes(cid)
    assert info.value.cid == cid
    assert leaf in str(info.value)


def test_kubo_transient_503_is_retried(store: KuboStore, fake: FakeDaemon) -> None:
    fake.fail_first = 2
    assert store.version() == "0.0-fake"
    assert fake.calls == ["version"] * 3


def test_kubo_persistent_503_raises_unreachable(fake: FakeDaemon) -> None:
    fake.fail_first = 100
    store = KuboStore("http://fake:5001", transport=httpx.MockTransport(fake), retries=2, backoff=0)
    with pytest.raises(StoreUnreachable, match="HTTP 503"):
        store.version()
    assert len(fake.calls) == 3


def test_kubo_unpin_not_pinned_is_noop(store: KuboStore) -> None:
    store.unpin(compute_cid(b"x").cid)


def test_kubo_unknown_command_raises_store_error(store: KuboStore) -> None:
    with pytest.raises(StoreError, match="pin/ls"):
        store.pins()


def test_kubo_garbage_cid_raises_invalid_cid_without_request(
    store: KuboStore, fake: FakeDaemon
) -> None:
    with pytest.raises(InvalidCid):
        store.stream("Qm-garbage")
    with pytest.raises(InvalidCid):
        store.pin("bafy")
    assert fake.calls == []


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_kubo_nothing_listening_raises_one_line_unreachable() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    with KuboStore(url, retries=2, backoff=0.01) as store, pytest.raises(StoreUnreachable) as info:
        store.add_bytes(b"data")
    message = str(info.value)
    assert "\n" not in message
    assert url in message and "refused" in message
    assert info.value.url == url


def test_kubo_unreachable_one_shot_stream_is_retried_before_first_byte() -> None:
    # Connection refused happens before the body is read, so even a generator is safe to retry.
    consumed: list[bytes] = []

    def source() -> Iterator[bytes]:
        for piece in (b"a", b"b"):
            consumed.append(piece)
            yield piece

    store = KuboStore(f"http://127.0.0.1:{_closed_port()}", retries=1, backoff=0.01)
    with pytest.raises(StoreUnreachable):
        store.add_stream(source())
    assert consumed == []


def test_kubo_multiaddr_spec_opens_rpc_store() -> None:
    from market.store import open_store

    store = open_store("/ip4/127.0.0.1/tcp/5001")
    assert isinstance(store, KuboStore)
    assert store.location == "http://127.0.0.1:5001"
    assert BlockRef.parse(compute_cid(b"").cid).codec == 0x55
