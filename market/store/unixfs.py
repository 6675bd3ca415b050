"""The two protobuf messages of a UnixFS file: dag-pb `PBNode`/`PBLink` and UnixFS `Data`.

Encoding follows the canonical form Kubo and js-ipfs write, byte for byte: in a
`PBNode` the links (field 2) come before the data (field 1); every link carries
Hash, an empty Name and Tsize; UnixFS `Data` writes Type, Data (only when
present), filesize, then one unpacked varint per blocksize.  Any other byte
order would give other CIDs for the same file.

Decoding is for blocks that have already passed their hash check, yet it still
treats them as hostile: every length is bounds-checked and a malformed message
raises `IntegrityError`, never `IndexError`.  This module must never do I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from market.store.errors import IntegrityError

_VARINT = 0
_I64 = 1
_LEN = 2
_I32 = 5


class UnixFSType(IntEnum):
    """UnixFS `Data.Type`; the store reads `RAW` and `FILE` and writes only `FILE`."""

    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True, slots=True)
class PBLink:
    """One dag-pb link: the child's binary CID and the cumulative size below it."""

    hash: bytes
    tsize: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class PBNode:
    """A decoded dag-pb node."""

    links: tuple[PBLink, ...]
    data: bytes | None


@dataclass(frozen=True, slots=True)
class UnixFSData:
    """A decoded UnixFS `Data` message (the fields a file needs)."""

    type: int
    data: bytes = b""
    filesize: int | None = None
    blocksizes: tuple[int, ...] = field(default_factory=tuple)


def encode_varint(value: int) -> bytes:
    """Unsigned LEB128, as protobuf writes varints."""
    if value < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field_number: int, wire_type: int) -> bytes:
    return encode_varint((field_number << 3) | wire_type)


def _len_field(field_number: int, payload: bytes) -> bytes:
    return _key(field_number, _LEN) + encode_varint(len(payload)) + payload


def encode_file_data(filesize: int, blocksizes: Sequence[int], data: bytes = b"") -> bytes:
    """UnixFS `Data` of a File node (type, optional inline data, filesize, blocksizes)."""
    out = bytearray(_key(1, _VARINT) + encode_varint(UnixFSType.FILE))
    if data:
        out += _len_field(2, data)
    out += _key(3, _VARINT) + encode_varint(filesize)
    for size in blocksizes:
        out += _key(4, _VARINT) + encode_varint(size)
    return bytes(out)


def encode_pbnode(links: Sequence[PBLink], data: bytes | None) -> bytes:
    """Canonical dag-pb bytes: links first, then data."""
    out = bytearray()
    for link in links:
        body = (
            _len_field(1, link.hash)
            + _len_field(2, link.name.encode("utf-8"))
            + _key(3, _VARINT)
            + encode_varint(link.tsize)
        )
        out += _len_field(2, body)
    if data is not None:
        out += _len_field(1, data)
    return bytes(out)


class _Reader:
    """A bounds-checked cursor over one protobuf message."""

    __slots__ = ("buf", "cid", "pos")

    def __init__(self, buf: bytes, cid: str) -> None:
        self.buf = buf
        self.pos = 0
        self.cid = cid

    def done(self) -> bool:
        return self.pos >= len(self.buf)

    def fail(self, why: str) -> IntegrityError:
        return IntegrityError(self.cid, f"malformed node: {why}")

    def varint(self) -> int:
        result = 0
        shift = 0
        while True:
            if self.pos >= len(self.buf):
                raise self.fail("truncated varint")
            byte = self.buf[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 63:
                raise self.fail("varint longer than 64 bits")

    def key(self) -> tuple[int, int]:
        key = self.varint()
        return key >> 3, key & 7

    def length_delimited(self) -> bytes:
        length = self.varint()
        end = self.pos + length
        if end > len(self.buf):
            raise self.fail("field runs past the end of the block")
        chunk = self.buf[self.pos : end]
        self.pos = end
        return chunk

    def skip(self, wire_type: int) -> None:
        if wire_type == _VARINT:
            self.varint()
        elif wire_type == _LEN:
            self.length_delimited()
        elif wire_type in (_I64, _I32):
            width = 8 if wire_type == _I64 else 4
            if self.pos + width > len(self.buf):
                raise self.fail("truncated fixed-width field")
            self.pos += width
        else:
            raise self.fail(f"unsupported wire type {wire_type}")


def decode_pbnode(block: bytes, cid: str) -> PBNode:
    """Decode a dag-pb block (`cid` only labels errors)."""
    reader = _Reader(block, cid)
    links: list[PBLink] = []
    data: bytes | None = None
    while not reader.done():
        number, wire = reader.key()
        if number == 2 and wire == _LEN:
            links.append(_decode_link(reader.length_delimited(), cid))
        elif number == 1 and wire == _LEN:
            data = reader.length_delimited()
        else:
            raise reader.fail(f"unexpected field {number} (wire type {wire}) in PBNode")
    return PBNode(tuple(links), data)


def _decode_link(body: bytes, cid: str) -> PBLink:
    reader = _Reader(body, cid)
    hash_: bytes | None = None
    name = ""
    tsize = 0
    while not reader.done():
        number, wire = reader.key()
        if number == 1 and wire == _LEN:
            hash_ = reader.length_delimited()
        elif number == 2 and wire == _LEN:
            try:
                name = reader.length_delimited().decode("utf-8")
            except UnicodeDecodeError:
                raise reader.fail("link name is not UTF-8") from None
        elif number == 3 and wire == _VARINT:
            tsize = reader.varint()
        else:
            raise reader.fail(f"unexpected field {number} (wire type {wire}) in PBLink")
    if hash_ is None:
        raise reader.fail("link without a hash")
    return PBLink(hash_, tsize, name)


def decode_unixfs(data: bytes, cid: str) -> UnixFSData:
    """Decode UnixFS `Data`; unknown fields (mode, mtime, fanout, ...) are skipped."""
    reader = _Reader(data, cid)
    type_: int | None = None
    inline = b""
    filesize: int | None = None
    blocksizes: list[int] = []
    while not reader.done():
        number, wire = reader.key()
        if number == 1 and wire == _VARINT:
            type_ = reader.varint()
        elif number == 2 and wire == _LEN:
            inline = reader.length_delimited()
        elif number == 3 and wire == _VARINT:
            filesize = reader.varint()
        elif number == 4 and wire == _VARINT:
            blocksizes.append(reader.varint())
        elif number == 4 and wire == _LEN:  # packed encoding, legal protobuf
            packed = _Reader(reader.length_delimited(), cid)
            while not packed.done():
                blocksizes.append(packed.varint())
        else:
            reader.skip(wire)
    if type_ is None:
        raise reader.fail("UnixFS data without a type")
    return UnixFSData(type_, inline, filesize, tuple(blocksizes))
