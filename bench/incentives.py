"""Payoff tables of the dispute game's incentives, measured on a devnet.

    python -m bench.incentives

Each scenario plays real transactions on a fresh anvil (one EVM snapshot per scenario)
against the deployed JobMarket, DisputeGame and a founding committee of five staked
arbiters (QUORUM 2, strict majority 3): synthetic traces stand in for training, the honest
sides play arbiter/strategy.py, the committee's honest members vote their re-execution.
For each party it prints the net change of its WORK (wallet + market credit + referee
credit, once everything is settled and claimed) and the delay from submission to the last
settlement (devnet seconds). Rows:

- cheater with k sybils vs an honest whistleblower (who opens first): the sybils' games are
  played first, as fast as the cheater likes;
- griefer opening g games against an honest solver at the last second of the window;
- rogue arbiters (two of five) proposing against an honest solver, who appeals;
- a silent committee: every game voids, the window reopens at most twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from arbiter.actor import GameActor
from arbiter.referee import TraceOracle, decide
from arbiter.strategy import PostBundle
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import ChainClient
from chain.contracts import JobTerms
from chain.deploy import Deployment, deploy
from chain.devnet import Devnet, running_devnet
from chain.dispute import GameId, GameRecord
from chain.generated import GameStatus, Party, RulingPhase
from chain.types import Cid, Hash32, JobId, Wei

ONE = 10**18
REWARD, STAKE, BOND = 10 * ONE, 6 * ONE, 2 * ONE
WINDOW = 3_600
SHAPE = (4, 4, 8)  # checkpoints, steps per checkpoint, ops per step
FUNDS = 10_000 * ONE


def _bundle(game: GameRecord, move: PostBundle) -> Cid:
    return Cid("bafkreisyntheticbundle")


@dataclass
class Row:
    scenario: str
    nets: dict[str, int]
    delay: int
    note: str = ""


@dataclass
class World:
    devnet: Devnet
    deployment: Deployment
    client: ChainClient
    members: list[LocalAccount]
    parties: dict[str, LocalAccount] = field(default_factory=dict)

    def worth(self, account: LocalAccount) -> int:
        c, d = self.client, self.deployment
        return (
            d.token(c).balance_of(account.address)
            + d.market(c).credits(account.address)
            + d.referee(c).credits(account.address)
        )

    def post_and_submit(self, lie: SyntheticTrace, solver: LocalAccount) -> JobId:
        market = self.deployment.market(self.client)
        m, k, _ = SHAPE
        terms = JobTerms(
            spec_hash=Hash32(lie.spec_hash()),
            spec_cid=Cid("bafkreisyntheticspec"),
            reward=Wei(REWARD),
            solver_stake=Wei(STAKE),
            challenger_bond=Wei(BOND),
            claim_deadline=self.devnet.timestamp() + WINDOW,
            submit_window=WINDOW,
            challenge_window=WINDOW,
            steps_per_checkpoint=k,
            checkpoint_count=m + 1,
        )
        job_id, _ = market.as_account(self.parties["submitter"]).post_job(terms)
        market.as_account(solver).claim(job_id)
        market.as_account(solver).submit_result(
            job_id,
            Hash32(lie.trace_root),
            m + 1,
            Cid("bafkreimanifest"),
            Hash32(lie.leaves[-1]),
            Hash32(lie.files_root),
        )
        return job_id

    def open(self, job_id: JobId, lie: SyntheticTrace, who: LocalAccount, at: int) -> GameId:
        games = self.deployment.game(self.client).as_account(who)
        game_id, _ = games.challenge_at(
            job_id,
            2,
            at,
            (lie.leaves[at], lie.leaves[at + 1]),
            (lie.checkpoint_proof(at), lie.checkpoint_proof(at + 1)),
        )
        return game_id

    def play(
        self,
        game_ids: list[GameId],
        solver: LocalAccount,
        solver_trace: SyntheticTrace,
        challengers: list[LocalAccount],
        honest: SyntheticTrace,
        *,
        griefer: bool = False,
        rule: Callable[[GameRecord], None] | None = None,
    ) -> None:
        """Play concurrent games to the end, as the parties would: every side moves in every
        game before the committee rules (in `game_ids` order), honest moves, a griefer that
        always selects part 0, the honest committee (or `rule`) ruling."""
        game_client = self.deployment.game(self.client)
        side_s = GameActor(
            game_client.as_account(solver), Party.Solver, lambda _g: solver_trace, _bundle
        )
        sides_c = {
            gid: GameActor(game_client.as_account(c), Party.Challenger, lambda _g: honest)
            for gid, c in zip(game_ids, challengers, strict=True)
        }
        by_game = dict(zip(game_ids, challengers, strict=True))
        for _ in range(400):
            games = [game_client.get_game(g) for g in game_ids]
            live = [g for g in games if not g.finished]
            if not live:
                return
            movable = [g for g in live if g.status != GameStatus.AwaitingRuling]
            if not movable:
                (rule or self.honest_committee(honest))(live[0])
                continue
            for game in movable:
                if game.clock_left(game.turn, self.devnet.timestamp() + 1) < 0:
                    game_client.timeout(game.game_id)  # out of time: the mover loses
                elif game.turn == Party.Solver:
                    side_s.step(game.game_id)
                elif griefer:
                    hashes = game_client.pending_dissection(game)
                    assert hashes is not None
                    game_client.as_account(by_game[game.game_id]).select(game.game_id, 0, hashes)
                else:
                    sides_c[game.game_id].step(game.game_id)
        raise RuntimeError(f"games {game_ids} did not end")

    def honest_committee(self, honest: SyntheticTrace) -> Callable[[GameRecord], None]:
        def rule(game: GameRecord) -> None:
            referee = self.deployment.referee(self.client)
            computed = decide(game, TraceOracle(honest)).computed
            for member in self.members:
                phase = referee.phase(game.game_id)
                if phase == RulingPhase.AppealOpen:
                    ruling = referee.ruling(game.game_id)
                    self.devnet.increase_time(
                        ruling.proposed_at + referee.appeal_window() - self.devnet.timestamp() + 1
                    )
                    referee.settle(game.game_id)
                    return
                if phase == RulingPhase.Settled:
                    return
                referee.as_account(member).vote(game.game_id, computed)

        return rule

    def settle_all(self, job_id: JobId) -> int:
        """Finalize the job if it stands, pay every winner its pool part; the time then."""
        market = self.deployment.market(self.client)
        job = market.get_job(job_id)
        if job.status.name == "Submitted":
            now = self.devnet.timestamp()
            if now <= job.challenge_deadline:
                self.devnet.increase_time(job.challenge_deadline - now + 1)
            market.finalize(job_id)
        for account in self.parties.values():
            if market.unclaimed_wins(job_id, account.address):
                market.claim_reward(job_id, account.address)
        return self.devnet.timestamp()


def _world(devnet: Devnet) -> World:
    accounts = devnet.accounts
    client = ChainClient(devnet.web3(), accounts[0])
    members = accounts[5:10]
    deployment = deploy(client, arbiters=[a.address for a in members], quorum=2)
    world = World(devnet, deployment, client, members)
    names = ("submitter", "solver", "whistleblower", "sybil")
    world.parties = dict(zip(names, accounts[1:5], strict=True))
    token = deployment.token(client)
    for account in accounts[1:5]:
        token.mint(account.address, FUNDS)
        token.as_account(account).approve(deployment.addresses["JobMarket"], FUNDS)
        token.as_account(account).approve(deployment.addresses["ArbiterReferee"], FUNDS)
    return world


def _measure(
    world: World, scenario: str, body: Callable[[World], tuple[int, int, str]], who: list[str]
) -> Row:
    snapshot = world.devnet.snapshot()
    try:
        before = {name: world.worth(world.parties[name]) for name in who}
        member_before = sum(world.worth(m) for m in world.members)
        stakes_before = _stakes(world)
        start, end, note = body(world)
        nets = {name: world.worth(world.parties[name]) - before[name] for name in who}
        nets["arbiters"] = (sum(world.worth(m) for m in world.members) - member_before) + (
            _stakes(world) - stakes_before
        )
        return Row(scenario, nets, end - start, note)
    finally:
        world.devnet.revert(snapshot)


def _stakes(world: World) -> int:
    referee = world.deployment.referee(world.client)
    return sum(referee.member(m.address).stake for m in world.members)


def _cheater_with_sybils(k: int) -> Callable[[World], tuple[int, int, str]]:
    def body(world: World) -> tuple[int, int, str]:
        m, steps, ops = SHAPE
        lie = SyntheticTrace(5, m, steps, ops, Divergence(5, 3))
        honest = lie.honest()
        solver, wb, sybil = (world.parties[n] for n in ("solver", "whistleblower", "sybil"))
        job_id = world.post_and_submit(lie, solver)
        start = world.devnet.timestamp()
        at = 1  # the lying checkpoint pair (step 5 lies, K = 4)
        honest_game = world.open(job_id, lie, wb, at)
        sybil_games = [world.open(job_id, lie, sybil, at) for _ in range(k)]
        # All games run at once; the sybils' are ruled first (the cheater plays them fast).
        world.play([*sybil_games, honest_game], solver, lie, [sybil] * k + [wb], honest)
        end = world.settle_all(job_id)
        return start, end, f"{k} sybil game(s) next to the whistleblower's"

    return body


def _griefer(games: int) -> Callable[[World], tuple[int, int, str]]:
    def body(world: World) -> tuple[int, int, str]:
        m, steps, ops = SHAPE
        trace = SyntheticTrace(5, m, steps, ops)
        solver, griefer = world.parties["solver"], world.parties["whistleblower"]
        job_id = world.post_and_submit(trace, solver)
        start = world.devnet.timestamp()
        deadline = world.deployment.market(world.client).get_job(job_id).challenge_deadline
        world.devnet.increase_time(deadline - world.devnet.timestamp() - games - 1)
        opened = [world.open(job_id, trace, griefer, i % m) for i in range(games)]
        world.play(opened, solver, trace, [griefer] * games, trace, griefer=True)
        end = world.settle_all(job_id)
        return start, end, f"{games} game(s) opened in the window's last seconds"

    return body


def _rogue_arbiters(world: World) -> tuple[int, int, str]:
    m, steps, ops = SHAPE
    trace = SyntheticTrace(5, m, steps, ops)
    solver, griefer = world.parties["solver"], world.parties["whistleblower"]
    job_id = world.post_and_submit(trace, solver)
    start = world.devnet.timestamp()
    game_id = world.open(job_id, trace, griefer, 2)
    referee = world.deployment.referee(world.client)
    rogues, honest = world.members[:2], world.members[2:]

    def rule(game: GameRecord) -> None:
        for rogue in rogues:  # "the challenger won"
            referee.as_account(rogue).vote(game.game_id, bytes(32))
        referee.as_account(solver).appeal(game.game_id)
        for member in honest:
            if referee.phase(game.game_id) == RulingPhase.Settled:
                break
            referee.as_account(member).vote(game.game_id, game.hash_hi)

    world.play([game_id], solver, trace, [griefer], trace, griefer=True, rule=rule)
    referee.as_account(solver).withdraw()
    end = world.settle_all(job_id)
    return start, end, "2 of 5 propose against the solver; appeal; 3 overturn; 2 slashed"


def _silent_committee(world: World) -> tuple[int, int, str]:
    m, steps, ops = SHAPE
    trace = SyntheticTrace(5, m, steps, ops)
    solver, griefer = world.parties["solver"], world.parties["whistleblower"]
    job_id = world.post_and_submit(trace, solver)
    start = world.devnet.timestamp()
    referee = world.deployment.referee(world.client)
    market = world.deployment.market(world.client)

    def silence(game: GameRecord) -> None:
        deadline = referee.escalation_deadline(game.game_id)
        world.devnet.increase_time(deadline - world.devnet.timestamp() + 1)
        referee.settle(game.game_id)

    voids = 0
    while world.devnet.timestamp() <= market.get_job(job_id).challenge_deadline:
        game_id = world.open(job_id, trace, griefer, voids % m)
        world.play([game_id], solver, trace, [griefer], trace, griefer=True, rule=silence)
        voids += 1
    end = world.settle_all(job_id)
    return start, end, f"{voids} voided game(s); the window reopened {min(voids, 2)} time(s)"


def run() -> list[Row]:
    with running_devnet() as devnet:
        world = _world(devnet)
        rows = [
            _measure(
                world,
                f"cheater + {k} sybil(s) vs whistleblower",
                _cheater_with_sybils(k),
                ["solver", "sybil", "whistleblower", "submitter"],
            )
            for k in (0, 1, 3)
        ]
        for games in (1, 3):
            rows.append(
                _measure(
                    world,
                    f"griefer ({games} game(s)) vs honest solver",
                    _griefer(games),
                    ["solver", "whistleblower", "submitter"],
                )
            )
        rows.append(
            _measure(
                world,
                "rogue arbiters vs committee",
                _rogue_arbiters,
                ["solver", "whistleblower", "submitter"],
            )
        )
        rows.append(
            _measure(
                world,
                "silent committee vs honest solver",
                _silent_committee,
                ["solver", "whistleblower", "submitter"],
            )
        )
    return rows


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    console = Console(width=170)
    rows = run()
    table = Table(title="payoffs (WORK, net once settled) and delay to settlement")
    for column in ("scenario", "solver", "sybil", "challenger", "submitter", "arbiters"):
        table.add_column(column, justify="left" if column == "scenario" else "right")
    table.add_column("delay (s)", justify="right")
    table.add_column("note")

    def fmt(value: int | None) -> str:
        return "" if value is None else f"{value / ONE:+.2f}"

    for row in rows:
        table.add_row(
            row.scenario,
            fmt(row.nets.get("solver")),
            fmt(row.nets.get("sybil")),
            fmt(row.nets.get("whistleblower")),
            fmt(row.nets.get("submitter")),
            fmt(row.nets.get("arbiters")),
            str(row.delay),
            row.note,
        )
    console.print(table)
    console.print(
        f"reward {REWARD / ONE:g}, stake {STAKE / ONE:g}, bond {BOND / ONE:g} WORK; "
        "winner share 50% (the rest burned); the solver's net includes its reward when paid. "
        "'challenger' is the whistleblower or the griefer."
    )


if __name__ == "__main__":
    main()
