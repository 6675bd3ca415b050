"""Availability, file and final-state games (issue: no pay without verifiable work).

A result commits three things a verifier can hold the solver to without its cooperation:
`traceRoot` over the state hashes, `filesRoot` over the checkpoint files' roots (ArtifactLib)
and `finalStateHash` (leaf m).  Each test plays one of the games that enforce them on the
session anvil, against the synthetic traces of arbiter/synthetic.py (three-chunk files).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount

from arbiter.actor import GameActor
from arbiter.referee import TraceOracle
from arbiter.strategy import AnswerAvailability, RevealFile, Timeout
from arbiter.synthetic import SYNTHETIC_FILE_BYTES, SyntheticTrace
from chain.dispute import GameId
from chain.generated import (
    AvailabilityAnswered,
    ChallengeWindowClosed,
    FileRevealed,
    FileRootMismatch,
    FinalMismatchProven,
    FinalStateMatches,
    GameCreated,
    GameKind,
    GameStatus,
    InvalidCheckpointIndex,
    InvalidChunk,
    InvalidProof,
    JobStatus,
    NotParty,
    Party,
    SelfChallenge,
    WrongKind,
)
from chain.types import Cid, JobId
from repops.artifact import CHUNK_SIZE, chunk, commit_file
from repops.merkle import merkle_proof
from tests.dispute.play import rule_honestly
from tests.dispute.support import (
    BOND,
    BOND_BURNED,
    BOND_TO_SOLVER,
    REWARD,
    STAKE,
    STAKE_BURNED,
    STAKE_TO_CHALLENGER,
    Ledger,
    cheat_trace,
    game_as,
    pin_time,
    read_ledger,
)
from tests.fixtures.dispute import CLOCK_BUDGET, DisputeEnv

M_ = 12  # cheat_trace's default: 13 leaves


def _solver(env: DisputeEnv, trace: SyntheticTrace) -> GameActor:
    return GameActor(
        env.game.as_account(env.solver()),
        Party.Solver,
        lambda _g: trace,
        artifacts_for=lambda _g: trace,
    )


def _challenger(env: DisputeEnv, trace: SyntheticTrace, i: int = 0) -> GameActor:
    return GameActor(env.game.as_account(env.challenger(i)), Party.Challenger, lambda _g: trace)


def _approve(env: DisputeEnv, who: LocalAccount, times: int = 1) -> None:
    env.token.as_account(who).approve(env.market.address, BOND * times)


def _open_availability(
    env: DisputeEnv, job_id: JobId, checkpoint: int, index: int, i: int = 0
) -> GameId:
    game_id, receipt = game_as(env, env.challenger(i)).challenge_availability(
        job_id, checkpoint, index
    )
    created = receipt.one(GameCreated)
    assert (created.kind, created.job_id) == (GameKind.Availability, job_id)
    return game_id


def _assert_bond_lost(
    before: Ledger, after: Ledger, env: DisputeEnv, job_id: JobId, games: int = 1
) -> None:
    """The challengers lost their bonds: the winner share is held for the solver until the
    job finalizes (PayoutLib), the rest burned."""
    solver = env.solver().address
    assert after.credits[solver] == before.credits[solver]
    assert env.market.payout_of(job_id).held_for_solver == games * BOND_TO_SOLVER
    assert after.market_burned - before.market_burned == games * BOND_BURNED
    after.assert_conserved()


def _assert_slashed(before: Ledger, after: Ledger, env: DisputeEnv, job_id: JobId) -> None:
    challenger = env.challenger().address
    assert after.credits[challenger] - before.credits[challenger] == BOND + STAKE_TO_CHALLENGER
    assert after.credits[env.submitter.address] - before.credits[env.submitter.address] == REWARD
    assert after.credits[env.solver().address] == before.credits[env.solver().address]
    assert after.market_burned - before.market_burned == STAKE_BURNED
    assert env.market.get_job(job_id).status == JobStatus.Slashed
    after.assert_conserved()


# --------------------------------------------------------------------- availability


@pytest.mark.parametrize(
    ("checkpoint", "index"),
    [(0, 0), (5, 1), (M_, 2), (3, 99)],
    ids=["first-chunk", "middle-chunk", "short-tail-of-final-model", "past-the-end"],
)
def test_availability_honest_solver_posts_the_chunk_and_takes_the_bond_share(
    dispute_env: DisputeEnv, checkpoint: int, index: int
) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id = _open_availability(env, job_id, checkpoint, index)
    solver = _solver(env, trace)

    assert isinstance(solver.step(game_id), AnswerAvailability)

    answered = solver.receipts[-1].one(AvailabilityAnswered)
    data = trace.file_bytes(checkpoint)
    assert (answered.checkpoint, answered.chunk, answered.length) == (checkpoint, index, len(data))
    assert answered.data == chunk(data, index)
    assert answered.chunk_root == commit_file(data).chunk_root
    assert env.game.get_game(game_id).status == GameStatus.SolverWon
    _assert_bond_lost(before, read_ledger(env), env, job_id)
    assert env.market.get_job(job_id).status == JobStatus.Submitted


def test_availability_chunks_posted_on_chain_rebuild_the_whole_file(
    dispute_env: DisputeEnv,
) -> None:
    """Withholding buys nothing: every chunk can be forced onto the chain, and together the
    answers are the committed file, byte for byte."""
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    solver = _solver(env, trace)
    chunks = -(-SYNTHETIC_FILE_BYTES // CHUNK_SIZE)
    _approve(env, env.challenger(), chunks)
    rebuilt = b""
    for index in range(chunks):
        game_id = _open_availability(env, job_id, M_, index)
        solver.step(game_id)
        rebuilt += solver.receipts[-1].one(AvailabilityAnswered).data
    assert rebuilt == trace.file_bytes(M_)


def test_availability_withholding_solver_times_out_and_is_slashed(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id = _open_availability(env, job_id, 4, 0)
    challenger = _challenger(env, trace)
    assert challenger.step(game_id) is None  # the solver still has time

    pin_time(env, env.game.get_game(game_id).turn_started_at + CLOCK_BUDGET + 1)
    assert isinstance(challenger.step(game_id), Timeout)

    assert env.game.get_game(game_id).status == GameStatus.ChallengerWon
    _assert_slashed(before, read_ledger(env), env, job_id)


def test_availability_solver_without_the_committed_file_cannot_answer(
    dispute_env: DisputeEnv,
) -> None:
    """A solver that committed a filesRoot over files it does not have (here: roots of other
    bytes) has no answer the contract accepts, so silence and the slash follow."""
    env = dispute_env
    trace = cheat_trace(None)
    impostor = SyntheticTrace(trace.seed + 1, trace.checkpoints, trace.k, trace.ops)
    job_id = env.post_and_submit(trace, env.solver())
    _approve(env, env.challenger())
    game_id = _open_availability(env, job_id, 2, 1)
    with pytest.raises(InvalidProof):
        _solver(env, impostor).step(game_id)
    assert env.game.get_game(game_id).status == GameStatus.InProgress


@dataclass
class _Answer:
    file_root: bytes
    files_proof: list[bytes]
    length: int
    chunk_root: bytes
    data: bytes
    chunk_proof: list[bytes]


def _answer(trace: SyntheticTrace, checkpoint: int, index: int) -> _Answer:
    data = trace.file_bytes(checkpoint)
    c = commit_file(data)
    roots = trace.file_roots()
    return _Answer(
        roots[checkpoint],
        merkle_proof(roots, checkpoint),
        len(data),
        c.chunk_root,
        chunk(data, index),
        c.chunk_proof(index),
    )


def test_availability_guards_reject_every_wrong_answer(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    _approve(env, env.challenger(), 2)
    game_id = _open_availability(env, job_id, 6, 1)
    games = game_as(env, env.solver())
    good = _answer(trace, 6, 1)
    other = _answer(trace, 7, 1)

    def send(a: _Answer, who: LocalAccount | None = None) -> object:
        g = games if who is None else game_as(env, who)
        return g.answer_availability(
            game_id, a.file_root, a.files_proof, a.length, a.chunk_root, a.data, a.chunk_proof
        )

    flipped = bytes([good.data[0] ^ 1]) + good.data[1:]
    cases: list[tuple[type[Exception], _Answer]] = [
        (InvalidProof, other),  # another checkpoint's file
        (InvalidProof, _Answer(good.file_root, other.files_proof, *list(vars(good).values())[2:])),
        (FileRootMismatch, _Answer(**{**vars(good), "length": good.length + 1})),
        (FileRootMismatch, _Answer(**{**vars(good), "chunk_root": other.chunk_root})),
        (InvalidChunk, _Answer(**{**vars(good), "data": flipped})),
        (InvalidChunk, _Answer(**{**vars(good), "data": good.data[:-1]})),
        (InvalidChunk, _Answer(**{**vars(good), "chunk_proof": other.chunk_proof[::-1]})),
    ]
    for error, answer in cases:
        with pytest.raises(error):
            send(answer)
    with pytest.raises(NotParty):
        send(good, env.challenger())
    with pytest.raises(WrongKind):
        games.dissect(game_id, [bytes(32)])
    with pytest.raises(WrongKind):
        games.post_bundle(game_id, Cid("bafkreianything"))
    # Past the end, the answer must carry no bytes.
    past = _open_availability(env, job_id, 6, 7)
    with pytest.raises(InvalidChunk):
        games.answer_availability(
            past, good.file_root, good.files_proof, good.length, good.chunk_root, b"x", []
        )
    send(good)
    assert env.game.get_game(game_id).status == GameStatus.SolverWon


def test_availability_opening_guards(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    with pytest.raises(InvalidCheckpointIndex):
        game_as(env, env.challenger()).challenge_availability(job_id, M_ + 1, 0)
    with pytest.raises(InvalidCheckpointIndex):
        game_as(env, env.challenger()).challenge_file(job_id, M_ + 1)
    with pytest.raises(SelfChallenge):
        game_as(env, env.solver()).challenge_availability(job_id, 0, 0)
    pin_time(env, env.market.get_job(job_id).challenge_deadline + 1)
    _approve(env, env.challenger())
    with pytest.raises(ChallengeWindowClosed):
        game_as(env, env.challenger()).challenge_availability(job_id, 0, 0)


def test_availability_many_challengers_never_make_an_honest_solver_lose(
    dispute_env: DisputeEnv,
) -> None:
    """Griefing an honest solver with availability games only pays it: each answer earns
    the bond's winner share, and the result still finalizes with reward and stake."""
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    solver = _solver(env, trace)
    games = 0
    for i in range(3):
        _approve(env, env.challenger(i), 2)
        for checkpoint, index in ((i, 0), (M_ - i, 2)):
            game_id = _open_availability(env, job_id, checkpoint, index, i)
            solver.play(game_id)
            assert env.game.get_game(game_id).status == GameStatus.SolverWon
            games += 1
    _assert_bond_lost(before, read_ledger(env), env, job_id, games)
    pin_time(env, env.market.get_job(job_id).challenge_deadline + 1)
    env.market.finalize(job_id)
    after = read_ledger(env)
    solver_address = env.solver().address
    gained = after.credits[solver_address] - before.credits[solver_address]
    assert gained == games * BOND_TO_SOLVER + REWARD + STAKE
    after.assert_conserved()


# ----------------------------------------------------------------------------- file


def _rule_files(
    env: DisputeEnv, trace: SyntheticTrace, files: dict[str, bytes], game_id: GameId
) -> GameStatus:
    """The honest committee rules on a File game, reading files from `files`."""
    return rule_honestly(env, game_id, trace, TraceOracle(trace, files=files)).status


def test_file_game_honest_file_loads_to_its_state_hash_and_the_solver_wins(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id, _ = game_as(env, env.challenger()).challenge_file(job_id, 7)
    solver = _solver(env, trace)
    assert isinstance(solver.step(game_id), RevealFile)
    revealed = solver.receipts[-1].one(FileRevealed)
    assert revealed.state_hash == trace.leaves[7]
    assert revealed.file_root == trace.file_roots()[7]
    assert env.game.get_game(game_id).status == GameStatus.AwaitingRuling

    files = {str(trace.file_cid(7)): trace.file_bytes(7)}
    assert _rule_files(env, trace, files, game_id) == GameStatus.SolverWon

    assert env.game.get_game(game_id).status == GameStatus.SolverWon
    _assert_bond_lost(before, read_ledger(env), env, job_id)


class _UnloadableFiles(SyntheticTrace):
    """Commits (and can serve) files whose bytes do not load to the committed state hashes."""

    def file_bytes(self, checkpoint: int) -> bytes:
        return b"\x00" * 32 + super().file_bytes(checkpoint)[32:]


@pytest.mark.parametrize("defect", ["unloadable", "missing", "other-bytes"])
def test_file_game_bad_file_loses_the_stake(dispute_env: DisputeEnv, defect: str) -> None:
    env = dispute_env
    honest = cheat_trace(None)
    trace = _UnloadableFiles(honest.seed, honest.checkpoints, honest.k, honest.ops)
    if defect != "unloadable":
        trace = honest
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id, _ = game_as(env, env.challenger()).challenge_file(job_id, M_)
    _solver(env, trace).step(game_id)
    files = {
        "unloadable": {str(trace.file_cid(M_)): trace.file_bytes(M_)},
        "missing": {},
        "other-bytes": {str(trace.file_cid(M_)): trace.file_bytes(M_ - 1)},
    }[defect]

    assert _rule_files(env, honest, files, game_id) == GameStatus.ChallengerWon

    _assert_slashed(before, read_ledger(env), env, job_id)


def test_file_game_silent_solver_times_out(dispute_env: DisputeEnv) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id, _ = game_as(env, env.challenger()).challenge_file(job_id, 0)
    pin_time(env, env.game.get_game(game_id).turn_started_at + CLOCK_BUDGET + 1)
    assert isinstance(_challenger(env, trace).step(game_id), Timeout)
    _assert_slashed(before, read_ledger(env), env, job_id)


# ---------------------------------------------------------------------------- final


def test_final_state_hash_that_is_not_leaf_m_is_slashed_in_one_call(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver(), final=b"\x0f" * 32)
    before = read_ledger(env)
    _approve(env, env.challenger())
    c = game_as(env, env.challenger())
    with pytest.raises(InvalidProof):
        c.prove_final_mismatch(job_id, b"\x0f" * 32, trace.checkpoint_proof(M_))

    game_id, receipt = c.prove_final_mismatch(job_id, trace.leaves[M_], trace.checkpoint_proof(M_))

    proven = receipt.one(FinalMismatchProven)
    assert (proven.last_leaf, proven.final_state_hash) == (trace.leaves[M_], b"\x0f" * 32)
    game = env.game.get_game(game_id)
    assert (game.kind, game.status) == (GameKind.Final, GameStatus.ChallengerWon)
    _assert_slashed(before, read_ledger(env), env, job_id)


def test_final_state_hash_equal_to_leaf_m_cannot_be_disputed_this_way(
    dispute_env: DisputeEnv,
) -> None:
    env = dispute_env
    trace = cheat_trace(None)
    job_id = env.post_and_submit(trace, env.solver())
    _approve(env, env.challenger())
    with pytest.raises(FinalStateMatches):
        game_as(env, env.challenger()).prove_final_mismatch(
            job_id, trace.leaves[M_], trace.checkpoint_proof(M_)
        )
    assert env.game.game_count() == 0


def test_top_level_challenge_needs_nothing_and_a_silent_cheater_loses(
    dispute_env: DisputeEnv,
) -> None:
    """The whistleblower has no manifest and no proofs: it opens from the top with a bond
    alone; the solver who never reveals its checkpoints loses its stake at its clock."""
    env = dispute_env
    lie = cheat_trace(37, 12)
    job_id = env.post_and_submit(lie, env.solver())
    before = read_ledger(env)
    _approve(env, env.challenger())
    game_id, receipt = game_as(env, env.challenger()).challenge(job_id, 4)
    game = env.game.get_game(game_id)
    assert (game.kind, game.hash_hi) == (GameKind.Trace, lie.leaves[M_])
    assert receipt.one(GameCreated).kind == GameKind.Trace
    pin_time(env, game.turn_started_at + CLOCK_BUDGET + 1)
    assert isinstance(_challenger(env, lie.honest()).step(game_id), Timeout)
    _assert_slashed(before, read_ledger(env), env, job_id)
