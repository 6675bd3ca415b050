"""Cost of a whole dispute: rounds and gas for several d, plus the referee's CPU time.

    python -m bench.dispute [--arity 2 4 8 16] [--skip-referee]

A cheating solver commits a synthetic trace of 2^20 steps (checkpoint every 2^10 steps)
with 2^12 operators per step and one planted divergence; the honest challenger plays it
to the single operator on a fresh anvil, and the referee rules.  For each d it prints
`rounds_d<d>: R` (dissection rounds) and `gas_total_d<d>: G` (every game transaction:
challenge, dissections, selections, OP opening, bundle, ruling).  Then it times the
referee's real work for the GPT model's largest matmul: re-executing that one operator
with repops on CPU from its operand bundle (`referee_matmul_cpu_s`, a median).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from arbiter.actor import GameActor
from arbiter.referee import Referee, TraceOracle
from arbiter.strategy import PostBundle
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import ChainClient, Receipt
from chain.contracts import JobTerms
from chain.deploy import deploy
from chain.devnet import running_devnet
from chain.dispute import GameRecord
from chain.generated import GameStatus, Party
from chain.types import Cid, Hash32, Wei

STEPS = 1 << 20
K = 1 << 10
OPS = 1 << 12
ONE = 10**18
DIVERGENCE = Divergence(step=654_321, link=2_345)


def _bundle(game: GameRecord, move: PostBundle) -> Cid:
    return Cid("bafkreisyntheticbundle")


def play_one(arity: int) -> tuple[int, int]:
    """Rounds and total gas of one full game at arity `arity`."""
    honest = SyntheticTrace(seed=7, checkpoints=STEPS // K, k=K, ops=OPS)
    cheat = SyntheticTrace(seed=7, checkpoints=STEPS // K, k=K, ops=OPS, divergence=DIVERGENCE)
    with running_devnet() as devnet:
        deployer, submitter, solver, challenger = devnet.accounts[:4]
        arbiters = devnet.accounts[4:7]
        client = ChainClient(devnet.web3(), deployer)
        deployment = deploy(client, arbiters=[a.address for a in arbiters])
        token, market = deployment.token(client), deployment.market(client)
        game = deployment.game(client)
        for account in (submitter, solver, challenger):
            token.mint(account.address, 1_000 * ONE)
            token.as_account(account).approve(market.address, 1_000 * ONE)
        terms = JobTerms(
            spec_hash=Hash32(honest.spec_hash()),
            spec_cid=Cid("bafkreisyntheticspec"),
            reward=Wei(10 * ONE),
            solver_stake=Wei(5 * ONE),
            challenger_bond=Wei(2 * ONE),
            claim_deadline=devnet.timestamp() + 3_600,
            submit_window=3_600,
            challenge_window=3_600,
            steps_per_checkpoint=K,
            checkpoint_count=STEPS // K + 1,
        )
        job_id, _ = market.as_account(submitter).post_job(terms)
        market.as_account(solver).claim(job_id)
        market.as_account(solver).submit_result(
            job_id,
            Hash32(cheat.trace_root),
            STEPS // K + 1,
            Cid("bafkreisyntheticmanifest"),
            Hash32(cheat.leaves[-1]),
        )
        game_id, opened = game.as_account(challenger).challenge(
            job_id, arity, cheat.leaves[-1], cheat.checkpoint_proof(STEPS // K)
        )
        solver_actor = GameActor(game.as_account(solver), Party.Solver, lambda _g: cheat, _bundle)
        challenger_actor = GameActor(
            game.as_account(challenger), Party.Challenger, lambda _g: honest
        )
        # The committee of three: two equal votes are a majority, final at once.
        committee = [
            Referee(deployment.referee(client).as_account(a), game, TraceOracle(honest))
            for a in arbiters
        ]
        while not (record := game.get_game(game_id)).finished:
            if record.status == GameStatus.AwaitingRuling:
                for member in committee:
                    if game.get_game(game_id).finished:
                        break
                    member.vote_if_pending(game_id)
                continue
            actor = solver_actor if record.turn == Party.Solver else challenger_actor
            if actor.step(game_id) is None:
                raise RuntimeError(f"d={arity}: {record.turn.name} had no move")
        receipts: list[Receipt] = [
            opened,
            *solver_actor.receipts,
            *challenger_actor.receipts,
            *(r for member in committee for r in member.receipts),
        ]
        return record.rounds, sum(r.gas_used for r in receipts)


def referee_matmul_seconds(repeats: int) -> float:
    """Median CPU seconds for the referee to re-execute the GPT's largest matmul."""
    from bench.referee_op import time_largest_matmul

    return statistics.median(time_largest_matmul() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispute", description=__doc__)
    parser.add_argument("--arity", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--skip-referee", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"trace: {STEPS} steps, checkpoint every {K}, {OPS} ops/step, divergence {DIVERGENCE}")
    best: tuple[int, int, int] | None = None
    for arity in args.arity:
        started = time.perf_counter()
        rounds, gas = play_one(arity)
        print(f"rounds_d{arity}: {rounds}")
        print(f"gas_total_d{arity}: {gas}")
        print(f"  (played in {time.perf_counter() - started:.1f} s)")
        if best is None or gas < best[2]:
            best = (arity, rounds, gas)
    if best is not None:
        print(f"best: d={best[0]} rounds={best[1]} gas={best[2]}")
    if not args.skip_referee:
        print(f"referee_matmul_cpu_s: {referee_matmul_seconds(args.repeats):.4f}")


if __name__ == "__main__":
    main()
