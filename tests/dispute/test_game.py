"""DisputeGame + ArbiterReferee + JobMarket on a real anvil, with synthetic traces.

Every test runs in the `dispute_env` snapshot: market, game and referee freshly deployed;
accounts 1 submitter, 2-3 solvers, 4-6 challengers, 8-9 strangers; a founding committee of
three staked arbiters (two agreeing votes are a majority and decide at once).
Honest sides play arbiter/strategy.py through GameActor; dishonest sides are scripted here.
Amounts: reward 10, stake 6, bond 4 WORK; winners get 50% of the loser's stake/bond (once a
job is slashed, later games only return their bonds; a void reopens the challenge window).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

import pytest
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from arbiter.dissection import boundaries, parts, position_value
from arbiter.strategy import choose_opening
from arbiter.synthetic import SyntheticTrace
from chain.contracts import JobTerms
from chain.dispute import GameRecord
from chain.generated import (
    AlreadyVoted,
    BundleRequested,
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    ChallengeWindowReopened,
    ClockExpired,
    ClockNotExpired,
    Credited,
    DisputeOpened,
    DisputeResolved,
    DisputesOpen,
    DisputeVoided,
    Dissected,
    EmptyBundle,
    GameCreated,
    GameKind,
    GameResolved,
    GameStatus,
    InconsistentHash,
    InvalidArity,
    InvalidCheckpointIndex,
    InvalidOpCount,
    InvalidPart,
    InvalidProof,
    JobFinalized,
    JobStatus,
    Level,
    LevelEntered,
    NotEligible,
    NothingToWithdraw,
    NotParty,
    NotReferee,
    NotYourTurn,
    OpLevelAlreadyOpen,
    OpLevelNotOpen,
    OpLevelOpened,
    Party,
    RewardClaimed,
    RoundMismatch,
    Ruled,
    RulingExpired,
    RulingPending,
    RulingPhase,
    RulingRequested,
    Selected,
    SelfChallenge,
    SolverSlashed,
    TimedOut,
    UnknownGame,
    UnknownJob,
    Voted,
    WrongGameStatus,
    WrongHashCount,
    WrongLevel,
    WrongRulingPhase,
    WrongStatus,
)
from chain.types import Cid, Hash32, JobId
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
    Ledger,
    Match,
    Selector,
    cheat_trace,
    game_as,
    now,
    open_match,
    pin_time,
    read_ledger,
    vote_all,
)
from tests.fixtures.dispute import (
    CLOCK_BUDGET,
    COMMITTEE,
    ESCALATION_WINDOW,
    LEVEL_EXTENSION,
    RULING_WINDOW,
    DisputeEnv,
)

CHALLENGE_WINDOW = 3_600  # DisputeEnv.post_and_submit's challenge window

M_, K_, OPS_ = 12, 8, 40  # the default synthetic shape: 13 leaves, 96 steps, 40 ops


def stranger(env: DisputeEnv, i: int = 0) -> LocalAccount:
    return env.accounts[8 + i]


def random_selector(seed: int) -> Selector:
    """A malicious challenger: picks any part at random, whatever the hashes say."""
    rng = random.Random(seed)

    def select(_match: Match, game: GameRecord) -> int:
        return rng.randrange(len(boundaries(game.lo, game.hi, game.arity)) - 1)

    return select


def assert_solver_won(env: DisputeEnv, match: Match, final: GameRecord, before: Ledger) -> None:
    after = read_ledger(env)
    solver, challenger = env.solver().address, env.challenger().address
    assert final.status == GameStatus.SolverWon
    # The solver's share of the bond is held until its job finalizes (PayoutLib).
    assert after.credits[solver] == before.credits[solver]
    assert env.market.payout_of(match.job_id).held_for_solver == BOND_TO_SOLVER
    assert after.credits[challenger] == before.credits[challenger]
    assert after.market_burned - before.market_burned == BOND_BURNED
    assert env.market.get_job(match.job_id).status == JobStatus.Submitted
    after.assert_conserved()


def assert_challenger_won(env: DisputeEnv, match: Match, final: GameRecord, before: Ledger) -> None:
    after = read_ledger(env)
    challenger = match.challenger.games.client.address
    assert final.status == GameStatus.ChallengerWon
    assert after.credits[challenger] - before.credits[challenger] == BOND + STAKE_TO_CHALLENGER
    assert after.credits[env.submitter.address] - before.credits[env.submitter.address] == REWARD
    assert after.credits[env.solver().address] == before.credits[env.solver().address]
    assert after.market_burned - before.market_burned == STAKE_BURNED
    job = env.market.get_job(match.job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    after.assert_conserved()


# ------------------------------------------------------------------ honest solver wins


@pytest.mark.parametrize(("seed", "arity"), [(1, 2), (2, 3), (3, 7), (4, 16)])
def test_game_honest_solver_vs_random_selector_solver_wins_and_finalizes(
    dispute_env: DisputeEnv, seed: int, arity: int
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(None, seed=seed), arity=arity)
    final = match.finish(select=random_selector(seed))
    assert_solver_won(env, match, final, before)
    job = env.market.get_job(match.job_id)
    with pytest.raises(ChallengeWindowOpen):
        env.market.finalize(match.job_id)
    pin_time(env, job.challenge_deadline + 1)
    receipt = env.market.finalize(match.job_id)
    assert receipt.one(JobFinalized).payout == REWARD + STAKE + BOND_TO_SOLVER
    assert env.market.credits(env.solver().address) == BOND_TO_SOLVER + REWARD + STAKE
    read_ledger(env).assert_conserved()


def test_game_honest_solver_challenged_at_initial_state_wins_ruling(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(None), arity=4)
    game = match.until(lambda g: g.status == GameStatus.AwaitingRuling, select=lambda _m, _g: 0)
    assert (game.level, game.lo, game.hi) == (Level.CHECKPOINT, 0, 1)
    assert game.hash_lo == match.honest.spec_hash()
    assert game.hash_hi == match.honest.leaves[0]
    final = match.finish()
    assert_solver_won(env, match, final, before)


@pytest.mark.parametrize("at", [0, 5, M_ - 1])
def test_game_honest_solver_vs_random_targeted_challenge_solver_wins(
    dispute_env: DisputeEnv, at: int
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(None), arity=3, at=at)
    assert match.record().level == Level.STEP
    final = match.finish(select=random_selector(at))
    assert (final.level, final.base // K_) == (Level.OP, at)
    assert_solver_won(env, match, final, before)


# ------------------------------------------------------------ cheating solver loses

DIVERGENCES = [
    pytest.param(37, 12, id="mid-link"),
    pytest.param(37, 0, id="batch-link0"),
    pytest.param(37, OPS_, id="last-op-linkM"),
    pytest.param(37, OPS_ + 1, id="end-link-only"),
    pytest.param(0, 5, id="first-step"),
    pytest.param(K_ - 1, 3, id="step-before-checkpoint"),
    pytest.param(M_ * K_ - 1, OPS_ + 1, id="last-step-end-link"),
    pytest.param(-1, 0, id="initial-state"),
]


@pytest.mark.parametrize("targeted", [False, True], ids=["top", "targeted"])
@pytest.mark.parametrize(("step", "link"), DIVERGENCES)
def test_game_cheating_solver_vs_honest_challenger_loses_at_divergence(
    dispute_env: DisputeEnv, step: int, link: int, targeted: bool
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(step, link), arity=4, targeted=targeted)
    created = match.open_receipt.one(GameCreated)
    if targeted and step >= 0:
        assert (created.level, created.base) == (Level.STEP, step // K_)
    else:  # an initial-state lie has no agreed checkpoint: choose_opening opens from the top
        assert (created.level, created.lo, created.hi) == (Level.CHECKPOINT, 0, M_ + 1)
    final = match.finish()
    if step == -1:
        assert (final.level, final.lo, final.hi) == (Level.CHECKPOINT, 0, 1)
    else:
        assert (final.level, final.base, final.lo, final.hi) == (Level.OP, step, link, link + 1)
        assert final.op_count == OPS_
    assert_challenger_won(env, match, final, before)
    with pytest.raises(WrongStatus) as exc:
        env.market.finalize(match.job_id)
    assert exc.value.args_by_name["actual"] == JobStatus.Slashed


def test_game_cheater_slashed_events_carry_the_split(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    match.until(lambda g: g.status == GameStatus.AwaitingRuling)
    receipt = vote_all(env, match.game_id, b"\x01" * 32)[-1]
    job_id, challenger = match.job_id, env.challenger().address
    assert receipt.one(Ruled) == Ruled(match.game_id, b"\x01" * 32, False, False)
    assert receipt.one(GameResolved) == GameResolved(
        match.game_id, job_id, GameStatus.ChallengerWon
    )
    assert receipt.one(DisputeResolved) == DisputeResolved(job_id, challenger, False)
    assert receipt.one(SolverSlashed) == SolverSlashed(
        job_id, env.solver().address, challenger, STAKE_TO_CHALLENGER, STAKE_BURNED
    )
    # One credit for the submitter, one for the winner (bond back + the whole pool: the only game).
    market_events = [
        e for e in receipt.events if isinstance(e, DisputeResolved | SolverSlashed | Credited)
    ]
    assert market_events == [
        DisputeResolved(job_id, challenger, False),
        SolverSlashed(job_id, env.solver().address, challenger, STAKE_TO_CHALLENGER, STAKE_BURNED),
        Credited(env.submitter.address, REWARD),
        Credited(challenger, BOND + STAKE_TO_CHALLENGER),
    ]


def test_choose_opening_picks_first_lying_checkpoint_pair() -> None:
    lie = cheat_trace(37, 12)
    assert choose_opening(lie.leaves, lie.honest()) is not None
    assert choose_opening(lie.leaves, lie.honest()).at_checkpoint == 37 // K_  # type: ignore[union-attr]
    assert choose_opening(cheat_trace(-1).leaves, lie.honest()).at_checkpoint is None  # type: ignore[union-attr]
    assert choose_opening(lie.honest().leaves, lie.honest()) is None


@pytest.mark.parametrize(("step", "link"), [(0, 0), (5, 9), (M_ - 1, OPS_ + 1)])
def test_game_targeted_opening_with_k1_descends_straight_to_op(
    dispute_env: DisputeEnv, step: int, link: int
) -> None:
    env = dispute_env
    before = read_ledger(env)
    lie = cheat_trace(step, link, m=M_, k=1)
    match = open_match(env, lie, arity=5, targeted=True)
    created = match.open_receipt.one(GameCreated)
    assert (created.level, created.base, created.lo, created.hi) == (Level.STEP, step, 0, 1)
    assert match.open_receipt.one(LevelEntered) == LevelEntered(match.game_id, Level.OP, step, 0, 0)
    game = match.record()
    assert (game.level, game.base, game.lo, game.hi, game.op_count) == (Level.OP, step, 0, 0, 0)
    assert (game.turn, game.status) == (Party.Solver, GameStatus.InProgress)
    assert game.solver_clock == game.challenger_clock == CLOCK_BUDGET + LEVEL_EXTENSION
    assert (game.hash_lo, game.hash_hi) == (lie.leaves[step], lie.leaves[step + 1])
    final = match.finish()
    assert (final.level, final.base, final.lo) == (Level.OP, step, link)
    assert_challenger_won(env, match, final, before)


def test_game_top_opening_with_k1_skips_step_level(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    lie = cheat_trace(6, 2, m=M_, k=1)
    match = open_match(env, lie, arity=2)
    before = match.record()
    while before.level == Level.CHECKPOINT:
        match.step()
        after = match.record()
        if after.level != Level.CHECKPOINT:
            break
        before = after
    # One select crossed both boundaries: CHECKPOINT -> STEP -> OP, two extensions at once.
    entered = [e for e in match.challenger.receipts[-1].events if isinstance(e, LevelEntered)]
    assert entered == [
        LevelEntered(match.game_id, Level.STEP, 6, 0, 1),
        LevelEntered(match.game_id, Level.OP, 6, 0, 0),
    ]
    assert (after.level, after.base, after.op_count) == (Level.OP, 6, 0)
    assert after.solver_clock == before.solver_clock + 2 * LEVEL_EXTENSION
    assert match.finish().status == GameStatus.ChallengerWon


# ------------------------------------------------------------------------- timeouts

SOLVER_SILENT = {
    "checkpoint-dissect": lambda g: g.level == Level.CHECKPOINT and g.turn == Party.Solver,
    "step-dissect": lambda g: (
        g.level == Level.STEP and g.turn == Party.Solver and g.status == GameStatus.InProgress
    ),
    "op-open": lambda g: g.level == Level.OP and g.op_count == 0,
    "op-dissect": lambda g: (
        g.level == Level.OP
        and g.op_count > 0
        and g.turn == Party.Solver
        and g.status == GameStatus.InProgress
    ),
    "bundle": lambda g: g.status == GameStatus.AwaitingBundle,
}
CHALLENGER_SILENT = {
    "checkpoint-select": lambda g: g.level == Level.CHECKPOINT and g.turn == Party.Challenger,
    "step-select": lambda g: g.level == Level.STEP and g.turn == Party.Challenger,
    "op-select": lambda g: g.level == Level.OP and g.turn == Party.Challenger,
}


def _run_out_the_clock(env: DisputeEnv, match: Match, game: GameRecord) -> None:
    """Before the budget: timeout refused; after it: the late move refused, timeout ends it."""
    party = game.turn
    clock = game.solver_clock if party == Party.Solver else game.challenger_clock
    start = game.turn_started_at
    anyone = game_as(env, stranger(env))
    for left in (10, 0):
        pin_time(env, start + clock - left)
        with pytest.raises(ClockNotExpired) as exc:
            anyone.timeout(match.game_id)
        assert exc.value.args_by_name == {
            "gameId": match.game_id,
            "party": party,
            "remaining": left,
        }
    pin_time(env, start + clock + 1)
    with pytest.raises(ClockExpired) as late:
        match.send_honest(party)
    assert late.value.args_by_name == {"gameId": match.game_id, "party": party}
    receipt = anyone.timeout(match.game_id)
    assert receipt.one(TimedOut) == TimedOut(match.game_id, party)
    winner = GameStatus.ChallengerWon if party == Party.Solver else GameStatus.SolverWon
    assert receipt.one(GameResolved) == GameResolved(match.game_id, match.job_id, winner)
    with pytest.raises(WrongGameStatus):
        anyone.timeout(match.game_id)


@pytest.mark.parametrize("where", list(SOLVER_SILENT))
def test_game_solver_silent_times_out_and_challenger_wins(
    dispute_env: DisputeEnv, where: str
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(37, 12), arity=4)
    game = match.until(SOLVER_SILENT[where])
    assert game.status in (GameStatus.InProgress, GameStatus.AwaitingBundle)
    _run_out_the_clock(env, match, game)
    assert_challenger_won(env, match, match.record(), before)


@pytest.mark.parametrize("where", list(CHALLENGER_SILENT))
def test_game_challenger_silent_times_out_and_solver_wins(
    dispute_env: DisputeEnv, where: str
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(None), arity=4)
    game = match.until(CHALLENGER_SILENT[where])  # agrees everywhere: always the last part
    _run_out_the_clock(env, match, game)
    assert_solver_won(env, match, match.record(), before)


def test_game_move_at_exact_budget_is_in_time_and_leaves_zero(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(None), arity=4)
    game = match.record()
    pin_time(env, game.turn_started_at + game.solver_clock)
    match.send_honest(Party.Solver)
    after = match.record()
    assert (after.solver_clock, after.turn) == (0, Party.Challenger)
    assert after.challenger_clock == CLOCK_BUDGET
    pin_time(env, after.turn_started_at + 1)
    with pytest.raises(ClockNotExpired):
        game_as(env, stranger(env)).timeout(match.game_id)


def test_game_clocks_grow_by_level_extension_on_each_descent(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    seen: list[tuple[GameRecord, GameRecord]] = []
    previous = match.record()
    assert previous.solver_clock == previous.challenger_clock == CLOCK_BUDGET
    while previous.status in (GameStatus.InProgress, GameStatus.AwaitingBundle):
        pin_time(env, previous.turn_started_at + 7)  # every move takes exactly 7 s
        match.step()
        current = match.record()
        seen.append((previous, current))
        previous = current
    assert previous.status == GameStatus.AwaitingRuling
    descents = []
    for before, after in seen:
        # A new level, or the OP level narrowed to one link (the bundle is requested).
        descended = after.level != before.level or (
            before.status == GameStatus.InProgress and after.status == GameStatus.AwaitingBundle
        )
        if descended:
            descents.append((after.level, after.status))
        ext = LEVEL_EXTENSION if descended else 0
        if before.turn == Party.Solver:
            assert after.solver_clock == before.solver_clock - 7 + ext
            assert after.challenger_clock == before.challenger_clock + ext
        else:
            assert after.challenger_clock == before.challenger_clock - 7 + ext
            assert after.solver_clock == before.solver_clock + ext
    assert descents == [
        (Level.STEP, GameStatus.InProgress),
        (Level.OP, GameStatus.InProgress),
        (Level.OP, GameStatus.AwaitingBundle),
    ]


# ----------------------------------------------------------- concurrent challenges


def _open_concurrent(env: DisputeEnv, lie: SyntheticTrace, n: int) -> list[Match]:
    first = open_match(env, lie, arity=4, challenger_index=0)
    matches = [first]
    if n >= 2:
        matches.append(
            open_match(
                env,
                lie,
                arity=2,
                targeted=lie.divergence is not None,
                at=None if lie.divergence is not None else 4,
                challenger_index=1,
                job_id=first.job_id,
            )
        )
    if n >= 3:
        matches.append(open_match(env, lie, arity=16, challenger_index=2, job_id=first.job_id))
    return matches


def _to_ruling_after_window(
    env: DisputeEnv, matches: list[Match], select: Selector | None = None
) -> None:
    """Spend 3000 s of each solver's clock, bring every game to its ruling, close the window."""
    job = env.market.get_job(matches[0].job_id)
    env.devnet.increase_time(3_000)
    for match in matches:
        match.until(lambda g: g.status == GameStatus.AwaitingRuling, select=select)
    pin_time(env, job.challenge_deadline + 1)
    with pytest.raises(DisputesOpen) as exc:
        env.market.finalize(job.job_id)
    assert exc.value.args_by_name == {"jobId": job.job_id, "count": len(matches)}


@pytest.mark.parametrize("n", [2, 3])
def test_game_concurrent_challenges_vs_cheater_all_win_share_the_pool(
    dispute_env: DisputeEnv, n: int
) -> None:
    """Every game that proves the lie owns an equal part of the winners' pool: the first
    slashes, the closing one is paid at once, the others claim (anyone may call)."""
    env = dispute_env
    before = read_ledger(env)
    matches = _open_concurrent(env, cheat_trace(37, 12), n)
    assert env.market.get_job(matches[0].job_id).open_disputes == n
    _to_ruling_after_window(env, matches)
    job_id = matches[0].job_id
    for i, match in enumerate(matches):
        game = match.record()
        receipt = vote_all(env, match.game_id, ZERO)[-1]
        slashed = [e for e in receipt.events if isinstance(e, SolverSlashed)]
        assert len(slashed) == (1 if i == 0 else 0)
        credited = [e for e in receipt.events if isinstance(e, Credited)]
        mine = env.challenger(i).address
        last = i == n - 1
        share = STAKE_TO_CHALLENGER - (n - 1) * (STAKE_TO_CHALLENGER // n)
        expected = [Credited(env.submitter.address, REWARD)] if i == 0 else []
        expected.append(Credited(mine, BOND + (share if last else 0)))
        assert credited == expected
        assert receipt.one(DisputeResolved).solver_won is False
        assert (match.record().status, game.level, game.base) == (
            GameStatus.ChallengerWon,
            Level.OP,
            37,
        )
        job = env.market.get_job(match.job_id)
        assert (job.status, job.open_disputes) == (JobStatus.Slashed, n - 1 - i)
        if not last:
            with pytest.raises(DisputesOpen):
                env.market.claim_reward(job_id, mine)
    for i in range(n - 1):
        receipt = env.market.as_account(stranger(env)).claim_reward(
            job_id, env.challenger(i).address
        )
        assert receipt.one(RewardClaimed) == RewardClaimed(
            job_id, env.challenger(i).address, 1, STAKE_TO_CHALLENGER // n
        )
        with pytest.raises(NothingToWithdraw):
            env.market.claim_reward(job_id, env.challenger(i).address)
    after = read_ledger(env)
    gained = [
        after.credits[env.challenger(i).address] - before.credits[env.challenger(i).address]
        for i in range(n)
    ]
    assert sum(gained) == n * BOND + STAKE_TO_CHALLENGER
    assert max(gained) - min(gained) <= n  # equal parts up to rounding
    payout = env.market.payout_of(job_id)
    assert (payout.claimed_games, payout.claimed_amount) == (n, payout.reward_pool)
    assert after.credits[env.submitter.address] - before.credits[env.submitter.address] == REWARD
    assert after.credits[env.solver().address] == 0
    assert after.market_burned - before.market_burned == STAKE_BURNED
    after.assert_conserved()


@pytest.mark.parametrize("n", [2, 3])
def test_game_concurrent_challenges_vs_honest_solver_all_lose_then_finalizes(
    dispute_env: DisputeEnv, n: int
) -> None:
    env = dispute_env
    before = read_ledger(env)
    matches = _open_concurrent(env, cheat_trace(None), n)
    _to_ruling_after_window(env, matches, select=random_selector(n))
    for i, match in enumerate(matches):
        assert match.rule().status == GameStatus.SolverWon
        assert match.record().status == GameStatus.SolverWon
        if i < n - 1:
            with pytest.raises(DisputesOpen) as exc:
                env.market.finalize(match.job_id)
            assert exc.value.args_by_name["count"] == n - 1 - i
    receipt = env.market.finalize(matches[0].job_id)
    assert receipt.one(JobFinalized).payout == REWARD + STAKE + n * BOND_TO_SOLVER
    after = read_ledger(env)
    assert after.credits[env.solver().address] == n * BOND_TO_SOLVER + REWARD + STAKE
    for i in range(n):
        assert after.credits[env.challenger(i).address] == 0
    assert after.market_burned - before.market_burned == n * BOND_BURNED
    after.assert_conserved()


def test_game_second_game_after_slash_shares_the_pool(dispute_env: DisputeEnv) -> None:
    """A game opened before the slash still settles and, proving the same lie, owns half
    the pool: the first game to resolve (a sybil could play it fast) cannot take it all."""
    env = dispute_env
    matches = _open_concurrent(env, cheat_trace(37, 12), 2)
    matches[0].finish()
    before = read_ledger(env)
    game = matches[1].record()
    pin_time(env, game.turn_started_at + game.solver_clock + 1)  # the cheater gives up
    receipt = game_as(env, stranger(env)).timeout(matches[1].game_id)
    gid, job_id, second = matches[1].game_id, matches[1].job_id, env.challenger(1).address
    assert list(receipt.events) == [
        TimedOut(gid, Party.Solver),
        GameResolved(gid, job_id, GameStatus.ChallengerWon),
        DisputeResolved(job_id, second, False),
        RewardClaimed(job_id, second, 1, STAKE_TO_CHALLENGER - STAKE_TO_CHALLENGER // 2),
        Credited(second, BOND + STAKE_TO_CHALLENGER - STAKE_TO_CHALLENGER // 2),
    ]
    assert matches[1].record().status == GameStatus.ChallengerWon
    after = read_ledger(env)
    assert after.credits[second] - before.credits[second] == (
        BOND + STAKE_TO_CHALLENGER - STAKE_TO_CHALLENGER // 2
    )
    assert after.credits[env.solver().address] == 0
    assert after.market_burned == before.market_burned
    after.assert_conserved()


def test_game_late_challenger_losing_after_slash_gets_its_bond_back_cheater_gets_nothing(
    dispute_env: DisputeEnv,
) -> None:
    """A proven cheater earns nothing: a challenger that loses a game on an already slashed
    result (here by going silent) gets its whole bond back, none of it to the solver and
    none burned."""
    env = dispute_env
    matches = _open_concurrent(env, cheat_trace(37, 12), 2)
    matches[0].finish()
    before = read_ledger(env)
    matches[1].step()  # the solver dissects; the second challenger goes silent
    game = matches[1].record()
    pin_time(env, game.turn_started_at + game.challenger_clock + 1)
    receipt = game_as(env, stranger(env)).timeout(matches[1].game_id)
    gid, job_id, second = matches[1].game_id, matches[1].job_id, env.challenger(1).address
    assert list(receipt.events) == [
        TimedOut(gid, Party.Challenger),
        GameResolved(gid, job_id, GameStatus.SolverWon),
        DisputeResolved(job_id, second, True),
        Credited(second, BOND),
    ]
    assert matches[1].record().status == GameStatus.SolverWon
    after = read_ledger(env)
    assert after.credits[env.solver().address] == before.credits[env.solver().address] == 0
    assert after.credits[second] - before.credits[second] == BOND
    assert after.market_burned == before.market_burned
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    after.assert_conserved()


# -------------------------------------------------------------------------- referee


def _awaiting_ruling(env: DisputeEnv, step: int | None = 37) -> Match:
    match = open_match(env, cheat_trace(step, 12), arity=4)
    match.until(lambda g: g.status == GameStatus.AwaitingRuling)
    return match


def test_referee_vote_by_non_member_reverts_not_eligible(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _awaiting_ruling(env)
    for account in (env.challenger(), env.solver(), stranger(env), env.spare_arbiters[0]):
        with pytest.raises(NotEligible) as exc:
            env.referee.as_account(account).vote(match.game_id, ZERO)
        assert exc.value.args_by_name == {"gameId": match.game_id, "account": account.address}


def test_referee_vote_without_pending_ruling_reverts_wrong_phase(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    member = env.referee.as_account(env.arbiter)
    for game_id in (match.game_id, 999):
        with pytest.raises(WrongRulingPhase) as exc:
            member.vote(game_id, ZERO)
        assert exc.value.args_by_name == {
            "gameId": game_id,
            "expected": RulingPhase.Voting,
            "actual": RulingPhase.Unrequested,
        }
        # WrongRulingPhase declares RulingPhase arguments: they decode to its members.
        assert exc.value.args_by_name["expected"] is RulingPhase.Voting
        assert type(exc.value.args_by_name["actual"]) is RulingPhase
    with pytest.raises(WrongRulingPhase):
        member.settle(match.game_id)


def test_referee_ruling_request_counts_committee_and_sets_deadline(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4)
    match.until(lambda g: g.status == GameStatus.AwaitingBundle)
    receipt = match.solver.games.post_bundle(match.game_id, "bafkreibundle")  # type: ignore[arg-type]
    block = env.client.w3.eth.get_block(receipt.block_number)
    deadline = int(block["timestamp"]) + RULING_WINDOW
    assert receipt.one(RulingRequested) == RulingRequested(match.game_id, Level.OP, 37, 12)
    assert receipt.one(RulingPending) == RulingPending(match.game_id, COMMITTEE, deadline)
    ruling = env.referee.ruling(match.game_id)
    assert (ruling.committee_size, ruling.solver_hash) == (COMMITTEE, match.record().hash_hi)
    assert env.referee.phase(match.game_id) == RulingPhase.Voting
    assert match.record().bundle_cid == "bafkreibundle"


def test_referee_majority_decides_at_once_and_votes_are_final(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _awaiting_ruling(env)
    first = env.referee.as_account(env.arbiters[0])
    receipt = first.vote(match.game_id, b"\x01" * 32)
    assert receipt.one(Voted) == Voted(match.game_id, env.arbiters[0].address, b"\x01" * 32, 1)
    assert match.record().status == GameStatus.AwaitingRuling  # one vote of three decides nothing
    with pytest.raises(AlreadyVoted):
        first.vote(match.game_id, b"\x02" * 32)
    receipt = env.referee.as_account(env.arbiters[1]).vote(match.game_id, b"\x01" * 32)
    assert receipt.one(Ruled) == Ruled(match.game_id, b"\x01" * 32, False, False)
    assert match.record().status == GameStatus.ChallengerWon
    assert env.referee.phase(match.game_id) == RulingPhase.Settled
    with pytest.raises(WrongRulingPhase):
        env.referee.as_account(env.arbiters[2]).vote(match.game_id, b"\x01" * 32)
    read_ledger(env).assert_conserved()


def test_referee_zero_vote_never_confirms_a_solver_zero_hash(dispute_env: DisputeEnv) -> None:
    """ZERO means "no valid bundle": it rules against the solver whatever its hash."""
    env = dispute_env
    match = _awaiting_ruling(env, step=None)
    final = vote_all(env, match.game_id, ZERO)[-1]
    assert final.one(Ruled).solver_won is False
    assert match.record().status == GameStatus.ChallengerWon


@pytest.mark.parametrize("step", [None, 37], ids=["honest-solver", "cheater"])
def test_referee_total_silence_escalates_then_voids_refunds_bond_and_reopens_window(
    dispute_env: DisputeEnv, step: int | None
) -> None:
    env = dispute_env
    before = read_ledger(env)
    match = open_match(env, cheat_trace(step, 12), arity=4)
    match.until(lambda g: g.status == GameStatus.AwaitingRuling)
    original = env.market.get_job(match.job_id).challenge_deadline
    requested = env.referee.ruling(match.game_id).requested_at
    pin_time(env, requested + RULING_WINDOW + 1)
    assert env.referee.phase(match.game_id) == RulingPhase.Escalated
    deadline = env.referee.escalation_deadline(match.game_id)
    assert deadline == requested + RULING_WINDOW + ESCALATION_WINDOW
    anyone = env.referee.as_account(stranger(env))
    pin_time(env, deadline)
    with pytest.raises(WrongRulingPhase):
        anyone.settle(match.game_id)
    pin_time(env, deadline + 1)
    receipt = anyone.settle(match.game_id)
    challenger = env.challenger().address
    reopened = deadline + 1 + CHALLENGE_WINDOW
    assert deadline + 1 > original
    assert list(receipt.events) == [
        RulingExpired(match.game_id),
        GameResolved(match.game_id, match.job_id, GameStatus.Void),
        ChallengeWindowReopened(match.job_id, reopened),
        DisputeVoided(match.job_id, challenger),
        Credited(challenger, BOND),
    ]
    assert match.record().status == GameStatus.Void
    assert env.referee.phase(match.game_id) == RulingPhase.Settled
    with pytest.raises(WrongRulingPhase):
        env.referee.as_account(env.arbiter).vote(match.game_id, ZERO)
    job = env.market.get_job(match.job_id)
    assert (job.status, job.open_disputes, job.challenge_deadline) == (
        JobStatus.Submitted,
        0,
        reopened,
    )
    assert env.market.payout_of(match.job_id).reopenings == 1
    pin_time(env, reopened + 1)
    env.market.finalize(match.job_id)
    after = read_ledger(env)
    assert after.credits[challenger] - before.credits[challenger] == BOND
    assert after.credits[env.solver().address] == REWARD + STAKE
    after.assert_conserved()


def test_referee_silent_first_round_escalation_majority_decides(dispute_env: DisputeEnv) -> None:
    """Nobody votes in the ruling window; in the escalation two of three agree: decided."""
    env = dispute_env
    match = _awaiting_ruling(env)
    requested = env.referee.ruling(match.game_id).requested_at
    pin_time(env, requested + RULING_WINDOW + 1)
    final = match.rule()
    assert final.status == GameStatus.ChallengerWon
    read_ledger(env).assert_conserved()


def test_referee_silence_cannot_get_a_cheater_paid_second_challenger_slashes_it(
    dispute_env: DisputeEnv,
) -> None:
    """The committee stays silent on the first game until it voids, past the original
    challenge deadline; a second challenger still challenges the cheater's result (in the
    last second of the reopened window), wins and slashes it."""
    env = dispute_env
    before = read_ledger(env)
    lie = cheat_trace(37, 12)
    first = open_match(env, lie, arity=4)
    first.until(lambda g: g.status == GameStatus.AwaitingRuling)
    job_id = first.job_id
    original = env.market.get_job(job_id).challenge_deadline
    void_at = env.referee.escalation_deadline(first.game_id) + 1
    pin_time(env, void_at)
    env.referee.as_account(stranger(env)).settle(first.game_id)
    reopened = void_at + CHALLENGE_WINDOW
    assert env.market.get_job(job_id).challenge_deadline == reopened > original
    with pytest.raises(ChallengeWindowOpen):
        env.market.finalize(job_id)  # the cheater cannot collect

    pin_time(env, reopened)
    second = open_match(env, lie, arity=4, targeted=True, challenger_index=1, job_id=job_id)
    assert second.open_receipt.one(DisputeOpened) == DisputeOpened(
        job_id, env.challenger(1).address, BOND
    )
    pin_time(env, reopened + 1)
    with pytest.raises(ChallengeWindowClosed) as exc:
        game_as(env, env.challenger(2)).challenge(job_id, 2)
    assert exc.value.args_by_name == {"jobId": job_id, "deadline": reopened}
    final = second.finish()
    assert (final.status, final.level, final.base, final.lo) == (
        GameStatus.ChallengerWon,
        Level.OP,
        37,
        12,
    )
    after = read_ledger(env)
    gained = {
        a: after.credits[a] - before.credits[a]
        for a in (
            env.challenger(0).address,
            env.challenger(1).address,
            env.solver().address,
            env.submitter.address,
        )
    }
    assert gained == {
        env.challenger(0).address: BOND,
        env.challenger(1).address: BOND + STAKE_TO_CHALLENGER,
        env.solver().address: 0,
        env.submitter.address: REWARD,
    }
    job = env.market.get_job(job_id)
    assert (job.status, job.open_disputes) == (JobStatus.Slashed, 0)
    after.assert_conserved()


def test_referee_report_ruling_and_void_only_from_referee(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _awaiting_ruling(env)
    for account in (env.arbiter, env.challenger(), env.solver(), env.accounts[0]):
        client = env.client.with_account(account)
        contract = client.contract("DisputeGame", env.game.address)
        with pytest.raises(NotReferee) as exc:
            client.transact(contract.functions.reportRuling(match.game_id, False))
        assert exc.value.args_by_name == {"caller": account.address}
        with pytest.raises(NotReferee):
            client.transact(contract.functions.reportVoid(match.game_id))
    assert match.record().status == GameStatus.AwaitingRuling


# --------------------------------------------------------------------------- guards


def _at_checkpoint_dissect(env: DisputeEnv) -> Match:
    return open_match(env, cheat_trace(37, 12), arity=4)


def test_guard_moves_by_wrong_party_revert_not_party_and_out_of_turn_not_your_turn(
    dispute_env: DisputeEnv,
) -> None:
    """NotParty(gameId, party, caller): the caller is not the side the move belongs to (the
    solver dissects, opens the OP level and posts the bundle; the challenger selects), checked
    before the turn. NotYourTurn(gameId, turn, caller): the right side, out of turn."""
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid, lie = match.game_id, match.solver_trace
    points = boundaries(0, M_ + 1, 4)[1:-1]
    hashes = [lie.leaves[p - 1] for p in points]
    proofs = [lie.checkpoint_proof(p - 1) for p in points]
    solver, challenger = game_as(env, env.solver()), game_as(env, env.challenger())
    outsider = game_as(env, stranger(env))
    other_challenger = game_as(env, env.challenger(1))
    s_addr, c_addr, o_addr = env.solver().address, env.challenger().address, stranger(env).address

    def not_party(call: Callable[[], object], party: Party, caller: str) -> None:
        with pytest.raises(NotParty) as exc:
            call()
        assert type(exc.value) is NotParty
        assert exc.value.args_by_name == {"gameId": gid, "party": party, "caller": caller}

    def not_your_turn(call: Callable[[], object], turn: Party, caller: str) -> None:
        with pytest.raises(NotYourTurn) as exc:
            call()
        assert type(exc.value) is NotYourTurn
        assert exc.value.args_by_name == {"gameId": gid, "turn": turn, "caller": caller}
        assert type(exc.value.args_by_name["turn"]) is Party

    # Solver's turn. Solver-only moves by anyone else: NotParty, even for the challenger.
    assert match.record().turn == Party.Solver
    not_party(lambda: challenger.dissect(gid, hashes, proofs), Party.Solver, c_addr)
    not_party(lambda: outsider.dissect(gid, hashes, proofs), Party.Solver, o_addr)
    # Selecting is the challenger's move: the solver (whose turn it is) and an outsider are
    # not the party; the challenger is, but it is not its turn.
    not_party(lambda: solver.select(gid, 0, hashes), Party.Challenger, s_addr)
    not_party(lambda: outsider.select(gid, 0, hashes), Party.Challenger, o_addr)
    not_party(
        lambda: other_challenger.select(gid, 0, hashes),
        Party.Challenger,
        env.challenger(1).address,
    )
    not_your_turn(lambda: challenger.select(gid, 0, hashes), Party.Solver, c_addr)
    solver.dissect(gid, hashes, proofs)
    # Challenger's turn: the solver may not dissect twice (its move, not its turn), nor
    # select for the challenger (not its move at all).
    assert match.record().turn == Party.Challenger
    not_your_turn(lambda: solver.dissect(gid, hashes, proofs), Party.Challenger, s_addr)
    not_party(lambda: solver.select(gid, 1, hashes), Party.Challenger, s_addr)
    not_party(lambda: outsider.select(gid, 1, hashes), Party.Challenger, o_addr)
    not_party(lambda: challenger.dissect(gid, hashes, proofs), Party.Solver, c_addr)
    challenger.select(gid, 1, hashes)
    not_your_turn(lambda: challenger.select(gid, 1, hashes), Party.Solver, c_addr)
    # Down at OP (unopened): opening it is the solver's move.
    game = match.until(lambda g: g.level == Level.OP)
    assert (game.op_count, game.turn) == (0, Party.Solver)
    not_party(lambda: challenger.open_op_level(gid, OPS_, ZERO), Party.Solver, c_addr)
    not_party(lambda: outsider.open_op_level(gid, OPS_, ZERO), Party.Solver, o_addr)
    match.step()  # the solver opens the OP level
    match.step()  # and dissects it: the challenger's turn
    assert match.record().turn == Party.Challenger
    # The solver's own move out of turn: NotYourTurn comes before the OP-level checks.
    not_your_turn(lambda: solver.open_op_level(gid, OPS_, ZERO), Party.Challenger, s_addr)
    # At the bundle: only the solver.
    match.until(lambda g: g.status == GameStatus.AwaitingBundle)
    assert match.record().turn == Party.Solver
    not_party(lambda: challenger.post_bundle(gid, "bafkreix"), Party.Solver, c_addr)  # type: ignore[arg-type]
    not_party(lambda: outsider.post_bundle(gid, "bafkreix"), Party.Solver, o_addr)  # type: ignore[arg-type]
    assert match.record().status == GameStatus.AwaitingBundle


def test_guard_game_status_is_checked_before_the_party(dispute_env: DisputeEnv) -> None:
    """A move in the wrong game status reverts WrongGameStatus whoever sends it."""
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid = match.game_id
    outsider = game_as(env, stranger(env))
    challenger = game_as(env, env.challenger())
    for call, expected in (
        (lambda: outsider.post_bundle(gid, "bafkreix"), GameStatus.AwaitingBundle),  # type: ignore[arg-type]
        (lambda: challenger.post_bundle(gid, "bafkreix"), GameStatus.AwaitingBundle),  # type: ignore[arg-type]
    ):
        with pytest.raises(WrongGameStatus) as exc:
            call()
        assert exc.value.args_by_name == {
            "gameId": gid,
            "expected": expected,
            "actual": GameStatus.InProgress,
        }
    match.until(lambda g: g.status == GameStatus.AwaitingBundle)
    for call in (
        lambda: outsider.dissect(gid, [ZERO]),
        lambda: challenger.dissect(gid, [ZERO]),
        lambda: outsider.select(gid, 0, []),
        lambda: outsider.open_op_level(gid, 3, ZERO),
    ):
        with pytest.raises(WrongGameStatus) as exc:
            call()
        assert exc.value.args_by_name == {
            "gameId": gid,
            "expected": GameStatus.InProgress,
            "actual": GameStatus.AwaitingBundle,
        }


def test_guard_moves_in_wrong_status_revert_wrong_game_status(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid = match.game_id
    solver = game_as(env, env.solver())
    challenger = game_as(env, env.challenger())

    def expect(call: Callable[[], object], expected: GameStatus, actual: GameStatus) -> None:
        with pytest.raises(WrongGameStatus) as exc:
            call()
        assert exc.value.args_by_name == {"gameId": gid, "expected": expected, "actual": actual}
        # Decoded to the generated enum (the ABI says uint8): members, not bare ints.
        assert type(exc.value.args_by_name["expected"]) is GameStatus
        assert type(exc.value.args_by_name["actual"]) is GameStatus

    expect(
        lambda: solver.post_bundle(gid, "bafkreix"),
        GameStatus.AwaitingBundle,
        GameStatus.InProgress,
    )  # type: ignore[arg-type]
    match.until(lambda g: g.status == GameStatus.AwaitingBundle)
    bundle = GameStatus.AwaitingBundle
    expect(lambda: solver.dissect(gid, [ZERO]), GameStatus.InProgress, bundle)
    expect(lambda: solver.open_op_level(gid, 3, ZERO), GameStatus.InProgress, bundle)
    expect(lambda: challenger.select(gid, 0, []), GameStatus.InProgress, bundle)
    match.step()  # post the bundle
    ruling = GameStatus.AwaitingRuling
    expect(lambda: solver.post_bundle(gid, "bafkreix"), bundle, ruling)  # type: ignore[arg-type]
    expect(lambda: challenger.timeout(gid), GameStatus.InProgress, ruling)
    match.step()  # the ruling
    won = GameStatus.ChallengerWon
    expect(lambda: solver.dissect(gid, [ZERO]), GameStatus.InProgress, won)
    expect(lambda: challenger.select(gid, 0, []), GameStatus.InProgress, won)
    expect(lambda: challenger.timeout(gid), GameStatus.InProgress, won)
    expect(lambda: solver.post_bundle(gid, "bafkreix"), bundle, won)  # type: ignore[arg-type]


def test_guard_open_op_level_outside_op_reverts_wrong_level(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    solver = game_as(env, env.solver())
    for level in (Level.CHECKPOINT, Level.STEP):
        match.until(lambda g, lv=level: g.level == lv and g.turn == Party.Solver)
        with pytest.raises(WrongLevel) as exc:
            solver.open_op_level(match.game_id, OPS_, ZERO)
        assert exc.value.args_by_name == {
            "gameId": match.game_id,
            "expected": Level.OP,
            "actual": level,
        }
        assert isinstance(exc.value.args_by_name["actual"], Level)


@pytest.mark.parametrize("arity", [0, 1, 17, 255])
def test_guard_arity_out_of_range_reverts_invalid_arity(
    dispute_env: DisputeEnv, arity: int
) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    challenger = game_as(env, env.challenger())
    with pytest.raises(InvalidArity) as exc:
        challenger.challenge(job_id, arity)
    assert exc.value.args_by_name == {"arity": arity, "min": 2, "max": 16}
    with pytest.raises(InvalidArity):
        challenger.challenge_at(
            job_id,
            arity,
            0,
            (lie.leaves[0], lie.leaves[1]),
            (lie.checkpoint_proof(0), lie.checkpoint_proof(1)),
        )
    assert env.game.game_count() == 0


def test_guard_solver_challenging_itself_reverts_self_challenge(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    solver = game_as(env, env.solver())
    with pytest.raises(SelfChallenge) as exc:
        solver.challenge(job_id, 2)
    assert exc.value.args_by_name == {"jobId": job_id, "solver": env.solver().address}
    with pytest.raises(SelfChallenge):
        solver.challenge_at(
            job_id,
            2,
            0,
            (lie.leaves[0], lie.leaves[1]),
            (lie.checkpoint_proof(0), lie.checkpoint_proof(1)),
        )


def test_guard_bad_opening_proofs_revert_invalid_proof(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    c = game_as(env, env.challenger())
    cases = [
        (
            lambda: c.challenge_at(
                job_id,
                2,
                3,
                (lie.leaves[4], lie.leaves[4]),
                (lie.checkpoint_proof(3), lie.checkpoint_proof(4)),
            ),
            3,
        ),
        (
            lambda: c.challenge_at(
                job_id,
                2,
                3,
                (lie.leaves[3], lie.leaves[3]),
                (lie.checkpoint_proof(3), lie.checkpoint_proof(4)),
            ),
            4,
        ),
    ]
    for call, index in cases:
        with pytest.raises(InvalidProof) as exc:
            call()
        assert exc.value.args_by_name == {"gameId": 1, "index": index}
    assert env.game.game_count() == 0


def test_guard_dissect_with_bad_proof_reverts_invalid_proof(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    lie, gid = match.solver_trace, match.game_id
    points = boundaries(0, M_ + 1, 4)[1:-1]  # [3, 6, 9]: leaves 2, 5, 8
    hashes = [lie.leaves[p - 1] for p in points]
    proofs = [lie.checkpoint_proof(p - 1) for p in points]
    solver = game_as(env, env.solver())
    for bad in range(3):
        tampered = list(hashes)
        tampered[bad] = b"\x02" * 32
        with pytest.raises(InvalidProof) as exc:
            solver.dissect(gid, tampered, proofs)
        assert exc.value.args_by_name == {"gameId": gid, "index": points[bad] - 1}
        swapped = list(proofs)
        swapped[bad] = lie.checkpoint_proof(0)
        with pytest.raises(InvalidProof):
            solver.dissect(gid, hashes, swapped)
    solver.dissect(gid, hashes, proofs)


@pytest.mark.parametrize("index", [M_, M_ + 1, 2**63])
def test_guard_challenge_at_past_last_pair_reverts_invalid_checkpoint_index(
    dispute_env: DisputeEnv, index: int
) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    proof = lie.checkpoint_proof(M_)
    with pytest.raises(InvalidCheckpointIndex) as exc:
        game_as(env, env.challenger()).challenge_at(
            job_id, 2, index, (lie.leaves[-1], lie.leaves[-1]), (proof, proof)
        )
    assert exc.value.args_by_name == {"jobId": job_id, "index": index, "count": M_ + 1}


def test_guard_select_with_other_hashes_or_part_reverts(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4, targeted=True)
    match.step()  # the solver's STEP dissection
    game = match.record()
    hashes = list(env.game.pending_dissection(game) or ())
    assert len(hashes) == 3
    c = game_as(env, env.challenger())
    for other in (hashes[:-1], [*hashes, ZERO], [hashes[1], hashes[0], hashes[2]], []):
        with pytest.raises(RoundMismatch) as exc:
            c.select(match.game_id, 0, other)
        assert exc.value.args_by_name == {"gameId": match.game_id}
    for part in (4, 5, 2**255):
        with pytest.raises(InvalidPart) as exc2:
            c.select(match.game_id, part, hashes)
        assert exc2.value.args_by_name == {"gameId": match.game_id, "part": part, "parts": 4}
    c.select(match.game_id, 3, hashes)


def test_guard_dissect_wrong_counts_revert_wrong_hash_count(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    lie, gid = match.solver_trace, match.game_id
    points = boundaries(0, M_ + 1, 4)[1:-1]
    hashes = [lie.leaves[p - 1] for p in points]
    proofs = [lie.checkpoint_proof(p - 1) for p in points]
    solver = game_as(env, env.solver())

    def expect(call: Callable[[], object], expected: int, actual: int) -> None:
        with pytest.raises(WrongHashCount) as exc:
            call()
        assert exc.value.args_by_name == {"gameId": gid, "expected": expected, "actual": actual}

    expect(lambda: solver.dissect(gid, hashes[:2], proofs[:2]), 3, 2)
    expect(lambda: solver.dissect(gid, [*hashes, ZERO], [*proofs, []]), 3, 4)
    expect(lambda: solver.dissect(gid, hashes, proofs[:2]), 3, 2)
    expect(lambda: solver.dissect(gid, hashes, [*proofs, []]), 3, 4)
    expect(lambda: solver.dissect(gid, hashes, []), 3, 0)
    match.until(lambda g: g.level == Level.STEP and g.turn == Party.Solver)
    step_hashes = [ZERO] * 3
    expect(lambda: solver.dissect(gid, step_hashes, [[]]), 0, 1)
    expect(lambda: solver.dissect(gid, step_hashes[:1], []), 3, 1)
    solver.dissect(gid, step_hashes, [])


def test_guard_op_level_open_and_dissect_rules(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid = match.game_id
    game = match.until(lambda g: g.level == Level.OP)
    solver = game_as(env, env.solver())
    with pytest.raises(OpLevelNotOpen) as exc:
        solver.dissect(gid, [ZERO])
    assert exc.value.args_by_name == {"gameId": gid}
    for count in (0, MAX_OPS + 1, 2**64 - 1):
        with pytest.raises(InvalidOpCount) as exc2:
            solver.open_op_level(gid, count, ZERO)
        assert exc2.value.args_by_name == {"opCount": count, "maxOps": MAX_OPS}
    # M = 6: positions 0..8, d = 4 splits at 2, 4, 6; M + 1 = 7 is no boundary yet.
    last = b"\x07" * 32
    receipt = solver.open_op_level(gid, 6, last)
    opened = match.record()
    assert (opened.lo, opened.hi, opened.op_count, opened.last_op_hash) == (0, 8, 6, last)
    assert opened.turn == Party.Solver
    assert opened.hash_hi != game.hash_hi  # the end link sha256(h_M ‖ stateHash_{t+1})
    with pytest.raises(OpLevelAlreadyOpen) as exc3:
        solver.open_op_level(gid, 6, last)
    assert exc3.value.args_by_name == {"gameId": gid}
    end = hashlib.sha256(last + game.hash_hi).digest()
    assert receipt.one(OpLevelOpened) == OpLevelOpened(gid, 6, last, end)
    assert opened.hash_hi == end
    garbage = [b"\x01" * 32, b"\x02" * 32, b"\x03" * 32]
    solver.dissect(gid, garbage)
    game_as(env, env.challenger()).select(gid, 3, garbage)
    # Now [6, 8]: the only interior point is 7 = M + 1, which must be h_M.
    with pytest.raises(InconsistentHash) as exc4:
        solver.dissect(gid, [b"\x09" * 32])
    assert exc4.value.args_by_name == {"gameId": gid, "position": 7}
    solver.dissect(gid, [last])


def test_guard_op_dissection_inconsistent_at_m_plus_1_reverts(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid = match.game_id
    match.until(lambda g: g.level == Level.OP)
    solver = game_as(env, env.solver())
    last = b"\x07" * 32
    solver.open_op_level(gid, 2, last)  # positions 0..4, d = 4: every interior point posted
    with pytest.raises(InconsistentHash) as exc:
        solver.dissect(gid, [b"\x01" * 32, b"\x02" * 32, b"\x03" * 32])
    assert exc.value.args_by_name == {"gameId": gid, "position": 3}
    solver.dissect(gid, [b"\x01" * 32, b"\x02" * 32, last])


def test_guard_empty_bundle_reverts(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    match.until(lambda g: g.status == GameStatus.AwaitingBundle)
    with pytest.raises(EmptyBundle) as exc:
        game_as(env, env.solver()).post_bundle(match.game_id, "")  # type: ignore[arg-type]
    assert exc.value.args_by_name == {"gameId": match.game_id}


def test_guard_unknown_game_reverts(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    solver, challenger = game_as(env, env.solver()), game_as(env, env.challenger())
    for call in (
        lambda: solver.dissect(7, [ZERO]),
        lambda: challenger.select(7, 0, [ZERO]),
        lambda: solver.open_op_level(7, 3, ZERO),
        lambda: solver.post_bundle(7, "bafkreix"),  # type: ignore[arg-type]
        lambda: challenger.timeout(7),
        lambda: env.game.boundaries(7),
    ):
        with pytest.raises(UnknownGame) as exc:
            call()
        assert exc.value.args_by_name == {"gameId": 7}
    assert env.game.get_game(7).status == GameStatus.Absent


def test_guard_challenge_after_window_reverts_challenge_window_closed(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    deadline = env.market.get_job(job_id).challenge_deadline
    c = game_as(env, env.challenger())
    pin_time(env, deadline + 1)
    with pytest.raises(ChallengeWindowClosed) as exc:
        c.challenge(job_id, 2)
    assert exc.value.args_by_name == {"jobId": job_id, "deadline": deadline}
    with pytest.raises(ChallengeWindowClosed):
        c.challenge_at(
            job_id,
            2,
            0,
            (lie.leaves[0], lie.leaves[1]),
            (lie.checkpoint_proof(0), lie.checkpoint_proof(1)),
        )
    assert env.game.game_count() == 0


def test_guard_challenge_at_window_edge_is_accepted(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    pin_time(env, env.market.get_job(job_id).challenge_deadline)
    game_id, receipt = game_as(env, env.challenger()).challenge(job_id, 2)
    assert receipt.one(DisputeOpened) == DisputeOpened(job_id, env.challenger().address, BOND)
    assert receipt.one(GameCreated) == GameCreated(
        game_id, job_id, env.challenger().address, GameKind.Trace, Level.CHECKPOINT, 0, 0, M_ + 1, 2
    )


def _post_only(env: DisputeEnv, trace: SyntheticTrace) -> JobId:
    """An Open job with `trace`'s shape (nobody has claimed it)."""
    job_id, _ = env.market.as_account(env.submitter).post_job(
        JobTerms(
            spec_hash=Hash32(trace.spec_hash()),
            spec_cid=Cid("bafkreisyntheticspec"),
            reward=REWARD,
            solver_stake=STAKE,
            challenger_bond=BOND,
            claim_deadline=now(env) + 3_600,
            submit_window=3_600,
            challenge_window=3_600,
            steps_per_checkpoint=trace.k,
            checkpoint_count=trace.checkpoints + 1,
        )
    )
    return job_id


def _job_not_submitted(env: DisputeEnv, status: JobStatus, lie: SyntheticTrace) -> JobId:
    """A job on `lie`'s shape brought to `status` by the market's own transitions."""
    if status is JobStatus.Finalized:
        job_id = env.post_and_submit(lie, env.solver())
        pin_time(env, env.market.get_job(job_id).challenge_deadline + 1)
        env.market.finalize(job_id)
    elif status is JobStatus.Slashed:
        match = open_match(env, lie, arity=4)
        match.finish()
        job_id = match.job_id
    else:
        job_id = _post_only(env, lie)
        if status is JobStatus.Claimed:
            env.market.as_account(env.solver()).claim(job_id)
        elif status is JobStatus.Cancelled:
            env.market.as_account(env.submitter).cancel(job_id)
        elif status is JobStatus.Expired:
            pin_time(env, env.market.get_job(job_id).claim_deadline + 1)
            env.market.expire(job_id)
    assert env.market.status_of(job_id) is status
    return job_id


@pytest.mark.parametrize(
    "status",
    [
        JobStatus.Open,
        JobStatus.Claimed,
        JobStatus.Cancelled,
        JobStatus.Expired,
        JobStatus.Finalized,
        JobStatus.Slashed,
    ],
    ids=lambda s: s.name,
)
def test_guard_challenge_on_job_not_submitted_reverts_wrong_status_before_proofs(
    dispute_env: DisputeEnv, status: JobStatus
) -> None:
    """Only a Submitted result can be challenged: the game reverts with the market's
    WrongStatus(jobId, Submitted, actual) before it looks at the proofs, the opening index
    or who is challenging (only the arity is checked first). No game, no bond moved."""
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = _job_not_submitted(env, status, lie)
    games_before = env.game.game_count()
    ledger_before = read_ledger(env)
    expected = {"jobId": job_id, "expected": JobStatus.Submitted, "actual": status}
    proof0, proof1 = (lie.checkpoint_proof(i) for i in (0, 1))
    calls: list[Callable[[], object]] = []
    for account in (env.challenger(1), env.solver(), stranger(env)):
        c = game_as(env, account)
        calls += [
            lambda c=c: c.challenge(job_id, 2),
            lambda c=c: c.challenge(job_id, 16),
            lambda c=c: c.challenge_availability(job_id, 0, 0),
            lambda c=c: c.challenge_file(job_id, 0),
            lambda c=c: c.prove_final_mismatch(job_id, ZERO, []),
            lambda c=c: c.challenge_at(
                job_id, 3, 0, (lie.leaves[0], lie.leaves[1]), (proof0, proof1)
            ),
            lambda c=c: c.challenge_at(job_id, 2, 4, (ZERO, ZERO), ([], [])),
            lambda c=c: c.challenge_at(job_id, 2, M_, (ZERO, ZERO), ([], [])),  # index past end
        ]
    for call in calls:
        with pytest.raises(WrongStatus) as exc:
            call()
        assert type(exc.value) is WrongStatus
        assert exc.value.args_by_name == expected
    # The arity is the one check that comes first.
    with pytest.raises(InvalidArity) as exc2:
        game_as(env, env.challenger(1)).challenge(job_id, 1)
    assert exc2.value.args_by_name == {"arity": 1, "min": 2, "max": 16}
    assert env.game.game_count() == games_before
    assert read_ledger(env) == ledger_before


def test_guard_challenge_on_unknown_job_reverts_unknown_job(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    lie = cheat_trace(None)
    job_id = env.post_and_submit(lie, env.solver())
    c = game_as(env, env.challenger())
    for unknown in (0, job_id + 1, 2**255):
        with pytest.raises(UnknownJob) as exc:
            c.challenge(JobId(unknown), 2)
        assert exc.value.args_by_name == {"jobId": unknown}
        with pytest.raises(UnknownJob):
            c.challenge_at(
                JobId(unknown),
                2,
                0,
                (lie.leaves[0], lie.leaves[1]),
                (lie.checkpoint_proof(0), lie.checkpoint_proof(1)),
            )
    assert env.game.game_count() == 0


# ---------------------------------------------------------------- positions (sanity)


def test_game_op_level_end_link_binds_next_state(dispute_env: DisputeEnv) -> None:
    """The OP level's last position is sha256(h_M ‖ stateHash_{t+1}) on both sides."""
    env = dispute_env
    match = open_match(env, cheat_trace(37, OPS_ + 1), arity=4, targeted=True)
    game = match.until(lambda g: g.level == Level.OP and g.op_count > 0)
    lie = match.solver_trace
    assert game.hash_hi == position_value(lie, Level.OP, 37, OPS_ + 2)
    assert game.hash_lo == position_value(lie, Level.OP, 37, 0)
    assert game.hash_lo == position_value(match.honest, Level.OP, 37, 0)
    final = match.finish()
    assert (final.lo, final.hi) == (OPS_ + 1, OPS_ + 2)
    receipts = [
        r
        for r in match.challenger.receipts
        if any(isinstance(e, BundleRequested) for e in r.events)
    ]
    assert receipts[-1].one(BundleRequested) == BundleRequested(
        match.game_id, Level.OP, 37, OPS_ + 1
    )


def test_game_boundaries_before_op_level_opened_reverts_op_level_not_open(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    match = open_match(env, cheat_trace(37, 12), arity=4, targeted=True)
    game = match.until(lambda g: g.level == Level.OP)
    assert (game.lo, game.hi, game.op_count) == (0, 0, 0)
    with pytest.raises(OpLevelNotOpen) as exc:
        env.game.boundaries(match.game_id)
    assert type(exc.value) is OpLevelNotOpen
    assert exc.value.args_by_name == {"gameId": match.game_id}
    # The Python mirror refuses the empty interval too, instead of dividing by zero.
    for lo, hi in ((0, 0), (5, 5), (6, 5)):
        with pytest.raises(ValueError, match="has no parts"):
            parts(lo, hi, game.arity)
        with pytest.raises(ValueError, match="has no parts"):
            boundaries(lo, hi, game.arity)
    # Once opened, the level has boundaries again, and both sides agree on them.
    match.step()
    opened = match.record()
    assert opened.op_count == OPS_
    assert env.game.boundaries(match.game_id) == boundaries(0, OPS_ + 2, 4) == [0, 10, 21, 31, 42]


def test_game_dissect_and_select_emit_round_events(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    match = _at_checkpoint_dissect(env)
    gid, lie = match.game_id, match.solver_trace
    points = boundaries(0, M_ + 1, 4)
    assert env.game.boundaries(gid) == points == [0, 3, 6, 9, 13]
    hashes = [lie.leaves[p - 1] for p in points[1:-1]]
    proofs = [lie.checkpoint_proof(p - 1) for p in points[1:-1]]
    receipt = game_as(env, env.solver()).dissect(gid, hashes, proofs)
    assert receipt.one(Dissected) == Dissected(gid, Level.CHECKPOINT, 0, M_ + 1, tuple(hashes))
    game = match.record()
    assert game.round_hash == keccak(abi_encode(["bytes32[]"], [hashes]))
    assert (game.turn, game.rounds) == (Party.Challenger, 1)
    receipt = game_as(env, env.challenger()).select(gid, 1, hashes)
    assert receipt.one(Selected) == Selected(gid, 1, 3, 6)
    game = match.record()
    assert (game.lo, game.hi, game.hash_lo, game.hash_hi) == (3, 6, hashes[0], hashes[1])
    assert (game.turn, game.round_hash) == (Party.Solver, ZERO)
