"""The FastAPI application: POST /jobs, the read endpoints, health and OpenAPI docs.

Serve it with ``uvicorn --factory frontend_api.app:create_app`` (settings from ASSAY_*).
Writes go through `SubmissionService` (verify off-chain, record, enqueue by task name);
reads come from the indexer's tables (market.indexer) and, for a job's checkpoints and
loss curve, from its manifest in the artifact store.  Every error answer is a
`ProblemOut` naming the fields at fault.

This module must never import the worker's task code (frontend_api.tasks), a private
key, or training code.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from celery import Celery
from fastapi import FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from web3 import Web3

from chain.client import ChainClient
from chain.deploy import Deployment
from chain.generated import JobStatus
from frontend_api.celery_app import make_celery
from frontend_api.chainview import MarketGateway
from frontend_api.db import SubmissionRow, active_for, open_database
from frontend_api.errors import (
    ApiError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Problem,
    Unavailable,
)
from frontend_api.orders import ORDER_DOMAIN_NAME, ORDER_DOMAIN_VERSION, PERMIT_DOMAIN_VERSION
from frontend_api.schemas import (
    EXAMPLE_SPEC,
    ChainOut,
    CheckpointOut,
    ClocksOut,
    ComponentOut,
    DisputeGameOut,
    DisputeOut,
    EventOut,
    HealthOut,
    IntervalOut,
    JobDetail,
    JobPage,
    JobSubmission,
    JobSummary,
    LossPoint,
    NoncesOut,
    ProblemOut,
    ResultOut,
    SolverOut,
    SubmissionOut,
    TermsOut,
)
from frontend_api.service import SubmissionService, Upload, measure_upload
from frontend_api.settings import Settings
from market.indexer import CursorRow, DisputeRow, EventRow, GameRow, JobRow
from market.store import ArtifactStore, StoreError, open_store

log = logging.getLogger(__name__)

MANIFEST_MAX_BYTES: Final = 8 * 1024 * 1024
MAX_DB_INT: Final = 2**63 - 1
ADDRESS_PATTERN: Final = r"^0x[0-9a-fA-F]{40}$"
SPEC_SLACK_BYTES: Final = 1024 * 1024

PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ProblemOut, "description": "not found"},
    422: {"model": ProblemOut, "description": "invalid request; `errors` names each field"},
    503: {"model": ProblemOut, "description": "a backend is unavailable"},
}


# --------------------------------------------------------------------------- state


@dataclass
class AppState:
    """The process-wide collaborators, built once in the lifespan."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    celery: Celery
    service: SubmissionService
    _gateway: MarketGateway | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _manifests: OrderedDict[str, Any] = field(default_factory=OrderedDict)

    def gateway(self) -> MarketGateway:
        """The chain gateway, connected on first use (the API starts without a chain)."""
        with self._lock:
            if self._gateway is None:
                deployment = Deployment.load(self.settings.deployment)
                client = ChainClient.connect(self.settings.rpc_url)
                self._gateway = MarketGateway(client, deployment, self.settings.chain_cache_s)
            return self._gateway

    def manifest(self, cid: str) -> Any:
        """A manifest's parsed JSON (immutable by CID, so cached without expiry)."""
        with self._lock:
            if cid in self._manifests:
                return self._manifests[cid]
        data = json.loads(self.store.get_bytes(cid, max_size=MANIFEST_MAX_BYTES))
        with self._lock:
            self._manifests[cid] = data
            while len(self._manifests) > 256:
                self._manifests.popitem(last=False)
        return data


def build_state(settings: Settings, celery: Celery | None = None) -> AppState:
    engine = open_database(settings.database_url)
    sessions = sessionmaker(engine, expire_on_commit=False)
    store = open_store(settings.store)
    app_celery = celery if celery is not None else make_celery(settings)
    state = AppState(
        settings=settings,
        engine=engine,
        sessions=sessions,
        store=store,
        celery=app_celery,
        service=None,  # type: ignore[arg-type]
    )
    state.service = SubmissionService(settings, sessions, store, state.gateway, app_celery)
    return state


# ---------------------------------------------------------------------- middleware


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.limit:
                    await _problem(PayloadTooLarge(self._message()))(scope, receive, send)
                    return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise PayloadTooLarge(self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body larger than the limit of {self.limit} bytes"


def _problem(exc: ApiError) -> JSONResponse:
    body = ProblemOut(
        detail=exc.message,
        errors=[{"field": p.field, "reason": p.reason} for p in exc.problems],  # type: ignore[misc]
    )
    return JSONResponse(body.model_dump(), status_code=exc.status)


def _pydantic_problems(exc: ValidationError | RequestValidationError, prefix: str = "") -> ApiError:
    problems = [
        Problem(prefix + ".".join(str(p) for p in err["loc"]) or "body", str(err["msg"]))
        for err in exc.errors()
    ]
    summary = "; ".join(str(p) for p in problems[:3]) or "invalid request"
    return InvalidRequest(f"invalid request: {summary}", problems)


# -------------------------------------------------------------------------- helpers


def _event_out(row: EventRow) -> EventOut:
    return EventOut(
        name=row.name,
        block_number=row.block_number,
        log_index=row.log_index,
        tx_hash=row.tx_hash,
        args=row.arguments,
    )


def _summary(row: JobRow) -> JobSummary:
    return JobSummary(
        job_id=row.job_id,
        status=row.status,
        submitter=row.submitter,
        solver=row.solver,
        spec_cid=row.spec_cid,
        spec_hash=row.spec_hash,
        reward=int(row.reward),
        open_disputes=row.open_disputes,
        posted_block=row.posted_block,
        updated_block=row.updated_block,
    )


def parse_manifest(data: Any) -> tuple[list[CheckpointOut], list[LossPoint]]:
    """Checkpoints and loss curve from a result manifest.

    The format is market.manifest's (``{"checkpoints": [{"index", "step", "cid",
    "state_hash"}...], "losses": [loss of step 0, 1, ...]}``); ``loss_curve`` as a list of
    ``{"step", "loss"}`` or ``[step, loss]`` is read too.
    """
    if not isinstance(data, dict):
        raise ValueError("manifest is not a JSON object")
    checkpoints: list[CheckpointOut] = []
    for i, item in enumerate(data.get("checkpoints") or []):
        if isinstance(item, dict):
            checkpoints.append(
                CheckpointOut(
                    index=int(item.get("index", i)),
                    step=item.get("step"),
                    cid=item.get("cid"),
                    state_hash=_hex_prefixed(item.get("state_hash")),
                )
            )
        elif isinstance(item, str):
            checkpoints.append(CheckpointOut(index=i, cid=item))
    curve: list[LossPoint] = []
    for i, item in enumerate(data.get("loss_curve") or data.get("losses") or []):
        if isinstance(item, int | float) and not isinstance(item, bool):
            curve.append(LossPoint(step=i, loss=float(item)))  # market.manifest: one per step
        elif isinstance(item, dict):
            curve.append(LossPoint(step=int(item["step"]), loss=float(item["loss"])))
        elif isinstance(item, list | tuple) and len(item) == 2:
            curve.append(LossPoint(step=int(item[0]), loss=float(item[1])))
    return checkpoints, curve


def _hex_prefixed(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value if value.startswith("0x") else "0x" + value


def _checksum(address: str) -> str:
    return str(Web3.to_checksum_address(address.lower()))


def _submission_out(row: SubmissionRow) -> SubmissionOut:
    return SubmissionOut(
        id=row.id,
        state=row.state,  # type: ignore[arg-type]
        submitter=row.submitter,
        nonce=row.nonce,
        spec_hash=row.spec_hash,
        spec_cid=row.spec_cid,
        dataset_cid=row.dataset_cid,
        tx_hash=row.tx_hash,
        job_id=row.job_id,
        block_number=row.block_number,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


JobIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="job id (from 1)")]
GameIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="dispute game id (from 1)")]
AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN)]

POST_JOBS_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"$ref": "#/components/schemas/JobSubmission"},
            "example": {
                "spec": EXAMPLE_SPEC,
                "order": {
                    "reward": "10000000000000000000",
                    "solver_stake": "5000000000000000000",
                    "challenger_bond": "2000000000000000000",
                    "claim_deadline": 1900000000,
                    "submit_window": 3600,
                    "challenge_window": 3600,
                    "submitter": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    "nonce": "0",
                    "deadline": "1900000000",
                    "signature": "0x" + "11" * 65,
                },
                "permit": {
                    "nonce": "0",
                    "deadline": "1900000000",
                    "v": 27,
                    "r": "0x" + "22" * 32,
                    "s": "0x" + "33" * 32,
                },
            },
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["submission"],
                "properties": {
                    "submission": {
                        "type": "string",
                        "description": "a JobSubmission as JSON (spec.data.cid may be omitted)",
                    },
                    "dataset": {
                        "type": "string",
                        "format": "binary",
                        "description": "the dataset file; its CID becomes spec.data.cid",
                    },
                },
            }
        },
    },
}


# ------------------------------------------------------------------------------ app


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment)."""
    cfg = settings or Settings()
    holder: dict[str, AppState] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder["state"] = build_state(cfg, celery)
        try:
            yield
        finally:
            holder.pop("state").store.close()

    app = FastAPI(
        title="Assay API",
        version="1",
        summary="Submit verifiable ML training jobs; follow jobs, solvers and disputes.",
        description=(
            "Submitters sign an EIP-712 JobOrder and an EIP-2612 permit with their own key "
            "(the `assay` CLI does it); POST /jobs verifies both off-chain, pins the spec "
            "and dataset, and a relayer posts `JobMarket.postJobFor`. Reads come from an "
            "indexer that follows the chain."
        ),
        lifespan=lifespan,
    )
    limit = cfg.max_upload_bytes + cfg.max_spec_bytes + SPEC_SLACK_BYTES
    app.add_middleware(BodyLimit, limit=limit)

    def state() -> AppState:
        return holder["state"]

    def read(fn: Callable[[Session], Any]) -> Any:
        with state().sessions() as session:
            return fn(session)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return _problem(_pydantic_problems(exc))

    # -- writes --------------------------------------------------------------------

    @app.post(
        "/jobs",
        status_code=202,
        response_model=SubmissionOut,
        tags=["jobs"],
        summary="Submit a job (signed order + permit; JSON, or multipart with a dataset)",
        openapi_extra={"requestBody": POST_JOBS_BODY},
        responses={
            200: {"model": SubmissionOut, "description": "idempotent replay of an earlier POST"},
            409: {"model": ProblemOut, "description": "replayed order or nonce already used"},
            413: {"model": ProblemOut, "description": "body or dataset too large"},
            415: {"model": ProblemOut, "description": "unsupported content type"},
            **PROBLEMS,
        },
    )
    async def post_job(
        request: Request,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                max_length=255,
                pattern=r"^[\x21-\x7e]+$",
                description="retry-safe key: the same key and body return the first answer",
            ),
        ] = None,
    ) -> JSONResponse:
        body, upload = await _read_submission(request, cfg)
        try:
            done = await run_in_threadpool(state().service.submit, body, upload, idempotency_key)
        finally:
            if upload is not None:
                upload.file.close()
        out = _submission_out(done.row)
        headers = {"Location": f"/submissions/{out.id}"}
        if done.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(
            out.model_dump(mode="json"), status_code=200 if done.replayed else 202, headers=headers
        )

    # -- reads ---------------------------------------------------------------------

    @app.get(
        "/submissions/{submission_id}",
        response_model=SubmissionOut,
        tags=["jobs"],
        responses=PROBLEMS,
    )
    def get_submission(
        submission_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")],
    ) -> SubmissionOut:
        row = read(lambda s: s.get(SubmissionRow, submission_id))
        if row is None:
            raise NotFound(f"no submission {submission_id}")
        return _submission_out(row)

    @app.get("/jobs", response_model=JobPage, tags=["jobs"], responses=PROBLEMS)
    def list_jobs(
        status: Annotated[
            str | None, Query(pattern="^(" + "|".join(s.name for s in JobStatus) + ")$")
        ] = None,
        submitter: Annotated[str | None, Query(pattern=ADDRESS_PATTERN)] = None,
        solver: Annotated[str | None, Query(pattern=ADDRESS_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
        before: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
    ) -> JobPage:
        query = select(JobRow).order_by(JobRow.job_id.desc()).limit(limit + 1)
        if status is not None:
            query = query.where(JobRow.status == status)
        if submitter is not None:
            query = query.where(JobRow.submitter == _checksum(submitter))
        if solver is not None:
            query = query.where(JobRow.solver == _checksum(solver))
        if before is not None:
            query = query.where(JobRow.job_id < before)
        rows: list[JobRow] = read(lambda s: list(s.scalars(query)))
        more = len(rows) > limit
        rows = rows[:limit]
        return JobPage(
            items=[_summary(r) for r in rows], next_cursor=rows[-1].job_id if more else None
        )

    @app.get("/jobs/{job_id}", response_model=JobDetail, tags=["jobs"], responses=PROBLEMS)
    def get_job(job_id: JobIdPath) -> JobDetail:
        def load(session: Session) -> tuple[Any, ...]:
            job = session.get(JobRow, job_id)
            disputes = list(
                session.scalars(
                    select(DisputeRow).where(DisputeRow.job_id == job_id).order_by(DisputeRow.id)
                )
            )
            games = list(
                session.scalars(
                    select(GameRow).where(GameRow.job_id == job_id).order_by(GameRow.game_id)
                )
            )
            events = list(
                session.scalars(
                    select(EventRow)
                    .where(EventRow.job_id == job_id)
                    .order_by(EventRow.block_number, EventRow.log_index)
                )
            )
            return job, disputes, games, events

        job, disputes, games, events = read(load)
        if job is None:
            raise NotFound(f"no job {job_id} (yet: the indexer may be behind)")
        checkpoints: list[CheckpointOut] = []
        curve: list[LossPoint] = []
        manifest_error = None
        if job.manifest_cid:
            try:
                checkpoints, curve = parse_manifest(state().manifest(job.manifest_cid))
            except (StoreError, ValueError, KeyError, TypeError) as exc:
                manifest_error = f"manifest {job.manifest_cid}: {exc}"
        game_by_challenger: dict[str, list[int]] = {}
        for game in games:
            game_by_challenger.setdefault(game.challenger, []).append(game.game_id)
        dispute_out = []
        for d in disputes:
            ids = game_by_challenger.get(d.challenger) or []
            dispute_out.append(
                DisputeOut(
                    challenger=d.challenger,
                    bond=int(d.bond),
                    opened_block=d.opened_block,
                    opened_tx=d.opened_tx,
                    resolved=d.resolved,
                    solver_won=d.solver_won,
                    game_id=ids.pop(0) if ids else None,
                )
            )
        return JobDetail(
            **_summary(job).model_dump(),
            terms=TermsOut(
                reward=int(job.reward),
                solver_stake=int(job.solver_stake),
                challenger_bond=int(job.challenger_bond),
                claim_deadline=job.claim_deadline,
                submit_deadline=job.submit_deadline,
                challenge_deadline=job.challenge_deadline,
                submit_window=job.submit_window,
                challenge_window=job.challenge_window,
                steps_per_checkpoint=job.steps_per_checkpoint,
                checkpoint_count=job.checkpoint_count,
            ),
            result=(
                ResultOut(
                    trace_root=job.trace_root,
                    final_state_hash=job.final_state_hash,
                    manifest_cid=job.manifest_cid,
                    checkpoint_count=job.checkpoint_count,
                )
                if job.trace_root
                else None
            ),
            checkpoints=checkpoints,
            loss_curve=curve,
            manifest_error=manifest_error,
            disputes=dispute_out,
            events=[_event_out(e) for e in events],
        )

    @app.get(
        "/disputes/{game_id}", response_model=DisputeGameOut, tags=["disputes"], responses=PROBLEMS
    )
    def get_dispute(game_id: GameIdPath) -> DisputeGameOut:
        def load(session: Session) -> tuple[Any, ...]:
            game = session.get(GameRow, game_id)
            moves = list(
                session.scalars(
                    select(EventRow)
                    .where(EventRow.game_id == game_id)
                    .order_by(EventRow.block_number, EventRow.log_index)
                )
            )
            return game, moves

        game, moves = read(load)
        if game is None:
            raise NotFound(f"no dispute game {game_id}")
        remaining = None
        if game.status == "InProgress" or game.status == "AwaitingBundle":
            try:
                now = state().gateway().now()
                clock = game.solver_clock if game.turn == "Solver" else game.challenger_clock
                remaining = max(0, clock - max(0, now - game.turn_started_at))
            except Exception:
                remaining = None
        return DisputeGameOut(
            game_id=game.game_id,
            job_id=game.job_id,
            solver=game.solver,
            challenger=game.challenger,
            status=game.status,
            level=game.level,
            interval=IntervalOut(base=game.base, lo=game.lo, hi=game.hi),
            arity=game.arity,
            rounds=game.rounds,
            op_count=game.op_count,
            bundle_cid=game.bundle_cid,
            clocks=ClocksOut(
                turn=game.turn,
                turn_started_at=game.turn_started_at,
                solver_s=game.solver_clock,
                challenger_s=game.challenger_clock,
                mover_remaining_s=remaining,
            ),
            created_block=game.created_block,
            updated_block=game.updated_block,
            moves=[_event_out(m) for m in moves],
        )

    @app.get("/solvers/{address}", response_model=SolverOut, tags=["solvers"], responses=PROBLEMS)
    def get_solver(address: AddressPath) -> SolverOut:
        who = _checksum(address)

        def load(session: Session) -> SolverOut:
            claims = session.scalars(
                select(EventRow.job_id).where(EventRow.name == "JobClaimed", EventRow.actor == who)
            )
            jobs = sorted({int(j) for j in claims if j is not None})

            def count(name: str) -> int:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(EventRow)
                        .where(EventRow.name == name, EventRow.actor == who)
                    )
                    or 0
                )

            payouts = session.scalars(
                select(EventRow.args).where(EventRow.name == "JobFinalized", EventRow.actor == who)
            )
            earned = sum(int(json.loads(a).get("payout", 0)) for a in payouts)
            active = int(
                session.scalar(
                    select(func.count())
                    .select_from(JobRow)
                    .where(JobRow.solver == who, JobRow.status.in_(["Claimed", "Submitted"]))
                )
                or 0
            )
            outcomes = list(
                session.scalars(
                    select(DisputeRow.solver_won)
                    .join(JobRow, JobRow.job_id == DisputeRow.job_id)
                    .where(JobRow.solver == who, DisputeRow.resolved.is_(True))
                )
            )
            return SolverOut(
                address=who,
                jobs=jobs,
                active=active,
                finalized=count("JobFinalized"),
                slashed=count("SolverSlashed"),
                timed_out=count("SolverTimedOut"),
                earned=earned,
                disputes_won=sum(1 for o in outcomes if o),
                disputes_lost=sum(1 for o in outcomes if o is False),
            )

        result: SolverOut = read(load)
        return result

    @app.get(
        "/submitters/{address}/nonces",
        response_model=NoncesOut,
        tags=["jobs"],
        responses=PROBLEMS,
        summary="The order and permit nonces to sign next",
    )
    def get_nonces(address: AddressPath) -> NoncesOut:
        who = _checksum(address)
        gateway = state().service.gateway()
        try:
            chain_nonce = gateway.order_nonce(who)
            permit_nonce = gateway.permit_nonce(who)
        except Exception as exc:
            raise Unavailable(f"chain unavailable: {exc}") from None
        pending = len([r for r in read(lambda s: active_for(s, who)) if r.nonce >= chain_nonce])
        return NoncesOut(
            address=who,
            order_nonce=chain_nonce + pending,
            chain_order_nonce=chain_nonce,
            pending=pending,
            permit_nonce=permit_nonce + pending,
        )

    @app.get("/chain", response_model=ChainOut, tags=["meta"], responses=PROBLEMS)
    def get_chain() -> ChainOut:
        gateway = state().service.gateway()
        try:
            token_name = gateway.token_name()
            now = gateway.now()
        except Exception as exc:
            raise Unavailable(f"chain unavailable: {exc}") from None
        return ChainOut(
            chain_id=gateway.chain_id,
            market=gateway.market_address,
            token=gateway.token_address,
            token_name=token_name,
            dispute_game=gateway.game_address,
            deployment_block=gateway.deployment.block,
            order_domain={
                "name": ORDER_DOMAIN_NAME,
                "version": ORDER_DOMAIN_VERSION,
                "chainId": gateway.chain_id,
                "verifyingContract": gateway.market_address,
            },
            permit_domain={
                "name": token_name,
                "version": PERMIT_DOMAIN_VERSION,
                "chainId": gateway.chain_id,
                "verifyingContract": gateway.token_address,
            },
            max_upload_bytes=cfg.max_upload_bytes,
            chain_time=now,
        )

    @app.get(
        "/health",
        response_model=HealthOut,
        tags=["meta"],
        responses={503: {"model": HealthOut, "description": "a component is down"}},
    )
    def health() -> JSONResponse:
        components: dict[str, ComponentOut] = {}
        indexed: int | None = None
        head: int | None = None

        def check(name: str, probe: Callable[[], str | None]) -> None:
            try:
                components[name] = ComponentOut(ok=True, detail=probe())
            except Exception as exc:
                components[name] = ComponentOut(ok=False, detail=f"{type(exc).__name__}: {exc}")

        def database() -> str | None:
            nonlocal indexed
            with state().sessions() as session:
                session.execute(text("SELECT 1"))
                cursor = session.get(CursorRow, 1)
                indexed = cursor.block_number if cursor is not None else None
            return None

        def chain() -> str | None:
            nonlocal head
            head = int(state().gateway().client.w3.eth.block_number)
            return f"chain {state().gateway().chain_id}"

        def broker() -> str | None:
            with state().celery.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            return None

        def store() -> str | None:
            state().store.has("bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
            return state().store.location

        check("database", database)
        check("chain", chain)
        check("broker", broker)
        check("store", store)
        ok = all(c.ok for c in components.values())
        out = HealthOut(
            status="ok" if ok else "degraded",
            components=components,
            indexed_block=indexed,
            chain_block=head,
        )
        return JSONResponse(out.model_dump(mode="json"), status_code=200 if ok else 503)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        extra = JobSubmission.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in extra.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["JobSubmission"] = extra
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _read_submission(request: Request, cfg: Settings) -> tuple[JobSubmission, Upload | None]:
    """The JobSubmission (and dataset upload) of a JSON or multipart POST /jobs."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        try:
            return JobSubmission.model_validate_json(raw), None
        except ValidationError as exc:
            raise _pydantic_problems(exc, "body.") from None
    if content_type == "multipart/form-data":
        try:
            form = await request.form(
                max_files=1, max_fields=2, max_part_size=cfg.max_spec_bytes + SPEC_SLACK_BYTES
            )
        except PayloadTooLarge:
            raise
        except Exception as exc:
            raise InvalidRequest(f"malformed multipart body: {exc}") from None
        submission = form.get("submission")
        if isinstance(submission, UploadFile):
            submission = (await submission.read()).decode("utf-8", errors="replace")
        if not isinstance(submission, str):
            raise InvalidRequest(
                "multipart field 'submission' is missing",
                [Problem("submission", "required: a JobSubmission as JSON")],
            )
        try:
            body = JobSubmission.model_validate_json(submission)
        except ValidationError as exc:
            raise _pydantic_problems(exc, "submission.") from None
        dataset = form.get("dataset")
        if dataset is None:
            return body, None
        if not isinstance(dataset, UploadFile):
            raise InvalidRequest(
                "multipart field 'dataset' must be a file",
                [Problem("dataset", "must be a file part")],
            )
        upload = await run_in_threadpool(measure_upload, dataset.file, cfg.max_upload_bytes)
        return body, upload
    raise UnsupportedMediaType(content_type)


class UnsupportedMediaType(ApiError):
    """POST /jobs takes application/json or multipart/form-data (415)."""

    status = 415

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"unsupported content type {content_type or '(none)'!r}: "
            "use application/json or multipart/form-data"
        )
