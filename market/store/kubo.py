"""The artifact store over an IPFS daemon's Kubo RPC API (`/api/v0/...`), with httpx.

It speaks the HTTP RPC API directly: `ipfshttpclient` refuses every daemon newer
than 0.7 and is unmaintained.  Works with Kubo and with js-ipfs (which serves the
same API).  Uploads are streamed as a chunked multipart body and downloads are
walked block by block (`block/get`), each block hashed against its CID before its
bytes are released, with a small read-ahead window, so memory stays bounded
whatever the file size.

Every upload is also chunked locally as `ipfs add --cid-version=1 --raw-leaves`
would, and the daemon's answer must equal that CID: a daemon configured with
another chunker or layout is refused instead of silently naming the artifact
differently from the embedded store and the chain.

Transient failures (refused or reset connections, 502/503/504) are retried with
exponential backoff; when the daemon stays away the caller gets one
`StoreUnreachable` line.  This module must never let an httpx exception escape.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Final

import httpx

from chain.types import Cid
from market.store.base import ArtifactStore, Source, iter_source, parse
from market.store.cid import BlockRef, normalize_cid
from market.store.dag import (
    CHUNK_SIZE,
    MAX_BLOCK_SIZE,
    MAX_LINKS,
    BlockFetcher,
    UnixFSImporter,
    read_file,
)
from market.store.errors import (
    ArtifactNotFound,
    IntegrityError,
    InvalidCid,
    StoreError,
    StoreUnreachable,
)

log = logging.getLogger(__name__)

DEFAULT_URL: Final = "http://127.0.0.1:5001"

_ADD_PARAMS: Final = {
    "cid-version": "1",
    "raw-leaves": "true",
    "chunker": f"size-{CHUNK_SIZE}",
    "hash": "sha2-256",
    "trickle": "false",
    "progress": "false",
    "quieter": "true",
}
_TRANSIENT_STATUS: Final = frozenset({502, 503, 504})
_NOT_FOUND_HINTS: Final = ("not found", "could not find", "timed out", "no link named")


class _BodyStarted(Exception):
    """The upload body was partly consumed from a one-shot source: not retriable."""


class KuboStore(ArtifactStore):
    """An `ArtifactStore` backed by an IPFS daemon's RPC API."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        timeout: float = 60.0,
        fetch_timeout: float = 60.0,
        has_timeout: float = 1.0,
        retries: int = 4,
        backoff: float = 0.25,
        prefetch: int = 8,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        """Talk to the daemon at `url` (its API address, e.g. http://127.0.0.1:5001).

        `timeout` bounds each network read/write; `fetch_timeout` is how long the
        daemon may search for a block it lacks before the artifact counts as not
        found; `has_timeout` the same for `has`.  `retries` extra attempts follow
        a transient failure, after `backoff`, 2*`backoff`, ... seconds.
        `prefetch` blocks are fetched ahead while reading.  `transport` replaces
        the network (tests).
        """
        self.location = url.rstrip("/")
        self._api = self.location + "/api/v0"
        self._fetch_timeout = fetch_timeout
        self._has_timeout = has_timeout
        self._retries = max(0, retries)
        self._backoff = backoff
        self._prefetch = max(1, prefetch)
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            transport=transport,
            limits=httpx.Limits(max_connections=self._prefetch + 2),
        )
        self._pool: ThreadPoolExecutor | None = None

    # -- transport ---------------------------------------------------------------

    def _request(
        self,
        command: str,
        params: Mapping[str, str],
        *,
        body: Callable[[], Iterable[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
        cid: str | None = None,
        max_bytes: int | None = None,
    ) -> bytes:
        """POST `command`, retrying transient failures; return the body of a 200.

        `body` makes a fresh upload body per attempt.  Errors map to the
        store's exceptions; `cid` names the artifact in them.
        """
        url = f"{self._api}/{command}"
        reason = "no attempt made"
        for attempt in range(self._retries + 1):
            if attempt:
                time.sleep(self._backoff * 2 ** (attempt - 1))
            try:
                content = body() if body is not None else None
                request = self._client.build_request(
                    "POST", url, params=params, content=content, headers=headers
                )
                response = self._client.send(request, stream=True)
                try:
                    if response.status_code in _TRANSIENT_STATUS:
                        reason = f"HTTP {response.status_code} from {command}"
                        continue
                    data = self._read_capped(response, max_bytes, cid)
                finally:
                    response.close()
            except _BodyStarted:
                raise StoreUnreachable(
                    self.location, f"connection lost during {command} of a one-shot stream"
                ) from None
            except httpx.TimeoutException as exc:
                reason = f"no answer to {command} within the timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                reason = _describe(exc)
            else:
                if response.status_code == 200:
                    return data
                raise self._error(command, response.status_code, data, cid)
            log.debug("%s attempt %d failed: %s", command, attempt + 1, reason)
        raise StoreUnreachable(self.location, reason)

    @staticmethod
    def _read_capped(response: httpx.Response, max_bytes: int | None, cid: str | None) -> bytes:
        out = bytearray()
        for piece in response.iter_bytes():
            out += piece
            if max_bytes is not None and len(out) > max_bytes and response.status_code == 200:
                raise IntegrityError(cid or "?", f"daemon sent more than {max_bytes} bytes")
        return bytes(out)

    def _error(self, command: str, status: int, data: bytes, cid: str | None) -> StoreError:
        message = _error_message(data) or f"HTTP {status}"
        if cid is not None and any(hint in message.lower() for hint in _NOT_FOUND_HINTS):
            return ArtifactNotFound(cid, f"IPFS daemon at {self.location} ({message})")
        if status == 404:
            return StoreError(f"IPFS daemon at {self.location} has no RPC command {command}")
        return StoreError(f"IPFS daemon at {self.location}: {command} failed: {message}")

    def _json(self, command: str, params: Mapping[str, str], cid: str | None = None) -> object:
        data = self._request(command, params, cid=cid)
        try:
            return json.loads(data)
        except ValueError:
            raise StoreError(f"IPFS daemon at {self.location}: {command} sent no JSON") from None

    # -- ArtifactStore: writing ----------------------------------------------------

    def add_stream(self, source: Source, *, pin: bool = True) -> Cid:
        pieces = iter_source(source)
        started = False

        def one_shot() -> Iterator[bytes]:
            nonlocal started
            if started:
                raise _BodyStarted
            started = True
            yield from pieces

        return self._add(one_shot, pin)

    def add_bytes(self, data: bytes | bytearray | memoryview, *, pin: bool = True) -> Cid:
        payload = bytes(data)
        return self._add(lambda: iter((payload,)), pin)

    def add_file(self, path: str | os.PathLike[str], *, pin: bool = True) -> Cid:
        def reopen() -> Iterator[bytes]:
            with open(path, "rb") as handle:
                yield from iter_source(handle)

        return self._add(reopen, pin)

    def _add(self, open_source: Callable[[], Iterator[bytes]], pin: bool) -> Cid:
        boundary = secrets.token_hex(16)
        head = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="file"; filename="artifact"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        importers: list[UnixFSImporter] = []

        def body() -> Iterator[bytes]:
            # A fresh local importer per attempt: it sees exactly the bytes sent.
            importer = UnixFSImporter()
            importers.append(importer)
            source = open_source()
            yield head
            for piece in source:
                importer.write(piece)
                yield piece
            yield tail

        params = dict(_ADD_PARAMS, pin="true" if pin else "false")
        data = self._request(
            "add",
            params,
            body=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        answer = _last_hash(data)
        if answer is None:
            raise StoreError(f"IPFS daemon at {self.location}: add answered without a Hash")
        expected = importers[-1].finish()
        try:
            got = normalize_cid(answer)
        except InvalidCid:
            raise IntegrityError(answer, "daemon answered add with an unusable CID") from None
        if got != expected.cid:
            raise IntegrityError(
                got,
                f"daemon's CID differs from the standard layout's {expected.cid}: its import "
                f"settings are not --cid-version=1 --raw-leaves, {CHUNK_SIZE}-byte chunks, "
                f"{MAX_LINKS} links",
            )
        log.debug("added %s (%d bytes) via %s", got, importers[-1].size, self.location)
        return got

    # -- ArtifactStore: reading ----------------------------------------------------

    def _get_block(self, ref: BlockRef) -> bytes:
        cid = ref.cid
        params = {"arg": cid, "timeout": _duration(self._fetch_timeout)}
        return self._request("block/get", params, cid=cid, max_bytes=MAX_BLOCK_SIZE)

    def _fetcher(self) -> BlockFetcher:
        def fetch(refs: Sequence[BlockRef]) -> Iterator[bytes]:
            if len(refs) == 1 or self._prefetch == 1:
                for ref in refs:
                    yield self._get_block(ref)
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._prefetch, thread_name_prefix="kubo-fetch")
            pool = self._pool
            window: deque[Future[bytes]] = deque()
            todo = iter(refs)
            try:
                for ref in todo:
                    window.append(pool.submit(self._get_block, ref))
                    if len(window) >= self._prefetch:
                        break
                while window:
                    block = window.popleft().result()
                    nxt = next(todo, None)
                    if nxt is not None:
                        window.append(pool.submit(self._get_block, nxt))
                    yield block
            finally:
                for future in window:
                    future.cancel()

        return fetch

    def stream(self, cid: str) -> Iterator[bytes]:
        root = parse(cid)
        return self._stream(root)

    def _stream(self, root: BlockRef) -> Iterator[bytes]:
        try:
            yield from read_file(root, self._fetcher())
        except ArtifactNotFound as exc:
            if exc.cid == root.cid:
                raise
            raise ArtifactNotFound(root.cid, f"{exc.where}; block {exc.cid} missing") from None

    # -- ArtifactStore: pins and presence --------------------------------------------

    def pin(self, cid: str) -> None:
        root = parse(cid).cid
        params = {"arg": root, "recursive": "true", "timeout": _duration(self._fetch_timeout)}
        self._request("pin/add", params, cid=root)

    def unpin(self, cid: str) -> None:
        root = parse(cid).cid
        try:
            self._request("pin/rm", {"arg": root, "recursive": "true"}, cid=root)
        except StoreError as exc:
            if "not pinned" not in str(exc):
                raise

    def pins(self) -> frozenset[Cid]:
        answer = self._json("pin/ls", {"type": "recursive"})
        keys = answer.get("Keys") if isinstance(answer, dict) else None
        if not isinstance(keys, dict):
            raise StoreError(f"IPFS daemon at {self.location}: pin/ls sent no Keys")
        found: set[Cid] = set()
        for key in keys:
            try:
                found.add(normalize_cid(str(key)))
            except InvalidCid:
                log.debug("ignoring pin %s: not a UnixFS file CID", key)
        return frozenset(found)

    def has(self, cid: str) -> bool:
        root = parse(cid).cid
        params = {"arg": root, "offline": "true", "timeout": _duration(self._has_timeout)}
        try:
            self._request("block/stat", params, cid=root)
        except ArtifactNotFound:
            return False
        return True

    # -- daemon ------------------------------------------------------------------

    def version(self) -> str:
        """The daemon's version string (e.g. "0.18.1" for js-ipfs 0.66, "0.32.1" for Kubo)."""
        answer = self._json("version", {})
        version = answer.get("Version") if isinstance(answer, dict) else None
        if not isinstance(version, str):
            raise StoreError(f"IPFS daemon at {self.location}: version sent no Version")
        return version

    def ping(self, timeout_s: float = 0.5) -> str:
        """The daemon's version, asked once (no retries) within `timeout_s`."""
        try:
            response = self._client.post(f"{self._api}/version", timeout=timeout_s)
        except httpx.HTTPError as exc:
            raise StoreUnreachable(self.location, _describe_any(exc)) from None
        if response.status_code != 200:
            raise StoreUnreachable(self.location, f"HTTP {response.status_code} from version")
        return f"{self.location} (ipfs {response.json().get('Version', '?')})"

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._client.close()


def _duration(seconds: float) -> str:
    """A Go-style duration both Kubo and js-ipfs parse."""
    return f"{max(1, round(seconds * 1000))}ms"


def _describe_any(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within the timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.TransportError):
        return _describe(exc)
    return f"{type(exc).__name__}: {exc}"


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.ConnectError):
        cause = str(exc) or "connection failed"
        if "refused" in cause.lower() or "errno 111" in cause.lower():
            return "connection refused (is the daemon running?)"
        return cause
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _error_message(data: bytes) -> str:
    try:
        answer = json.loads(data)
    except ValueError:
        return data[:200].decode("utf-8", "replace").strip()
    if isinstance(answer, dict) and isinstance(answer.get("Message"), str):
        return str(answer["Message"])
    return ""


def _last_hash(data: bytes) -> str | None:
    """The Hash of the last object in add's newline-delimited JSON answer."""
    found: str | None = None
    for line in data.splitlines():
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        if isinstance(answer, dict) and isinstance(answer.get("Hash"), str):
            found = str(answer["Hash"])
    return found
