"""The indexer: follows Assay's contract events into a local SQL database the API reads.

`Indexer.sync_once` pulls `eth_getLogs` for JobMarket (and DisputeGame and its
ArbiterReferee, when the deployment names them) in block ranges of at most
`chain.events.MAX_LOG_RANGE` blocks from the deployment block, stores every log as an
`EventRow` keyed by (block_number, log_index) with its block hash and transaction hash,
and refreshes the projections the API serves (`JobRow`, `DisputeRow`, `GameRow`) by
reading the contracts' own view of each touched job or game at the end of the range.
The referee's events (RulingPending, Voted, RulingProposed, Escalated, Ruled,
ArbiterSlashed, RulingExpired) carry the game id, so they are part of that game's
history; `market.queries.ruling_of` reads the committee's votes and ruling from them.
Reading state from the contracts, instead of replaying the state machine in Python,
keeps one source of truth.

Restarts and reorgs: the cursor (last indexed block number and hash) is committed in the
same transaction as the events and projections of its range, so a crash re-reads at most
one range and never duplicates or skips an event.  Before each poll the cursor's block
hash is compared with the chain's; a mismatch (a reorg, or an anvil restarted from
scratch), a chain head below the cursor, or a different deployment wipes the index and
re-syncs from the deployment block.  Logs the contracts' generated bindings do not know
are stored by name (or topic) without arguments rather than dropped.

SQLite is the default (WAL mode, so the API reads while the indexer writes); any
SQLAlchemy URL works.  This module must never send a transaction or hold a key, and never
import training code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Final

from eth_utils.crypto import keccak
from sqlalchemy import (
    BigInteger,
    Boolean,
    Engine,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from web3 import Web3

from chain import generated
from chain.client import RpcProvider, load_artifact
from chain.deploy import Deployment
from chain.errors import ChainError
from chain.events import MAX_LOG_RANGE, decode_event, get_logs_paged
from chain.generated import ContractEvent

log = logging.getLogger(__name__)

DEFAULT_BATCH_BLOCKS: Final = 2_000
DEFAULT_POLL_S: Final = 1.0
GAME_CONTRACT: Final = "DisputeGame"
MARKET_CONTRACT: Final = "JobMarket"
REFEREE_CONTRACT: Final = "ArbiterReferee"
ACTOR_FIELDS: Final = ("solver", "challenger", "account", "submitter", "arbiter", "appellant")
"""The event fields naming who acted, first match wins (the `actor` column)."""


class IndexerError(Exception):
    """Root of the errors the indexer raises on purpose."""


# ---------------------------------------------------------------------------- schema


class Base(DeclarativeBase):
    """Declarative base of the indexer's tables."""


class CursorRow(Base):
    """How far the index goes, and which deployment it indexes (one row, id 1)."""

    __tablename__ = "indexer_cursor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    market: Mapped[str] = mapped_column(String(42))
    deployment_block: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    updated_at: Mapped[float] = mapped_column()


class EventRow(Base):
    """One contract log, decoded where our bindings know it."""

    __tablename__ = "chain_events"
    __table_args__ = (
        UniqueConstraint("block_number", "log_index", name="uq_event_position"),
        Index("ix_event_job", "job_id"),
        Index("ix_event_game", "game_id"),
        Index("ix_event_actor", "actor"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    tx_hash: Mapped[str] = mapped_column(String(66))
    address: Mapped[str] = mapped_column(String(42))
    name: Mapped[str] = mapped_column(String(80))
    args: Mapped[str] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    game_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    actor: Mapped[str | None] = mapped_column(String(42), nullable=True)

    @property
    def arguments(self) -> dict[str, Any]:
        loaded = json.loads(self.args)
        return loaded if isinstance(loaded, dict) else {}


class JobRow(Base):
    """A job as JobMarket last reported it (amounts are decimal strings: uint256)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_job_submitter", "submitter"),
        Index("ix_job_solver", "solver"),
        Index("ix_job_status", "status"),
    )

    job_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    submitter: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(16))
    solver: Mapped[str | None] = mapped_column(String(42), nullable=True)
    spec_hash: Mapped[str] = mapped_column(String(66))
    spec_cid: Mapped[str] = mapped_column(String(128))
    reward: Mapped[str] = mapped_column(String(80))
    solver_stake: Mapped[str] = mapped_column(String(80))
    challenger_bond: Mapped[str] = mapped_column(String(80))
    claim_deadline: Mapped[int] = mapped_column(BigInteger)
    submit_deadline: Mapped[int] = mapped_column(BigInteger)
    challenge_deadline: Mapped[int] = mapped_column(BigInteger)
    submit_window: Mapped[int] = mapped_column(BigInteger)
    challenge_window: Mapped[int] = mapped_column(BigInteger)
    steps_per_checkpoint: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checkpoint_count: Mapped[int] = mapped_column(BigInteger)
    open_disputes: Mapped[int] = mapped_column(Integer)
    trace_root: Mapped[str | None] = mapped_column(String(66), nullable=True)
    final_state_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    manifest_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    posted_block: Mapped[int] = mapped_column(BigInteger)
    posted_tx: Mapped[str] = mapped_column(String(66))
    updated_block: Mapped[int] = mapped_column(BigInteger)


class DisputeRow(Base):
    """A challenge against a job's result as JobMarket sees it (bond locked, outcome)."""

    __tablename__ = "disputes"
    __table_args__ = (Index("ix_dispute_job", "job_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("jobs.job_id"))
    challenger: Mapped[str] = mapped_column(String(42))
    bond: Mapped[str] = mapped_column(String(80))
    opened_block: Mapped[int] = mapped_column(BigInteger)
    opened_tx: Mapped[str] = mapped_column(String(66))
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    solver_won: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    resolved_block: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class GameRow(Base):
    """A DisputeGame game as the contract last reported it."""

    __tablename__ = "games"
    __table_args__ = (Index("ix_game_job", "job_id"),)

    game_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    job_id: Mapped[int] = mapped_column(BigInteger)
    solver: Mapped[str] = mapped_column(String(42))
    challenger: Mapped[str] = mapped_column(String(42))
    status: Mapped[str] = mapped_column(String(24))
    level: Mapped[str] = mapped_column(String(16))
    turn: Mapped[str] = mapped_column(String(16))
    arity: Mapped[int] = mapped_column(Integer)
    base: Mapped[int] = mapped_column(BigInteger)
    lo: Mapped[int] = mapped_column(BigInteger)
    hi: Mapped[int] = mapped_column(BigInteger)
    op_count: Mapped[int] = mapped_column(BigInteger)
    solver_clock: Mapped[int] = mapped_column(BigInteger)
    challenger_clock: Mapped[int] = mapped_column(BigInteger)
    turn_started_at: Mapped[int] = mapped_column(BigInteger)
    rounds: Mapped[int] = mapped_column(Integer)
    bundle_cid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_block: Mapped[int] = mapped_column(BigInteger)
    updated_block: Mapped[int] = mapped_column(BigInteger)


INDEX_TABLES: Final = (EventRow, DisputeRow, GameRow, JobRow)
"""Tables wiped on a reset, children first."""


# ---------------------------------------------------------------------------- engine


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and its directory created."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def create_schema(engine: Engine) -> None:
    """Create the indexer's tables if they do not exist."""
    Base.metadata.create_all(engine)


# --------------------------------------------------------------------------- helpers


def _hex(value: bytes | bytearray | str) -> str:
    if isinstance(value, str):
        return value if value.startswith("0x") else "0x" + value
    return "0x" + bytes(value).hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        # uint256 does not fit a JSON double: large values travel as decimal strings.
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def event_args(ev: ContractEvent) -> dict[str, Any]:
    """An event's fields as a JSON-ready dict."""
    if not is_dataclass(ev):
        return {}
    return {f.name: _jsonable(getattr(ev, f.name)) for f in fields(ev)}


def _named(outputs: Sequence[Mapping[str, Any]], value: Any) -> dict[str, Any]:
    """A struct returned by web3 (a tuple) as {abi component name: value}."""
    components = outputs[0].get("components") if len(outputs) == 1 else None
    if components is None:
        raise IndexerError("expected a single struct output")
    return {c["name"]: v for c, v in zip(components, value, strict=True)}


def _enum_name(enum: str, value: int) -> str:
    """The member name of the generated enum `enum` (the number itself if unknown)."""
    cls = getattr(generated, enum, None)
    try:
        return str(cls(value).name) if cls is not None else str(value)
    except ValueError:
        return str(value)


_ZERO32: Final = "0x" + "00" * 32
_ZERO_ADDRESS: Final = "0x" + "00" * 20


def _opt_hash(value: bytes) -> str | None:
    text = _hex(value)
    return None if text == _ZERO32 else text


def _opt_address(value: str) -> str | None:
    return None if int(value, 16) == 0 else Web3.to_checksum_address(value)


@dataclass(frozen=True)
class SyncResult:
    """What one `sync_once` did."""

    from_block: int
    to_block: int
    events: int
    reset: bool


# --------------------------------------------------------------------------- indexer


class Indexer:
    """Follows one deployment's events into the database behind `engine`."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        engine: Engine,
        *,
        batch_blocks: int = DEFAULT_BATCH_BLOCKS,
        confirmations: int = 0,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.engine = engine
        # SAFETY: one eth_getLogs per range; public nodes refuse more than MAX_LOG_RANGE.
        self.batch_blocks = max(1, min(batch_blocks, MAX_LOG_RANGE))
        self.confirmations = confirmations
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        create_schema(engine)
        market_address = deployment.addresses[MARKET_CONTRACT]
        self.market_address = Web3.to_checksum_address(market_address)
        market_abi = load_artifact(MARKET_CONTRACT).abi
        self._market = w3.eth.contract(address=self.market_address, abi=market_abi)
        self._names: dict[bytes, str] = _topic_names(market_abi)
        self.game_address: str | None = None
        self._game: Any = None
        game_address = deployment.addresses.get(GAME_CONTRACT)
        if game_address is not None:
            self.game_address = Web3.to_checksum_address(game_address)
            try:
                game_abi = load_artifact(GAME_CONTRACT).abi
            except ChainError:
                log.warning("no %s artifact: games are indexed as raw events", GAME_CONTRACT)
            else:
                self._game = w3.eth.contract(address=self.game_address, abi=game_abi)
                self._names.update(_topic_names(game_abi))
        self.referee_address: str | None = None
        referee_address = deployment.addresses.get(REFEREE_CONTRACT)
        if referee_address is not None:
            self.referee_address = Web3.to_checksum_address(referee_address)
            try:
                self._names.update(_topic_names(load_artifact(REFEREE_CONTRACT).abi))
            except ChainError:
                log.warning("no %s artifact: rulings are indexed as raw events", REFEREE_CONTRACT)

    @property
    def addresses(self) -> list[str]:
        found = (self.market_address, self.game_address, self.referee_address)
        return [a for a in found if a is not None]

    # -- cursor ----------------------------------------------------------------

    def _fresh_cursor(self) -> CursorRow:
        return CursorRow(
            id=1,
            chain_id=self.deployment.chain_id,
            market=self.market_address,
            deployment_block=self.deployment.block,
            block_number=self.deployment.block - 1,
            block_hash=None,
            updated_at=time.time(),
        )

    def cursor(self) -> CursorRow:
        """The current cursor (created at the deployment block if there is none)."""
        with self._sessions.begin() as session:
            row = session.get(CursorRow, 1)
            if row is None:
                row = self._fresh_cursor()
                session.add(row)
            return row

    def reset(self, reason: str) -> None:
        """Forget everything indexed; the next sync starts again at the deployment block."""
        log.warning("indexer reset (%s): re-syncing from block %d", reason, self.deployment.block)
        with self._sessions.begin() as session:
            for table in INDEX_TABLES:
                session.execute(delete(table))
            session.execute(delete(CursorRow))
            session.add(self._fresh_cursor())

    def _check_cursor(self, cursor: CursorRow, head: int) -> str | None:
        """Why the index must be rebuilt, or None when it still extends the chain."""
        if (cursor.chain_id, cursor.market, cursor.deployment_block) != (
            self.deployment.chain_id,
            self.market_address,
            self.deployment.block,
        ):
            return "the deployment changed"
        if cursor.block_hash is None:
            return None
        if head < cursor.block_number:
            return f"chain head {head} is below the indexed block {cursor.block_number}"
        block = self.w3.eth.get_block(cursor.block_number)
        if _hex(block["hash"]) != cursor.block_hash:
            return f"block {cursor.block_number} changed hash (reorg or node restart)"
        return None

    # -- sync ------------------------------------------------------------------

    def sync_once(self) -> SyncResult:
        """Index every new block up to the head (minus `confirmations`); return what was done."""
        head = int(self.w3.eth.block_number) - self.confirmations
        cursor = self.cursor()
        why = self._check_cursor(cursor, head)
        reset = why is not None
        if why is not None:
            self.reset(why)
            cursor = self.cursor()
        start = cursor.block_number + 1
        total = 0
        lo = start
        while lo <= head:
            hi = min(head, lo + self.batch_blocks - 1)
            added = self._sync_range(lo, hi)
            if added is None:  # the range changed under us: re-check from the cursor
                return SyncResult(start, lo - 1, total, reset)
            total += added
            lo = hi + 1
        return SyncResult(start, max(head, start - 1), total, reset)

    def _sync_range(self, lo: int, hi: int) -> int | None:
        raw = get_logs_paged(self.w3, self.addresses, lo, hi, page=self.batch_blocks)
        end_block = self.w3.eth.get_block(hi)
        end_hash = _hex(end_block["hash"])
        logs = sorted(raw, key=lambda e: (int(e["blockNumber"]), int(e["logIndex"])))
        for entry in logs:
            if int(entry["blockNumber"]) == hi and _hex(entry["blockHash"]) != end_hash:
                log.info("block %d changed while indexing it; retrying", hi)
                return None
        rows = [self._event_row(entry) for entry in logs]
        job_ids = sorted({r.job_id for r in rows if r.job_id is not None and not r.game_id})
        game_ids = sorted({r.game_id for r in rows if r.game_id is not None})
        jobs = {job_id: self._read_job(job_id, hi) for job_id in job_ids}
        games = {game_id: self._read_game(game_id, hi) for game_id in game_ids}
        with self._sessions.begin() as session:
            cursor = session.get(CursorRow, 1)
            if cursor is None or cursor.block_number != lo - 1:
                raise IndexerError("the cursor moved under this indexer: two indexers running?")
            for row in rows:
                session.add(row)
                self._apply_dispute(session, row)
            for job_id, job_state in jobs.items():
                self._upsert_job(session, job_id, job_state, rows, hi)
            for game_id, game_state in games.items():
                self._upsert_game(session, game_id, game_state, rows, hi)
            cursor.block_number = hi
            cursor.block_hash = end_hash
            cursor.updated_at = time.time()
        if rows:
            log.info("indexed %d events in blocks %d..%d", len(rows), lo, hi)
        return len(rows)

    def _event_row(self, entry: Mapping[str, Any]) -> EventRow:
        topics = list(entry["topics"])
        address = Web3.to_checksum_address(entry["address"])
        decoded = decode_event(topics, entry["data"]) if topics else None
        args = event_args(decoded) if decoded is not None else {}
        topic0 = bytes(topics[0]) if topics else b""
        if decoded is not None:
            name = type(decoded).__name__
        else:
            name = self._names.get(topic0, "0x" + topic0.hex()[:16])
        job_id = args.get("job_id")
        game_id = args.get("game_id")
        if decoded is None and address == self.game_address and len(topics) > 1:
            # Every DisputeGame event indexes its game id first.
            game_id = int.from_bytes(bytes(topics[1]), "big")
        actor = next((args[k] for k in ACTOR_FIELDS if k in args), None)
        return EventRow(
            block_number=int(entry["blockNumber"]),
            block_hash=_hex(entry["blockHash"]),
            log_index=int(entry["logIndex"]),
            tx_hash=_hex(entry["transactionHash"]),
            address=address,
            name=name,
            args=json.dumps(args, sort_keys=True),
            job_id=int(job_id) if job_id is not None else None,
            game_id=int(game_id) if game_id is not None else None,
            actor=str(actor) if actor is not None else None,
        )

    # -- projections -------------------------------------------------------------

    def _read_job(self, job_id: int, block: int) -> dict[str, Any]:
        fn = self._market.get_function_by_name("getJob")
        raw = fn(job_id).call(block_identifier=block)
        return _named(fn.abi["outputs"], raw)

    def _read_game(self, game_id: int, block: int) -> dict[str, Any] | None:
        if self._game is None:
            return None
        fn = self._game.get_function_by_name("getGame")
        raw = fn(game_id).call(block_identifier=block)
        return _named(fn.abi["outputs"], raw)

    def _upsert_job(
        self,
        session: Session,
        job_id: int,
        state: Mapping[str, Any],
        rows: Iterable[EventRow],
        block: int,
    ) -> None:
        row = session.get(JobRow, job_id)
        if row is None:
            posted = next((r for r in rows if r.name == "JobPosted" and r.job_id == job_id), None)
            if posted is None:
                log.warning("job %d changed but was never seen posted; skipped", job_id)
                return
            row = JobRow(job_id=job_id, posted_block=posted.block_number, posted_tx=posted.tx_hash)
            session.add(row)
        row.submitter = Web3.to_checksum_address(state["submitter"])
        row.status = _enum_name("JobStatus", int(state["status"]))
        row.solver = _opt_address(state["solver"])
        row.spec_hash = _hex(state["specHash"])
        row.spec_cid = str(state["specCid"])
        row.reward = str(int(state["reward"]))
        row.solver_stake = str(int(state["solverStake"]))
        row.challenger_bond = str(int(state["challengerBond"]))
        row.claim_deadline = int(state["claimDeadline"])
        row.submit_deadline = int(state["submitDeadline"])
        row.challenge_deadline = int(state["challengeDeadline"])
        row.submit_window = int(state["submitWindow"])
        row.challenge_window = int(state["challengeWindow"])
        spc = state.get("stepsPerCheckpoint")
        row.steps_per_checkpoint = int(spc) if spc is not None else None
        row.checkpoint_count = int(state["checkpointCount"])
        row.open_disputes = int(state["openDisputes"])
        row.trace_root = _opt_hash(state["traceRoot"])
        row.final_state_hash = _opt_hash(state["finalStateHash"])
        row.manifest_cid = str(state["manifestCid"]) or None
        row.updated_block = block

    def _apply_dispute(self, session: Session, row: EventRow) -> None:
        if row.name not in ("DisputeOpened", "DisputeResolved") or row.job_id is None:
            return
        args = row.arguments
        if row.name == "DisputeOpened":
            session.flush()
            session.add(
                DisputeRow(
                    job_id=row.job_id,
                    challenger=str(args["challenger"]),
                    bond=str(args["bond"]),
                    opened_block=row.block_number,
                    opened_tx=row.tx_hash,
                    resolved=False,
                )
            )
            return
        session.flush()
        open_dispute = session.scalars(
            select(DisputeRow)
            .where(
                DisputeRow.job_id == row.job_id,
                DisputeRow.challenger == str(args["challenger"]),
                DisputeRow.resolved.is_(False),
            )
            .order_by(DisputeRow.id)
            .limit(1)
        ).first()
        if open_dispute is not None:
            open_dispute.resolved = True
            open_dispute.solver_won = bool(args["solver_won"])
            open_dispute.resolved_block = row.block_number

    def _upsert_game(
        self,
        session: Session,
        game_id: int,
        state: Mapping[str, Any] | None,
        rows: Iterable[EventRow],
        block: int,
    ) -> None:
        if state is None:
            return
        row = session.get(GameRow, game_id)
        if row is None:
            created = next((r.block_number for r in rows if r.game_id == game_id), block)
            row = GameRow(game_id=game_id, created_block=created)
            session.add(row)
        row.job_id = int(state["jobId"])
        row.solver = Web3.to_checksum_address(state["solver"])
        row.challenger = Web3.to_checksum_address(state["challenger"])
        row.status = _enum_name("GameStatus", int(state["status"]))
        row.level = _enum_name("Level", int(state["level"]))
        row.turn = _enum_name("Party", int(state["turn"]))
        row.arity = int(state["arity"])
        row.base = int(state["base"])
        row.lo = int(state["lo"])
        row.hi = int(state["hi"])
        row.op_count = int(state.get("opCount", 0))
        row.solver_clock = int(state["solverClock"])
        row.challenger_clock = int(state["challengerClock"])
        row.turn_started_at = int(state["turnStartedAt"])
        row.rounds = int(state.get("rounds", 0))
        row.bundle_cid = str(state.get("bundleCid", "")) or None
        row.updated_block = block

    # -- loop --------------------------------------------------------------------

    def run(self, stop: threading.Event, poll_s: float = DEFAULT_POLL_S) -> None:
        """Sync until `stop` is set; node errors are logged and retried, never fatal."""
        while not stop.is_set():
            try:
                self.sync_once()
            except IndexerError:
                raise
            except Exception as exc:  # a node restart surfaces as many exception types
                log.warning("indexer sync failed (%s: %s); retrying", type(exc).__name__, exc)
            stop.wait(poll_s)


def _topic_names(abi: Iterable[Mapping[str, Any]]) -> dict[bytes, str]:
    """topic0 -> event name for every event of an ABI."""
    out: dict[bytes, str] = {}
    for item in abi:
        if item.get("type") != "event":
            continue
        types = ",".join(_abi_type(i) for i in item.get("inputs", []))
        out[keccak(text=f"{item['name']}({types})")] = str(item["name"])
    return out


def _abi_type(item: Mapping[str, Any]) -> str:
    kind = str(item["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in item.get("components", []))
        return f"({inner}){kind[5:]}"
    return kind


# ------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m market.indexer`: follow a deployment until interrupted."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m market.indexer", description=__doc__)
    parser.add_argument("--rpc", default=env.get("ASSAY_RPC_URL", "http://127.0.0.1:8545"))
    parser.add_argument("--deployment", default=env.get("ASSAY_DEPLOYMENT", "var/deployment.json"))
    parser.add_argument("--db", default=env.get("ASSAY_DATABASE_URL", "sqlite:///var/assay.db"))
    parser.add_argument("--poll", type=float, default=float(env.get("ASSAY_INDEXER_POLL_S", "1")))
    parser.add_argument("--confirmations", type=int, default=0)
    parser.add_argument("--once", action="store_true", help="sync to the head and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    deployment = Deployment.load(Path(args.deployment))
    w3 = Web3(RpcProvider(args.rpc, request_kwargs={"timeout": 60}))
    indexer = Indexer(w3, deployment, make_engine(args.db), confirmations=args.confirmations)
    if args.once:
        result = indexer.sync_once()
        log.info("synced %d..%d: %d events", result.from_block, result.to_block, result.events)
        return 0
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    indexer.run(stop, args.poll)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
