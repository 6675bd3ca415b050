"""The `ArtifactStore` interface every backend implements.

An artifact is one UnixFS file named by the CIDv1 that
`ipfs add --cid-version=1 --raw-leaves` gives it, whichever backend stored it.
Writes take bytes, a file or a stream; reads hand out bytes, a file or a stream
that has been verified block by block against the CID.  Backends implement the
block-level primitives; the shared logic (chunking sources, atomic file output,
error wording) lives here.

A store must never return a byte it has not checked against the CID, and never
hold a whole artifact in memory unless the caller asked for `get_bytes`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

from chain.types import Cid
from market.store.cid import BlockRef
from market.store.errors import ArtifactTooLarge

READ_SIZE: Final = 256 * 1024
"""How much is read from a source per step (one chunk: bounded memory)."""

Source = IO[bytes] | Iterable[bytes]
"""What `add_stream` accepts: a binary file object, or an iterable of byte strings."""


def iter_source(source: Source) -> Iterator[bytes]:
    """The pieces of `source`, at most `READ_SIZE` bytes each from a file object."""
    if isinstance(source, bytes | bytearray | memoryview):
        # Iterating bytes yields ints: take the common mistake as meant.
        yield bytes(source)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while True:
            piece = read(READ_SIZE)
            if not piece:
                return
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError("add_stream needs a binary stream (open the file with 'rb')")
            yield bytes(piece)
    else:
        for piece in source:
            if not isinstance(piece, bytes | bytearray | memoryview):
                raise TypeError(f"add_stream got a {type(piece).__name__} piece, not bytes")
            yield bytes(piece)


class ArtifactStore(ABC):
    """Content-addressed storage of files under Kubo-compatible CIDv1s."""

    location: str
    """Where the store lives (a directory or a daemon URL), for messages."""

    # -- writing -----------------------------------------------------------------

    @abstractmethod
    def add_stream(self, source: Source, *, pin: bool = True) -> Cid:
        """Store everything `source` yields as one file; return its CID."""

    def add_bytes(self, data: bytes | bytearray | memoryview, *, pin: bool = True) -> Cid:
        """Store `data` as one file; return its CID."""
        return self.add_stream([bytes(data)], pin=pin)

    def add_file(self, path: str | os.PathLike[str], *, pin: bool = True) -> Cid:
        """Store the file at `path`, streaming it; return its CID."""
        with open(path, "rb") as handle:
            return self.add_stream(handle, pin=pin)

    # -- reading -----------------------------------------------------------------

    @abstractmethod
    def stream(self, cid: str) -> Iterator[bytes]:
        """The file's bytes in pieces, each released only after its block verified.

        The CID is checked when `stream` is called; a missing or corrupt block
        raises while iterating, so a consumer must treat an exception mid-way as
        "no artifact" (as `get_file` does by writing to a temporary name).
        """

    def get_bytes(self, cid: str, *, max_size: int | None = None) -> bytes:
        """The whole verified file in memory; `max_size` guards against surprises."""
        out = bytearray()
        for piece in self.stream(cid):
            out += piece
            if max_size is not None and len(out) > max_size:
                raise ArtifactTooLarge(cid, max_size)
        return bytes(out)

    def get_file(self, cid: str, dest: str | os.PathLike[str]) -> Path:
        """Write the verified file to `dest` atomically (it appears only when complete)."""
        target = Path(dest)
        pieces = self.stream(cid)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                for piece in pieces:
                    handle.write(piece)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    # -- pins and presence -------------------------------------------------------

    @abstractmethod
    def pin(self, cid: str) -> None:
        """Keep the whole DAG under `cid` (raises `ArtifactNotFound` if it is not all here)."""

    @abstractmethod
    def unpin(self, cid: str) -> None:
        """Drop the pin on `cid`; unpinning what is not pinned is a no-op."""

    @abstractmethod
    def pins(self) -> frozenset[Cid]:
        """The CIDs pinned (recursively) in this store."""

    @abstractmethod
    def has(self, cid: str) -> bool:
        """Whether the root block of `cid` is stored locally (no network lookup)."""

    def ping(self, timeout_s: float = 0.5) -> str:
        """A cheap liveness check within `timeout_s`: what answered (raises StoreError if none).

        Never looks up a CID: an absent block can cost a daemon its whole search timeout.
        """
        return self.location

    # -- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Release connections and threads; the store is unusable afterwards."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


def parse(cid: str) -> BlockRef:
    """Parse a CID argument (raises `InvalidCid`)."""
    return BlockRef.parse(cid)
