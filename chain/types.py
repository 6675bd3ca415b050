"""The names Assay's packages use for on-chain values.

`NewType`s cost nothing at run time but keep a job id from being passed where a
token amount is expected.  This module must stay free of any import beyond the
standard library: every other package reads it.
"""

from __future__ import annotations

from typing import NewType

JobId = NewType("JobId", int)
"""Index of a job in JobMarket, starting at 1 (0 means "no job")."""

Wei = NewType("Wei", int)
"""An amount of WorkToken in its smallest unit (18 decimals)."""

Hash32 = NewType("Hash32", bytes)
"""A 32-byte digest: sha256 for tensors, states and specs; keccak256 for Merkle nodes."""

Cid = NewType("Cid", str)
"""A CIDv1 in its canonical base32 text form (``bafy...``/``bafk...``)."""

Address = NewType("Address", str)
"""A checksummed 0x-prefixed 20-byte account address."""
