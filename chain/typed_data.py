"""The EIP-712 documents Assay's contracts verify: the JobOrder and the ERC-2612 permit.

One definition, used by the Python clients that sign (chain/contracts.py, the submitter's
CLI) and by the API that checks signatures off-chain (frontend_api/orders.py).  They must
stay byte-identical to the contracts' type strings; tests compare the digests with
`JobMarket.orderDigest` and with a permit accepted on-chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

ORDER_DOMAIN_NAME: Final = "Assay JobMarket"
ORDER_DOMAIN_VERSION: Final = "1"
PERMIT_DOMAIN_VERSION: Final = "1"

DOMAIN_TYPE: Final = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

JOB_ORDER_TYPE: Final = [
    {"name": "specHash", "type": "bytes32"},
    {"name": "specCid", "type": "string"},
    {"name": "reward", "type": "uint256"},
    {"name": "solverStake", "type": "uint256"},
    {"name": "challengerBond", "type": "uint256"},
    {"name": "claimDeadline", "type": "uint64"},
    {"name": "submitWindow", "type": "uint64"},
    {"name": "challengeWindow", "type": "uint64"},
    {"name": "stepsPerCheckpoint", "type": "uint32"},
    {"name": "checkpointCount", "type": "uint32"},
    {"name": "submitter", "type": "address"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

PERMIT_TYPE: Final = [
    {"name": "owner", "type": "address"},
    {"name": "spender", "type": "address"},
    {"name": "value", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]


def job_order_document(chain_id: int, market: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """The JobOrder typed data for the JobMarket at `market`; `message` uses JOB_ORDER_TYPE's
    field names."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "JobOrder": JOB_ORDER_TYPE},
        "primaryType": "JobOrder",
        "domain": {
            "name": ORDER_DOMAIN_NAME,
            "version": ORDER_DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": market,
        },
        "message": dict(message),
    }


def permit_document(
    chain_id: int,
    token: str,
    token_name: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
) -> dict[str, Any]:
    """The ERC-2612 permit typed data on `token` (its domain name is the token's name)."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "Permit": PERMIT_TYPE},
        "primaryType": "Permit",
        "domain": {
            "name": token_name,
            "version": PERMIT_DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": token,
        },
        "message": {
            "owner": owner,
            "spender": spender,
            "value": value,
            "nonce": nonce,
            "deadline": deadline,
        },
    }
