"""Build and read UnixFS file DAGs: the part that makes our CIDs equal Kubo's.

`UnixFSImporter` turns a byte stream into blocks exactly as
`ipfs add --cid-version=1 --raw-leaves` does with the default chunker: fixed
256 KiB chunks stored as raw leaves, a balanced DAG of dag-pb File nodes with at
most 174 links each, and a lone chunk (or an empty file) stored as the root
itself.  The tree is built bottom-up as the bytes arrive: a full group of 174
entries becomes a parent at once, so memory is one chunk plus at most 174
pending entries per level, whatever the file size.

`read_file` walks a DAG from its root and yields the file's bytes, verifying
every block against the CID that names it and every node's sizes against its
children before a byte of that block is released.  It must never yield bytes
from a block it has not hashed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from market.store.cid import DAG_PB, RAW, BlockRef
from market.store.errors import IntegrityError, NotAFile
from market.store.unixfs import (
    PBLink,
    UnixFSType,
    decode_pbnode,
    decode_unixfs,
    encode_file_data,
    encode_pbnode,
)

CHUNK_SIZE: Final = 256 * 1024
"""Kubo's and js-ipfs's default fixed-size chunker (`size-262144`)."""
MAX_LINKS: Final = 174
"""Links per node of the balanced layout in Kubo and js-ipfs."""
MAX_BLOCK_SIZE: Final = 2 * 1024 * 1024
"""Largest block the reader accepts; bigger is hostile (Kubo refuses > 1 MiB by default)."""
MAX_DEPTH: Final = 32
"""Deepest DAG the reader walks; a 174-ary tree of depth 8 already holds exabytes."""

BlockSink = Callable[[BlockRef, bytes], None]
"""Receives each finished block (reference, bytes); children always come before parents."""

BlockFetcher = Callable[[Sequence[BlockRef]], Iterator[bytes]]
"""Yields the (unverified) bytes of each requested block, in order; may fetch ahead."""


@dataclass(frozen=True, slots=True)
class _Entry:
    ref: BlockRef
    tsize: int  # cumulative encoded size below and including the block (dag-pb Tsize)
    filesize: int  # file bytes below the block (UnixFS blocksize)


class UnixFSImporter:
    """Chunk a byte stream into a balanced UnixFS DAG, emitting blocks to `sink`.

    With `sink=None` it only computes the CID (used to check a daemon's answer).
    """

    def __init__(
        self,
        sink: BlockSink | None = None,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_links: int = MAX_LINKS,
    ) -> None:
        if chunk_size <= 0 or max_links < 2:
            raise ValueError("chunk_size must be positive and max_links at least 2")
        self._sink = sink
        self._chunk_size = chunk_size
        self._max_links = max_links
        self._buf = bytearray()
        self._levels: list[list[_Entry]] = [[]]
        self._leaves = 0
        self._finished = False
        self.size = 0
        """Bytes written so far."""

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append bytes to the file; full chunks become blocks immediately."""
        if self._finished:
            raise RuntimeError("write after finish")
        view = memoryview(data).cast("B")
        self.size += len(view)
        chunk = self._chunk_size
        if self._buf:
            need = chunk - len(self._buf)
            self._buf += view[:need]
            view = view[need:]
            if len(self._buf) < chunk:
                return
            self._leaf(bytes(self._buf))
            self._buf.clear()
        while len(view) >= chunk:
            self._leaf(bytes(view[:chunk]))
            view = view[chunk:]
        self._buf += view

    def finish(self) -> BlockRef:
        """Flush the last chunk, close every open level and return the root."""
        if self._finished:
            raise RuntimeError("finish called twice")
        self._finished = True
        if self._buf or self._leaves == 0:
            self._leaf(bytes(self._buf))  # an empty file is one empty raw leaf
            self._buf.clear()
        carry: _Entry | None = None
        level = 0
        while True:
            items = self._levels[level] + ([carry] if carry is not None else [])
            self._levels[level] = []
            if level == len(self._levels) - 1 and len(items) == 1:
                return items[0].ref
            # A partial group still becomes a parent, even of one child: that is
            # how both Kubo's top-down and js-ipfs's bottom-up balanced layouts
            # end, and what keeps every leaf at the same depth.
            carry = self._node(items) if items else None
            level += 1
            if level == len(self._levels):
                self._levels.append([])

    def _leaf(self, data: bytes) -> None:
        ref = BlockRef.for_block(RAW, data)
        if self._sink is not None:
            self._sink(ref, data)
        self._leaves += 1
        self._push(0, _Entry(ref, len(data), len(data)))

    def _push(self, level: int, entry: _Entry) -> None:
        group = self._levels[level]
        group.append(entry)
        if len(group) == self._max_links:
            self._levels[level] = []
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._push(level + 1, self._node(group))

    def _node(self, children: Sequence[_Entry]) -> _Entry:
        filesize = sum(child.filesize for child in children)
        data = encode_file_data(filesize, [child.filesize for child in children])
        block = encode_pbnode([PBLink(child.ref.binary, child.tsize) for child in children], data)
        ref = BlockRef.for_block(DAG_PB, block)
        if self._sink is not None:
            self._sink(ref, block)
        return _Entry(ref, len(block) + sum(child.tsize for child in children), filesize)


def compute_cid(data: bytes | bytearray | memoryview) -> BlockRef:
    """The root `ipfs add --cid-version=1 --raw-leaves` would give `data` (nothing stored)."""
    importer = UnixFSImporter()
    importer.write(data)
    return importer.finish()


def serial_fetcher(get_block: Callable[[BlockRef], bytes]) -> BlockFetcher:
    """A `BlockFetcher` that fetches one block at a time with `get_block`."""

    def fetch(refs: Sequence[BlockRef]) -> Iterator[bytes]:
        for ref in refs:
            yield get_block(ref)

    return fetch


def read_file(root: BlockRef, fetch: BlockFetcher) -> Iterator[bytes]:
    """Yield the bytes of the UnixFS file under `root`, verifying the whole DAG."""
    for block in fetch([root]):
        yield from _walk(root, block, None, fetch, 0)


def _walk(
    ref: BlockRef, block: bytes, expected: int | None, fetch: BlockFetcher, depth: int
) -> Iterator[bytes]:
    if len(block) > MAX_BLOCK_SIZE:
        raise IntegrityError(ref.cid, f"block of {len(block)} bytes exceeds {MAX_BLOCK_SIZE}")
    ref.verify(block)
    if ref.codec == RAW:
        if expected is not None and len(block) != expected:
            raise IntegrityError(
                ref.cid, f"leaf holds {len(block)} bytes, its parent says {expected}"
            )
        if block:
            yield block
        return
    if depth >= MAX_DEPTH:
        raise IntegrityError(ref.cid, f"DAG deeper than {MAX_DEPTH} levels")
    node = decode_pbnode(block, ref.cid)
    if node.data is None:
        raise IntegrityError(ref.cid, "dag-pb node without UnixFS data")
    unixfs = decode_unixfs(node.data, ref.cid)
    if unixfs.type not in (UnixFSType.FILE, UnixFSType.RAW):
        try:
            kind = UnixFSType(unixfs.type).name.lower()
        except ValueError:
            kind = f"node of type {unixfs.type}"
        raise NotAFile(ref.cid, kind)
    if len(unixfs.blocksizes) != len(node.links):
        raise IntegrityError(
            ref.cid, f"{len(node.links)} links but {len(unixfs.blocksizes)} blocksizes"
        )
    total = len(unixfs.data) + sum(unixfs.blocksizes)
    if unixfs.filesize is not None and unixfs.filesize != total:
        raise IntegrityError(ref.cid, f"filesize {unixfs.filesize} != sum of parts {total}")
    if expected is not None and total != expected:
        raise IntegrityError(ref.cid, f"node holds {total} bytes, its parent says {expected}")
    if unixfs.data:
        yield unixfs.data
    children = [BlockRef.from_binary(link.hash, parent=ref.cid) for link in node.links]
    blocks = fetch(children)
    for child, size in zip(children, unixfs.blocksizes, strict=True):
        child_block = next(blocks, None)
        if child_block is None:
            raise IntegrityError(ref.cid, "block source ended early")
        yield from _walk(child, child_block, size, fetch, depth + 1)
