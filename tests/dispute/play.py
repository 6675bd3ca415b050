"""Drive a dispute game on anvil between two actors and the referee until it ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount

from arbiter.actor import GameActor
from arbiter.dissection import TraceView
from arbiter.referee import Referee, TraceOracle
from arbiter.strategy import Move, PostBundle
from arbiter.synthetic import SyntheticTrace
from chain.client import Receipt
from chain.dispute import GameId, GameRecord
from chain.generated import GameStatus, Party
from chain.types import Cid
from tests.fixtures.dispute import DisputeEnv

SYNTHETIC_BUNDLE = Cid("bafkreisyntheticbundle")


def synthetic_bundle(game: GameRecord, move: PostBundle) -> Cid:
    return SYNTHETIC_BUNDLE


@dataclass
class Transcript:
    moves: list[tuple[Party, Move]] = field(default_factory=list)
    final: GameRecord | None = None


def actors(
    env: DisputeEnv,
    solver_trace: SyntheticTrace,
    challenger_trace: TraceView,
    solver_index: int = 0,
    challenger_index: int = 0,
) -> tuple[GameActor, GameActor]:
    solver = GameActor(
        env.game.as_account(env.solver(solver_index)),
        Party.Solver,
        lambda _g: solver_trace,
        synthetic_bundle,
        lambda _g: solver_trace,
    )
    challenger = GameActor(
        env.game.as_account(env.challenger(challenger_index)),
        Party.Challenger,
        lambda _g: challenger_trace,
    )
    return solver, challenger


def committee(
    env: DisputeEnv,
    honest: TraceView,
    members: Sequence[LocalAccount] = (),
    oracle: TraceOracle | None = None,
) -> list[Referee]:
    """The honest committee members (default: the founding committee) as Referee roles,
    ruling from `oracle` (default: the honest trace, no files)."""
    accounts = list(members) or env.arbiters
    oracle = oracle or TraceOracle(honest)
    return [Referee(env.referee.as_account(a), env.game, oracle) for a in accounts]


def rule_honestly(
    env: DisputeEnv, game_id: GameId, honest: TraceView, oracle: TraceOracle | None = None
) -> GameRecord:
    """Every honest founding member votes until the ruling is decided; returns the game."""
    for member in committee(env, honest, oracle=oracle):
        if env.game.get_game(game_id).status != GameStatus.AwaitingRuling:
            break
        member.vote_if_pending(game_id)
    return env.game.get_game(game_id)


def play(
    env: DisputeEnv,
    game_id: GameId,
    solver: GameActor | Callable[[GameId], Move | None],
    challenger: GameActor | Callable[[GameId], Move | None],
    honest: SyntheticTrace,
    max_moves: int = 400,
) -> Transcript:
    """Alternate the two sides and the referee until the game is over."""
    transcript = Transcript()
    for _ in range(max_moves):
        game = env.game.get_game(game_id)
        if game.finished:
            transcript.final = game
            return transcript
        if game.status == GameStatus.AwaitingRuling:
            rule_honestly(env, game_id, honest)
            continue
        side = solver if game.turn == Party.Solver else challenger
        step = side.step if isinstance(side, GameActor) else side
        move = step(game_id)
        if move is None:
            raise AssertionError(f"game {game_id}: {game.turn.name} had no move in {game}")
        transcript.moves.append((game.turn, move))
    raise AssertionError(f"game {game_id} did not end in {max_moves} moves")


def vote_all(env: DisputeEnv, game_id: GameId, computed: bytes) -> list[Receipt]:
    """Founding members vote `computed` until the ruling is decided; their receipts."""
    receipts: list[Receipt] = []
    for member in env.arbiters:
        if env.game.get_game(game_id).status != GameStatus.AwaitingRuling:
            break
        receipts.append(env.referee.as_account(member).vote(game_id, computed))
    return receipts
