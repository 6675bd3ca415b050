"""Property tests of the dispute game on anvil: random traces, random d, random adversaries.

DESIGN.md §1.1 and §1.4 as properties: whatever the dishonest side does (garbage hashes,
valid-looking hashes from its lie, a random operator count, random selections, silence),
the honest side wins, and every token stays in a balance, a market bucket, or burned.
The honest side plays arbiter/strategy.py; the committee (three or five staked members, a
random minority of them rogue, a random silent first round) rules: the rogues vote the
outcome-flipping hash first, a wrong proposal is appealed by the honest party and overturned
by the honest majority (the rogues slashed), and the honest party still wins.

Each example runs in its own EVM snapshot (anvil forgets a snapshot once reverted to, so
a new one is taken per example); Hypothesis draws every adversarial choice, so a failing
game shrinks to a short script.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbiter.actor import GameActor
from arbiter.dissection import boundaries, parts, position_value
from arbiter.referee import TraceOracle, decide
from arbiter.strategy import (
    Dissect,
    OpenOpLevel,
    PostBundle,
    choose_opening,
    first_disagreement,
    honest_move,
)
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.dispute import DisputeGameClient, GameId, GameRecord
from chain.generated import GameStatus, JobStatus, Level, OpLevelNotOpen, Party, RulingPhase
from chain.types import Cid, JobId
from tests.dispute.play import rule_honestly
from tests.dispute.support import (
    BOND,
    BOND_BURNED,
    BOND_TO_SOLVER,
    MAX_OPS,
    REWARD,
    STAKE,
    STAKE_BURNED,
    STAKE_TO_CHALLENGER,
    ZERO,
    pin_time,
    read_ledger,
)
from tests.fixtures.dispute import (
    APPEAL_BOND,
    APPEAL_WINDOW,
    ARBITER_STAKE,
    RULING_WINDOW,
    DisputeEnv,
)

GAMES = int(os.environ.get("ASSAY_DISPUTE_EXAMPLES", "200"))
BUNDLE = Cid("bafkreipropertybundle")
MAX_MOVES = 120


@dataclass
class Sides:
    """The two parties' chain clients and what each believes."""

    solver: DisputeGameClient
    challenger: DisputeGameClient
    lie: SyntheticTrace  # the solver's trace (honest when there is no divergence)
    honest: SyntheticTrace


def _garbage(data: st.DataObject, count: int) -> list[bytes]:
    """`count` hashes no honest trace contains (one small draw, not 32 bytes per hash)."""
    seed = data.draw(st.integers(0, 2**16), label="garbage seed")
    return [hashlib.sha256(f"garbage-{seed}-{i}".encode()).digest() for i in range(count)]


def _open(env: DisputeEnv, data: st.DataObject, sides: Sides, job_id: JobId, arity: int) -> GameId:
    lie = sides.lie
    cheating = lie.divergence is not None
    at: int | None = None
    if cheating:
        opening = choose_opening(lie.leaves, sides.honest)
        assert opening is not None
        if data.draw(st.booleans(), label="targeted opening"):
            at = opening.at_checkpoint
    elif data.draw(st.booleans(), label="malicious targeted opening"):
        at = data.draw(st.integers(0, lie.checkpoints - 1), label="opening pair")
    if at is None:
        game_id, _ = sides.challenger.challenge(job_id, arity)
    else:
        game_id, _ = sides.challenger.challenge_at(
            job_id,
            arity,
            at,
            (lie.leaves[at], lie.leaves[at + 1]),
            (lie.checkpoint_proof(at), lie.checkpoint_proof(at + 1)),
        )
    return game_id


def _side_games(env: DisputeEnv, data: st.DataObject, sides: Sides, job_id: JobId) -> int:
    """0-2 availability or file games by a griefer, each answered by the solver (honest or
    not, it holds the files it committed) before the main game opens; returns how many."""
    count = data.draw(st.integers(0, 2), label="side games")
    lie = sides.lie
    files = {str(lie.file_cid(i)): lie.file_bytes(i) for i in range(lie.checkpoints + 1)}
    oracle = TraceOracle(sides.honest, files=files)
    griefer = env.game.as_account(env.challenger(1))
    env.token.as_account(env.challenger(1)).approve(env.market.address, count * BOND)
    solver = GameActor(sides.solver, Party.Solver, lambda _g: sides.lie, None, lambda _g: sides.lie)
    for _ in range(count):
        checkpoint = data.draw(st.integers(0, sides.lie.checkpoints), label="side checkpoint")
        if data.draw(st.booleans(), label="file game"):
            game_id, _ = griefer.challenge_file(job_id, checkpoint)
        else:
            chunk = data.draw(st.integers(0, 3), label="side chunk")
            game_id, _ = griefer.challenge_availability(job_id, checkpoint, chunk)
        solver.play(game_id)
        if rule_honestly(env, game_id, sides.honest, oracle).status == GameStatus.AwaitingRuling:
            # A committee of five: QUORUM votes short of a majority only propose; the right
            # proposal is not appealed and stands once the appeal window has passed.
            assert env.referee.phase(game_id) == RulingPhase.AppealOpen
            pin_time(env, env.referee.ruling(game_id).proposed_at + APPEAL_WINDOW + 1)
            env.referee.settle(game_id)
        assert env.game.get_game(game_id).status == GameStatus.SolverWon
    return count


def _cheater_move(data: st.DataObject, sides: Sides, game: GameRecord) -> tuple[bytes, ...] | None:
    """One move of a cheating solver; returns the hashes it dissected with, if it did."""
    gid, lie = game.game_id, sides.lie
    if game.status == GameStatus.AwaitingBundle:
        sides.solver.post_bundle(gid, BUNDLE)
        return None
    if game.level == Level.OP and game.op_count == 0:
        if data.draw(st.booleans(), label="random op count"):
            count = data.draw(st.integers(1, 48), label="op count")
            sides.solver.open_op_level(gid, count, _garbage(data, 1)[0])
        else:
            m = lie.op_count(game.base)
            sides.solver.open_op_level(gid, m, lie.op_link(game.base, m))
        return None
    points = boundaries(game.lo, game.hi, game.arity)[1:-1]
    if game.level == Level.CHECKPOINT:  # bound by the trace root: only its own leaves pass
        hashes = tuple(lie.leaves[p - 1] for p in points)
        proofs = tuple(tuple(lie.checkpoint_proof(p - 1)) for p in points)
        sides.solver.dissect(gid, hashes, proofs)
        return hashes
    if data.draw(st.booleans(), label="garbage dissection"):
        chosen = _garbage(data, len(points))
    else:
        chosen = []
        for p in points:
            value = position_value(lie, game.level, game.base, p)
            chosen.append(value if value is not None else _garbage(data, 1)[0])
    if game.level == Level.OP:  # DisputeGame pins position M + 1 to the opened h_M
        chosen = [
            game.last_op_hash if p == game.op_count + 1 else h
            for p, h in zip(points, chosen, strict=True)
        ]
    sides.solver.dissect(gid, chosen)
    return tuple(chosen)


def _honest_solver_move(
    data: st.DataObject, sides: Sides, game: GameRecord
) -> tuple[bytes, ...] | None:
    move = honest_move(game, Party.Solver, sides.honest, None, game.turn_started_at)
    if isinstance(move, Dissect):
        sides.solver.dissect(game.game_id, move.hashes, move.proofs)
        return move.hashes
    if isinstance(move, OpenOpLevel):
        sides.solver.open_op_level(game.game_id, move.op_count, move.last_op_hash)
    else:
        assert isinstance(move, PostBundle), move
        sides.solver.post_bundle(game.game_id, BUNDLE)
    return None


def play_random_game(env: DisputeEnv, data: st.DataObject) -> None:
    m = data.draw(st.integers(1, 12), label="m")
    k = data.draw(st.integers(1, 8), label="K")
    ops = data.draw(st.integers(1, 40), label="M")
    arity = data.draw(st.integers(2, 16), label="d")
    divergence = None
    if data.draw(st.booleans(), label="cheating solver"):
        step = data.draw(st.integers(-1, m * k - 1), label="divergence step")
        link = data.draw(st.integers(0, ops + 1), label="divergence link")
        divergence = Divergence(step, link)
    lie = SyntheticTrace(data.draw(st.integers(0, 3), label="seed"), m, k, ops, divergence)
    cheating = divergence is not None
    sides = Sides(
        env.game.as_account(env.solver()),
        env.game.as_account(env.challenger()),
        lie,
        lie.honest(),
    )
    # The committee: the founding three, or five with two spare members joining (still
    # founding: no game exists yet in this snapshot); a minority of them rogue.
    members = list(env.arbiters)
    if data.draw(st.booleans(), label="committee of five"):
        for spare in env.spare_arbiters[:2]:
            env.referee.as_account(spare).join(spare.address)
            members.append(spare)
    rogue_count = data.draw(st.integers(0, (len(members) - 1) // 2), label="rogue arbiters")
    before = read_ledger(env)
    job_id = env.post_and_submit(lie, env.solver())
    side = _side_games(env, data, sides, job_id)
    game_id = _open(env, data, sides, job_id, arity)
    dishonest = Party.Solver if cheating else Party.Challenger
    pending: tuple[bytes, ...] | None = None
    for _ in range(MAX_MOVES):
        game = env.game.get_game(game_id)
        if game.finished:
            break
        if game.status == GameStatus.AwaitingRuling:
            appellant = env.challenger() if cheating else env.solver()
            committee_rules(env, data, sides, game, members, rogue_count, appellant)
            continue
        if game.turn == dishonest and data.draw(st.integers(0, 11), label="silence") == 0:
            clock = game.solver_clock if game.turn == Party.Solver else game.challenger_clock
            pin_time(env, game.turn_started_at + clock + 1)
            honest_side = sides.challenger if cheating else sides.solver
            honest_side.timeout(game_id)
            continue
        if game.turn == Party.Solver:
            pending = (_cheater_move if cheating else _honest_solver_move)(data, sides, game)
        elif cheating:
            assert pending is not None
            sides.challenger.select(
                game_id, first_disagreement(game, sides.honest, pending), pending
            )
        else:
            assert pending is not None
            part = data.draw(st.integers(0, parts(game.lo, game.hi, game.arity) - 1), label="part")
            sides.challenger.select(game_id, part, pending)
    else:
        raise AssertionError(f"game {game_id} did not end in {MAX_MOVES} moves")

    final = env.game.get_game(game_id)
    after = read_ledger(env)
    after.assert_conserved()
    solver, challenger = env.solver().address, env.challenger().address
    gained = {a: after.credits[a] - before.credits[a] for a in (solver, challenger)}
    burned = after.market_burned - before.market_burned
    job = env.market.get_job(job_id)
    griefer = env.challenger(1).address
    assert after.credits[griefer] == before.credits[griefer]  # every side game cost its bond
    burned -= side * BOND_BURNED
    if cheating:
        assert final.status == GameStatus.ChallengerWon, final
        # The bond shares the cheater won in side games are forfeited to the winner.
        forfeited = side * BOND_TO_SOLVER
        assert gained == {solver: 0, challenger: BOND + STAKE_TO_CHALLENGER + forfeited}
        assert env.market.payout_of(job_id).held_for_solver == 0
        assert burned == STAKE_BURNED
        assert after.credits[env.submitter.address] - before.credits[env.submitter.address] == (
            REWARD
        )
        assert job.status == JobStatus.Slashed
        return
    assert final.status == GameStatus.SolverWon, final
    # The solver's bond share is held until its job finalizes.
    assert gained == {solver: 0, challenger: 0}
    assert env.market.payout_of(job_id).held_for_solver == (1 + side) * BOND_TO_SOLVER
    assert burned == BOND_BURNED
    pin_time(env, max(job.challenge_deadline, env.devnet.timestamp()) + 1)
    env.market.finalize(job_id)
    final_ledger = read_ledger(env)
    final_ledger.assert_conserved()
    assert final_ledger.credits[solver] - before.credits[solver] == (
        (1 + side) * BOND_TO_SOLVER + REWARD + STAKE
    )


def committee_rules(
    env: DisputeEnv,
    data: st.DataObject,
    sides: Sides,
    game: GameRecord,
    members: list[LocalAccount],
    rogue_count: int,
    appellant: LocalAccount,
) -> None:
    """The committee rules on `game`: a rogue minority votes the outcome-flipping hash first,
    maybe after a silent first round; a wrong proposal is appealed by the harmed honest
    party; the honest majority then decides, and the rogues behind an overturned proposal
    lose their stakes (half to the appellant)."""
    game_id = game.game_id
    referee = env.referee
    honest_hash = decide(game, TraceOracle(sides.honest)).computed
    honest_wins = honest_hash != ZERO and honest_hash == game.hash_hi
    wrong = ZERO if honest_wins else (game.hash_hi if game.hash_hi != ZERO else b"\x0b" * 32)
    if data.draw(st.booleans(), label="silent first round"):
        pin_time(env, referee.ruling(game_id).requested_at + RULING_WINDOW + 1)
    rogues, honest = members[:rogue_count], members[rogue_count:]
    for rogue in rogues:
        referee.as_account(rogue).vote(game_id, wrong)
    appealed = referee.phase(game_id) == RulingPhase.AppealOpen
    credit_before = referee.credits(appellant.address)
    if appealed:
        assert referee.ruling(game_id).proposed_hash == wrong
        assert env.game.get_game(game_id).status == GameStatus.AwaitingRuling
        referee.as_account(appellant).appeal(game_id)
    for member in honest:
        if referee.phase(game_id) in (RulingPhase.Settled, RulingPhase.AppealOpen):
            break
        referee.as_account(member).vote(game_id, honest_hash)
    if referee.phase(game_id) == RulingPhase.AppealOpen:
        # QUORUM honest votes short of a majority proposed the right hash: nobody appeals it,
        # and it stands once the appeal window has passed.
        proposal = referee.ruling(game_id)
        assert proposal.proposed_hash == honest_hash
        pin_time(env, proposal.proposed_at + APPEAL_WINDOW + 1)
        referee.as_account(members[0]).settle(game_id)
    assert referee.phase(game_id) == RulingPhase.Settled
    ruled = env.game.get_game(game_id).status
    assert ruled == (GameStatus.SolverWon if honest_wins else GameStatus.ChallengerWon)
    if appealed and wrong != honest_hash:
        for rogue in rogues:
            assert referee.member(rogue.address).stake == 0
        slashed = rogue_count * ARBITER_STAKE
        assert referee.credits(appellant.address) - credit_before == (APPEAL_BOND + slashed // 2)


@settings(
    max_examples=GAMES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data())
def test_game_random_adversary_honest_party_wins_and_tokens_conserved(
    _deployed_dispute: DisputeEnv, data: st.DataObject
) -> None:
    env = _deployed_dispute
    snapshot = env.devnet.snapshot()
    try:
        play_random_game(env, data)
    finally:
        env.devnet.revert(snapshot)


# ------------------------------------------------------------ boundaries cross-check


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 2**32 - 1),
    ops=st.integers(1, MAX_OPS),
    arity=st.integers(2, 16),
    parts_drawn=st.lists(st.integers(0, 15), min_size=4, max_size=4),
)
def test_dissection_boundaries_match_contract_on_random_intervals(
    _deployed_dispute: DisputeEnv, k: int, ops: int, arity: int, parts_drawn: list[int]
) -> None:
    """arbiter.dissection.boundaries == DisputeGame.boundaries at every interval a game
    reaches: STEP [0, K] for K up to 2^32 - 1, OP [0, M + 2] for M up to 2^40, and the
    sub-intervals random selections carve out of them; before the OP level is opened both
    refuse the empty interval (OpLevelNotOpen / ValueError)."""
    env = _deployed_dispute
    snapshot = env.devnet.snapshot()
    try:
        trace = SyntheticTrace(0, 1, k, 1)
        job_id = env.post_and_submit(trace, env.solver())
        solver = env.game.as_account(env.solver())
        challenger = env.game.as_account(env.challenger())
        game_id, _ = challenger.challenge_at(
            job_id,
            arity,
            0,
            (trace.leaves[0], trace.leaves[1]),
            (trace.checkpoint_proof(0), trace.checkpoint_proof(1)),
        )
        checked = 0
        for drawn in parts_drawn:
            game = env.game.get_game(game_id)
            if game.status != GameStatus.InProgress:
                break
            if game.level == Level.OP and game.op_count == 0:
                # No interval before the level is opened: both sides refuse, typed.
                with pytest.raises(OpLevelNotOpen) as exc:
                    env.game.boundaries(game_id)
                assert exc.value.args_by_name == {"gameId": game_id}
                with pytest.raises(ValueError, match="has no parts"):
                    boundaries(game.lo, game.hi, game.arity)
                solver.open_op_level(game_id, ops, b"\x01" * 32)
                game = env.game.get_game(game_id)
                assert (game.lo, game.hi) == (0, ops + 2)
            expected = boundaries(game.lo, game.hi, game.arity)
            assert env.game.boundaries(game_id) == expected, (game.lo, game.hi, arity)
            checked += 1
            hashes = [
                b"\x01" * 32 if p == game.op_count + 1 and game.level == Level.OP else b"\x02" * 32
                for p in expected[1:-1]
            ]
            solver.dissect(game_id, hashes)
            challenger.select(game_id, drawn % (len(expected) - 1), hashes)
        assert checked >= 1
    finally:
        env.devnet.revert(snapshot)
