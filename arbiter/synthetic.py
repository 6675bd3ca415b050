"""Synthetic training traces: every position of a huge trace as a hash, computed on demand.

For protocol tests and the dispute benchmark only: a `SyntheticTrace` of 2^20 steps with
2^12 operators each costs nothing to hold, and a `divergence` makes it a cheater's trace
that agrees with the honest one up to one operator-chain link and differs after it.
Nothing here trains a model; a synthetic trace can never be committed for a real job.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property

from chain.types import Cid
from repops.artifact import commit_file
from repops.merkle import merkle_proof, merkle_root

SYNTHETIC_FILE_BYTES = 10_000
"""Size of each synthetic checkpoint file: three chunks, the last one short."""


@dataclass(frozen=True)
class Divergence:
    """Where a trace starts lying: link j (0..M+1) of step t; everything after differs.

    j = 0 lies about the batch (h_0); j = M + 1 lies only in the state the step produces;
    step = -1 lies about the initial state itself (and so about everything).
    """

    step: int
    link: int


@dataclass
class SyntheticTrace:
    """Deterministic hashes for every checkpoint, step state and operator link."""

    seed: int
    checkpoints: int  # m: the trace commits m + 1 leaves
    k: int  # steps per checkpoint
    ops: int  # M, operators per step
    divergence: Divergence | None = None
    _cache: dict[tuple[str, int, int], bytes] = field(default_factory=dict, repr=False)

    # ----------------------------------------------------------- TraceView

    def spec_hash(self) -> bytes:
        return hashlib.sha256(f"spec-{self.seed}".encode()).digest()

    def checkpoint_count(self) -> int:
        return self.checkpoints + 1

    def steps_per_checkpoint(self) -> int:
        return self.k

    def checkpoint_leaf(self, index: int) -> bytes:
        return self._state(index * self.k)

    def checkpoint_proof(self, index: int) -> list[bytes]:
        return merkle_proof(self.leaves, index)

    def step_state(self, checkpoint: int, offset: int) -> bytes:
        return self._state(checkpoint * self.k + offset)

    def op_count(self, step: int) -> int:
        return self.ops

    def op_link(self, step: int, j: int) -> bytes:
        return self._value("link", step, j, lies=self._lies_at_link(step, j))

    # ------------------------------------------------------ ArtifactSource

    def file_bytes(self, checkpoint: int) -> bytes:
        """A stand-in checkpoint file: its state hash repeated to SYNTHETIC_FILE_BYTES."""
        leaf = self.checkpoint_leaf(checkpoint)
        return (leaf * (SYNTHETIC_FILE_BYTES // 32 + 1))[:SYNTHETIC_FILE_BYTES]

    def file_cid(self, checkpoint: int) -> Cid:
        return Cid(f"bafkreisyntheticcheckpoint{checkpoint}")

    def file_roots(self) -> list[bytes]:
        return [commit_file(self.file_bytes(i)).root for i in range(self.checkpoints + 1)]

    @cached_property
    def files_root(self) -> bytes:
        return merkle_root(self.file_roots())

    # ------------------------------------------------------------- helpers

    @cached_property
    def leaves(self) -> list[bytes]:
        return [self.checkpoint_leaf(i) for i in range(self.checkpoints + 1)]

    @cached_property
    def trace_root(self) -> bytes:
        return merkle_root(self.leaves)

    def honest(self) -> SyntheticTrace:
        """The same trace without its divergence."""
        return SyntheticTrace(self.seed, self.checkpoints, self.k, self.ops)

    def _state(self, step: int) -> bytes:
        d = self.divergence
        return self._value("state", step, 0, lies=d is not None and step > d.step)

    def _lies_at_link(self, step: int, j: int) -> bool:
        d = self.divergence
        return d is not None and (step > d.step or (step == d.step and j >= d.link))

    def _value(self, kind: str, a: int, b: int, *, lies: bool) -> bytes:
        key = (kind + ("!" if lies else ""), a, b)
        value = self._cache.get(key)
        if value is None:
            salt = f"{self.seed}-lie" if lies else str(self.seed)
            value = hashlib.sha256(f"{salt}/{kind}/{a}/{b}".encode()).digest()
            self._cache[key] = value
        return value
