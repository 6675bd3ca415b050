"""The API's own tables: one `SubmissionRow` per accepted POST /jobs, one `ProgressRow` per job.

A row is the unit of idempotency: the Idempotency-Key and the EIP-712 order digest are
unique, and every Celery task reads the row, does its step once and records the result
(state, transaction hash, signed raw transaction, job id) before acking.  The indexer's
tables (market.indexer) live in the same database; this module owns only this one.
It must never store a submitter's key (there is none to store) or the relayer's.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Any

from sqlalchemy import BigInteger, Engine, Float, Index, Integer, String, Text, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from market.indexer import create_schema, make_engine


class ApiBase(DeclarativeBase):
    """Declarative base of the API's tables."""


class SubmissionState(enum.StrEnum):
    """Where a submission is: accepted -> pinned -> relayed -> posted, or failed."""

    ACCEPTED = "accepted"
    PINNED = "pinned"
    RELAYED = "relayed"
    POSTED = "posted"
    FAILED = "failed"


ACTIVE_STATES = (
    SubmissionState.ACCEPTED,
    SubmissionState.PINNED,
    SubmissionState.RELAYED,
)


class SubmissionRow(ApiBase):
    """A verified job order on its way on-chain."""

    __tablename__ = "submissions"
    __table_args__ = (Index("ix_submission_submitter_nonce", "submitter", "nonce"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True, nullable=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    order_digest: Mapped[str] = mapped_column(String(66), unique=True)
    submitter: Mapped[str] = mapped_column(String(42))
    nonce: Mapped[int] = mapped_column(BigInteger)
    spec_hash: Mapped[str] = mapped_column(String(66))
    spec_cid: Mapped[str] = mapped_column(String(128))
    dataset_cid: Mapped[str] = mapped_column(String(128))
    payload: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=SubmissionState.ACCEPTED.value)
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    raw_tx: Mapped[str | None] = mapped_column(Text, nullable=True)
    relay_attempts: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=time.time)
    updated_at: Mapped[float] = mapped_column(Float, default=time.time)

    def advance(self, state: SubmissionState, **changes: Any) -> None:
        """Move to `state`, setting the given columns."""
        self.state = state.value
        for key, value in changes.items():
            setattr(self, key, value)
        self.updated_at = time.time()


class ProgressRow(ApiBase):
    """The latest signed progress report of a job's solver, with every (step, loss) so far."""

    __tablename__ = "job_progress"

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    solver: Mapped[str] = mapped_column(String(42))
    step: Mapped[int] = mapped_column(BigInteger)
    total_steps: Mapped[int] = mapped_column(BigInteger)
    loss: Mapped[float | None] = mapped_column(Float, nullable=True)
    rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str] = mapped_column(String(32))
    eta_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[float] = mapped_column(Float, default=time.time)
    curve_json: Mapped[str] = mapped_column(Text, default="[]")

    @property
    def curve(self) -> list[dict[str, float]]:
        loaded = json.loads(self.curve_json)
        return loaded if isinstance(loaded, list) else []


MAX_CURVE_POINTS = 2000
"""Points kept per job: older ones are thinned (every other one dropped) past this."""


def open_database(url: str) -> Engine:
    """The engine for `url` with the API's and the indexer's tables created."""
    engine = make_engine(url)
    ApiBase.metadata.create_all(engine)
    create_schema(engine)
    return engine


def active_for(session: Session, submitter: str) -> list[SubmissionRow]:
    """The submitter's submissions not yet posted or failed, lowest nonce first."""
    rows = session.scalars(
        select(SubmissionRow)
        .where(
            SubmissionRow.submitter == submitter,
            SubmissionRow.state.in_([s.value for s in ACTIVE_STATES]),
        )
        .order_by(SubmissionRow.nonce)
    )
    return list(rows)
