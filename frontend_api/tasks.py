"""The worker's task bodies: pin a submission, relay its signed order, await the receipt.

Registered on a Celery app by `register_tasks` under the names in
frontend_api.celery_app; the API only ever sends those names.  Each task is acks_late and
idempotent: it loads its `SubmissionRow`, returns at once if the row is already past its
step, and commits its result before returning, so a redelivered message does nothing
twice.  The relayer signs and *stores* the raw transaction before broadcasting it, so a
crash between the two re-broadcasts the same transaction instead of signing a second one;
the contract's per-submitter order nonce is the last line against a double post.

This module is the only one that loads the relayer key.  It must never be imported by
the API process.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from celery import Celery, Task
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from redis import Redis
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3
from web3.exceptions import TimeExhausted, TransactionNotFound

from chain.client import GAS_HEADROOM, ChainClient
from chain.deploy import Deployment
from chain.errors import ChainError, ContractRevert, NodeUnreachable
from chain.events import decode_logs
from chain.generated import JobPosted
from frontend_api.celery_app import (
    AWAIT_RECEIPT,
    PIN_SUBMISSION,
    RELAY_SUBMISSION,
    make_celery,
)
from frontend_api.chainview import MarketGateway
from frontend_api.db import SubmissionRow, SubmissionState, open_database
from frontend_api.errors import ConfigError
from frontend_api.service import order_from_payload
from frontend_api.settings import Settings
from market.jobspec import seal
from market.store import ArtifactStore, StoreUnreachable, open_store

log = logging.getLogger(__name__)

MAX_PINNED_SPEC_BYTES: Final = 1 << 24
"""A spec the pin task reads back (the API's own limit is lower)."""

TRANSIENT: Final = (NodeUnreachable, StoreUnreachable, ConnectionError, TimeoutError)
MAX_RETRIES: Final = 30
LOCK_TIMEOUT_S: Final = 120


def load_key(path: Path) -> LocalAccount:
    """The relayer account from a file holding a hex private key."""
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the relayer key file {path}: {exc.strerror}") from None
    try:
        account: LocalAccount = Account.from_key(text)
    except (ValueError, TypeError):
        raise ConfigError(f"{path} does not hold a hex private key") from None
    return account


@dataclass
class WorkerServices:
    """The worker's connections, built on first use and shared by its tasks."""

    settings: Settings
    sessions: sessionmaker[Session]
    store: ArtifactStore
    gateway: MarketGateway
    relayer: LocalAccount
    redis: Redis

    @classmethod
    def build(cls, settings: Settings) -> WorkerServices:
        if settings.relayer_key_file is None:
            raise ConfigError("ASSAY_RELAYER_KEY_FILE is not set: the worker cannot relay")
        relayer = load_key(settings.relayer_key_file)
        deployment = Deployment.load(settings.deployment)
        client = ChainClient.connect(settings.rpc_url)
        engine = open_database(settings.database_url)
        return cls(
            settings=settings,
            sessions=sessionmaker(engine, expire_on_commit=False),
            store=open_store(settings.store),
            gateway=MarketGateway(client, deployment, cache_s=0.0),
            relayer=relayer,
            redis=Redis.from_url(settings.redis_url),
        )


class _Lazy:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._services: WorkerServices | None = None
        self._lock = threading.Lock()

    def get(self) -> WorkerServices:
        with self._lock:
            if self._services is None:
                self._services = WorkerServices.build(self.settings)
            return self._services


def _fail(services: WorkerServices, submission_id: str, error: str) -> None:
    with services.sessions.begin() as session:
        row = session.get(SubmissionRow, submission_id)
        if row is not None and row.state != SubmissionState.POSTED:
            row.advance(SubmissionState.FAILED, error=error)
    log.warning("submission %s failed: %s", submission_id, error)


def _load(session: Session, submission_id: str) -> SubmissionRow:
    row = session.get(SubmissionRow, submission_id)
    if row is None:
        raise ChainError(f"no submission {submission_id}")
    return row


# ------------------------------------------------------------------------------ steps


def pin(services: WorkerServices, submission_id: str) -> str:
    """Pin the spec, the dataset and a graph model's graph and weights (uploaded unpinned
    to POST /artifacts); idempotent (pinning a pinned CID is a no-op)."""
    with services.sessions() as session:
        row = _load(session, submission_id)
        if row.state != SubmissionState.ACCEPTED:
            return submission_id
        cids = [row.spec_cid, row.dataset_cid]
    spec = json.loads(services.store.get_bytes(cids[0], max_size=MAX_PINNED_SPEC_BYTES))
    cids += [str(c) for c in seal(spec).artifact_cids.values() if c is not None]
    for cid in cids:
        services.store.pin(cid)
    with services.sessions.begin() as session:
        row = _load(session, submission_id)
        if row.state == SubmissionState.ACCEPTED:
            row.advance(SubmissionState.PINNED)
    return submission_id


class RetryLater(Exception):
    """The order cannot be relayed yet (an earlier nonce is still pending)."""


def relay(services: WorkerServices, submission_id: str) -> str:
    """Sign (once) and broadcast postJobFor for the submission's order."""
    with services.sessions() as session:
        row = _load(session, submission_id)
        if row.state != SubmissionState.PINNED:
            return submission_id
        payload: dict[str, Any] = json.loads(row.payload)
        raw_tx = row.raw_tx
    gateway = services.gateway
    w3 = gateway.client.w3
    lock = services.redis.lock(
        f"assay:relayer:{services.relayer.address}", timeout=LOCK_TIMEOUT_S, blocking_timeout=60
    )
    with lock:
        if raw_tx is None:
            raw_tx = _sign(services, submission_id, payload)
            if raw_tx is None:
                return submission_id
        tx_hash = Web3.keccak(hexstr=raw_tx)
        try:
            w3.eth.send_raw_transaction(HexStr(raw_tx))
        except Exception as exc:
            try:
                w3.eth.get_transaction(tx_hash)
            except TransactionNotFound:
                # Never broadcast and now unsendable (its relayer nonce was taken): re-sign.
                log.warning("re-signing %s after send failed: %s", submission_id, exc)
                with services.sessions.begin() as session:
                    _load(session, submission_id).raw_tx = None
                raise RetryLater(str(exc)) from None
    with services.sessions.begin() as session:
        row = _load(session, submission_id)
        if row.state == SubmissionState.PINNED:
            row.advance(SubmissionState.RELAYED)
    log.info("relayed submission %s as %s", submission_id, tx_hash.hex())
    return submission_id


def _sign(services: WorkerServices, submission_id: str, payload: dict[str, Any]) -> str | None:
    """Simulate, sign and store the raw postJobFor transaction; None if it failed for good."""
    gateway = services.gateway
    w3 = gateway.client.w3
    order = order_from_payload(payload)
    permit = payload["permit"]
    chain_nonce = gateway.order_nonce(order.submitter)
    if order.nonce < chain_nonce:
        _fail(services, submission_id, f"order nonce {order.nonce} already used on-chain")
        return None
    if order.nonce > chain_nonce:
        if order.deadline <= gateway.now():
            _fail(services, submission_id, "order deadline passed while waiting for nonce")
            return None
        raise RetryLater(f"waiting for order nonce {chain_nonce} of {order.submitter}")
    fn = gateway.post_job_for(
        order,
        bytes.fromhex(payload["signature"][2:]),
        int(permit["deadline"]),
        int(permit["v"]),
        bytes.fromhex(permit["r"][2:]),
        bytes.fromhex(permit["s"][2:]),
    )
    relayer = services.relayer.address
    try:
        tx = fn.build_transaction(
            {
                "from": relayer,
                "nonce": w3.eth.get_transaction_count(relayer, "pending"),
                "chainId": gateway.chain_id,
            }
        )
    except ChainError:
        raise
    except Exception as exc:  # web3 raises ContractLogicError on a revert
        try:
            gateway.simulate(fn)
        except ContractRevert as revert:
            _fail(services, submission_id, f"JobMarket refused the order: {revert}")
            return None
        raise ChainError(f"cannot build the relay transaction: {exc}") from exc
    tx["gas"] = int(int(tx["gas"]) * GAS_HEADROOM)
    signed = services.relayer.sign_transaction(tx)  # type: ignore[arg-type]
    raw = "0x" + bytes(signed.raw_transaction).hex()
    with services.sessions.begin() as session:
        row = _load(session, submission_id)
        row.raw_tx = raw
        row.tx_hash = "0x" + bytes(signed.hash).hex()
        row.relay_attempts += 1
    return raw


def await_receipt(services: WorkerServices, submission_id: str) -> int | None:
    """Wait for the relayed transaction; record the job id (posted) or the revert (failed)."""
    with services.sessions() as session:
        row = _load(session, submission_id)
        if row.state == SubmissionState.POSTED:
            return row.job_id
        if row.state != SubmissionState.RELAYED or row.tx_hash is None:
            return None
        tx_hash = row.tx_hash
    w3 = services.gateway.client.w3
    try:
        raw = w3.eth.wait_for_transaction_receipt(
            tx_hash,  # type: ignore[arg-type]
            timeout=services.settings.receipt_timeout_s,
        )
    except TimeExhausted:
        raise RetryLater(f"no receipt for {tx_hash} yet") from None
    if int(raw["status"]) != 1:
        _fail(services, submission_id, f"transaction {tx_hash} reverted")
        return None
    posted = [e.event for e in decode_logs(raw["logs"]) if isinstance(e.event, JobPosted)]
    if len(posted) != 1:
        _fail(services, submission_id, f"transaction {tx_hash} emitted {len(posted)} JobPosted")
        return None
    job_id = int(posted[0].job_id)
    with services.sessions.begin() as session:
        row = _load(session, submission_id)
        if row.state == SubmissionState.RELAYED:
            row.advance(SubmissionState.POSTED, job_id=job_id, block_number=int(raw["blockNumber"]))
    log.info("submission %s posted as job %d", submission_id, job_id)
    return job_id


# --------------------------------------------------------------------------- register


def register_tasks(app: Celery, settings: Settings) -> None:
    """Register the three tasks on `app`, sharing lazily built services."""
    lazy = _Lazy(settings)
    retry_s = settings.relay_retry_s
    options: dict[str, Any] = {
        "bind": True,
        # Not shared: each app's tasks close over that app's settings.
        "shared": False,
        "acks_late": True,
        "reject_on_worker_lost": True,
        "max_retries": MAX_RETRIES,
    }

    def _run(task: Task, step: Any, submission_id: str) -> Any:
        services = lazy.get()
        try:
            return step(services, submission_id)
        except (RetryLater, *TRANSIENT) as exc:
            if task.request.retries >= MAX_RETRIES:
                _fail(services, submission_id, f"gave up after retries: {exc}")
                return None
            raise task.retry(exc=exc, countdown=retry_s) from None

    def pin_submission(self: Task, submission_id: str) -> Any:
        return _run(self, pin, submission_id)

    def relay_submission(self: Task, submission_id: str) -> Any:
        return _run(self, relay, submission_id)

    def await_receipt_task(self: Task, submission_id: str) -> Any:
        return _run(self, await_receipt, submission_id)

    app.task(name=PIN_SUBMISSION, **options)(pin_submission)
    app.task(name=RELAY_SUBMISSION, **options)(relay_submission)
    app.task(name=AWAIT_RECEIPT, **options)(await_receipt_task)


def build_worker_app(settings: Settings) -> Celery:
    """A Celery app with Assay's tasks registered, configured from `settings`."""
    app = make_celery(settings)
    register_tasks(app, settings)
    return app
