"""Gas used by each WorkToken, JobMarket and ArbiterReferee function on a fresh anvil devnet.

    python -m bench.gas

Every number is the `gasUsed` of a real mined transaction (one row per function and
path that costs differently), so the table moves whenever the contracts do.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace

from eth_account.signers.local import LocalAccount

from arbiter.actor import GameActor
from arbiter.referee import NO_VALUE, TraceOracle, decide
from arbiter.strategy import PostBundle
from arbiter.synthetic import Divergence, SyntheticTrace
from chain.client import ChainClient, Receipt
from chain.contracts import JobMarketClient, JobTerms, WorkTokenClient
from chain.deploy import deploy
from chain.devnet import Devnet, running_devnet
from chain.dispute import ArbiterRefereeClient, DisputeGameClient, GameId, GameRecord
from chain.generated import GameStatus, Party
from chain.types import Cid, Hash32, JobId, Wei

ONE = 10**18
CHECKPOINTS = 9
SPEC_CID = Cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
MANIFEST_CID = Cid("bafkreiaxnnnb7qz2focittuqq3ya25q7rcv3bqynnczfzako47346wosmu")


def _terms(devnet: Devnet, salt: int) -> JobTerms:
    return JobTerms(
        spec_hash=Hash32(hashlib.sha256(f"spec-{salt}".encode()).digest()),
        spec_cid=SPEC_CID,
        reward=Wei(10 * ONE),
        solver_stake=Wei(5 * ONE),
        challenger_bond=Wei(2 * ONE),
        claim_deadline=devnet.timestamp() + 3600,
        submit_window=600,
        challenge_window=600,
        steps_per_checkpoint=10,
        checkpoint_count=CHECKPOINTS,
    )


class _Run:
    def __init__(self, devnet: Devnet) -> None:
        self.devnet = devnet
        self.rows: list[tuple[str, str, int]] = []
        accounts = devnet.accounts
        self.deployer, self.submitter, self.solver, self.challenger = accounts[:4]
        self.game = accounts[9]
        client = ChainClient(devnet.web3(), self.deployer)
        self.deployment = deploy(client, with_dispute_game=False)
        self.token = self.deployment.token(client)
        self.market = self.deployment.market(client)

    def row(self, contract: str, function: str, receipt: Receipt) -> Receipt:
        self.rows.append((contract, function, receipt.gas_used))
        return receipt

    def tok(self, account: LocalAccount) -> WorkTokenClient:
        return self.token.as_account(account)

    def mk(self, account: LocalAccount) -> JobMarketClient:
        return self.market.as_account(account)

    def submitted_job(self, salt: int) -> JobId:
        job_id, _ = self.mk(self.submitter).post_job(_terms(self.devnet, salt))
        self.mk(self.solver).claim(job_id)
        self.mk(self.solver).submit_result(
            job_id,
            Hash32(b"\x01" * 32),
            CHECKPOINTS,
            MANIFEST_CID,
            Hash32(b"\x02" * 32),
            Hash32(b"\x03" * 32),
        )
        return job_id

    def measure(self) -> None:
        row, tok, mk = self.row, self.tok, self.mk
        row("JobMarket", "setDisputeGame", self.market.set_dispute_game(self.game.address))
        row("WorkToken", "mint", self.token.mint(self.submitter.address, 1_000 * ONE))
        for account in (self.solver, self.challenger):
            self.token.mint(account.address, 1_000 * ONE)
        row("WorkToken", "transfer", tok(self.submitter).transfer(self.solver.address, ONE))
        row("WorkToken", "approve", tok(self.submitter).approve(self.market.address, 10**30))
        for account in (self.solver, self.challenger):
            tok(account).approve(self.market.address, 10**30)

        job_id, receipt = mk(self.submitter).post_job(_terms(self.devnet, 1))
        row("JobMarket", "postJob", receipt)
        row("JobMarket", "cancel", mk(self.submitter).cancel(job_id))

        permit_owner = self.devnet.accounts[4]
        self.token.mint(permit_owner.address, 100 * ONE)
        permit = self.token.sign_permit(
            permit_owner, self.market.address, 10 * ONE, self.devnet.timestamp() + 600
        )
        _, receipt = mk(permit_owner).post_job_with_permit(_terms(self.devnet, 2), permit)
        row("JobMarket", "postJobWithPermit", receipt)

        deadline = self.devnet.timestamp() + 600
        order = self.market.sign_job_order(permit_owner, _terms(self.devnet, 7), deadline)
        permit = self.token.sign_permit(permit_owner, self.market.address, 10 * ONE, deadline)
        _, receipt = mk(self.challenger).post_job_for(order, permit)
        row("JobMarket", "postJobFor (relayed order + permit)", receipt)

        job_id, _ = mk(self.submitter).post_job(_terms(self.devnet, 3))
        row("JobMarket", "claim", mk(self.solver).claim(job_id))
        receipt = mk(self.solver).submit_result(
            job_id,
            Hash32(b"\x01" * 32),
            CHECKPOINTS,
            MANIFEST_CID,
            Hash32(b"\x02" * 32),
            Hash32(b"\x03" * 32),
        )
        row("JobMarket", "submitResult", receipt)
        self.devnet.increase_time(601)
        row("JobMarket", "finalize", mk(self.submitter).finalize(job_id))
        row("JobMarket", "withdraw", mk(self.solver).withdraw())

        job_id, _ = mk(self.submitter).post_job(_terms(self.devnet, 4))
        mk(self.solver).claim(job_id)
        self.devnet.increase_time(601)
        row("JobMarket", "expire (late solver, reopen)", mk(self.challenger).expire(job_id))
        self.devnet.increase_time(3600)
        row("JobMarket", "expire (unclaimed, refund)", mk(self.challenger).expire(job_id))

        game = mk(self.game)
        job_id = self.submitted_job(5)
        row("JobMarket", "openDispute", game.open_dispute(job_id, self.challenger.address))
        receipt = game.resolve_dispute(job_id, self.challenger.address, True)
        row("JobMarket", "resolveDispute (solver won)", receipt)
        job_id = self.submitted_job(6)
        game.open_dispute(job_id, self.challenger.address)
        receipt = game.resolve_dispute(job_id, self.challenger.address, False)
        row("JobMarket", "resolveDispute (challenger won)", receipt)


def _bundle(game: GameRecord, move: PostBundle) -> Cid:
    return Cid("bafkreisyntheticbundle")


class _Committee:
    """A second deployment with the dispute game and a founding committee of five (QUORUM 2):
    joins, votes that propose, appeals, votes that decide (and slash), settlements, voids."""

    def __init__(self, devnet: Devnet, rows: list[tuple[str, str, int]]) -> None:
        self.devnet = devnet
        self.rows = rows
        accounts = devnet.accounts
        self.deployer, self.submitter, self.solver, self.challenger = accounts[:4]
        self.members = accounts[4:9]
        self.client = ChainClient(devnet.web3(), self.deployer)
        self.deployment = deploy(self.client, quorum=2)
        self.token = self.deployment.token(self.client)
        self.market = self.deployment.market(self.client)
        self.referee = self.deployment.referee(self.client)
        self.game = self.deployment.game(self.client)
        self.lie = SyntheticTrace(3, 2, 2, 4, Divergence(1, 2))

    def row(self, function: str, receipt: Receipt) -> Receipt:
        self.rows.append(("Referee", function, receipt.gas_used))
        return receipt

    def ref(self, account: LocalAccount) -> ArbiterRefereeClient:
        return self.referee.as_account(account)

    def awaiting_ruling(self, lie: SyntheticTrace) -> GameId:
        """A job committing to `lie`, challenged by an honest challenger, played to its ruling."""
        terms = replace(
            _terms(self.devnet, 100 + self.game.game_count()),
            spec_hash=Hash32(lie.spec_hash()),
            steps_per_checkpoint=lie.k,
            checkpoint_count=3,
        )
        job_id, _ = self.market.as_account(self.submitter).post_job(terms)
        self.market.as_account(self.solver).claim(job_id)
        self.market.as_account(self.solver).submit_result(
            job_id,
            Hash32(lie.trace_root),
            3,
            MANIFEST_CID,
            Hash32(lie.leaves[-1]),
            Hash32(lie.files_root),
        )
        games = self.game.as_account(self.challenger)
        game_id, _ = games.challenge(job_id, 2)
        solver = GameActor(self.game.as_account(self.solver), Party.Solver, lambda _g: lie, _bundle)
        honest = lie.honest()
        challenger = GameActor(games, Party.Challenger, lambda _g: honest)
        game: DisputeGameClient = self.game
        while (record := game.get_game(game_id)).status != GameStatus.AwaitingRuling:
            actor = solver if record.turn == Party.Solver else challenger
            if actor.step(game_id) is None:
                raise RuntimeError(f"{record.turn.name} had no move")
        return game_id

    def measure(self) -> None:
        stake = self.referee.arbiter_stake()
        self.token.mint(self.deployer.address, 10 * stake)
        self.token.approve(self.referee.address, 10**30)
        for account in (self.submitter, self.solver, self.challenger):
            self.token.mint(account.address, 1_000 * ONE)
            self.token.as_account(account).approve(self.market.address, 10**30)
            self.token.as_account(account).approve(self.referee.address, 10**30)
        self.row("join (founding)", self.referee.join(self.members[0].address))
        for member in self.members[1:]:
            self.referee.join(member.address)
        # A rogue quorum proposes for the cheater; the challenger appeals; the honest three
        # overturn the proposal and the two rogues are slashed.
        game_id = self.awaiting_ruling(self.lie)
        game = self.game.get_game(game_id)
        wrong, right = game.hash_hi, decide(game, TraceOracle(self.lie.honest())).computed
        self.row("vote (no decision)", self.ref(self.members[0]).vote(game_id, wrong))
        self.row("vote (proposes)", self.ref(self.members[1]).vote(game_id, wrong))
        self.row("appeal", self.ref(self.challenger).appeal(game_id))
        self.ref(self.members[2]).vote(game_id, right)
        self.ref(self.members[3]).vote(game_id, right)
        receipt = self.ref(self.members[4]).vote(game_id, right)
        self.row("vote (overturns, slashes 2)", receipt)
        self.row("withdraw (appellant)", self.ref(self.challenger).withdraw())
        # Three members left: two agreeing votes are a majority.
        game_id = self.awaiting_ruling(self.lie)
        self.ref(self.members[2]).vote(game_id, NO_VALUE)
        self.row("vote (majority decides)", self.ref(self.members[3]).vote(game_id, NO_VALUE))
        # Silence: the ruling escalates by itself, then voids.
        game_id = self.awaiting_ruling(self.lie)
        self.devnet.increase_time(self.referee.settlement_bound() + 1)
        self.row("settle (void)", self.referee.settle(game_id))
        self.row("leave", self.ref(self.members[2]).leave())
        self.devnet.increase_time(
            self.referee.membership_delay() + self.referee.settlement_bound() + 1
        )
        self.row("withdrawStake", self.ref(self.members[2]).withdraw_stake())


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with running_devnet() as devnet:
        run = _Run(devnet)
        run.measure()
        _Committee(devnet, run.rows).measure()
    width = max(len(f) for _, f, _ in run.rows)
    print(f"{'contract':<10} {'function':<{width}} {'gas':>9}")
    for contract, function, gas in run.rows:
        print(f"{contract:<10} {function:<{width}} {gas:>9,}")


if __name__ == "__main__":
    main()
