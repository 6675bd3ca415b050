"""Cost of a whole dispute: rounds and gas for several d, plus the referee's CPU time.

    python -m bench.dispute [--arity 2 4 8 16] [--skip-referee]

A cheating solver commits a synthetic trace of 2^20 steps (checkpoint every 2^10 steps)
with 2^12 operators per step and one planted divergence; the honest challenger plays it
to the single operator on a fresh anvil, and the referee rules.  For each d it prints
`rounds_d<d>: R` (dissection rounds) and `gas_total_d<d>: G` (every game transaction:
challenge, dissections, selections, OP opening, bundle, ruling).  Then it times the
referee's real work for the GPT model's largest matmul: re-executing that one operator
with repops on CPU from its operand bundle (`referee_matmul_cpu_s`, a median).

The artifact games are measured on the same trace shape with checkpoint files of
`--file-mib` MiB each (default 1024: a 1 GiB checkpoint, 2^18 chunks, so the chunk proof is
18 deep and the filesRoot proof 11): `gas_challenge_availability`,
`gas_answer_availability_worst` (a full 4 KiB chunk of non-zero bytes, the most calldata an
answer can carry), `gas_challenge_file`, `gas_reveal_file` and `gas_prove_final_mismatch`.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from eth_hash.auto import keccak

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
from chain.types import Cid, Hash32, JobId, Wei
from repops.artifact import CHUNK_SIZE, chunk_count, file_root
from repops.merkle import merkle_proof, merkle_root

STEPS = 1 << 20
K = 1 << 10
OPS = 1 << 12
ONE = 10**18
DIVERGENCE = Divergence(step=654_321, link=2_345)


def _bundle(game: GameRecord, move: PostBundle) -> Cid:
    return Cid("bafkreisyntheticbundle")


def _terms(now: int, trace: SyntheticTrace) -> JobTerms:
    """The benchmark's job: 2^20 steps, a checkpoint every 2^10, open for an hour."""
    return JobTerms(
        spec_hash=Hash32(trace.spec_hash()),
        spec_cid=Cid("bafkreisyntheticspec"),
        reward=Wei(10 * ONE),
        solver_stake=Wei(5 * ONE),
        challenger_bond=Wei(2 * ONE),
        claim_deadline=now + 3_600,
        submit_window=3_600,
        challenge_window=3_600,
        steps_per_checkpoint=K,
        checkpoint_count=STEPS // K + 1,
    )


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
        job_id, _ = market.as_account(submitter).post_job(_terms(devnet.timestamp(), honest))
        market.as_account(solver).claim(job_id)
        market.as_account(solver).submit_result(
            job_id,
            Hash32(cheat.trace_root),
            STEPS // K + 1,
            Cid("bafkreisyntheticmanifest"),
            Hash32(cheat.leaves[-1]),
            Hash32(cheat.files_root),
        )
        game_id, opened = game.as_account(challenger).challenge(job_id, arity)
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


def play_artifacts(file_mib: int) -> dict[str, int]:
    """Gas of the availability, file and final-mismatch moves on 2^20-step results."""
    checkpoints = STEPS // K + 1
    honest = SyntheticTrace(seed=9, checkpoints=STEPS // K, k=K, ops=OPS)
    length = file_mib << 20
    count = chunk_count(length)
    data = bytes((i % 255) + 1 for i in range(CHUNK_SIZE))  # non-zero: 16 gas a byte
    leaves = [keccak(data)] * count
    chunk_root = merkle_root(leaves)
    root = file_root(length, chunk_root)
    roots = [root] * checkpoints
    index = count - 1  # the deepest right-most path; the file is whole chunks, so full
    gas: dict[str, int] = {}
    with running_devnet() as devnet:
        deployer, submitter, solver, challenger, arbiter = devnet.accounts[:5]
        client = ChainClient(devnet.web3(), deployer)
        deployment = deploy(client, arbiters=[arbiter.address])
        token, market = deployment.token(client), deployment.market(client)
        game = deployment.game(client)
        for account in (submitter, solver, challenger):
            token.mint(account.address, 1_000 * ONE)
            token.as_account(account).approve(market.address, 1_000 * ONE)

        def submitted(final: bytes) -> JobId:
            terms = _terms(devnet.timestamp(), honest)
            job_id, _ = market.as_account(submitter).post_job(terms)
            market.as_account(solver).claim(job_id)
            market.as_account(solver).submit_result(
                job_id,
                Hash32(honest.trace_root),
                checkpoints,
                Cid("bafkreisyntheticmanifest"),
                Hash32(final),
                Hash32(merkle_root(roots)),
            )
            return job_id

        job_id = submitted(honest.leaves[-1])
        as_solver, as_challenger = game.as_account(solver), game.as_account(challenger)
        game_id, receipt = as_challenger.challenge_availability(job_id, checkpoints - 1, index)
        gas["gas_challenge_availability"] = receipt.gas_used
        receipt = as_solver.answer_availability(
            game_id,
            root,
            merkle_proof(roots, checkpoints - 1),
            length,
            chunk_root,
            data,
            merkle_proof(leaves, index),
        )
        gas["gas_answer_availability_worst"] = receipt.gas_used
        game_id, receipt = as_challenger.challenge_file(job_id, checkpoints - 1)
        gas["gas_challenge_file"] = receipt.gas_used
        receipt = as_solver.reveal_file(
            game_id,
            honest.leaves[-1],
            honest.checkpoint_proof(checkpoints - 1),
            root,
            merkle_proof(roots, checkpoints - 1),
            Cid("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"),
        )
        gas["gas_reveal_file"] = receipt.gas_used
        lying = submitted(b"\x0f" * 32)
        _, receipt = as_challenger.prove_final_mismatch(
            lying, honest.leaves[-1], honest.checkpoint_proof(checkpoints - 1)
        )
        gas["gas_prove_final_mismatch"] = receipt.gas_used
    return gas


def referee_matmul_seconds(repeats: int) -> float:
    """Median CPU seconds for the referee to re-execute the GPT's largest matmul."""
    from bench.referee_op import time_largest_matmul

    return statistics.median(time_largest_matmul() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.dispute", description=__doc__)
    parser.add_argument("--arity", type=int, nargs="+", default=[2, 4, 8, 16])
    parser.add_argument("--skip-referee", action="store_true")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--file-mib", type=int, default=1024, help="checkpoint size (MiB)")
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
    for name, value in play_artifacts(args.file_mib).items():
        print(f"{name}: {value}")
    if not args.skip_referee:
        print(f"referee_matmul_cpu_s: {referee_matmul_seconds(args.repeats):.4f}")


if __name__ == "__main__":
    main()
