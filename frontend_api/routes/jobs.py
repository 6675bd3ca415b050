"""/jobs and /submissions: submit a signed order, read jobs, report and read progress.

POST /jobs hands the parsed body to `SubmissionService.submit` (frontend_api.service),
where every check runs before anything changes; this router only parses HTTP.  Reads
come from market.queries over the indexer's tables, and for a job's checkpoints and loss
curve from its manifest in the artifact store.
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any, Final

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from chain.generated import JobStatus
from frontend_api.db import MAX_CURVE_POINTS, ProgressRow, SubmissionRow
from frontend_api.deps import GatewayDep, SessionDep, StateDep
from frontend_api.errors import (
    ApiError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    Problem,
)
from frontend_api.orders import SignatureInvalid, progress_signer
from frontend_api.schemas import (
    EXAMPLE_SPEC,
    CheckpointOut,
    DisputeOut,
    EventOut,
    JobDetail,
    JobPage,
    JobSubmission,
    JobSummary,
    LossPoint,
    ProblemOut,
    ProgressIn,
    ProgressOut,
    ResultOut,
    SubmissionOut,
    TermsOut,
)
from frontend_api.service import Upload, measure_upload
from frontend_api.settings import Settings
from market import queries
from market.indexer import JobRow
from market.store import StoreError

from .common import ADDRESS_PATTERN, MAX_DB_INT, PROBLEMS, JobIdPath, checksum

SPEC_SLACK_BYTES: Final = 1024 * 1024
PROGRESS_SKEW_S: Final = 600

router = APIRouter(tags=["jobs"])

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


def pydantic_problems(exc: ValidationError | Any, prefix: str = "") -> InvalidRequest:
    """An InvalidRequest naming each field of a pydantic (or FastAPI) validation error."""
    problems = [
        Problem(prefix + ".".join(str(p) for p in err["loc"]) or "body", str(err["msg"]))
        for err in exc.errors()
    ]
    summary = "; ".join(str(p) for p in problems[:3]) or "invalid request"
    return InvalidRequest(f"invalid request: {summary}", problems)


class UnsupportedMediaType(ApiError):
    """POST /jobs takes application/json or multipart/form-data (415)."""

    status = 415

    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"unsupported content type {content_type or '(none)'!r}: "
            "use application/json or multipart/form-data"
        )


async def read_submission(request: Request, cfg: Settings) -> tuple[JobSubmission, Upload | None]:
    """The JobSubmission (and dataset upload) of a JSON or multipart POST /jobs."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        try:
            return JobSubmission.model_validate_json(raw), None
        except ValidationError as exc:
            raise pydantic_problems(exc, "body.") from None
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
            raise pydantic_problems(exc, "submission.") from None
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


# ------------------------------------------------------------------------------ writes


@router.post(
    "/jobs",
    status_code=202,
    response_model=SubmissionOut,
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
    state: StateDep,
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
    body, upload = await read_submission(request, state.settings)
    try:
        done = await run_in_threadpool(state.service.submit, body, upload, idempotency_key)
    finally:
        if upload is not None:
            upload.file.close()
    out = SubmissionOut.model_validate(done.row)
    headers = {"Location": f"/submissions/{out.id}"}
    if done.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        out.model_dump(mode="json"), status_code=200 if done.replayed else 202, headers=headers
    )


@router.post(
    "/jobs/{job_id}/progress",
    response_model=ProgressOut,
    summary="A solver reports step, loss, rate and ETA (signed with the solver's key)",
    responses={
        409: {"model": ProblemOut, "description": "stale or out-of-order report"},
        **PROBLEMS,
    },
)
def post_progress(
    job_id: JobIdPath, report: ProgressIn, session: SessionDep, gateway: GatewayDep
) -> ProgressOut:
    job = session.get(JobRow, job_id)
    if job is None:
        raise NotFound(f"no job {job_id} (yet: the indexer may be behind)")
    solver = checksum(report.solver)
    if job.solver != solver:
        raise InvalidRequest(
            f"solver: {solver} is not the solver of job {job_id}",
            [Problem("solver", "not this job's solver")],
        )
    payload = report.model_dump(mode="json")
    try:
        signer = progress_signer(
            gateway.chain_id,
            gateway.market_address,
            job_id,
            payload,
            bytes.fromhex(report.signature[2:]),
        )
    except SignatureInvalid as exc:
        raise InvalidRequest(f"signature: {exc}", [Problem("signature", str(exc))]) from None
    if signer != solver:
        raise InvalidRequest(
            "signature: not signed by the solver", [Problem("signature", f"signed by {signer}")]
        )
    if abs(report.timestamp - time.time()) > PROGRESS_SKEW_S:
        raise InvalidRequest(
            "timestamp: more than 10 minutes from the server's clock",
            [Problem("timestamp", "too far from now")],
        )
    row = session.get(ProgressRow, job_id)
    if row is not None and (report.timestamp, report.step) < (row.timestamp, row.step):
        raise Conflict(f"job {job_id}: a newer report (step {row.step}) is already recorded")
    curve = row.curve if row is not None else []
    if report.loss is not None and (not curve or report.step > curve[-1]["step"]):
        curve.append({"step": report.step, "loss": report.loss})
        if len(curve) > MAX_CURVE_POINTS:
            curve = curve[::2]
    if row is None:
        row = ProgressRow(job_id=job_id)
        session.add(row)
    row.solver = solver
    row.step = report.step
    row.total_steps = report.total_steps
    row.loss = report.loss
    row.rate = report.rate
    row.unit = report.unit
    row.eta_s = report.eta_s
    row.timestamp = report.timestamp
    row.received_at = time.time()
    row.curve_json = json.dumps(curve)
    session.commit()
    return _progress_out(row)


def _progress_out(row: ProgressRow) -> ProgressOut:
    return ProgressOut.model_validate(
        {
            **{c: getattr(row, c) for c in ProgressOut.model_fields if c != "curve"},
            "curve": row.curve,
        }
    )


# ------------------------------------------------------------------------------- reads


@router.get("/submissions/{submission_id}", response_model=SubmissionOut, responses=PROBLEMS)
def get_submission(
    submission_id: Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")], session: SessionDep
) -> SubmissionOut:
    row = session.get(SubmissionRow, submission_id)
    if row is None:
        raise NotFound(f"no submission {submission_id}")
    return SubmissionOut.model_validate(row)


@router.get("/jobs", response_model=JobPage, responses=PROBLEMS)
def list_jobs(
    session: SessionDep,
    status: Annotated[
        str | None, Query(pattern="^(" + "|".join(s.name for s in JobStatus) + ")$")
    ] = None,
    submitter: Annotated[str | None, Query(pattern=ADDRESS_PATTERN)] = None,
    solver: Annotated[str | None, Query(pattern=ADDRESS_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=MAX_DB_INT)] = None,
) -> JobPage:
    rows, next_cursor = queries.list_jobs(
        session,
        status=status,
        submitter=checksum(submitter) if submitter else None,
        solver=checksum(solver) if solver else None,
        before=before,
        limit=limit,
    )
    return JobPage(items=[JobSummary.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", response_model=JobDetail, responses=PROBLEMS)
def get_job(job_id: JobIdPath, session: SessionDep, state: StateDep) -> JobDetail:
    record = queries.job_record(session, job_id)
    if record is None:
        raise NotFound(f"no job {job_id} (yet: the indexer may be behind)")
    job = record.job
    checkpoints: list[CheckpointOut] = []
    curve: list[LossPoint] = []
    manifest_error = None
    if job.manifest_cid:
        try:
            checkpoints, curve = parse_manifest(state.manifest(job.manifest_cid))
        except (StoreError, ValueError, KeyError, TypeError) as exc:
            manifest_error = f"manifest {job.manifest_cid}: {exc}"
    progress = session.get(ProgressRow, job_id)
    return JobDetail(
        **JobSummary.model_validate(job).model_dump(),
        terms=TermsOut.model_validate(job),
        result=ResultOut.model_validate(job) if job.trace_root else None,
        checkpoints=checkpoints,
        loss_curve=curve,
        manifest_error=manifest_error,
        disputes=[
            DisputeOut.model_validate(d).model_copy(update={"game_id": game_id})
            for d, game_id in record.disputes
        ],
        events=[EventOut.model_validate(e) for e in record.events],
        progress=_progress_out(progress) if progress is not None else None,
    )


@router.get("/jobs/{job_id}/progress", response_model=ProgressOut, responses=PROBLEMS)
def get_progress(job_id: JobIdPath, session: SessionDep) -> ProgressOut:
    row = session.get(ProgressRow, job_id)
    if row is None:
        raise NotFound(f"job {job_id}: no progress reported")
    return _progress_out(row)


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
