"""The positional keccak256 Merkle tree over checkpoint state hashes (DESIGN.md section 5).

Encoding (the Solidity verifier implements exactly this; keep both in step):

* Leaves are 32-byte values (the stateHashes), used as they are: no leaf hashing,
  no domain tag.
* The leaf list is padded with 32 zero bytes up to the next power of two.  A single
  leaf is its own root (depth 0).  An empty list has no root (error).
* An internal node is keccak256(left ‖ right): 64 bytes in, 32 out.
* A proof for leaf `index` is the list of sibling hashes from the leaf level upward
  (length = depth = log2 of the padded size).  Bit i of `index` (least significant
  first) is 1 when the node on the path at level i is a right child, i.e. the parent
  is keccak256(sibling ‖ node); otherwise keccak256(node ‖ sibling).
* `verify_merkle_proof` also rejects an index that does not fit in len(proof) bits.

This module must never hash with anything but keccak256 nor reorder leaves.
"""

from __future__ import annotations

from collections.abc import Sequence

from eth_hash.auto import keccak

from repops.errors import RepopsError

ZERO_LEAF = b"\x00" * 32


def _check_leaf(leaf: bytes) -> None:
    if len(leaf) != 32:
        raise RepopsError(f"Merkle leaf must be 32 bytes, got {len(leaf)}")


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise RepopsError("Merkle tree of zero leaves is undefined")
    for leaf in leaves:
        _check_leaf(leaf)
    size = 1
    while size < len(leaves):
        size *= 2
    level = [bytes(x) for x in leaves] + [ZERO_LEAF] * (size - len(leaves))
    levels = [level]
    while len(level) > 1:
        level = [keccak(level[i] + level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """Root of the zero-padded positional tree over `leaves`."""
    return _levels(leaves)[-1][0]


def merkle_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Sibling hashes from the leaf level upward for leaf `index`."""
    if not 0 <= index < len(leaves):
        raise RepopsError(f"leaf index {index} out of range [0, {len(leaves)})")
    proof = []
    for level in _levels(leaves)[:-1]:
        proof.append(level[index ^ 1])
        index //= 2
    return proof


def verify_merkle_proof(root: bytes, leaf: bytes, index: int, proof: Sequence[bytes]) -> bool:
    """True iff `proof` shows `leaf` at position `index` under `root`."""
    if len(root) != 32 or len(leaf) != 32 or index < 0 or index >= (1 << len(proof)):
        return False
    node = bytes(leaf)
    for sibling in proof:
        if len(sibling) != 32:
            return False
        node = keccak(sibling + node) if index & 1 else keccak(node + sibling)
        index >>= 1
    return node == root
