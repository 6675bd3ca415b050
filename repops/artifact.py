"""File roots: the commitment that lets the chain check a checkpoint file one chunk at a time.

Mirrors contracts/src/lib/ArtifactLib.sol bit for bit (docs/protocol.md §5):

* a file of `length` bytes is cut into `chunk_count(length)` chunks of CHUNK_SIZE = 4096 bytes,
  the last one shorter; the empty file is one empty chunk;
* chunk k's leaf is keccak256(chunk bytes); `chunk_root` is the positional Merkle tree of
  repops.merkle over those leaves;
* file_root = keccak256(length as 8 big-endian bytes ‖ chunk_root);
* a result's files_root is the same Merkle tree over the checkpoints' file roots, leaf i for
  checkpoint i.

This module only hashes bytes: it never parses the file it commits to.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_hash.auto import keccak

from repops.merkle import merkle_proof, merkle_root

CHUNK_SIZE = 4096


def chunk_count(length: int) -> int:
    """Number of chunks of a `length`-byte file (1 for the empty file)."""
    return max(1, -(-length // CHUNK_SIZE))


def chunk(data: bytes, index: int) -> bytes:
    """Chunk `index` of `data` (empty past the end)."""
    return data[index * CHUNK_SIZE : (index + 1) * CHUNK_SIZE]


@dataclass(frozen=True)
class FileCommitment:
    """A file's root and what an availability answer reveals with a chunk."""

    length: int
    chunk_root: bytes
    leaves: tuple[bytes, ...]

    @property
    def root(self) -> bytes:
        return file_root(self.length, self.chunk_root)

    def chunk_proof(self, index: int) -> list[bytes]:
        return merkle_proof(self.leaves, index)


def file_root(length: int, chunk_root: bytes) -> bytes:
    return keccak(length.to_bytes(8, "big") + chunk_root)


def commit_file(data: bytes) -> FileCommitment:
    """The commitment to `data` (chunk leaves kept for later proofs)."""
    leaves = tuple(keccak(chunk(data, k)) for k in range(chunk_count(len(data))))
    return FileCommitment(len(data), merkle_root(leaves), leaves)
