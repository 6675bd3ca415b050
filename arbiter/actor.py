"""The actor: reads a game, asks the pure strategy for a move, sends it as a transaction.

One actor plays one side (solver or challenger) with one key.  All judgement lives in
arbiter/strategy.py; this module only does chain I/O and publishing of operand bundles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from arbiter.dissection import TraceView
from arbiter.strategy import (
    AnswerAvailability,
    Dissect,
    Move,
    OpenOpLevel,
    PostBundle,
    RevealFile,
    Select,
    Timeout,
    honest_move,
)
from chain.client import Receipt
from chain.dispute import DisputeGameClient, GameId, GameRecord
from chain.errors import ContractRevert
from chain.generated import GameKind, Party
from chain.types import Cid
from repops.artifact import chunk, chunk_count, commit_file
from repops.merkle import merkle_proof

log = logging.getLogger(__name__)

BundlePublisher = Callable[[GameRecord, PostBundle], Cid]
"""Builds the operand bundle for a game's single link, pins it, returns its CID."""


class ArtifactSource(Protocol):
    """The solver's own committed checkpoint files, for availability and file games."""

    def file_bytes(self, checkpoint: int) -> bytes:
        """The exact bytes committed as checkpoint `checkpoint`'s file."""
        ...

    def file_cid(self, checkpoint: int) -> Cid:
        """Where the file is published."""
        ...

    def file_roots(self) -> list[bytes]:
        """Every checkpoint's file root, in order (the leaves of filesRoot)."""
        ...


class GameActor:
    """Plays `role` honestly in games, from the trace `trace_for(game)` returns."""

    def __init__(
        self,
        games: DisputeGameClient,
        role: Party,
        trace_for: Callable[[GameRecord], TraceView],
        publish_bundle: BundlePublisher | None = None,
        artifacts_for: Callable[[GameRecord], ArtifactSource] | None = None,
    ) -> None:
        self.games = games
        self.role = role
        self.trace_for = trace_for
        self.publish_bundle = publish_bundle
        self.artifacts_for = artifacts_for
        self.receipts: list[Receipt] = []
        """Every transaction this actor sent, in order (for gas accounting)."""

    def step(self, game_id: GameId) -> Move | None:
        """Make this side's next move in `game_id`, if it has one; returns what it did."""
        game = self.games.get_game(game_id)
        round_hashes = (
            self.games.pending_dissection(game) if self.role == Party.Challenger else None
        )
        now = int(self.games.client.w3.eth.get_block("latest")["timestamp"])
        # Only dissection games read a trace (building one may mean re-executing).
        trace = self.trace_for(game) if game.kind == GameKind.Trace else None
        move = honest_move(game, self.role, trace, round_hashes, now)
        if move is None:
            return None
        self.receipts.append(self.send(game, move, round_hashes))
        log.info("game %d: %s played %s", game_id, self.role.name, type(move).__name__)
        return move

    def play(self, game_id: GameId, max_moves: int = 64) -> GameRecord:
        """Make every move that is this side's now; returns the game as it then stands.

        A refused move (the opponent moved first, a clock ran out) is logged and ends the
        turn: the next call reads the game afresh.
        """
        for _ in range(max_moves):
            try:
                if self.step(game_id) is None:
                    break
            except ContractRevert as exc:
                log.warning("game %d: move refused: %s", game_id, exc)
                break
        return self.games.get_game(game_id)

    def send(self, game: GameRecord, move: Move, round_hashes: tuple[bytes, ...] | None) -> Receipt:
        """Turn one move into its transaction."""
        if isinstance(move, Dissect):
            return self.games.dissect(game.game_id, move.hashes, move.proofs)
        if isinstance(move, Select):
            if round_hashes is None:
                raise RuntimeError(f"game {game.game_id}: no pending dissection to select from")
            return self.games.select(game.game_id, move.part, round_hashes)
        if isinstance(move, OpenOpLevel):
            return self.games.open_op_level(game.game_id, move.op_count, move.last_op_hash)
        if isinstance(move, PostBundle):
            if self.publish_bundle is None:
                raise RuntimeError(f"game {game.game_id}: no bundle publisher for the solver")
            return self.games.post_bundle(game.game_id, self.publish_bundle(game, move))
        if isinstance(move, AnswerAvailability | RevealFile):
            return self._send_artifact(game, move)
        if isinstance(move, Timeout):
            return self.games.timeout(game.game_id)
        raise TypeError(f"unknown move {move!r}")

    def _send_artifact(self, game: GameRecord, move: AnswerAvailability | RevealFile) -> Receipt:
        if self.artifacts_for is None:
            raise RuntimeError(f"game {game.game_id}: no checkpoint files to answer from")
        source = self.artifacts_for(game)
        claim = self.games.artifact_claim(game.game_id)
        roots = source.file_roots()
        files_proof = merkle_proof(roots, claim.checkpoint)
        if isinstance(move, RevealFile):
            trace = self.trace_for(game)
            return self.games.reveal_file(
                game.game_id,
                trace.checkpoint_leaf(claim.checkpoint),
                trace.checkpoint_proof(claim.checkpoint),
                roots[claim.checkpoint],
                files_proof,
                source.file_cid(claim.checkpoint),
            )
        data = source.file_bytes(claim.checkpoint)
        commitment = commit_file(data)
        inside = claim.chunk < chunk_count(len(data))
        return self.games.answer_availability(
            game.game_id,
            roots[claim.checkpoint],
            files_proof,
            commitment.length,
            commitment.chunk_root,
            chunk(data, claim.chunk) if inside else b"",
            commitment.chunk_proof(claim.chunk) if inside else [],
        )
