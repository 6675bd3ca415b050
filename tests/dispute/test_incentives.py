"""Issue 11's measured attacks, each replayed against the staked committee and PayoutLib on
anvil: the honest side ends whole every time, and tokens are conserved.

- a rogue arbiter rules first for a sybil challenger;
- the owner (or anyone) adds arbiters while a game is open to sway it;
- a silent committee delays settlement (bounded now, whatever the griefer does);
- a sybil of the cheater plays its own game fast to take the whistleblower's reward;
- a slashed cheater keeps the bond share of a game it won earlier;
- one challenger opens several games at the last second.
"""

from __future__ import annotations

import pytest

from chain.deploy import membership_delay_for
from chain.generated import (
    ArbiterSlashed,
    Escalated,
    GameStatus,
    JobStatus,
    NotEligible,
    RulingPhase,
    RulingProposed,
    WrongRulingPhase,
)
from tests.dispute.support import (
    BOND,
    BOND_BURNED,
    BOND_TO_SOLVER,
    REWARD,
    STAKE,
    STAKE_BURNED,
    STAKE_TO_CHALLENGER,
    ZERO,
    Match,
    cheat_trace,
    game_as,
    open_match,
    pin_time,
    read_ledger,
)
from tests.fixtures.dispute import (
    APPEAL_BOND,
    APPEAL_WINDOW,
    ARBITER_STAKE,
    CLOCK_BUDGET,
    ESCALATION_WINDOW,
    LEVEL_EXTENSION,
    RULING_WINDOW,
    DisputeEnv,
)

CHALLENGE_WINDOW = 3_600  # DisputeEnv.post_and_submit
MAX_REOPENINGS = 2  # JobMarket.MAX_REOPENINGS
LONGEST_GAME = 2 * (CLOCK_BUDGET + 4 * LEVEL_EXTENSION)  # ArbiterReferee.setGame's bound
SETTLEMENT = RULING_WINDOW + APPEAL_WINDOW + ESCALATION_WINDOW  # ArbiterReferee.settlementBound


def _awaiting_ruling(env: DisputeEnv, step: int | None, **kw: int) -> Match:
    match = open_match(env, cheat_trace(step, 12), arity=4, **kw)
    match.until(lambda g: g.status == GameStatus.AwaitingRuling)
    return match


def _grow_committee(env: DisputeEnv, count: int) -> None:
    """Spare members join before any game exists: founding, active at once."""
    assert env.game.game_count() == 0
    for spare in env.spare_arbiters[:count]:
        env.referee.as_account(spare).join(spare.address)
        assert env.referee.is_active(spare.address)


def test_rogue_arbiter_alone_cannot_decide_honest_solver_keeps_stake(
    dispute_env: DisputeEnv,
) -> None:
    """Main: one registered arbiter ruled for a sybil challenger first and the honest solver
    lost its stake. Now its vote is one of three: the honest two decide."""
    env = dispute_env
    before = read_ledger(env)
    match = _awaiting_ruling(env, None)
    rogue = env.arbiters[0]
    env.referee.as_account(rogue).vote(match.game_id, ZERO)  # "the challenger won"
    assert match.record().status == GameStatus.AwaitingRuling
    assert env.referee.phase(match.game_id) == RulingPhase.Voting
    final = match.rule()
    assert final.status == GameStatus.SolverWon
    job = env.market.get_job(match.job_id)
    pin_time(env, job.challenge_deadline + 1)
    env.market.finalize(match.job_id)
    after = read_ledger(env)
    solver = env.solver().address
    assert after.credits[solver] - before.credits[solver] == REWARD + STAKE + BOND_TO_SOLVER
    after.assert_conserved()


def test_rogue_quorum_is_overturned_on_appeal_and_slashed(dispute_env: DisputeEnv) -> None:
    """Five members, QUORUM 2: two rogues propose a ruling against the honest solver; the
    solver appeals, the honest three overturn it, and each rogue loses its whole stake (half
    to the appellant, half burned). The solver ends whole and is paid for its trouble."""
    env = dispute_env
    _grow_committee(env, 2)
    before = read_ledger(env)
    match = _awaiting_ruling(env, None)
    rogues, honest = env.arbiters[:2], [*env.arbiters[2:], *env.spare_arbiters[:2]]
    env.referee.as_account(rogues[0]).vote(match.game_id, ZERO)
    receipt = env.referee.as_account(rogues[1]).vote(match.game_id, ZERO)
    proposed = receipt.one(RulingProposed)
    assert (proposed.computed_hash, proposed.solver_won) == (ZERO, False)
    assert match.record().status == GameStatus.AwaitingRuling  # a proposal is not a ruling
    solver = env.solver()
    receipt = env.referee.as_account(solver).appeal(match.game_id)
    assert receipt.one(Escalated).appellant == solver.address
    solver_hash = match.record().hash_hi
    for member in honest:
        if env.referee.phase(match.game_id) == RulingPhase.Settled:
            break
        receipt = env.referee.as_account(member).vote(match.game_id, solver_hash)
    slashed = [e for e in receipt.events if isinstance(e, ArbiterSlashed)]
    assert {e.arbiter for e in slashed} == {r.address for r in rogues}
    assert all(e.amount == ARBITER_STAKE for e in slashed)
    assert match.record().status == GameStatus.SolverWon
    for rogue in rogues:
        assert env.referee.member(rogue.address).stake == 0
        assert rogue.address not in env.referee.committee()
    reward = APPEAL_BOND + ARBITER_STAKE  # bond back + half of the two stakes
    assert env.referee.credits(solver.address) == reward
    env.referee.as_account(solver).withdraw()
    job = env.market.get_job(match.job_id)
    pin_time(env, job.challenge_deadline + 1)
    env.market.finalize(match.job_id)
    after = read_ledger(env)
    gained = after.balances[solver.address] - before.balances[solver.address]
    # It staked, paid the appeal bond, and got both back and more.
    assert gained == reward - APPEAL_BOND - STAKE
    assert after.credits[solver.address] - before.credits[solver.address] == (
        REWARD + STAKE + BOND_TO_SOLVER
    )
    assert after.referee_burned - before.referee_burned == ARBITER_STAKE
    after.assert_conserved()


def test_unappealed_proposal_stands_after_the_appeal_window(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    _grow_committee(env, 2)
    match = _awaiting_ruling(env, 37)
    for member in env.arbiters[:2]:
        env.referee.as_account(member).vote(match.game_id, ZERO)
    proposed_at = env.referee.ruling(match.game_id).proposed_at
    pin_time(env, proposed_at + APPEAL_WINDOW)
    with pytest.raises(WrongRulingPhase):
        env.referee.settle(match.game_id)
    pin_time(env, proposed_at + APPEAL_WINDOW + 1)
    with pytest.raises(WrongRulingPhase):
        env.referee.as_account(env.solver()).appeal(match.game_id)
    env.referee.settle(match.game_id)
    assert match.record().status == GameStatus.ChallengerWon
    read_ledger(env).assert_conserved()


def test_arbiters_added_mid_game_cannot_vote_on_it(dispute_env: DisputeEnv) -> None:
    """Main: the owner could register arbiters during a game. Now nobody can: a member who
    joins while any game exists votes only on rulings requested MEMBERSHIP_DELAY later, a
    delay longer than any game, and the owner has no say over membership at all."""
    env = dispute_env
    match = open_match(env, cheat_trace(None), arity=4)
    delay = env.referee.membership_delay()
    assert delay == membership_delay_for(CLOCK_BUDGET, LEVEL_EXTENSION) > LONGEST_GAME
    sybils = env.spare_arbiters
    env.token.mint(env.client.address, len(sybils) * ARBITER_STAKE)
    env.token.approve(env.referee.address, len(sybils) * ARBITER_STAKE)
    for sybil in sybils:  # the deployer (the owner) pays their stakes
        receipt = env.referee.join(sybil.address)
        assert receipt.block_number
        assert env.referee.member(sybil.address).active_from == env.devnet.timestamp() + delay
    for name in ("registerArbiter", "removeArbiter"):
        assert not hasattr(env.referee._c.functions, name)
    match.until(lambda g: g.status == GameStatus.AwaitingRuling)
    assert env.referee.ruling(match.game_id).committee_size == 3
    for sybil in sybils:
        with pytest.raises(NotEligible):
            env.referee.as_account(sybil).vote(match.game_id, ZERO)
    assert match.rule().status == GameStatus.SolverWon
    read_ledger(env).assert_conserved()


def test_silent_committee_delay_is_bounded_and_reopenings_stop(dispute_env: DisputeEnv) -> None:
    """Main: three voids pushed the deadline by 18,004 s for free. Now the committee's
    silence voids a game only after RULING_WINDOW + ESCALATION_WINDOW, and voids reopen the
    window at most MAX_REOPENINGS times: a griefer challenging an honest solver into a
    silent committee again and again delays its pay by a bounded time, and it is paid."""
    env = dispute_env
    lie = cheat_trace(None)
    first = open_match(env, lie, arity=4)
    job_id = first.job_id
    submitted = env.market.get_job(job_id).challenge_deadline - CHALLENGE_WINDOW
    match = first
    for round_ in range(MAX_REOPENINGS + 2):
        match.until(lambda g: g.status == GameStatus.AwaitingRuling)
        pin_time(env, env.referee.escalation_deadline(match.game_id) + 1)
        env.referee.as_account(env.challenger()).settle(match.game_id)
        assert match.record().status == GameStatus.Void
        job = env.market.get_job(job_id)
        assert env.market.payout_of(job_id).reopenings == min(round_ + 1, MAX_REOPENINGS)
        if env.devnet.timestamp() >= job.challenge_deadline:
            break  # no more reopenings: the window stays closed
        match = open_match(env, lie, arity=4, at=3, job_id=job_id)
    job = env.market.get_job(job_id)
    pin_time(env, max(job.challenge_deadline, env.devnet.timestamp()) + 1)
    env.market.finalize(job_id)
    settled = env.devnet.timestamp()
    # One window, then at most MAX_REOPENINGS (game + ruling + window) cycles, plus the last.
    bound = CHALLENGE_WINDOW + (MAX_REOPENINGS + 1) * (LONGEST_GAME + SETTLEMENT + CHALLENGE_WINDOW)
    assert settled - submitted <= bound
    after = read_ledger(env)
    assert after.credits[env.solver().address] == REWARD + STAKE
    after.assert_conserved()


def test_sybil_cannot_take_the_whistleblowers_reward(dispute_env: DisputeEnv) -> None:
    """Main: the cheater played its own sybil's game fast; the sybil's win slashed it, the
    honest whistleblower who opened first got only its bond back, and cheater + sybil lost 3
    instead of 6. Now both winning games share the pool: the whistleblower earns half, and
    cheater + sybil lose at least the stake's burn fraction."""
    env = dispute_env
    before = read_ledger(env)
    lie = cheat_trace(37, 12)
    honest_game = open_match(env, lie, arity=4, challenger_index=0)
    sybil_game = open_match(env, lie, arity=4, challenger_index=1, job_id=honest_game.job_id)
    assert sybil_game.finish().status == GameStatus.ChallengerWon  # the sybil wins first
    assert env.market.get_job(honest_game.job_id).status == JobStatus.Slashed
    assert honest_game.finish().status == GameStatus.ChallengerWon
    whistleblower, sybil = env.challenger(0).address, env.challenger(1).address
    env.market.as_account(env.challenger(1)).claim_reward(honest_game.job_id, sybil)
    after = read_ledger(env)
    gained = {a: after.credits[a] - before.credits[a] for a in (whistleblower, sybil)}
    half = STAKE_TO_CHALLENGER // 2
    # The closing game (the whistleblower's) takes the rounding remainder.
    assert gained == {whistleblower: BOND + STAKE_TO_CHALLENGER - half, sybil: BOND + half}
    cheater_net = -STAKE + (gained[sybil] - BOND)
    assert cheater_net <= -STAKE_BURNED
    assert after.market_burned - before.market_burned == STAKE_BURNED
    after.assert_conserved()


def test_slashed_cheater_forfeits_the_bond_share_it_won_before(dispute_env: DisputeEnv) -> None:
    """Main: the bond share of a game the cheater won by the challenger's timeout stayed with
    it after another game slashed it. Now it was only held, and the slash forfeits it to the
    winners' pool."""
    env = dispute_env
    before = read_ledger(env)
    lie = cheat_trace(37, 12)
    slow = open_match(env, lie, arity=4, challenger_index=0)
    fast = open_match(env, lie, arity=4, challenger_index=1, job_id=slow.job_id)
    fast.until(lambda g: g.status == GameStatus.AwaitingRuling)  # no clock runs while ruled
    slow.step()  # the solver dissects; the slow challenger never answers
    game = slow.record()
    pin_time(env, game.turn_started_at + game.challenger_clock + 1)
    game_as(env, env.challenger(1)).timeout(slow.game_id)
    assert slow.record().status == GameStatus.SolverWon
    assert env.market.payout_of(slow.job_id).held_for_solver == BOND_TO_SOLVER
    assert fast.finish().status == GameStatus.ChallengerWon
    after = read_ledger(env)
    solver, winner = env.solver().address, env.challenger(1).address
    assert after.credits[solver] == before.credits[solver]
    assert env.market.payout_of(slow.job_id).held_for_solver == 0
    assert after.credits[winner] - before.credits[winner] == (
        BOND + STAKE_TO_CHALLENGER + BOND_TO_SOLVER
    )
    assert after.market_burned - before.market_burned == BOND_BURNED + STAKE_BURNED
    after.assert_conserved()


def test_many_games_at_the_last_second_settle_in_bounded_time_and_pay_the_solver(
    dispute_env: DisputeEnv,
) -> None:
    """Main: one challenger opened three games on one job at the last second for 1 wei each.
    Now each costs at least the minimum bond, they run concurrently (settlement is bounded by
    one game plus one ruling after the window), and the honest solver is paid every
    lost bond's share."""
    env = dispute_env
    before = read_ledger(env)
    lie = cheat_trace(None)
    first = open_match(env, lie, arity=4, at=3)
    job_id = first.job_id
    deadline = env.market.get_job(job_id).challenge_deadline
    pin_time(env, deadline - 1)
    games = [first] + [open_match(env, lie, arity=4, at=i, job_id=job_id) for i in (5, 7)]
    for match in games:
        assert match.finish().status == GameStatus.SolverWon
    pin_time(env, max(deadline, env.devnet.timestamp()) + 1)
    env.market.finalize(job_id)
    assert env.devnet.timestamp() - deadline <= LONGEST_GAME + SETTLEMENT + 2
    after = read_ledger(env)
    solver, griefer = env.solver().address, env.challenger().address
    assert after.credits[solver] - before.credits[solver] == REWARD + STAKE + 3 * BOND_TO_SOLVER
    assert after.balances[griefer] - before.balances[griefer] == -3 * BOND
    assert env.market.min_challenger_bond() <= BOND
    after.assert_conserved()
