"""Interval dissection and trace positions, mirrored exactly from the contracts.

`boundaries` is DissectionLib's split; `position_value` says which hash of a party's trace
sits at a position of each dispute level (see contracts/src/dispute/DisputeTypes.sol).
Pure functions: no chain, no training code.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from chain.generated import Level


class TraceView(Protocol):
    """What one party holds (or claims) about a result's training trace.

    Positions follow DisputeTypes.sol: CHECKPOINT p = 0 is the spec hash and p >= 1 is
    checkpoint leaf p - 1; STEP s is the state hash s steps after checkpoint `base`;
    OP p = 0 is stateHash_t, p = j + 1 is link h_j, p = M + 2 is the end link.
    """

    def spec_hash(self) -> bytes: ...

    def checkpoint_count(self) -> int: ...

    def steps_per_checkpoint(self) -> int: ...

    def checkpoint_leaf(self, index: int) -> bytes: ...

    def checkpoint_proof(self, index: int) -> list[bytes]: ...

    def step_state(self, checkpoint: int, offset: int) -> bytes: ...

    def op_count(self, step: int) -> int: ...

    def op_link(self, step: int, j: int) -> bytes:
        """h_j of `step`'s operator chain, j = 0..M."""
        ...


def parts(lo: int, hi: int, arity: int) -> int:
    """DissectionLib.parts: how many parts [lo, hi] splits into (hi > lo)."""
    if hi <= lo:
        raise ValueError(f"interval [{lo}, {hi}] has no parts")
    return min(arity, hi - lo)


def boundaries(lo: int, hi: int, arity: int) -> list[int]:
    """DissectionLib.boundary for k = 0..parts: lo, the interior points, hi."""
    count = parts(lo, hi, arity)
    return [lo + (hi - lo) * k // count for k in range(count + 1)]


# PositionLib mirrors: the level and position arithmetic of contracts/src/lib/PositionLib.sol.


def leaf_index(position: int) -> int:
    """PositionLib.leafIndex: CHECKPOINT position p >= 1 is trace leaf p - 1."""
    return position - 1


def step_base(lo: int) -> int:
    """PositionLib.stepBase: the agreed checkpoint of STEP entered from CHECKPOINT [lo, lo+1]."""
    return lo - 1


def global_step(checkpoint: int, offset: int, steps_per_checkpoint: int) -> int:
    """PositionLib.globalStep: the step index t of STEP [offset, offset + 1]."""
    return checkpoint * steps_per_checkpoint + offset


def op_end(op_count: int) -> int:
    """PositionLib.opEnd: the OP level spans [0, M + 2]."""
    return op_count + 2


def last_op_position(op_count: int) -> int:
    """PositionLib.lastOpPosition: h_M sits at OP position M + 1."""
    return op_count + 1


def end_link(last_op_hash: bytes, next_state_hash: bytes) -> bytes:
    """PositionLib.endLink: the OP level's end value sha256(h_M ‖ stateHash_{t+1})."""
    return hashlib.sha256(last_op_hash + next_state_hash).digest()


def position_value(trace: TraceView, level: Level, base: int, position: int) -> bytes | None:
    """The hash `trace` puts at `position` of `level`; None where its trace has no such position."""
    if level == Level.CHECKPOINT:
        if position == 0:
            return trace.spec_hash()
        if leaf_index(position) >= trace.checkpoint_count():
            return None
        return trace.checkpoint_leaf(leaf_index(position))
    k = trace.steps_per_checkpoint()
    if level == Level.STEP:
        if position > k:
            return None
        return trace.step_state(base, position)
    checkpoint, offset = divmod(base, k)
    if position == 0:
        return trace.step_state(checkpoint, offset)
    m = trace.op_count(base)
    if position <= last_op_position(m):
        return trace.op_link(base, position - 1)
    if position == op_end(m):
        return end_link(trace.op_link(base, m), trace.step_state(checkpoint, offset + 1))
    return None
