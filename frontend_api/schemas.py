"""The API's request and response bodies (pydantic), with the examples OpenAPI shows.

Amounts are uint256 and travel as decimal strings (JSON numbers lose precision past
2**53); addresses as 0x-hex (any case; answers are checksummed); hashes and signatures
as 0x-hex.  This module must never do I/O: it only describes shapes.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from jobspec.factory import mlp_spec

U256_MAX: Final = 2**256 - 1
U64_MAX: Final = 2**64 - 1
U32_MAX: Final = 2**32 - 1


def _uint256(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a decimal string or an integer, not a boolean")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit() or len(value) > 78:
            raise ValueError("must be a decimal string of at most 78 digits")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError("must be a decimal string or an integer")
    if not 0 <= value <= U256_MAX:
        raise ValueError("must be in [0, 2**256)")
    return value


Uint256 = Annotated[
    int,
    BeforeValidator(_uint256),
    PlainSerializer(str, return_type=str, when_used="json"),
    WithJsonSchema(
        {"type": "string", "pattern": "^[0-9]{1,78}$", "example": "1000000000000000000"}
    ),
]
Uint64 = Annotated[int, Field(ge=0, le=U64_MAX, strict=True)]
Uint32 = Annotated[int, Field(ge=0, le=U32_MAX, strict=True)]
Hex32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$", examples=["0x" + "ab" * 32])]
HexAddress = Annotated[
    str,
    Field(pattern=r"^0x[0-9a-fA-F]{40}$", examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"]),
]
HexSignature = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{130}$")]
CidText = Annotated[str, Field(min_length=1, max_length=128, examples=["bafkreib..."])]

EXAMPLE_SPEC: Final[dict[str, Any]] = mlp_spec(
    batch_size=16, data_seed=1, steps=20, checkpoint_interval=5, seed=0
)
EXAMPLE_SPEC["data"]["cid"] = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OrderIn(_In):
    """The JobOrder the submitter signed (EIP-712, domain "Assay JobMarket" v1).

    spec_hash, spec_cid, steps_per_checkpoint and checkpoint_count follow from the spec;
    when given they must match it (the signature covers them either way).
    """

    reward: Uint256
    solver_stake: Uint256
    challenger_bond: Uint256
    claim_deadline: Uint64 = Field(description="unix seconds; last moment a solver may claim")
    submit_window: Uint64 = Field(description="seconds from claim to the submit deadline")
    challenge_window: Uint64 = Field(description="seconds challenges stay open after submit")
    submitter: HexAddress
    nonce: Uint256 = Field(description="JobMarket.orderNonces(submitter) at signing time")
    deadline: Uint256 = Field(description="unix seconds after which the order is void")
    signature: HexSignature = Field(description="65-byte r||s||v EIP-712 signature")
    spec_hash: Hex32 | None = None
    spec_cid: CidText | None = None
    steps_per_checkpoint: Uint32 | None = None
    checkpoint_count: Uint32 | None = None


class PermitIn(_In):
    """An EIP-2612 permit for JobMarket to take `order.reward` from the submitter."""

    nonce: Uint256 = Field(description="WorkToken.nonces(submitter) the permit was signed with")
    deadline: Uint256
    v: int = Field(ge=27, le=28, strict=True)
    r: Hex32
    s: Hex32


class JobSubmission(_In):
    """POST /jobs as JSON: the spec (with data.cid) plus the signed order and permit."""

    spec: dict[str, Any] = Field(examples=[EXAMPLE_SPEC])
    order: OrderIn
    permit: PermitIn


class _Out(BaseModel):
    """A response body that can be built from a row's attributes (`model_validate(row)`)."""

    model_config = ConfigDict(from_attributes=True)


class FieldProblem(BaseModel):
    field: str
    reason: str


class ProblemOut(BaseModel):
    """Every 4xx/5xx body: a one-line summary and the fields at fault."""

    detail: str
    errors: list[FieldProblem] = []


class SubmissionOut(_Out):
    """A submission's progress: accepted -> pinned -> relayed -> posted (or failed)."""

    id: str
    state: Literal["accepted", "pinned", "relayed", "posted", "failed"]
    submitter: str
    nonce: int
    spec_hash: str
    spec_cid: str
    dataset_cid: str
    tx_hash: str | None = None
    job_id: int | None = None
    block_number: int | None = None
    error: str | None = None
    created_at: float
    updated_at: float


class TermsOut(_Out):
    reward: Uint256
    solver_stake: Uint256
    challenger_bond: Uint256
    claim_deadline: int
    submit_deadline: int
    challenge_deadline: int
    submit_window: int
    challenge_window: int
    steps_per_checkpoint: int | None
    checkpoint_count: int


class JobSummary(_Out):
    job_id: int
    status: str
    submitter: str
    solver: str | None
    spec_cid: str
    spec_hash: str
    reward: Uint256
    open_disputes: int
    posted_block: int
    updated_block: int


class CheckpointOut(_Out):
    index: int
    step: int | None = None
    cid: str | None = None
    state_hash: str | None = None


class LossPoint(_Out):
    step: int
    loss: float


class DisputeOut(_Out):
    challenger: str
    bond: Uint256
    opened_block: int
    opened_tx: str
    resolved: bool
    solver_won: bool | None
    game_id: int | None = None


class EventOut(_Out):
    name: str
    block_number: int
    log_index: int
    tx_hash: str
    args: dict[str, Any] = Field(validation_alias=AliasChoices("arguments", "args"))


class ResultOut(_Out):
    trace_root: str | None
    final_state_hash: str | None
    manifest_cid: str | None
    checkpoint_count: int


class ProgressIn(_In):
    """A solver's signed report of its training progress (before it submits a result).

    `signature` is an EIP-191 personal-sign signature by `solver` over
    `progress_message(...)` (frontend_api.orders); the API keeps the latest report per job
    whose signer is the job's solver.
    """

    solver: HexAddress
    step: Uint64
    total_steps: Uint64
    loss: float | None = Field(None, allow_inf_nan=False)
    rate: float | None = Field(None, ge=0, allow_inf_nan=False, description="work per second")
    unit: str = Field("steps/s", max_length=32, description="the unit of `rate`")
    eta_s: float | None = Field(None, ge=0, allow_inf_nan=False)
    timestamp: Uint64 = Field(description="unix seconds when the report was made")
    signature: HexSignature


class ProgressOut(_Out):
    job_id: int
    solver: str
    step: int
    total_steps: int
    loss: float | None
    rate: float | None
    unit: str
    eta_s: float | None
    timestamp: int
    received_at: float
    curve: list[LossPoint] = Field(description="every reported (step, loss), in order")


class JobDetail(JobSummary):
    """A job with its terms, result, checkpoints, loss curve, disputes and history."""

    terms: TermsOut
    result: ResultOut | None
    checkpoints: list[CheckpointOut]
    loss_curve: list[LossPoint]
    manifest_error: str | None = None
    disputes: list[DisputeOut]
    events: list[EventOut]
    progress: ProgressOut | None = Field(None, description="the solver's latest signed report")


class JobPage(_Out):
    items: list[JobSummary]
    next_cursor: int | None = Field(None, description="pass as ?before= for the next page")


class ClocksOut(_Out):
    turn: str
    turn_started_at: int
    solver_s: int = Field(description="solver's clock at turn start (seconds)")
    challenger_s: int = Field(description="challenger's clock at turn start (seconds)")
    mover_remaining_s: int | None = Field(
        None, description="seconds the party to move has left at the latest block"
    )


class IntervalOut(_Out):
    base: int
    lo: int
    hi: int


class VoteOut(_Out):
    """One committee member's vote on a ruling."""

    arbiter: str
    computed_hash: str = Field(
        description="the link value its re-execution gave (0x00..: solver loses)"
    )
    tally: int = Field(description="votes for this hash once this vote was counted")
    block_number: int
    tx_hash: str
    slashed: str | None = Field(description="stake lost when its hash was overturned (wei)")


class RulingOut(_Out):
    """The arbiter committee's ruling on a game, from the ArbiterReferee's events."""

    phase: str = Field(description="Voting, AppealOpen, Escalated or Settled (RulingPhase)")
    committee_size: int | None
    voting_deadline: int | None
    votes: list[VoteOut]
    proposed_hash: str | None
    proposed_solver_won: bool | None
    appeal_deadline: int | None
    appellant: str | None
    escalation_deadline: int | None
    computed_hash: str | None = Field(description="the decided hash (None until Ruled)")
    solver_won: bool | None
    overturned: bool | None
    expired: bool
    slashed_total: str


class DisputeGameOut(_Out):
    """One dispute game: level, interval, clocks, every move so far and the ruling."""

    game_id: int
    job_id: int
    solver: str
    challenger: str
    status: str
    level: str
    interval: IntervalOut
    arity: int
    rounds: int
    op_count: int
    bundle_cid: str | None
    clocks: ClocksOut
    created_block: int
    updated_block: int
    moves: list[EventOut]
    ruling: RulingOut | None = None


class SolverOut(_Out):
    """A solver's record on this market."""

    address: str
    jobs: list[int]
    active: int
    finalized: int
    slashed: int
    timed_out: int
    earned: Uint256 = Field(description="sum of JobFinalized payouts")
    staked: Uint256 = Field(0, description="stake locked in its claimed and submitted jobs")
    balance: Uint256 | None = Field(None, description="WORK balance (None: chain unreachable)")
    credit: Uint256 | None = Field(None, description="withdrawable JobMarket credit")
    disputes_won: int
    disputes_lost: int


class NoncesOut(BaseModel):
    """What a submitter signs next."""

    address: str
    order_nonce: int = Field(description="nonce for the next JobOrder (on-chain + in flight)")
    chain_order_nonce: int
    pending: int
    permit_nonce: int = Field(description="nonce for the next permit (on-chain + in flight)")


class ChainOut(BaseModel):
    """The deployment and the EIP-712 domains a client signs under."""

    chain_id: int
    market: str
    token: str
    token_name: str
    dispute_game: str | None
    deployment_block: int
    order_domain: dict[str, Any]
    permit_domain: dict[str, Any]
    max_upload_bytes: int
    chain_time: int = Field(description="timestamp of the latest block: sign deadlines after it")


class ComponentOut(BaseModel):
    ok: bool
    detail: str | None = None


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    components: dict[str, ComponentOut]
    indexed_block: int | None = None
    chain_block: int | None = None


class SolverListOut(BaseModel):
    items: list[SolverOut]
