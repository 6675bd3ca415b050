"""The API's collaborators and how routes receive them (FastAPI `Depends`).

`AppState` is built once per app in its lifespan and kept on `app.state.assay`; routes
ask for what they need with the `Annotated` aliases below (`StateDep`, `SessionDep`,
`GatewayDep`, `StoreDep`, `SettingsDep`) instead of reaching for a global.  The chain
gateway is connected on first use with bounded timeouts and no retry loop, so a node
that hangs answers 503 within `rpc_timeout_s` instead of holding a request.

This module must never import the worker's task code, a private key, or training code.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Final

from celery import Celery
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from chain.client import ChainClient
from chain.deploy import Deployment
from chain.errors import ChainError
from frontend_api.celery_app import make_celery
from frontend_api.chainview import MarketGateway
from frontend_api.db import open_database
from frontend_api.errors import Unavailable
from frontend_api.service import SubmissionService
from frontend_api.settings import Settings
from frontend_api.sweeper import Sweeper
from market.store import ArtifactStore, open_store

MANIFEST_MAX_BYTES: Final = 8 * 1024 * 1024
MANIFEST_CACHE: Final = 256


@dataclass
class AppState:
    """The process-wide collaborators, built once in the lifespan."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    store: ArtifactStore
    celery: Celery
    service: SubmissionService = field(init=False)
    _gateway: MarketGateway | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _manifests: OrderedDict[str, Any] = field(default_factory=OrderedDict)

    sweeper: Sweeper = field(init=False)

    def __post_init__(self) -> None:
        self.service = SubmissionService(
            self.settings, self.sessions, self.store, self.gateway, self.celery
        )
        self.sweeper = Sweeper(self.sessions, self.celery, self.settings)

    def gateway(self) -> MarketGateway:
        """The chain gateway, connected on first use (the API starts without a chain)."""
        with self._lock:
            if self._gateway is None:
                deployment = Deployment.load(self.settings.deployment)
                client = ChainClient.connect(
                    self.settings.rpc_url, timeout_s=self.settings.rpc_timeout_s, retry=False
                )
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
            while len(self._manifests) > MANIFEST_CACHE:
                self._manifests.popitem(last=False)
        return data

    def close(self) -> None:
        """Release every connection, the broker's and result backend's first, so that the
        process can exit cleanly even after Redis went away."""
        self.sweeper.stop()
        close_celery(self.celery)
        self.store.close()
        self.engine.dispose()


def close_celery(app: Celery) -> None:
    backend = app.__dict__.get("backend")  # only if it was ever created
    consumer = getattr(backend, "result_consumer", None)
    if consumer is not None:
        with contextlib.suppress(Exception):  # a broker already gone has nothing to close
            consumer.stop()
    with contextlib.suppress(Exception):
        app.close()


def build_state(settings: Settings, celery: Celery | None = None) -> AppState:
    engine = open_database(settings.database_url)
    return AppState(
        settings=settings,
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        store=open_store(settings.store),
        celery=celery if celery is not None else make_celery(settings),
    )


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.assay
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_session(state: StateDep) -> Iterator[Session]:
    with state.sessions() as session:
        yield session


def get_store(state: StateDep) -> ArtifactStore:
    return state.store


def get_gateway(state: StateDep) -> MarketGateway:
    """The chain gateway, or 503 when the node cannot be reached or the deployment is missing."""
    try:
        return state.gateway()
    except ChainError as exc:
        raise Unavailable(f"chain unavailable: {exc}") from None


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]
GatewayDep = Annotated[MarketGateway, Depends(get_gateway)]
