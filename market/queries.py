"""The reads the API makes over the indexer's tables (market.indexer), as plain functions.

Each takes an open `Session` and returns rows or small frozen records; the API's routes
turn them into response schemas and never write SQL themselves.  This module must never
write: the indexer owns the tables.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from market.indexer import CursorRow, DisputeRow, EventRow, GameRow, JobRow

ACTIVE_STATUSES = ("Claimed", "Submitted")


def list_jobs(
    session: Session,
    *,
    status: str | None = None,
    submitter: str | None = None,
    solver: str | None = None,
    before: int | None = None,
    limit: int = 20,
) -> tuple[list[JobRow], int | None]:
    """Newest jobs first, filtered; with the `before` cursor of the next page (or None)."""
    query = select(JobRow).order_by(JobRow.job_id.desc()).limit(limit + 1)
    if status is not None:
        query = query.where(JobRow.status == status)
    if submitter is not None:
        query = query.where(JobRow.submitter == submitter)
    if solver is not None:
        query = query.where(JobRow.solver == solver)
    if before is not None:
        query = query.where(JobRow.job_id < before)
    rows = list(session.scalars(query))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].job_id if more and rows else None)


@dataclass(frozen=True)
class JobRecord:
    """A job with its disputes (each matched to its game id), games and events."""

    job: JobRow
    disputes: list[tuple[DisputeRow, int | None]]
    games: list[GameRow]
    events: list[EventRow]


def job_record(session: Session, job_id: int) -> JobRecord | None:
    job = session.get(JobRow, job_id)
    if job is None:
        return None
    disputes = list(
        session.scalars(
            select(DisputeRow).where(DisputeRow.job_id == job_id).order_by(DisputeRow.id)
        )
    )
    games = list(
        session.scalars(select(GameRow).where(GameRow.job_id == job_id).order_by(GameRow.game_id))
    )
    events = list(
        session.scalars(
            select(EventRow)
            .where(EventRow.job_id == job_id)
            .order_by(EventRow.block_number, EventRow.log_index)
        )
    )
    # JobMarket and DisputeGame number their challenges independently: pair them per
    # challenger in opening order.
    by_challenger: dict[str, list[int]] = {}
    for game in games:
        by_challenger.setdefault(game.challenger, []).append(game.game_id)
    paired = []
    for d in disputes:
        ids = by_challenger.get(d.challenger) or []
        paired.append((d, ids.pop(0) if ids else None))
    return JobRecord(job=job, disputes=paired, games=games, events=events)


def game_record(session: Session, game_id: int) -> tuple[GameRow, list[EventRow]] | None:
    """A game and its moves (every event naming it, in chain order)."""
    game = session.get(GameRow, game_id)
    if game is None:
        return None
    moves = list(
        session.scalars(
            select(EventRow)
            .where(EventRow.game_id == game_id)
            .order_by(EventRow.block_number, EventRow.log_index)
        )
    )
    return game, moves


def list_games(session: Session, limit: int = 50) -> list[GameRow]:
    return list(session.scalars(select(GameRow).order_by(GameRow.game_id.desc()).limit(limit)))


@dataclass(frozen=True)
class SolverStats:
    address: str
    jobs: list[int]
    active: int
    finalized: int
    slashed: int
    timed_out: int
    earned: int
    staked: int
    disputes_won: int
    disputes_lost: int


def _count(session: Session, name: str, who: str) -> int:
    query = (
        select(func.count())
        .select_from(EventRow)
        .where(EventRow.name == name, EventRow.actor == who)
    )
    return int(session.scalar(query) or 0)


def solver_stats(session: Session, who: str) -> SolverStats:
    """What the index knows of solver `who` (a checksummed address)."""
    claims = session.scalars(
        select(EventRow.job_id).where(EventRow.name == "JobClaimed", EventRow.actor == who)
    )
    jobs = sorted({int(j) for j in claims if j is not None})
    payouts = session.scalars(
        select(EventRow.args).where(EventRow.name == "JobFinalized", EventRow.actor == who)
    )
    earned = sum(int(json.loads(a).get("payout", 0)) for a in payouts)
    stakes = list(
        session.scalars(
            select(JobRow.solver_stake).where(
                JobRow.solver == who, JobRow.status.in_(ACTIVE_STATUSES)
            )
        )
    )
    active = len(stakes)
    outcomes: Sequence[bool | None] = list(
        session.scalars(
            select(DisputeRow.solver_won)
            .join(JobRow, JobRow.job_id == DisputeRow.job_id)
            .where(JobRow.solver == who, DisputeRow.resolved.is_(True))
        )
    )
    return SolverStats(
        address=who,
        jobs=jobs,
        active=active,
        finalized=_count(session, "JobFinalized", who),
        slashed=_count(session, "SolverSlashed", who),
        timed_out=_count(session, "SolverTimedOut", who),
        earned=earned,
        staked=sum(int(x) for x in stakes),
        disputes_won=sum(1 for o in outcomes if o),
        disputes_lost=sum(1 for o in outcomes if o is False),
    )


def known_solvers(session: Session) -> list[str]:
    """Every address that ever claimed a job, sorted."""
    rows = session.scalars(select(EventRow.actor).where(EventRow.name == "JobClaimed").distinct())
    return sorted(r for r in rows if r)


def indexed_block(session: Session) -> int | None:
    cursor = session.get(CursorRow, 1)
    return cursor.block_number if cursor is not None else None


REFEREE_EVENTS = (
    "RulingPending",
    "Voted",
    "RulingProposed",
    "Escalated",
    "Ruled",
    "ArbiterSlashed",
    "RulingExpired",
)
"""The ArbiterReferee's per-game events, in the order a ruling can emit them."""


@dataclass(frozen=True)
class Vote:
    """One committee member's vote: the hash its re-execution gave, and that hash's tally."""

    arbiter: str
    computed_hash: str
    tally: int
    block_number: int
    tx_hash: str
    slashed: str | None  # the stake it lost when the ruling it voted for was overturned


@dataclass(frozen=True)
class RulingRecord:
    """The committee's ruling on one game, as its events tell it (as of the last indexed block).

    `phase` follows the contract's RulingPhase names: Voting after the request, AppealOpen
    once QUORUM votes propose a hash, Escalated after an appeal, Settled once Ruled or
    RulingExpired was emitted.
    """

    phase: str
    committee_size: int | None
    voting_deadline: int | None
    votes: list[Vote]
    proposed_hash: str | None
    proposed_solver_won: bool | None
    appeal_deadline: int | None
    appellant: str | None
    escalation_deadline: int | None
    computed_hash: str | None
    solver_won: bool | None
    overturned: bool | None
    expired: bool
    slashed_total: str


def ruling_of(moves: Sequence[EventRow]) -> RulingRecord | None:
    """The ruling told by a game's events (`game_record`'s moves); None if none was requested."""
    events = [m for m in moves if m.name in REFEREE_EVENTS]
    if not events:
        return None
    first: dict[str, dict[str, Any]] = {}
    for e in events:
        first.setdefault(e.name, e.arguments)
    last = {e.name: e.arguments for e in events}
    slashes = {
        str(e.arguments["arbiter"]): str(e.arguments["amount"])
        for e in events
        if e.name == "ArbiterSlashed"
    }
    votes = [
        Vote(
            arbiter=str(e.arguments["arbiter"]),
            computed_hash=str(e.arguments["computed_hash"]),
            tally=int(e.arguments["votes"]),
            block_number=e.block_number,
            tx_hash=e.tx_hash,
            slashed=slashes.get(str(e.arguments["arbiter"])),
        )
        for e in events
        if e.name == "Voted"
    ]
    if "Ruled" in last or "RulingExpired" in last:
        phase = "Settled"
    elif "Escalated" in last:
        phase = "Escalated"
    elif "RulingProposed" in last:
        phase = "AppealOpen"
    else:
        phase = "Voting"
    pending = first.get("RulingPending", {})
    proposed = first.get("RulingProposed", {})
    escalated = first.get("Escalated", {})
    ruled = last.get("Ruled", {})
    return RulingRecord(
        phase=phase,
        committee_size=_opt_int(pending.get("committee_size")),
        voting_deadline=_opt_int(pending.get("deadline")),
        votes=votes,
        proposed_hash=proposed.get("computed_hash"),
        proposed_solver_won=proposed.get("solver_won"),
        appeal_deadline=_opt_int(proposed.get("appeal_deadline")),
        appellant=escalated.get("appellant"),
        escalation_deadline=_opt_int(escalated.get("deadline")),
        computed_hash=ruled.get("computed_hash"),
        solver_won=ruled.get("solver_won"),
        overturned=ruled.get("overturned"),
        expired="RulingExpired" in last,
        slashed_total=str(sum(int(a) for a in slashes.values())),
    )


def _opt_int(value: object) -> int | None:
    return None if value is None else int(str(value))
