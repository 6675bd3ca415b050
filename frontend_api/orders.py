"""Signed job orders: the EIP-712 JobOrder and the EIP-2612 permit a submitter signs.

A submitter never gives its key to anyone: the `assay` CLI signs two messages locally,
the API checks both signatures off-chain (this module) before anything is queued, and
the relayer passes them to `JobMarket.postJobFor`, which checks them again on-chain.
The typed data here must stay byte-identical to the contract's: domain
("Assay JobMarket", "1", chainId, JobMarket) and the JobOrder type below
(tests compare our digest with the contract's `orderDigest`).

Signatures are accepted exactly as OpenZeppelin's ECDSA accepts them: 65 bytes,
v in {27, 28}, s in the lower half of the curve order; anything else is refused here,
so an order the contract would refuse never reaches the chain.  This module must never
hold or load a private key except in `sign_*` helpers called with the caller's own
account (the CLI).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.messages import SignableMessage, encode_defunct, encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak

from chain.typed_data import (
    ORDER_DOMAIN_NAME,
    ORDER_DOMAIN_VERSION,
    PERMIT_DOMAIN_VERSION,
    job_order_document,
    permit_document,
)
from chain.types import Address

__all__ = ["ORDER_DOMAIN_NAME", "ORDER_DOMAIN_VERSION", "PERMIT_DOMAIN_VERSION"]

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


class SignatureInvalid(ValueError):
    """A signature is malformed or was not made by the expected account."""


@dataclass(frozen=True)
class OrderTerms:
    """The terms a JobOrder signs (JobTerms plus who, which nonce, until when)."""

    spec_hash: bytes
    spec_cid: str
    reward: int
    solver_stake: int
    challenger_bond: int
    claim_deadline: int
    submit_window: int
    challenge_window: int
    steps_per_checkpoint: int
    checkpoint_count: int
    submitter: Address
    nonce: int
    deadline: int

    def message(self) -> dict[str, Any]:
        return {
            "specHash": self.spec_hash,
            "specCid": self.spec_cid,
            "reward": self.reward,
            "solverStake": self.solver_stake,
            "challengerBond": self.challenger_bond,
            "claimDeadline": self.claim_deadline,
            "submitWindow": self.submit_window,
            "challengeWindow": self.challenge_window,
            "stepsPerCheckpoint": self.steps_per_checkpoint,
            "checkpointCount": self.checkpoint_count,
            "submitter": self.submitter,
            "nonce": self.nonce,
            "deadline": self.deadline,
        }


@dataclass(frozen=True)
class Permit:
    """An EIP-2612 permit: `owner` lets `spender` take `value` until `deadline`."""

    owner: Address
    spender: Address
    value: int
    nonce: int
    deadline: int


def job_order_typed_data(chain_id: int, market: str, order: OrderTerms) -> dict[str, Any]:
    """The EIP-712 typed data of `order` for the JobMarket at `market` on `chain_id`."""
    return job_order_document(chain_id, market, order.message())


def permit_typed_data(chain_id: int, token: str, token_name: str, permit: Permit) -> dict[str, Any]:
    """The EIP-712 typed data of an ERC-2612 permit on `token` (domain name = token name)."""
    return permit_document(
        chain_id,
        token,
        token_name,
        permit.owner,
        permit.spender,
        permit.value,
        permit.nonce,
        permit.deadline,
    )


def _signable(typed: dict[str, Any]) -> SignableMessage:
    return encode_typed_data(full_message=typed)


def digest(typed: dict[str, Any]) -> bytes:
    """The 32-byte EIP-712 digest (what `ecrecover` checks, and `orderDigest` returns)."""
    signable = _signable(typed)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def split_signature(signature: bytes) -> tuple[int, bytes, bytes]:
    """(v, r, s) of a 65-byte signature, refusing what OpenZeppelin's ECDSA refuses."""
    if len(signature) != 65:
        raise SignatureInvalid(f"a signature is 65 bytes, got {len(signature)}")
    r, s, v = signature[:32], signature[32:64], signature[64]
    if v not in (27, 28):
        raise SignatureInvalid(f"v must be 27 or 28, got {v}")
    s_int = int.from_bytes(s, "big")
    if s_int == 0 or s_int > SECP256K1_N // 2:
        raise SignatureInvalid("s is not in the lower half of the curve order (malleable)")
    if int.from_bytes(r, "big") == 0:
        raise SignatureInvalid("r is zero")
    return v, r, s


def join_signature(v: int, r: bytes, s: bytes) -> bytes:
    return r.rjust(32, b"\0") + s.rjust(32, b"\0") + bytes([v])


def recover(typed: dict[str, Any], signature: bytes) -> Address:
    """The address that signed `typed` (raises `SignatureInvalid` for malformed signatures)."""
    split_signature(signature)
    try:
        return Address(Account.recover_message(_signable(typed), signature=signature))
    except Exception as exc:  # eth_keys raises several types for unrecoverable points
        raise SignatureInvalid(f"signature does not recover: {exc}") from None


def require_signer(typed: dict[str, Any], signature: bytes, expected: str) -> None:
    """Raise `SignatureInvalid` unless `expected` signed `typed`."""
    signer = recover(typed, signature)
    if signer.lower() != expected.lower():
        raise SignatureInvalid(f"signed by {signer}, not by {expected}")


def sign_typed(account: LocalAccount, typed: dict[str, Any]) -> bytes:
    """Sign `typed` with the caller's own account (the CLI); returns 65 bytes r‖s‖v."""
    signed = account.sign_message(_signable(typed))
    return join_signature(signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def progress_message(chain_id: int, market: str, job_id: int, report: dict[str, Any]) -> bytes:
    """The bytes a solver personal-signs (EIP-191) for a progress report of `job_id`.

    Binding the chain, the market and the job makes a report unusable anywhere else;
    `report` is the ProgressIn body without its signature, canonically encoded.
    """
    body = {k: v for k, v in sorted(report.items()) if k != "signature"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return f"assay-progress:{chain_id}:{market.lower()}:{job_id}:{canonical}".encode()


def sign_progress(
    account: LocalAccount, chain_id: int, market: str, job_id: int, report: dict[str, Any]
) -> str:
    """The 0x-hex signature of a progress report by `account`."""
    message = encode_defunct(primitive=progress_message(chain_id, market, job_id, report))
    return "0x" + bytes(account.sign_message(message).signature).hex()


def progress_signer(
    chain_id: int, market: str, job_id: int, report: dict[str, Any], signature: bytes
) -> Address:
    """Who signed a progress report (raises `SignatureInvalid` for a malformed signature)."""
    split_signature(signature)
    message = encode_defunct(primitive=progress_message(chain_id, market, job_id, report))
    try:
        return Address(Account.recover_message(message, signature=signature))
    except Exception as exc:  # eth_keys raises several types for unrecoverable signatures
        raise SignatureInvalid(f"cannot recover the signer: {exc}") from None
