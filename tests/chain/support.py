"""Helpers shared by the on-chain tests: job terms, exact block timestamps, batched reads.

Nothing here mocks the chain: every helper talks JSON-RPC to the session's real anvil.
The batched reader exists because the state machine checks the whole market after every
step, and one JSON-RPC batch of `eth_call`s is ~30x cheaper than web3's per-call path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.client import decode_revert, load_artifact
from chain.contracts import JobTerms
from chain.devnet import Devnet
from chain.errors import ContractRevert
from chain.generated import DisputeTerms, Job, JobStatus, Member, Payout, Ruling
from chain.types import Cid, Hash32, Wei

MAX_UINT256 = 2**256 - 1
BPS = 10_000
MAX_WINDOW = 365 * 24 * 3600
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MINTER_ROLE = keccak(text="MINTER_ROLE")

SPEC_HASH = Hash32(bytes.fromhex("5e" * 32))
SPEC_CID = Cid("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
TRACE_ROOT = Hash32(bytes.fromhex("a1" * 32))
FINAL_STATE = Hash32(bytes.fromhex("f5" * 32))
FILES_ROOT = Hash32(bytes.fromhex("f6" * 32))
MANIFEST_CID = Cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
ZERO_HASH = Hash32(bytes(32))
STEPS_PER_CHECKPOINT = 25  # K: training steps between two committed checkpoints
CHECKPOINTS = 5  # m + 1 committed states (initial state included)
MAX_UINT32 = 2**32 - 1

# Every state change of a job that JobTypes.sol allows; anything else is a bug.
LEGAL_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.Absent, JobStatus.Open),
        (JobStatus.Open, JobStatus.Claimed),
        (JobStatus.Open, JobStatus.Cancelled),
        (JobStatus.Open, JobStatus.Expired),
        (JobStatus.Claimed, JobStatus.Submitted),
        (JobStatus.Claimed, JobStatus.Open),
        (JobStatus.Claimed, JobStatus.Expired),
        (JobStatus.Submitted, JobStatus.Finalized),
        (JobStatus.Submitted, JobStatus.Slashed),
    }
)


def make_terms(
    now: int,
    *,
    reward: int = 10**21,
    solver_stake: int = 3 * 10**20 + 1,
    challenger_bond: int = 10**20 + 1,
    claim_in: int = 3_600,
    submit_window: int = 600,
    challenge_window: int = 900,
    spec_hash: bytes = SPEC_HASH,
    spec_cid: str = SPEC_CID,
    claim_deadline: int | None = None,
    steps_per_checkpoint: int = STEPS_PER_CHECKPOINT,
    checkpoint_count: int = CHECKPOINTS,
) -> JobTerms:
    """Job terms with deadlines relative to `now` (the chain clock)."""
    return JobTerms(
        spec_hash=Hash32(spec_hash),
        spec_cid=Cid(spec_cid),
        reward=Wei(reward),
        solver_stake=Wei(solver_stake),
        challenger_bond=Wei(challenger_bond),
        claim_deadline=now + claim_in if claim_deadline is None else claim_deadline,
        submit_window=submit_window,
        challenge_window=challenge_window,
        steps_per_checkpoint=steps_per_checkpoint,
        checkpoint_count=checkpoint_count,
    )


def rpc(devnet: Devnet, method: str, params: list[Any]) -> Any:
    return devnet._rpc(method, params)


def set_next_block_timestamp(devnet: Devnet, timestamp: int) -> None:
    """The next mined block (and the pending block every simulation runs on) gets `timestamp`."""
    rpc(devnet, "evm_setNextBlockTimestamp", [timestamp])


def mine_at(devnet: Devnet, timestamp: int) -> None:
    """Mine an empty block stamped exactly `timestamp`."""
    set_next_block_timestamp(devnet, timestamp)
    rpc(devnet, "evm_mine", [])


def pin_time(devnet: Devnet, timestamp: int) -> None:
    """Make the latest block AND the next one carry `timestamp`.

    ChainClient simulates every write on the latest block and then mines it in the next
    one; pinning both to one timestamp makes a deadline check see the same clock in the
    simulation and in the mined transaction, so boundaries can be tested to the second.
    """
    mine_at(devnet, timestamp)
    set_next_block_timestamp(devnet, timestamp)


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def calldata(signature: str, types: Sequence[str] = (), args: Sequence[Any] = ()) -> str:
    return "0x" + (selector(signature) + abi_encode(list(types), list(args))).hex()


def output_type(contract: str, function: str) -> str:
    """The flat ABI tuple type of a view's result, read from the contract's artifact: its
    single struct's components, or its outputs (a public mapping's getter)."""
    abi = load_artifact(contract).abi
    (entry,) = [e for e in abi if e["type"] == "function" and e["name"] == function]
    outputs = entry["outputs"]
    if len(outputs) == 1 and "components" in outputs[0]:
        outputs = outputs[0]["components"]
    return "(" + ",".join(c["type"] for c in outputs) + ")"


def eth_calls(calls: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """One JSON-RPC batch of `eth_call`s (to, calldata) at the latest block, ids 0..n-1."""
    return [
        {
            "jsonrpc": "2.0",
            "id": i,
            "method": "eth_call",
            "params": [{"to": t, "data": d}, "latest"],
        }
        for i, (t, d) in enumerate(calls)
    ]


JOB_TUPLE = output_type("JobMarket", "getJob")  # struct Job
DISPUTE_TERMS_TUPLE = output_type("JobMarket", "disputeTerms")  # struct DisputeTerms
PAYOUT_TUPLE = output_type("JobMarket", "payoutOf")  # PayoutLib.sol's struct Payout
MAX_REOPENINGS = 2  # JobMarket.MAX_REOPENINGS
# ArbiterReferee.rulingOf / members: its structs Ruling and Member, in ABI order.
RULING_TUPLE = output_type("ArbiterReferee", "rulingOf")
MEMBER_TUPLE = output_type("ArbiterReferee", "members")


# The snapshot reads the market's structs into their generated dataclasses (names kept for
# the state machine): Job (every field of a stored job), Payout and DisputeTerms.
JobView = Job
PayoutView = Payout
DisputeTermsView = DisputeTerms


@dataclass(frozen=True)
class MarketSnapshot:
    """Everything the state machine's invariants read, taken at one block."""

    timestamp: int
    balances: dict[str, int]
    market_balance: int
    total_supply: int
    total_minted: int
    token_burned: int
    market_burned: int
    total_credits: int
    credits: dict[str, int]
    order_nonces: dict[str, int]
    jobs: dict[int, JobView]
    payouts: dict[int, PayoutView]
    # What a dispute game reads of each job; the revert for an unknown id.
    dispute_terms: dict[int, DisputeTermsView | ContractRevert]


@dataclass(frozen=True)
class RefereeSnapshot:
    """ArbiterReferee's books and its game's count, taken at one block."""

    game_count: int
    total_burned: int
    total_credits: int
    credits: dict[str, int]
    members: dict[str, Member]
    committee: list[str]
    rulings: dict[int, Ruling]  # game ids 1..game_count + 1 (the last one never requested)


class BatchReader:
    """Reads the token, the market, every job and its dispute terms in one JSON-RPC batch."""

    def __init__(self, devnet: Devnet, token: str, market: str, holders: Sequence[str]) -> None:
        self._http = httpx.Client(base_url=devnet.rpc_url, timeout=60)
        self._token = token
        self._market = market
        self._holders = list(holders)

    def close(self) -> None:
        self._http.close()

    def _batch(self, calls: Sequence[tuple[str, str]]) -> list[bytes]:
        response = self._http.post("/", json=eth_calls(calls))
        response.raise_for_status()
        by_id = {item["id"]: item for item in response.json()}
        out: list[bytes] = []
        for i in range(len(calls)):
            if "error" in by_id[i]:
                raise AssertionError(f"read {i} failed: {by_id[i]['error']}")
            out.append(bytes.fromhex(by_id[i]["result"][2:]))
        return out

    def read_referee(
        self, referee: str, game: str, members: Sequence[str], game_count: int
    ) -> RefereeSnapshot:
        """The referee's totals, every holder's referee credit, `members`' records, the
        committee and the rulings of games 1..game_count + 1, in one batch."""
        calls = [
            (game, calldata("gameCount()")),
            (referee, calldata("totalBurned()")),
            (referee, calldata("totalCredits()")),
            (referee, calldata("committee()")),
        ]
        calls += [(referee, calldata("credits(address)", ["address"], [h])) for h in self._holders]
        calls += [(referee, calldata("members(address)", ["address"], [a])) for a in members]
        ids = range(1, game_count + 2)
        calls += [(referee, calldata("rulingOf(uint256)", ["uint256"], [g])) for g in ids]
        raw = self._batch(calls)

        def uint(value: bytes) -> int:
            return int.from_bytes(value, "big")

        (committee,) = abi_decode(["address[]"], raw[3])
        n, base = len(self._holders), 4
        credits = {h: uint(raw[base + i]) for i, h in enumerate(self._holders)}
        base += n
        records = {
            a: Member.from_tuple(abi_decode([MEMBER_TUPLE], raw[base + i])[0])
            for i, a in enumerate(members)
        }
        base += len(members)
        rulings: dict[int, Ruling] = {}
        for offset, game_id in enumerate(ids):  # from_tuple checksums the addresses
            rulings[game_id] = Ruling.from_tuple(abi_decode([RULING_TUPLE], raw[base + offset])[0])
        return RefereeSnapshot(
            game_count=uint(raw[0]),
            total_burned=uint(raw[1]),
            total_credits=uint(raw[2]),
            credits=credits,
            members=records,
            committee=[to_checksum_address(a) for a in committee],
            rulings=rulings,
        )

    def read(self, job_count: int) -> MarketSnapshot:
        calls: list[tuple[str, str]] = []
        for holder in [*self._holders, self._market]:
            calls.append((self._token, calldata("balanceOf(address)", ["address"], [holder])))
        calls.append((self._token, calldata("totalSupply()")))
        calls.append((self._token, calldata("totalMinted()")))
        calls.append((self._token, calldata("totalBurned()")))
        calls.append((self._market, calldata("totalBurned()")))
        calls.append((self._market, calldata("totalCredits()")))
        for holder in self._holders:
            calls.append((self._market, calldata("credits(address)", ["address"], [holder])))
        for holder in self._holders:
            calls.append((self._market, calldata("orderNonces(address)", ["address"], [holder])))
        for job_id in range(1, job_count + 1):
            calls.append((self._market, calldata("getJob(uint256)", ["uint256"], [job_id])))
        for job_id in range(1, job_count + 1):
            calls.append((self._market, calldata("payoutOf(uint256)", ["uint256"], [job_id])))
        for job_id in range(1, job_count + 1):
            calls.append((self._market, calldata("disputeTerms(uint256)", ["uint256"], [job_id])))
        payload = eth_calls(calls)
        payload.append(
            {
                "jsonrpc": "2.0",
                "id": len(calls),
                "method": "eth_getBlockByNumber",
                "params": ["latest", False],
            }
        )
        response = self._http.post("/", json=payload)
        response.raise_for_status()
        by_id = {item["id"]: item for item in response.json()}
        results: list[bytes | ContractRevert] = []
        first_terms = len(calls) - job_count
        for i in range(len(calls)):
            item = by_id[i]
            if "error" not in item:
                results.append(bytes.fromhex(item["result"][2:]))
                continue
            data = item["error"].get("data")
            if i < first_terms or not isinstance(data, str):
                raise AssertionError(f"read {i} failed: {item['error']}")
            # disputeTerms of an unknown id reverts; keep the decoded error for the checks.
            results.append(decode_revert(bytes.fromhex(data.removeprefix("0x"))))
        timestamp = int(by_id[len(calls)]["result"]["timestamp"], 16)

        def raw_of(i: int) -> bytes:
            value = results[i]
            assert isinstance(value, bytes), (i, value)
            return value

        def uint(raw: bytes | ContractRevert) -> int:
            assert isinstance(raw, bytes), raw
            return int.from_bytes(raw, "big")

        n = len(self._holders)
        balances = {h: uint(results[i]) for i, h in enumerate(self._holders)}
        market_balance = uint(results[n])
        base = n + 1
        total_supply, total_minted, token_burned, market_burned, total_credits = (
            uint(r) for r in results[base : base + 5]
        )
        base += 5
        credits = {h: uint(results[base + i]) for i, h in enumerate(self._holders)}
        base += n
        order_nonces = {h: uint(results[base + i]) for i, h in enumerate(self._holders)}
        base += n
        jobs: dict[int, JobView] = {}
        for offset in range(job_count):
            (job,) = abi_decode([JOB_TUPLE], raw_of(base + offset))
            jobs[offset + 1] = Job.from_tuple(job)
        base += job_count
        payouts: dict[int, PayoutView] = {}
        for offset in range(job_count):
            (raw,) = abi_decode([PAYOUT_TUPLE], raw_of(base + offset))
            payouts[offset + 1] = Payout.from_tuple(raw)
        base += job_count
        dispute_terms: dict[int, DisputeTermsView | ContractRevert] = {}
        for offset in range(job_count):
            value = results[base + offset]
            if isinstance(value, ContractRevert):
                dispute_terms[offset + 1] = value
                continue
            (terms,) = abi_decode([DISPUTE_TERMS_TUPLE], value)
            dispute_terms[offset + 1] = DisputeTerms.from_tuple(terms)
        return MarketSnapshot(
            timestamp=timestamp,
            balances=balances,
            market_balance=market_balance,
            total_supply=total_supply,
            total_minted=total_minted,
            token_burned=token_burned,
            market_burned=market_burned,
            total_credits=total_credits,
            credits=credits,
            order_nonces=order_nonces,
            jobs=jobs,
            payouts=payouts,
            dispute_terms=dispute_terms,
        )


def addresses(accounts: Sequence[LocalAccount]) -> list[str]:
    return [str(a.address) for a in accounts]
