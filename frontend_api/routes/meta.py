"""/chain, /submitters/{address}/nonces and /health.

/health probes the database, the chain, the broker and the artifact store at once, each
within `health_timeout_s`, and never looks up a CID (an IPFS daemon may search for an
absent block until its timeout): with every component up it answers in milliseconds, and
with one down it answers 503 within the probe timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Final

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from frontend_api.db import active_for
from frontend_api.deps import AppState, GatewayDep, SessionDep, SettingsDep, StateDep
from frontend_api.errors import Unavailable
from frontend_api.orders import ORDER_DOMAIN_NAME, ORDER_DOMAIN_VERSION, PERMIT_DOMAIN_VERSION
from frontend_api.schemas import ChainOut, ComponentOut, HealthOut, NoncesOut
from market import queries

from .common import PROBLEMS, AddressPath, checksum

router = APIRouter(tags=["meta"])

_PROBES: Final = ThreadPoolExecutor(max_workers=8, thread_name_prefix="health")


@router.get(
    "/submitters/{address}/nonces",
    response_model=NoncesOut,
    tags=["jobs"],
    responses=PROBLEMS,
    summary="The order and permit nonces to sign next",
)
def get_nonces(address: AddressPath, session: SessionDep, gateway: GatewayDep) -> NoncesOut:
    who = checksum(address)
    try:
        chain_nonce = gateway.order_nonce(who)
        permit_nonce = gateway.permit_nonce(who)
    except Exception as exc:  # requests/web3 raise many types; all mean the node failed us
        raise Unavailable(f"chain unavailable: {type(exc).__name__}: {exc}") from None
    pending = len([r for r in active_for(session, who) if r.nonce >= chain_nonce])
    return NoncesOut(
        address=who,
        order_nonce=chain_nonce + pending,
        chain_order_nonce=chain_nonce,
        pending=pending,
        permit_nonce=permit_nonce + pending,
    )


@router.get("/chain", response_model=ChainOut, responses=PROBLEMS)
def get_chain(gateway: GatewayDep, settings: SettingsDep) -> ChainOut:
    try:
        token_name = gateway.token_name()
        now = gateway.now()
    except Exception as exc:  # as above
        raise Unavailable(f"chain unavailable: {type(exc).__name__}: {exc}") from None
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
        max_upload_bytes=settings.max_upload_bytes,
        chain_time=now,
    )


def _probes(state: AppState, found: dict[str, int | None]) -> dict[str, Callable[[], str | None]]:
    timeout = state.settings.health_timeout_s

    def database() -> str | None:
        with state.sessions() as session:
            session.execute(text("SELECT 1"))
            found["indexed"] = queries.indexed_block(session)
        return None

    def chain() -> str | None:
        gateway = state.gateway()
        found["head"] = int(gateway.client.w3.eth.block_number)
        return f"chain {gateway.chain_id}"

    def broker() -> str | None:
        url = state.settings.redis_url
        if url.startswith(("redis://", "rediss://", "unix://")):
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                client.ping()
            finally:
                client.close()
            return None
        with state.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
        return None

    def store() -> str | None:
        return state.store.ping(timeout)

    return {"database": database, "chain": chain, "broker": broker, "store": store}


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a component is down"}},
)
def health(state: StateDep) -> JSONResponse:
    found: dict[str, int | None] = {"indexed": None, "head": None}
    # The chain probe may block on connecting; give it a little more than one probe.
    budget = state.settings.health_timeout_s + 0.25
    futures = {name: _PROBES.submit(p) for name, p in _probes(state, found).items()}
    components: dict[str, ComponentOut] = {}
    for name, future in futures.items():
        try:
            components[name] = ComponentOut(ok=True, detail=future.result(timeout=budget))
        except FutureTimeout:
            components[name] = ComponentOut(ok=False, detail=f"no answer within {budget:.2f}s")
        except Exception as exc:  # a probe's failure is the answer, whatever its type
            components[name] = ComponentOut(ok=False, detail=f"{type(exc).__name__}: {exc}")
    ok = all(c.ok for c in components.values())
    out = HealthOut(
        status="ok" if ok else "degraded",
        components=components,
        indexed_block=found["indexed"],
        chain_block=found["head"],
    )
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if ok else 503)
