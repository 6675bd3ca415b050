"""The honest dispute strategy: a pure function from (game, round, local trace) to a move.

The same function plays the solver defending its result and the challenger attacking one:
each side only ever asserts what its own trace says, so an honest side can only lose by
missing a deadline (DESIGN.md §1).  No I/O here: arbiter/actor.py turns moves into
transactions; tests feed the function adversarial games directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from arbiter.dissection import TraceView, boundaries, position_value
from chain.dispute import GameRecord
from chain.generated import GameKind, GameStatus, Level, Party


@dataclass(frozen=True)
class Dissect:
    """Solver: post the interior boundaries' hashes (with Merkle proofs at CHECKPOINT)."""

    hashes: tuple[bytes, ...]
    proofs: tuple[tuple[bytes, ...], ...]


@dataclass(frozen=True)
class Select:
    """Challenger: pick the first part whose end it disagrees with."""

    part: int


@dataclass(frozen=True)
class OpenOpLevel:
    """Solver: declare the step's operator count M and its last link h_M."""

    op_count: int
    last_op_hash: bytes


@dataclass(frozen=True)
class PostBundle:
    """Solver: publish the operand bundle for the link at `position` of step `step`."""

    step: int
    position: int


@dataclass(frozen=True)
class AnswerAvailability:
    """Solver: post the requested chunk of a committed checkpoint file, with its proofs."""


@dataclass(frozen=True)
class RevealFile:
    """Solver: reveal a checkpoint's state hash and file root (with proofs) and its file's CID."""


@dataclass(frozen=True)
class Timeout:
    """Anyone: end the game; the opponent's clock ran out."""


Move = Dissect | Select | OpenOpLevel | PostBundle | AnswerAvailability | RevealFile | Timeout


def honest_move(
    game: GameRecord,
    role: Party,
    trace: TraceView | None,
    round_hashes: Sequence[bytes] | None,
    now: int,
) -> Move | None:
    """The next move for `role` playing honestly from `trace`, or None to wait.

    `round_hashes` are the solver's pending dissection hashes (from its Dissected event)
    when it is the challenger's turn; `now` is the chain time, for timeouts.
    """
    if game.status not in (GameStatus.InProgress, GameStatus.AwaitingBundle):
        return None
    if game.turn != role:
        return Timeout() if game.clock_left(game.turn, now) < 0 else None
    if game.kind == GameKind.Availability:
        return AnswerAvailability()
    if game.kind == GameKind.File:
        return RevealFile()
    if trace is None:
        raise ValueError(f"game {game.game_id}: a dissection game needs the player's trace")
    if role == Party.Solver:
        return _solver_move(game, trace)
    if round_hashes is None:
        raise ValueError(f"game {game.game_id}: the challenger needs the solver's round hashes")
    return Select(first_disagreement(game, trace, round_hashes))


def _solver_move(game: GameRecord, trace: TraceView) -> Move:
    if game.status == GameStatus.AwaitingBundle:
        return PostBundle(step=game.base, position=game.lo)
    if game.level == Level.OP and game.op_count == 0:
        m = trace.op_count(game.base)
        return OpenOpLevel(op_count=m, last_op_hash=trace.op_link(game.base, m))
    points = boundaries(game.lo, game.hi, game.arity)[1:-1]
    hashes = tuple(_known(trace, game, p) for p in points)
    proofs: tuple[tuple[bytes, ...], ...] = ()
    if game.level == Level.CHECKPOINT:
        proofs = tuple(tuple(trace.checkpoint_proof(p - 1)) for p in points)
    return Dissect(hashes=hashes, proofs=proofs)


def _known(trace: TraceView, game: GameRecord, position: int) -> bytes:
    value = position_value(trace, game.level, game.base, position)
    if value is None:
        raise ValueError(f"game {game.game_id}: own trace has no position {position}")
    return value


def first_disagreement(game: GameRecord, trace: TraceView, round_hashes: Sequence[bytes]) -> int:
    """Index of the first part whose end value differs from `trace` (the last part if none).

    The challenger agreed with the interval's start when it entered it, so the first
    differing boundary closes the part to contest.
    """
    points = boundaries(game.lo, game.hi, game.arity)
    ends = [*round_hashes, game.hash_hi]
    if len(ends) != len(points) - 1:
        raise ValueError(f"game {game.game_id}: {len(round_hashes)} round hashes do not fit")
    for part, (point, claimed) in enumerate(zip(points[1:], ends, strict=True)):
        if position_value(trace, game.level, game.base, point) != claimed:
            return part
    return len(ends) - 1


@dataclass(frozen=True)
class Opening:
    """Where a whistleblower should open a game: from the top, or at one checkpoint pair."""

    at_checkpoint: int | None


def choose_opening(claimed: Sequence[bytes], own: TraceView) -> Opening | None:
    """Compare a result's committed leaves with our own; None if they all agree.

    A first mismatch at leaf i >= 1 opens directly at STEP level between checkpoints
    i - 1 and i; a mismatch at leaf 0 (the initial state) opens from the top, where the
    game ends at the spec-vs-initial-state link.
    """
    for index, leaf in enumerate(claimed):
        if own.checkpoint_leaf(index) != leaf:
            return Opening(at_checkpoint=None if index == 0 else index - 1)
    return None
