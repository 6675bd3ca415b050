"""Typed clients for WorkToken and JobMarket.

Each method is one contract call: arguments and results use chain.types and the frozen
dataclasses chain/generated.py mirrors from the Solidity structs (JobTerms, DisputeTerms,
Job, Payout; never retyped here), reverts raise the generated error classes (see
chain/client.py).  No policy lives here: when to claim or challenge is the roles' business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from chain.client import ChainClient, Receipt
from chain.generated import DisputeTerms as DisputeTerms  # re-exported: dispute_terms' result
from chain.generated import Job, JobPosted, JobStatus, Payout
from chain.generated import JobTerms as JobTerms  # re-exported: what post_job takes
from chain.typed_data import job_order_document, permit_document
from chain.types import Address, Cid, Hash32, JobId, Wei


@dataclass(frozen=True)
class SignedJobOrder:
    """JobTerms signed (EIP-712) by their submitter, for any relayer to post."""

    terms: JobTerms
    submitter: Address
    nonce: int
    deadline: int
    signature: bytes


@dataclass(frozen=True)
class JobRecord(Job):
    """A job as JobMarket stores it: the generated struct Job, plus the id it was read under."""

    job_id: JobId = field(kw_only=True)


@dataclass(frozen=True)
class PermitSignature:
    """An EIP-2612 permit, signed off-chain by the token owner."""

    owner: Address
    spender: Address
    value: Wei
    deadline: int
    v: int
    r: bytes
    s: bytes


class WorkTokenClient:
    """The ERC-20 (with permit) every amount is paid in."""

    NAME = "WorkToken"

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Address(client.w3.to_checksum_address(address))
        self._c = client.contract(self.NAME, address)

    def as_account(self, account: LocalAccount) -> WorkTokenClient:
        return WorkTokenClient(self.client.with_account(account), self.address)

    def balance_of(self, owner: str) -> Wei:
        return Wei(self.client.call(self._c.functions.balanceOf(owner).call))

    def allowance(self, owner: str, spender: str) -> Wei:
        return Wei(self.client.call(self._c.functions.allowance(owner, spender).call))

    def total_supply(self) -> Wei:
        return Wei(self.client.call(self._c.functions.totalSupply().call))

    def total_minted(self) -> Wei:
        return Wei(self.client.call(self._c.functions.totalMinted().call))

    def nonces(self, owner: str) -> int:
        return int(self.client.call(self._c.functions.nonces(owner).call))

    def mint(self, to: str, amount: int) -> Receipt:
        return self.client.transact(self._c.functions.mint(to, amount))

    def approve(self, spender: str, amount: int) -> Receipt:
        return self.client.transact(self._c.functions.approve(spender, amount))

    def transfer(self, to: str, amount: int) -> Receipt:
        return self.client.transact(self._c.functions.transfer(to, amount))

    def sign_permit(
        self, owner: LocalAccount, spender: str, value: int, deadline: int
    ) -> PermitSignature:
        """Sign an EIP-2612 permit with `owner`'s key (no transaction is sent)."""
        typed = permit_document(
            self.client.w3.eth.chain_id,
            self.address,
            self.client.call(self._c.functions.name().call),
            owner.address,
            spender,
            value,
            self.nonces(owner.address),
            deadline,
        )
        signed = owner.sign_message(encode_typed_data(full_message=typed))
        return PermitSignature(
            owner=Address(owner.address),
            spender=Address(spender),
            value=Wei(value),
            deadline=deadline,
            v=signed.v,
            r=signed.r.to_bytes(32, "big"),
            s=signed.s.to_bytes(32, "big"),
        )


class JobMarketClient:
    """Post, claim, submit, expire, finalize, withdraw; and the dispute game's hooks."""

    NAME = "JobMarket"

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = Address(client.w3.to_checksum_address(address))
        self._c = client.contract(self.NAME, address)

    def as_account(self, account: LocalAccount) -> JobMarketClient:
        return JobMarketClient(self.client.with_account(account), self.address)

    # ---------------------------------------------------------------- writes

    def post_job(self, terms: JobTerms) -> tuple[JobId, Receipt]:
        receipt = self.client.transact(self._c.functions.postJob(terms.as_tuple()))
        return JobId(receipt.one(JobPosted).job_id), receipt

    def post_job_with_permit(
        self, terms: JobTerms, permit: PermitSignature
    ) -> tuple[JobId, Receipt]:
        fn = self._c.functions.postJobWithPermit(
            terms.as_tuple(), permit.deadline, permit.v, permit.r, permit.s
        )
        receipt = self.client.transact(fn)
        return JobId(receipt.one(JobPosted).job_id), receipt

    def post_job_for(self, order: SignedJobOrder, permit: PermitSignature) -> tuple[JobId, Receipt]:
        """Relay a submitter's signed order (the caller pays gas, the submitter the reward)."""
        fn = self._c.functions.postJobFor(
            order.terms.as_tuple(),
            order.submitter,
            order.deadline,
            order.signature,
            (permit.deadline, permit.v, permit.r, permit.s),
        )
        receipt = self.client.transact(fn)
        return JobId(receipt.one(JobPosted).job_id), receipt

    def job_order_typed_data(
        self, terms: JobTerms, submitter: str, nonce: int, deadline: int
    ) -> dict[str, Any]:
        """The EIP-712 document a submitter signs to let a relayer post `terms`."""
        message = {
            "specHash": terms.spec_hash,
            "specCid": terms.spec_cid,
            "reward": terms.reward,
            "solverStake": terms.solver_stake,
            "challengerBond": terms.challenger_bond,
            "claimDeadline": terms.claim_deadline,
            "submitWindow": terms.submit_window,
            "challengeWindow": terms.challenge_window,
            "stepsPerCheckpoint": terms.steps_per_checkpoint,
            "checkpointCount": terms.checkpoint_count,
            "submitter": submitter,
            "nonce": nonce,
            "deadline": deadline,
        }
        return job_order_document(self.client.w3.eth.chain_id, self.address, message)

    def sign_job_order(
        self, submitter: LocalAccount, terms: JobTerms, deadline: int, nonce: int | None = None
    ) -> SignedJobOrder:
        """Sign `terms` as `submitter` (no transaction); nonce defaults to the current one."""
        use_nonce = self.order_nonce(submitter.address) if nonce is None else nonce
        typed = self.job_order_typed_data(terms, submitter.address, use_nonce, deadline)
        signed = submitter.sign_message(encode_typed_data(full_message=typed))
        return SignedJobOrder(
            terms=terms,
            submitter=Address(submitter.address),
            nonce=use_nonce,
            deadline=deadline,
            signature=bytes(signed.signature),
        )

    def revoke_orders(self) -> Receipt:
        """Invalidate every job order this account signed that nobody relayed yet."""
        return self.client.transact(self._c.functions.revokeOrders())

    def cancel(self, job_id: JobId) -> Receipt:
        return self.client.transact(self._c.functions.cancel(job_id))

    def claim(self, job_id: JobId) -> Receipt:
        return self.client.transact(self._c.functions.claim(job_id))

    def submit_result(
        self,
        job_id: JobId,
        trace_root: Hash32,
        checkpoint_count: int,
        manifest_cid: Cid,
        final_state_hash: Hash32,
        files_root: Hash32,
    ) -> Receipt:
        fn = self._c.functions.submitResult(
            job_id, trace_root, checkpoint_count, manifest_cid, final_state_hash, files_root
        )
        return self.client.transact(fn)

    def expire(self, job_id: JobId) -> Receipt:
        return self.client.transact(self._c.functions.expire(job_id))

    def finalize(self, job_id: JobId) -> Receipt:
        return self.client.transact(self._c.functions.finalize(job_id))

    def withdraw(self) -> Receipt:
        return self.client.transact(self._c.functions.withdraw())

    def set_dispute_game(self, game: str) -> Receipt:
        return self.client.transact(self._c.functions.setDisputeGame(game))

    def open_dispute(self, job_id: JobId, challenger: str) -> Receipt:
        return self.client.transact(self._c.functions.openDispute(job_id, challenger))

    def resolve_dispute(self, job_id: JobId, challenger: str, solver_won: bool) -> Receipt:
        fn = self._c.functions.resolveDispute(job_id, challenger, solver_won)
        return self.client.transact(fn)

    def void_dispute(self, job_id: JobId, challenger: str) -> Receipt:
        return self.client.transact(self._c.functions.voidDispute(job_id, challenger))

    def claim_reward(self, job_id: JobId, challenger: str) -> Receipt:
        """Credit `challenger` its part of a slashed job's winners' pool (no game open)."""
        return self.client.transact(self._c.functions.claimReward(job_id, challenger))

    # ----------------------------------------------------------------- reads

    def get_job(self, job_id: JobId) -> JobRecord:
        raw = self.client.call(self._c.functions.getJob(job_id).call)
        return JobRecord.from_tuple(raw, job_id=job_id)

    def dispute_terms(self, job_id: JobId) -> DisputeTerms:
        raw = self.client.call(self._c.functions.disputeTerms(job_id).call)
        return DisputeTerms.from_tuple(raw)

    def order_nonce(self, submitter: str) -> int:
        return int(self.client.call(self._c.functions.orderNonces(submitter).call))

    def status_of(self, job_id: JobId) -> JobStatus:
        return JobStatus(self.client.call(self._c.functions.statusOf(job_id).call))

    def job_count(self) -> int:
        return int(self.client.call(self._c.functions.jobCount().call))

    def credits(self, account: str) -> Wei:
        return Wei(self.client.call(self._c.functions.credits(account).call))

    def total_credits(self) -> Wei:
        return Wei(self.client.call(self._c.functions.totalCredits().call))

    def total_burned(self) -> Wei:
        return Wei(self.client.call(self._c.functions.totalBurned().call))

    def dispute_game(self) -> Address:
        return Address(self.client.call(self._c.functions.disputeGame().call))

    def winner_share_bps(self) -> int:
        return int(self.client.call(self._c.functions.WINNER_SHARE_BPS().call))

    def late_share_bps(self) -> int:
        return int(self.client.call(self._c.functions.LATE_SHARE_BPS().call))

    def min_challenger_bond(self) -> Wei:
        return Wei(self.client.call(self._c.functions.MIN_CHALLENGER_BOND().call))

    def payout_of(self, job_id: JobId) -> Payout:
        """The job's held winnings, winners' pool and reopenings (PayoutLib's struct)."""
        return Payout.from_tuple(self.client.call(self._c.functions.payoutOf(job_id).call))

    def unclaimed_wins(self, job_id: JobId, challenger: str) -> int:
        return int(self.client.call(self._c.functions.unclaimedWins(job_id, challenger).call))
