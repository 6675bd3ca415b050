"""/disputes: each dispute game with its interval, clocks and every move, for the bisection view."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from frontend_api.deps import SessionDep, StateDep
from frontend_api.errors import NotFound
from frontend_api.schemas import ClocksOut, DisputeGameOut, EventOut, IntervalOut, RulingOut
from market import queries
from market.indexer import EventRow, GameRow

from .common import PROBLEMS, GameIdPath

router = APIRouter(prefix="/disputes", tags=["disputes"])

LIVE_STATUSES = ("InProgress", "AwaitingBundle")


def game_out(game: GameRow, moves: list[EventRow], now: int | None) -> DisputeGameOut:
    """A game as the API shows it; `now` (chain time) gives the mover's remaining clock."""
    remaining = None
    if now is not None and game.status in LIVE_STATUSES:
        clock = game.solver_clock if game.turn == "Solver" else game.challenger_clock
        remaining = max(0, clock - max(0, now - game.turn_started_at))
    return DisputeGameOut(
        game_id=game.game_id,
        job_id=game.job_id,
        solver=game.solver,
        challenger=game.challenger,
        status=game.status,
        level=game.level,
        interval=IntervalOut.model_validate(game),
        arity=game.arity,
        rounds=game.rounds,
        op_count=game.op_count,
        bundle_cid=game.bundle_cid,
        clocks=ClocksOut(
            turn=game.turn,
            turn_started_at=game.turn_started_at,
            solver_s=game.solver_clock,
            challenger_s=game.challenger_clock,
            mover_remaining_s=remaining,
        ),
        created_block=game.created_block,
        updated_block=game.updated_block,
        moves=[EventOut.model_validate(m) for m in moves],
        ruling=RulingOut.model_validate(ruling) if (ruling := queries.ruling_of(moves)) else None,
    )


def _chain_now(state: StateDep) -> int | None:
    """Chain time for the clocks, or None when the chain does not answer (the rest still shows)."""
    try:
        return state.gateway().now()
    except Exception:  # any failure only hides the live clock
        return None


@router.get("", response_model=list[DisputeGameOut], summary="The latest dispute games")
def list_disputes(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> list[DisputeGameOut]:
    out = []
    for game in queries.list_games(session, limit):
        record = queries.game_record(session, game.game_id)
        if record is not None:
            out.append(game_out(record[0], record[1], None))
    return out


@router.get("/{game_id}", response_model=DisputeGameOut, responses=PROBLEMS)
def get_dispute(game_id: GameIdPath, session: SessionDep, state: StateDep) -> DisputeGameOut:
    record = queries.game_record(session, game_id)
    if record is None:
        raise NotFound(f"no dispute game {game_id}")
    game, moves = record
    return game_out(game, moves, _chain_now(state) if game.status in LIVE_STATUSES else None)
