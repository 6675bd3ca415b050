"""The embedded artifact store: a directory of IPFS blocks, no daemon needed.

It is Assay's zero-setup default.  Its CIDs are byte-identical to
`ipfs add --cid-version=1 --raw-leaves` (see `dag.py`), so the same artifact has
the same name here, on a Kubo node and on-chain; moving to a real node changes
no hash.  Layout under the root directory::

    blocks/<2 chars>/<cid>   one file per block (sharded like Kubo's flatfs)
    pins/<cid>               an empty file per recursive pin
    tmp/                     staging for atomic writes

Several processes (solver, whistleblower, arbiter) may share one directory:
every file is written under a temporary name and renamed into place, so a
reader sees a whole block or none.  The store must never trust a block on disk:
reads hash every block, and re-adding content overwrites a corrupted copy.
Unpinning only drops the pin; nothing is garbage-collected yet.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from chain.types import Cid
from market.store.base import ArtifactStore, Source, iter_source, parse
from market.store.cid import DAG_PB, BlockRef
from market.store.dag import MAX_BLOCK_SIZE, UnixFSImporter, read_file, serial_fetcher
from market.store.errors import ArtifactNotFound, IntegrityError, InvalidCid, StoreError
from market.store.unixfs import decode_pbnode

log = logging.getLogger(__name__)

_MARKER: Final = "assay-embedded-store"


class EmbeddedStore(ArtifactStore):
    """A local block directory producing Kubo-identical CIDs."""

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        """Open (creating if needed) the store at `root`.

        `fsync=True` makes every block durable before it is renamed into place
        (slower; worth it for a long-lived node, not for tests).
        """
        self.root = Path(root).expanduser().resolve()
        self.location = str(self.root)
        self._fsync = fsync
        self._blocks = self.root / "blocks"
        self._pins = self.root / "pins"
        self._tmp = self.root / "tmp"
        try:
            for folder in (self._blocks, self._pins, self._tmp):
                folder.mkdir(parents=True, exist_ok=True)
            marker = self.root / _MARKER
            if not marker.exists():
                self._write_atomic(marker, b"1\n")
        except OSError as exc:
            raise StoreError(f"cannot open embedded store at {self.root}: {exc.strerror}") from None

    def ping(self, timeout_s: float = 0.5) -> str:
        """The store's folder, if it is still there and writable."""
        if not os.access(self._blocks, os.W_OK):
            raise StoreError(f"embedded store at {self.root}: blocks folder missing or read-only")
        return self.location

    # -- blocks ------------------------------------------------------------------

    def _block_path(self, ref: BlockRef) -> Path:
        name = ref.cid
        return self._blocks / name[-3:-1] / name

    def _write_atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self._tmp, prefix=path.name[-16:] + ".")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self._fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def _put_block(self, ref: BlockRef, data: bytes) -> None:
        path = self._block_path(ref)
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            pass
        else:
            try:
                ref.verify(existing)
                return
            except IntegrityError:
                log.warning("replacing corrupted block %s in %s", ref.cid, self.root)
        self._write_atomic(path, data)

    def _get_block(self, ref: BlockRef) -> bytes:
        try:
            with open(self._block_path(ref), "rb") as handle:
                # One byte over the limit is enough to reject an oversized block.
                return handle.read(MAX_BLOCK_SIZE + 1)
        except FileNotFoundError:
            raise ArtifactNotFound(ref.cid, f"embedded store {self.root}") from None

    # -- ArtifactStore -----------------------------------------------------------

    def add_stream(self, source: Source, *, pin: bool = True) -> Cid:
        importer = UnixFSImporter(self._put_block)
        for piece in iter_source(source):
            importer.write(piece)
        root = importer.finish()
        if pin:
            self._write_atomic(self._pins / root.cid, b"")
        log.debug("added %s (%d bytes) to %s", root.cid, importer.size, self.root)
        return root.cid

    def stream(self, cid: str) -> Iterator[bytes]:
        root = parse(cid)
        return self._stream(root)

    def _stream(self, root: BlockRef) -> Iterator[bytes]:
        try:
            yield from read_file(root, serial_fetcher(self._get_block))
        except ArtifactNotFound as exc:
            if exc.cid == root.cid:
                raise
            raise ArtifactNotFound(
                root.cid, f"embedded store {self.root} (block {exc.cid} is missing)"
            ) from None

    def pin(self, cid: str) -> None:
        root = parse(cid)
        self._require_complete(root)
        self._write_atomic(self._pins / root.cid, b"")

    def _require_complete(self, root: BlockRef) -> None:
        """Raise unless every block under `root` is present (leaves are not re-read)."""
        pending = [root]
        while pending:
            ref = pending.pop()
            if ref.codec != DAG_PB:
                if not self._block_path(ref).exists():
                    raise ArtifactNotFound(
                        root.cid, f"embedded store {self.root} (block {ref.cid} is missing)"
                    )
                continue
            block = self._get_block(ref)
            ref.verify(block)
            node = decode_pbnode(block, ref.cid)
            pending.extend(BlockRef.from_binary(link.hash, parent=ref.cid) for link in node.links)

    def unpin(self, cid: str) -> None:
        root = parse(cid)
        with contextlib.suppress(FileNotFoundError):
            (self._pins / root.cid).unlink()

    def pins(self) -> frozenset[Cid]:
        found: set[Cid] = set()
        for entry in self._pins.iterdir():
            try:
                found.add(parse(entry.name).cid)
            except InvalidCid:
                log.warning("ignoring stray file %s in %s", entry.name, self._pins)
        return frozenset(found)

    def has(self, cid: str) -> bool:
        return self._block_path(parse(cid)).exists()

    def block_path(self, cid: str) -> Path:
        """Where the block named `cid` lives on disk (for tools and tests)."""
        return self._block_path(parse(cid))
