"""The FastAPI application: routers, middleware, error answers, static files and docs.

Serve it with ``uvicorn --factory frontend_api.app:create_app`` (settings from ASSAY_*).
Each area has its router under frontend_api.routes; their collaborators (settings,
database sessions, the artifact store, the chain gateway) come through `Depends`
(frontend_api.deps), built once in the lifespan.  Every error answer is a `ProblemOut`
naming the fields at fault.  The dashboard is served at `/` and Swagger UI at `/docs`,
both from files shipped in the package (no CDN).

This module must never import the worker's task code (frontend_api.tasks), a private
key, or training code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from celery import Celery
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from frontend_api.deps import build_state
from frontend_api.errors import ApiError, PayloadTooLarge
from frontend_api.routes import artifacts, dashboard, disputes, jobs, meta, solvers
from frontend_api.routes.jobs import SPEC_SLACK_BYTES, pydantic_problems
from frontend_api.schemas import JobSubmission, ProblemOut
from frontend_api.settings import Settings
from frontend_api.vendor import STATIC_DIR, swagger_dir


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
                    await problem(PayloadTooLarge(self._message()))(scope, receive, send)
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


def problem(exc: ApiError) -> JSONResponse:
    body = ProblemOut(
        detail=exc.message,
        errors=[{"field": p.field, "reason": p.reason} for p in exc.problems],  # type: ignore[misc]
    )
    return JSONResponse(body.model_dump(), status_code=exc.status)


def create_app(settings: Settings | None = None, *, celery: Celery | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment)."""
    cfg = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.assay = build_state(cfg, celery)
        app.state.assay.sweeper.start()
        try:
            yield
        finally:
            app.state.assay.close()

    app = FastAPI(
        title="Assay API",
        version="1",
        summary="Submit verifiable ML training jobs; follow jobs, solvers and disputes.",
        description=(
            "Submitters sign an EIP-712 JobOrder and an EIP-2612 permit with their own key "
            "(the `assay` CLI does it); POST /jobs verifies both off-chain, pins the spec "
            "and dataset, and a relayer posts `JobMarket.postJobFor`. Reads come from an "
            "indexer that follows the chain. The dashboard is at `/`."
        ),
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        BodyLimit, limit=cfg.max_upload_bytes + cfg.max_spec_bytes + SPEC_SLACK_BYTES
    )

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return problem(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(pydantic_problems(exc))

    routers = (jobs, disputes, solvers, artifacts, meta, dashboard)
    for module in routers:
        app.include_router(module.router)
    swagger = swagger_dir()
    if swagger is not None:
        app.mount(dashboard.SWAGGER_URL, StaticFiles(directory=swagger), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

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
