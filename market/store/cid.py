"""CIDs as the store uses them: parse, print, compute and verify.

Every CID the store hands out is a CIDv1 in canonical base32 (`chain.types.Cid`)
over a sha2-256 multihash, with codec `raw` (a leaf) or `dag-pb` (a UnixFS node),
exactly as `ipfs add --cid-version=1 --raw-leaves` produces.  Parsing accepts any
multibase and CIDv0 (which is a dag-pb/sha2-256 CID in another spelling), and
always normalises to that canonical text, so one artifact never has two names.

This module must never accept content without comparing its sha2-256 digest:
`BlockRef.verify` is the one gate between bytes from disk or network and the
rest of Assay.  Multibase/multicodec handling is `multiformats`'s job, not ours.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final

from multiformats import CID

from chain.types import Cid
from market.store.errors import IntegrityError, InvalidCid

RAW: Final = 0x55
"""Multicodec of a raw leaf block (bare file bytes)."""
DAG_PB: Final = 0x70
"""Multicodec of a dag-pb node (UnixFS file or directory node)."""
SHA2_256: Final = 0x12
"""Multihash code of sha2-256, the only hash the store verifies."""

_CODEC_NAMES: Final = {RAW: "raw", DAG_PB: "dag-pb"}


@dataclass(frozen=True, slots=True)
class BlockRef:
    """A verified-shape reference to one block: its codec and sha2-256 digest."""

    codec: int
    digest: bytes

    @classmethod
    def for_block(cls, codec: int, data: bytes | bytearray | memoryview) -> BlockRef:
        """The reference of `data` stored under `codec`."""
        return cls(codec, hashlib.sha256(data).digest())

    @classmethod
    def parse(cls, text: str) -> BlockRef:
        """Parse a CID string; raise `InvalidCid` with a one-line reason on anything else."""
        if not isinstance(text, str) or not text:
            raise InvalidCid(str(text), "empty or not a string")
        try:
            cid = CID.decode(text.strip())
        except Exception as exc:  # multiformats raises several unrelated types
            raise InvalidCid(text, f"not a CID ({type(exc).__name__})") from None
        return cls._from_multiformats(cid, text)

    @classmethod
    def from_binary(cls, data: bytes, *, parent: str) -> BlockRef:
        """Parse a binary CID found in a link of block `parent` (raises `IntegrityError`)."""
        try:
            cid = CID.decode(bytes(data))
            return cls._from_multiformats(cid, data.hex())
        except InvalidCid as exc:
            raise IntegrityError(parent, f"link holds an unusable CID: {exc.reason}") from None
        except Exception:
            raise IntegrityError(parent, "link holds a malformed binary CID") from None

    @classmethod
    def _from_multiformats(cls, cid: CID, shown: str) -> BlockRef:
        codec = int(cid.codec.code)
        if codec not in _CODEC_NAMES:
            raise InvalidCid(shown, f"codec {cid.codec.name} is not a UnixFS file block")
        # Read the multihash header ourselves: asking multiformats for the hash
        # function would try to load its implementation (blake3, ...).
        multihash = bytes(cid.digest)
        if multihash[:2] != bytes((SHA2_256, 32)) or len(multihash) != 34:
            raise InvalidCid(shown, f"multihash 0x{multihash[:1].hex()} is not sha2-256")
        return cls(codec, multihash[2:])

    @property
    def binary(self) -> bytes:
        """The binary CIDv1 (as written in dag-pb links)."""
        return bytes((0x01, self.codec, SHA2_256, 32)) + self.digest

    @property
    def cid(self) -> Cid:
        """The canonical base32 CIDv1 text."""
        text = CID("base32", 1, _CODEC_NAMES[self.codec], ("sha2-256", self.digest)).encode(
            "base32"
        )
        return Cid(str(text))

    def verify(self, data: bytes | bytearray | memoryview) -> None:
        """Raise `IntegrityError` unless `data` hashes to this reference's digest."""
        if hashlib.sha256(data).digest() != self.digest:
            raise IntegrityError(self.cid, "block content does not hash to its CID")

    def __str__(self) -> str:
        return self.cid


def normalize_cid(text: str) -> Cid:
    """The canonical base32 CIDv1 of any CID spelling the store accepts."""
    return BlockRef.parse(text).cid
