"""market.indexer follows the ArbiterReferee on a real anvil: each vote with its computed
hash, the proposal, the appeal's escalation, the overturning ruling and the slashes, read
back per game by `market.queries.ruling_of` (what the API's dispute view serves)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from chain.generated import GameStatus, RulingPhase
from market import queries
from market.indexer import Indexer, make_engine
from tests.dispute.support import ZERO
from tests.dispute.test_incentives import _awaiting_ruling, _grow_committee
from tests.fixtures.dispute import ARBITER_STAKE, COMMITTEE, DisputeEnv

ZERO_HEX = "0x" + ZERO.hex()


def _ruling(indexer: Indexer, game_id: int) -> queries.RulingRecord | None:
    indexer.sync_once()
    with Session(indexer.engine) as session:
        record = queries.game_record(session, game_id)
        assert record is not None
        return queries.ruling_of(record[1])


def test_indexer_follows_votes_appeal_overturn_and_slashes(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    env = dispute_env
    _grow_committee(env, 2)
    indexer = Indexer(
        env.client.w3, env.deployment, make_engine(f"sqlite:///{tmp_path / 'i.db'}"), batch_blocks=7
    )
    match = _awaiting_ruling(env, None)  # an honest solver, challenged anyway
    game_id = match.game_id
    ruling = _ruling(indexer, game_id)
    assert ruling is not None and ruling.phase == "Voting" and ruling.votes == []
    assert ruling.committee_size == COMMITTEE + 2

    rogues, honest = env.arbiters[:2], [*env.arbiters[2:], *env.spare_arbiters[:2]]
    for rogue in rogues:
        env.referee.as_account(rogue).vote(game_id, ZERO)
    ruling = _ruling(indexer, game_id)
    assert ruling is not None and ruling.phase == "AppealOpen"
    assert [(v.arbiter, v.computed_hash, v.tally) for v in ruling.votes] == [
        (rogues[0].address, ZERO_HEX, 1),
        (rogues[1].address, ZERO_HEX, 2),
    ]
    assert (ruling.proposed_hash, ruling.proposed_solver_won) == (ZERO_HEX, False)
    assert ruling.appeal_deadline is not None

    solver = env.solver()
    env.referee.as_account(solver).appeal(game_id)
    ruling = _ruling(indexer, game_id)
    assert ruling is not None and ruling.phase == "Escalated"
    assert ruling.appellant == solver.address and ruling.escalation_deadline is not None

    solver_hash = match.record().hash_hi
    for member in honest:
        if env.referee.phase(game_id) == RulingPhase.Settled:
            break
        env.referee.as_account(member).vote(game_id, solver_hash)
    assert match.record().status == GameStatus.SolverWon
    ruling = _ruling(indexer, game_id)
    assert ruling is not None and ruling.phase == "Settled"
    assert ruling.computed_hash == "0x" + solver_hash.hex()
    assert (ruling.solver_won, ruling.overturned, ruling.expired) == (True, True, False)
    by_arbiter = {v.arbiter: v for v in ruling.votes}
    # Two rogue votes, then honest ones until a strict majority of five (three) decides.
    assert len(ruling.votes) == len(by_arbiter) == 5
    assert [v.tally for v in ruling.votes[2:]] == [1, 2, 3]
    assert all(by_arbiter[r.address].slashed == str(ARBITER_STAKE) for r in rogues)
    assert all(v.slashed is None for v in ruling.votes if v.computed_hash != ZERO_HEX)
    assert ruling.slashed_total == str(2 * ARBITER_STAKE)
    with Session(indexer.engine) as session:
        # The game's projection was refreshed by the referee's events too.
        game = queries.game_record(session, game_id)
        assert game is not None and game[0].status == "SolverWon"


def test_game_with_no_ruling_requested_has_no_ruling(dispute_env: DisputeEnv) -> None:
    from tests.dispute.support import cheat_trace, open_match

    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    indexer = Indexer(env.client.w3, env.deployment, make_engine("sqlite://"))

    assert _ruling(indexer, match.game_id) is None
