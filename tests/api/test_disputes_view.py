"""/disputes/{id} and /jobs/{id} follow a real dispute game through the indexer.

A job is posted, claimed and submitted with a synthetic cheating trace; a challenger opens
a game; the honest players move on the API stack's chain; after each phase the indexer
syncs and the API must show the game's level, interval, clocks and moves, and finally the
outcome on the job.
"""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from arbiter.actor import GameActor
from arbiter.referee import Referee, TraceOracle
from arbiter.strategy import PostBundle
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import ChainClient
from chain.contracts import JobTerms
from chain.dispute import GameRecord
from chain.generated import GameStatus, Party
from chain.types import Cid, Hash32, Wei
from tests.fixtures.api import ONE, ApiStack, the_arbiter

HONEST = SyntheticTrace(seed=11, checkpoints=8, k=4, ops=30)
CHEAT = SyntheticTrace(seed=11, checkpoints=8, k=4, ops=30, divergence=Divergence(step=13, link=9))


def _account(label: str, stack: ApiStack) -> LocalAccount:
    account: LocalAccount = Account.from_key(keccak(text=f"assay-api-dispute-{label}"))
    stack.devnet.web3().provider.make_request(  # type: ignore[arg-type]
        "anvil_setBalance", [account.address, hex(10**20)]
    )
    stack.token.mint(account.address, 1_000 * ONE)
    return account


def _bundle(game: GameRecord, move: PostBundle) -> Cid:
    return Cid("bafkreisyntheticbundle")


def test_dispute_view_follows_a_game_to_its_outcome(stack: ApiStack) -> None:
    submitter, solver, challenger = (
        _account(x, stack) for x in ("submitter", "solver", "challenger")
    )
    client = ChainClient(stack.devnet.web3(), stack.devnet.accounts[0])
    referee = stack.deployment.referee(client)
    arbiter = the_arbiter(stack, client)
    market = stack.market
    for who in (submitter, solver, challenger):
        stack.token.as_account(who).approve(market.address, 1_000 * ONE)
    terms = JobTerms(
        spec_hash=Hash32(HONEST.spec_hash()),
        spec_cid=Cid("bafkreisyntheticspec"),
        reward=Wei(10 * ONE),
        solver_stake=Wei(5 * ONE),
        challenger_bond=Wei(2 * ONE),
        claim_deadline=stack.devnet.timestamp() + 3_600,
        submit_window=3_600,
        challenge_window=3_600,
        steps_per_checkpoint=HONEST.k,
        checkpoint_count=HONEST.checkpoints + 1,
    )
    job_id, _ = market.as_account(submitter).post_job(terms)
    market.as_account(solver).claim(job_id)
    market.as_account(solver).submit_result(
        job_id,
        Hash32(CHEAT.trace_root),
        9,
        Cid("bafkreisyntheticmanifest"),
        Hash32(CHEAT.leaves[-1]),
        Hash32(CHEAT.files_root),
    )
    games = stack.deployment.game(client)
    game_id, _ = games.as_account(challenger).challenge(job_id, 2)
    stack.indexer().sync_once()
    view = stack.http.get(f"/disputes/{game_id}").json()
    assert view["status"] == "InProgress"
    assert view["level"] == "CHECKPOINT"
    assert view["interval"] == {"base": 0, "lo": 0, "hi": 9}
    assert view["clocks"]["turn"] == "Solver"
    assert 0 < view["clocks"]["mover_remaining_s"] <= view["clocks"]["solver_s"]
    assert [m["name"] for m in view["moves"]] == ["GameCreated"]

    solver_actor = GameActor(games.as_account(solver), Party.Solver, lambda _g: CHEAT, _bundle)
    challenger_actor = GameActor(games.as_account(challenger), Party.Challenger, lambda _g: HONEST)
    solver_actor.step(game_id)
    challenger_actor.step(game_id)
    stack.indexer().sync_once()
    view = stack.http.get(f"/disputes/{game_id}").json()
    assert [m["name"] for m in view["moves"]] == ["GameCreated", "Dissected", "Selected"]
    assert view["rounds"] == 1
    assert view["interval"]["hi"] - view["interval"]["lo"] < 9

    ref = Referee(referee.as_account(arbiter), games, TraceOracle(HONEST))
    for _ in range(200):
        record = games.get_game(game_id)
        if record.finished:
            break
        if ref.vote_if_pending(game_id) is None:
            actor = solver_actor if record.turn == Party.Solver else challenger_actor
            assert actor.step(game_id) is not None
    assert games.get_game(game_id).status == GameStatus.ChallengerWon
    stack.indexer().sync_once()
    view = stack.http.get(f"/disputes/{game_id}").json()
    assert view["status"] == "ChallengerWon"
    assert view["level"] == "OP"
    assert view["interval"]["base"] == 13 and view["interval"]["lo"] == 9
    assert view["moves"][-1]["name"] == "GameResolved"
    job = stack.http.get(f"/jobs/{job_id}").json()
    assert job["status"] == "Slashed"
    assert [(d["game_id"], d["resolved"], d["solver_won"]) for d in job["disputes"]] == [
        (game_id, True, False)
    ]
