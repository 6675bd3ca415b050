"""Shared helpers for the artifact-store tests (deterministic data, block surgery)."""

from __future__ import annotations

import random
from pathlib import Path

from market.store import EmbeddedStore
from market.store.cid import DAG_PB, RAW, BlockRef
from market.store.unixfs import decode_pbnode

CHUNK = 256 * 1024


def pseudo_random(size: int, seed: int = 0) -> bytes:
    """`size` incompressible bytes that are the same on every run."""
    return random.Random(seed).randbytes(size)


def write_pseudo_random(path: Path, size: int, seed: int = 0) -> Path:
    """Write `size` deterministic bytes to `path` one chunk at a time."""
    rng = random.Random(seed)
    with open(path, "wb") as handle:
        left = size
        while left:
            step = min(CHUNK, left)
            handle.write(rng.randbytes(step))
            left -= step
    return path


def leaves_of(store: EmbeddedStore, cid: str) -> list[BlockRef]:
    """The raw leaves under `cid`, in file order (reads only the dag-pb nodes)."""
    out: list[BlockRef] = []

    def walk(ref: BlockRef) -> None:
        if ref.codec == RAW:
            out.append(ref)
            return
        assert ref.codec == DAG_PB
        node = decode_pbnode(store.block_path(ref.cid).read_bytes(), ref.cid)
        for link in node.links:
            walk(BlockRef.from_binary(link.hash, parent=ref.cid))

    walk(BlockRef.parse(cid))
    return out
