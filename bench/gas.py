"""Gas used by each WorkToken and JobMarket function on a fresh anvil devnet.

    python -m bench.gas

Every number is the `gasUsed` of a real mined transaction (one row per function and
path that costs differently), so the table moves whenever the contracts do.
"""

from __future__ import annotations

import hashlib
import logging

from eth_account.signers.local import LocalAccount

from chain.client import ChainClient, Receipt
from chain.contracts import JobMarketClient, JobTerms, WorkTokenClient
from chain.deploy import deploy
from chain.devnet import Devnet, running_devnet
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


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with running_devnet() as devnet:
        run = _Run(devnet)
        run.measure()
    width = max(len(f) for _, f, _ in run.rows)
    print(f"{'contract':<10} {'function':<{width}} {'gas':>9}")
    for contract, function, gas in run.rows:
        print(f"{contract:<10} {function:<{width}} {gas:>9,}")


if __name__ == "__main__":
    main()
