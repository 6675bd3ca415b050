"""Helpers for the dispute-game tests: open games on synthetic traces, move them one turn at
a time, pin the chain clock, and read the whole token ledger in one JSON-RPC batch.

Nothing here mocks the chain or the contracts: every helper talks to the session anvil.
Honest moves come from arbiter/strategy.py through arbiter/actor.py; the tests script the
dishonest side themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from arbiter.actor import GameActor
from arbiter.referee import Referee
from arbiter.strategy import Move, choose_opening, honest_move
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import Receipt
from chain.dispute import DisputeGameClient, GameId, GameRecord
from chain.generated import GameStatus, JobStatus, Party
from chain.types import JobId
from tests.chain.support import eth_calls
from tests.dispute.play import actors, committee, rule_honestly, vote_all
from tests.fixtures.dispute import BOND, REWARD, STAKE, DisputeEnv

BPS = 10_000
WINNER_SHARE_BPS = 5_000
BOND_TO_SOLVER = BOND * WINNER_SHARE_BPS // BPS
BOND_BURNED = BOND - BOND_TO_SOLVER
STAKE_TO_CHALLENGER = STAKE * WINNER_SHARE_BPS // BPS
STAKE_BURNED = STAKE - STAKE_TO_CHALLENGER
MAX_OPS = 1 << 40
ZERO = bytes(32)


# ------------------------------------------------------------------------------ clock


def _rpc(env: DisputeEnv, method: str, params: list[Any]) -> Any:
    return env.devnet._rpc(method, params)


def pin_time(env: DisputeEnv, timestamp: int) -> None:
    """Make the latest block AND the next one carry `timestamp`.

    ChainClient simulates each write on the pending block and mines it in the next one;
    pinning both makes a clock check see the same second in both, to the second.
    """
    _rpc(env, "evm_setNextBlockTimestamp", [timestamp])
    _rpc(env, "evm_mine", [])
    _rpc(env, "evm_setNextBlockTimestamp", [timestamp])


def now(env: DisputeEnv) -> int:
    return env.devnet.timestamp()


# ------------------------------------------------------------------------------ games

Selector = Callable[["Match", GameRecord], int]
"""A scripted challenger's choice of part (replaces the honest first disagreement)."""


@dataclass
class Match:
    """One game between two actors playing from their own traces, refereed from `honest`."""

    env: DisputeEnv
    job_id: JobId
    game_id: GameId
    solver: GameActor
    challenger: GameActor
    honest: SyntheticTrace
    solver_trace: SyntheticTrace
    open_receipt: Receipt

    def record(self) -> GameRecord:
        return self.env.game.get_game(self.game_id)

    def referee(self, i: int = 0) -> Referee:
        """Committee member `i`, ruling from the honest trace."""
        return committee(self.env, self.honest)[i]

    def rule(self) -> GameRecord:
        """The honest committee rules on the pending game (a majority votes: final at once)."""
        return rule_honestly(self.env, self.game_id, self.honest)

    def honest_move_of(self, party: Party) -> Move:
        """The move `party`'s actor would make now (whatever the clocks say)."""
        actor = self.solver if party == Party.Solver else self.challenger
        game = self.record()
        hashes = self.env.game.pending_dissection(game) if party == Party.Challenger else None
        move = honest_move(game, party, actor.trace_for(game), hashes, game.turn_started_at)
        assert move is not None, f"{party.name} has no move in {game}"
        return move

    def send_honest(self, party: Party) -> Receipt:
        """Send `party`'s honest move now (used to show a late move is refused)."""
        actor = self.solver if party == Party.Solver else self.challenger
        game = self.record()
        hashes = self.env.game.pending_dissection(game) if party == Party.Challenger else None
        return actor.send(game, self.honest_move_of(party), hashes)

    def step(self, select: Selector | None = None) -> None:
        """One turn: the referee rules if a ruling is pending, else the side to move moves.

        `select`, when given, replaces the challenger's choice of part (a malicious selector).
        """
        game = self.record()
        assert not game.finished, f"game {self.game_id} already ended: {game.status.name}"
        if game.status == GameStatus.AwaitingRuling:
            assert self.rule().status != GameStatus.AwaitingRuling
            return
        if game.turn == Party.Solver:
            assert self.solver.step(self.game_id) is not None
            return
        if select is None:
            assert self.challenger.step(self.game_id) is not None
            return
        hashes = self.env.game.pending_dissection(game)
        assert hashes is not None
        self.challenger.games.select(self.game_id, select(self, game), hashes)

    def until(
        self,
        done: Callable[[GameRecord], bool],
        select: Selector | None = None,
        max_moves: int = 200,
    ) -> GameRecord:
        """Play turns until `done(game)` holds; fails if the game ends first."""
        for _ in range(max_moves):
            game = self.record()
            if done(game):
                return game
            self.step(select)
        raise AssertionError(f"game {self.game_id}: condition not reached in {max_moves} moves")

    def finish(self, select: Selector | None = None, max_moves: int = 200) -> GameRecord:
        """Play to the end (the referee rules honestly); returns the final game."""
        return self.until(lambda g: g.finished, select, max_moves)


def cheat_trace(
    step: int | None, link: int = 0, *, m: int = 12, k: int = 8, ops: int = 40, seed: int = 7
) -> SyntheticTrace:
    """The solver's trace: honest when `step` is None, else lying from (step, link)."""
    return SyntheticTrace(seed, m, k, ops, None if step is None else Divergence(step, link))


def open_match(
    env: DisputeEnv,
    solver_trace: SyntheticTrace,
    *,
    arity: int = 4,
    targeted: bool = False,
    at: int | None = None,
    solver_index: int = 0,
    challenger_index: int = 0,
    job_id: JobId | None = None,
    challenger_trace: SyntheticTrace | None = None,
) -> Match:
    """Post and submit a job committing to `solver_trace` (unless `job_id` is given) and
    open a game from an honest challenger's point of view.

    targeted=True opens at the checkpoint pair choose_opening picks (STEP level); `at`
    forces a checkpoint pair; otherwise the game opens from the top (CHECKPOINT level).
    """
    honest = solver_trace.honest()
    mine = challenger_trace or honest
    if job_id is None:
        job_id = env.post_and_submit(solver_trace, env.solver(solver_index))
    games = env.game.as_account(env.challenger(challenger_index))
    index = at
    if targeted and index is None:
        opening = choose_opening(solver_trace.leaves, mine)
        assert opening is not None, "the challenger agrees with every committed leaf"
        index = opening.at_checkpoint
    if index is None:
        game_id, receipt = games.challenge(job_id, arity)
    else:
        game_id, receipt = games.challenge_at(
            job_id,
            arity,
            index,
            (solver_trace.leaves[index], solver_trace.leaves[index + 1]),
            (solver_trace.checkpoint_proof(index), solver_trace.checkpoint_proof(index + 1)),
        )
    solver, challenger = actors(env, solver_trace, mine, solver_index, challenger_index)
    return Match(env, job_id, game_id, solver, challenger, honest, solver_trace, receipt)


def game_as(env: DisputeEnv, account: LocalAccount) -> DisputeGameClient:
    return env.game.as_account(account)


# ------------------------------------------------------------------------------ ledger


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def _calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> str:
    return "0x" + (_selector(signature) + abi_encode(list(types), list(args))).hex()


LIVE = frozenset({JobStatus.Open, JobStatus.Claimed, JobStatus.Submitted})
STAKED = frozenset({JobStatus.Claimed, JobStatus.Submitted})
PAYOUT_TUPLE = "(uint256,uint256,uint256,uint32,uint32,uint32)"
JOB_TUPLE = (
    "(address,uint8,uint32,uint32,uint32,address,uint64,uint64,uint64,uint64,uint64,"
    "uint256,uint256,uint256,bytes32,bytes32,bytes32,bytes32,string,string)"
)


@dataclass(frozen=True)
class Ledger:
    """Every balance and bucket conservation needs, read at one block."""

    balances: dict[str, int]
    market_balance: int
    total_supply: int
    total_minted: int
    market_burned: int
    referee_burned: int
    total_credits: int
    credits: dict[str, int]
    buckets: int  # escrows + stakes + open bonds + held + unpaid pools + credits, per job
    referee_balance: int
    referee_buckets: int  # member stakes + open appeal bonds + referee credits

    def assert_conserved(self) -> None:
        """DESIGN.md §1.4: every token is in a balance, the market's buckets, or burned."""
        assert sum(self.balances.values()) + self.market_balance == self.total_supply
        assert self.total_supply + self.market_burned + self.referee_burned == self.total_minted
        assert self.total_credits == sum(self.credits.values())
        assert self.market_balance == self.buckets
        assert self.referee_balance == self.referee_buckets


def read_ledger(env: DisputeEnv) -> Ledger:
    """One JSON-RPC batch: all balances, credits, totals and every job."""
    token, market = env.token.address, env.market.address
    holders = [a.address for a in env.accounts + env.arbiters + env.spare_arbiters]
    holders += [env.game.address, env.referee.address]
    job_count = env.market.job_count()
    calls: list[tuple[str, str]] = []
    for holder in [*holders, market]:
        calls.append((token, _calldata("balanceOf(address)", ["address"], [holder])))
    calls += [
        (token, _calldata("totalSupply()")),
        (token, _calldata("totalMinted()")),
        (market, _calldata("totalBurned()")),
        (market, _calldata("totalCredits()")),
        (env.referee.address, _calldata("totalBurned()")),
    ]
    for holder in holders:
        calls.append((market, _calldata("credits(address)", ["address"], [holder])))
    for job_id in range(1, job_count + 1):
        calls.append((market, _calldata("getJob(uint256)", ["uint256"], [job_id])))
    for job_id in range(1, job_count + 1):
        calls.append((market, _calldata("payoutOf(uint256)", ["uint256"], [job_id])))
    response = httpx.post(env.devnet.rpc_url, json=eth_calls(calls), timeout=60)
    response.raise_for_status()
    by_id = {item["id"]: bytes.fromhex(item["result"][2:]) for item in response.json()}
    values = [by_id[i] for i in range(len(calls))]

    def uint(raw: bytes) -> int:
        return int.from_bytes(raw, "big")

    n = len(holders)
    balances = {h: uint(values[i]) for i, h in enumerate(holders)}
    market_balance = uint(values[n])
    total_supply, total_minted, market_burned, total_credits, referee_burned = (
        uint(v) for v in values[n + 1 : n + 6]
    )
    credits = {h: uint(values[n + 6 + i]) for i, h in enumerate(holders)}
    buckets = total_credits
    job_values = values[2 * n + 6 : 2 * n + 6 + job_count]
    for raw in values[2 * n + 6 + job_count :]:
        held, pool, claimed = abi_decode([PAYOUT_TUPLE], raw)[0][:3]
        buckets += int(held) + int(pool) - int(claimed)
    for raw in job_values:
        (job,) = abi_decode([JOB_TUPLE], raw)
        status = JobStatus(job[1])
        if status in LIVE:
            buckets += int(job[11])
        if status in STAKED:
            buckets += int(job[12])
        buckets += int(job[2]) * int(job[13])
    referee = env.referee
    referee_buckets = referee.total_credits()
    referee_buckets += sum(referee.member(a).stake for a in referee.committee())
    bond = referee.appeal_bond()
    for game_id in range(1, env.game.game_count() + 1):
        ruling = referee.ruling(game_id)
        if ruling.appealed_at and not ruling.settled:
            referee_buckets += bond
    return Ledger(
        balances,
        market_balance,
        total_supply,
        total_minted,
        market_burned,
        referee_burned,
        total_credits,
        credits,
        buckets,
        balances[referee.address],
        referee_buckets,
    )


__all__ = [
    "BOND",
    "BOND_BURNED",
    "BOND_TO_SOLVER",
    "MAX_OPS",
    "REWARD",
    "STAKE",
    "STAKE_BURNED",
    "STAKE_TO_CHALLENGER",
    "ZERO",
    "Ledger",
    "Match",
    "Selector",
    "cheat_trace",
    "committee",
    "game_as",
    "now",
    "open_match",
    "pin_time",
    "read_ledger",
    "rule_honestly",
    "vote_all",
]
