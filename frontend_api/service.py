"""POST /jobs without HTTP: validate a submission, verify its signatures, record, enqueue.

`SubmissionService.submit` runs every check that can fail *before* anything changes:
spec schema (`jobspec.schema`, via market.jobspec), dataset CID, order terms against the
spec, the EIP-712 order signature and the EIP-2612 permit signature (off-chain), nonces,
deadlines and balance against the chain, and finally an eth_call simulation of
`postJobFor`.  Only a submission that passed them all has its bytes written (unpinned) to
the artifact store, gets a `SubmissionRow`, and is handed to the worker by task name.

Idempotency: a request with an `Idempotency-Key` already seen returns the first answer
when its body is identical and is refused (422) when it differs; an order digest or a
(submitter, nonce) already in flight is a replay (409).  This module must never sign or
send a transaction, and never import the worker's task code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from celery import Celery
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from chain.errors import ChainError, ContractRevert, NodeUnreachable
from frontend_api.celery_app import enqueue_submission
from frontend_api.chainview import MarketGateway
from frontend_api.db import SubmissionRow, SubmissionState, active_for
from frontend_api.errors import (
    Conflict,
    IdempotencyMismatch,
    InvalidRequest,
    PayloadTooLarge,
    Problem,
    Unavailable,
)
from frontend_api.orders import (
    OrderTerms,
    Permit,
    SignatureInvalid,
    digest,
    job_order_typed_data,
    permit_typed_data,
    require_signer,
)
from frontend_api.schemas import JobSubmission, OrderIn, PermitIn
from frontend_api.settings import Settings
from market.jobcheck import (
    DATASET,
    check_dataset_fits,
    min_challenge_window,
    safetensors_elements,
)
from market.jobspec import SealedSpec, SpecInvalid, seal, with_data_cid
from market.store import (
    ArtifactStore,
    ArtifactUnusable,
    StoreError,
    UnixFSImporter,
    normalize_cid,
)
from market.store.base import READ_SIZE
from market.store.errors import InvalidCid

log = logging.getLogger(__name__)


BROKER_DOWN_NOTE = "queued: the task broker is unavailable; relayed when it is back"


def _invalid(field: str, reason: str) -> InvalidRequest:
    return InvalidRequest(f"{field}: {reason}", [Problem(field, reason)])


def request_hash(body: JobSubmission, dataset_sha256: str | None) -> str:
    """What an Idempotency-Key is bound to: the canonical body plus the upload's sha256."""
    canonical = json.dumps(
        {"body": body.model_dump(mode="json"), "dataset": dataset_sha256},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Upload:
    """A dataset file received with the request (a seekable binary file)."""

    file: IO[bytes]
    size: int
    sha256: str


def measure_upload(file: IO[bytes], limit: int) -> Upload:
    """sha256 and size of `file` (rewound afterwards); 413 past `limit` bytes."""
    file.seek(0)
    h = hashlib.sha256()
    size = 0
    while piece := file.read(READ_SIZE):
        size += len(piece)
        if size > limit:
            raise PayloadTooLarge(f"dataset: larger than the limit of {limit} bytes")
        h.update(piece)
    file.seek(0)
    if size == 0:
        raise _invalid("dataset", "the uploaded file is empty")
    return Upload(file=file, size=size, sha256=h.hexdigest())


def _file_cid(file: IO[bytes]) -> str:
    file.seek(0)
    importer = UnixFSImporter()
    while piece := file.read(READ_SIZE):
        importer.write(piece)
    file.seek(0)
    return str(importer.finish().cid)


@dataclass(frozen=True)
class Submitted:
    """The outcome of `submit`: the row, and whether it answers an earlier request."""

    row: SubmissionRow
    replayed: bool


class SubmissionService:
    """Everything POST /jobs does, with its collaborators passed in."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        store: ArtifactStore,
        gateway: Callable[[], MarketGateway],
        celery: Celery,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.store = store
        self._gateway = gateway
        self.celery = celery

    # -- entry point -------------------------------------------------------------

    def submit(
        self,
        body: JobSubmission,
        upload: Upload | None,
        idempotency_key: str | None,
    ) -> Submitted:
        rhash = request_hash(body, upload.sha256 if upload else None)
        if idempotency_key is not None:
            earlier = self._by_key(idempotency_key)
            if earlier is not None:
                return self._replay(earlier, rhash)
        sealed, dataset_cid = self._seal(body.spec, upload)
        graph_params = self._check_artifacts(sealed)
        order = self._order_terms(body.order, sealed, graph_params)
        signature = bytes.fromhex(body.order.signature[2:])
        gateway = self.gateway()
        typed = job_order_typed_data(gateway.chain_id, gateway.market_address, order)
        try:
            require_signer(typed, signature, order.submitter)
        except SignatureInvalid as exc:
            raise _invalid("order.signature", str(exc)) from None
        permit = self._check_permit(gateway, body.permit, order)
        order_digest = "0x" + digest(typed).hex()
        self._check_chain(gateway, order, body.permit, signature, order_digest)
        self._store_bytes(sealed, upload, dataset_cid)
        row = SubmissionRow(
            id=uuid.uuid4().hex,
            idempotency_key=idempotency_key,
            request_hash=rhash,
            order_digest=order_digest,
            submitter=order.submitter,
            nonce=order.nonce,
            spec_hash="0x" + sealed.hash.hex(),
            spec_cid=sealed.cid,
            dataset_cid=dataset_cid,
            payload=json.dumps(_payload(order, signature, permit, body.permit)),
            state=SubmissionState.ACCEPTED.value,
        )
        try:
            with self.sessions.begin() as session:
                session.add(row)
        except SqlIntegrityError:
            return self._lost_race(idempotency_key, rhash, order_digest)
        try:
            task_id = enqueue_submission(self.celery, row.id, self.settings.task_queue)
        except Exception as exc:  # kombu raises many types when the broker is down
            # The order is verified and recorded: keep it (the sweeper, frontend_api.sweeper,
            # enqueues it once the broker is back) rather than burn the user's signature.
            log.warning("submission %s accepted, broker down: %s", row.id, exc)
            with self.sessions.begin() as session:
                stored = session.get(SubmissionRow, row.id)
                if stored is not None:
                    stored.error = BROKER_DOWN_NOTE
                    row = stored
            return Submitted(row, replayed=False)
        with self.sessions.begin() as session:
            stored = session.get(SubmissionRow, row.id)
            if stored is not None:
                stored.task_id = task_id
                row = stored
        log.info("accepted submission %s (nonce %d of %s)", row.id, order.nonce, order.submitter)
        return Submitted(row, replayed=False)

    def gateway(self) -> MarketGateway:
        try:
            return self._gateway()
        except (ChainError, OSError) as exc:
            raise Unavailable(f"chain unavailable: {exc}") from None

    # -- idempotency -------------------------------------------------------------

    def _by_key(self, key: str) -> SubmissionRow | None:
        with self.sessions() as session:
            return session.scalars(
                select(SubmissionRow).where(SubmissionRow.idempotency_key == key)
            ).first()

    @staticmethod
    def _replay(earlier: SubmissionRow, rhash: str) -> Submitted:
        if earlier.request_hash != rhash:
            raise IdempotencyMismatch(
                "Idempotency-Key was already used with a different request body",
                [Problem("Idempotency-Key", "reused with a different body")],
            )
        return Submitted(earlier, replayed=True)

    def _lost_race(self, key: str | None, rhash: str, order_digest: str) -> Submitted:
        if key is not None:
            earlier = self._by_key(key)
            if earlier is not None:
                return self._replay(earlier, rhash)
        raise Conflict(
            "this signed order was already submitted",
            [Problem("order", f"order {order_digest} was already submitted")],
        )

    # -- spec and dataset ---------------------------------------------------------

    def _seal(self, spec: dict[str, Any], upload: Upload | None) -> tuple[SealedSpec, str]:
        data = spec.get("data")
        given = data.get("cid") if isinstance(data, dict) else None
        if upload is not None:
            cid = _file_cid(upload.file)
            if given is not None and given != cid:
                raise _invalid("spec.data.cid", f"is {given} but the uploaded dataset is {cid}")
            spec = with_data_cid(spec, cid)
        elif given is None:
            raise _invalid("spec.data.cid", "required when no dataset file is uploaded")
        try:
            sealed = seal(spec)
        except SpecInvalid as exc:
            problems = [Problem(f"spec.{e.path}", e.reason) for e in exc.errors]
            raise InvalidRequest(f"invalid spec: {exc}", problems) from None
        if len(sealed.data) > self.settings.max_spec_bytes:
            raise PayloadTooLarge(
                f"spec: {len(sealed.data)} canonical bytes, the limit is "
                f"{self.settings.max_spec_bytes}"
            )
        dataset_cid = sealed.dataset_cid
        assert dataset_cid is not None  # filled above or required
        if upload is None:
            try:
                normalized = normalize_cid(dataset_cid)
                present = self.store.has(normalized)
            except InvalidCid as exc:
                raise _invalid("spec.data.cid", exc.reason) from None
            except StoreError as exc:
                raise Unavailable(f"artifact store: {exc}") from None
            if not present:
                raise _invalid(
                    "spec.data.cid",
                    f"{dataset_cid} is not in the artifact store: upload the dataset file",
                )
        self._check_dataset(sealed, upload, str(dataset_cid))
        return sealed, str(dataset_cid)

    def _check_dataset(self, sealed: SealedSpec, upload: Upload | None, dataset_cid: str) -> None:
        """Refuse a dataset file the spec's model cannot train on (market.jobcheck)."""
        where = "dataset" if upload is not None else "spec.data.cid"
        if upload is not None:
            upload.file.seek(0)
            raw = upload.file.read()
            upload.file.seek(0)
        else:
            try:
                raw = self.store.get_bytes(dataset_cid, max_size=self.settings.max_upload_bytes)
            except ArtifactUnusable as exc:
                raise _invalid(where, str(exc)) from None
            except StoreError as exc:
                raise Unavailable(f"artifact store: {exc}") from None
        errors = check_dataset_fits(sealed.spec, raw)
        if errors:
            problems = [
                Problem(where if e.path == DATASET else f"spec.{e.path}", e.reason) for e in errors
            ]
            first = problems[0]
            raise InvalidRequest(
                f"the dataset does not fit the model: {first.field}: {first.reason}", problems
            )

    def _store_bytes(self, sealed: SealedSpec, upload: Upload | None, dataset_cid: str) -> None:
        """Write spec and dataset unpinned (the pin task pins them)."""
        try:
            spec_cid = self.store.add_bytes(sealed.data, pin=False)
            if upload is not None:
                upload.file.seek(0)
                stored = self.store.add_stream(upload.file, pin=False)
                if stored != dataset_cid:
                    raise Unavailable(f"artifact store gave {stored} for dataset {dataset_cid}")
        except StoreError as exc:
            raise Unavailable(f"artifact store: {exc}") from None
        if spec_cid != sealed.cid:
            raise Unavailable(f"artifact store gave {spec_cid} for spec {sealed.cid}")

    # -- order ---------------------------------------------------------------------

    def _check_artifacts(self, sealed: SealedSpec) -> int | None:
        """A graph model's graph and weights must be in the store (POST /artifacts) with
        the sha256 the spec binds; returns the weights' parameter count (None: zoo model).
        """
        params: int | None = None
        for path, cid in sealed.artifact_cids.items():
            field = f"spec.{path}"
            if cid is None:
                raise _invalid(f"{field}.cid", "required: upload the file to POST /artifacts")
            try:
                raw = self.store.get_bytes(
                    normalize_cid(cid), max_size=self.settings.max_upload_bytes
                )
            except InvalidCid as exc:
                raise _invalid(f"{field}.cid", exc.reason) from None
            except ArtifactUnusable as exc:
                raise _invalid(
                    f"{field}.cid", f"{cid} unusable ({exc}): upload it to POST /artifacts"
                ) from None
            except StoreError as exc:
                raise Unavailable(f"artifact store: {exc}") from None
            want = sealed.raw["program"]["model"][path.rsplit(".", 1)[1]]["sha256"]
            if hashlib.sha256(raw).hexdigest() != want:
                raise _invalid(
                    f"{field}.sha256", f"is {want} but the file at {cid} hashes differently"
                )
            if path.endswith(".weights"):
                try:
                    params = safetensors_elements(raw)
                except ValueError as exc:
                    raise _invalid(f"{field}.cid", f"not a safetensors file: {exc}") from None
        return params

    @staticmethod
    def _order_terms(
        order: OrderIn, sealed: SealedSpec, graph_params: int | None = None
    ) -> OrderTerms:
        derived = {
            "spec_hash": "0x" + sealed.hash.hex(),
            "spec_cid": sealed.cid,
            "steps_per_checkpoint": sealed.steps_per_checkpoint,
            "checkpoint_count": sealed.checkpoint_count,
        }
        for name, value in derived.items():
            given = getattr(order, name)
            if given is None:
                continue
            same = given.lower() == value if name == "spec_hash" else given == value
            if not same:
                raise _invalid(f"order.{name}", f"is {given} but the spec gives {value}")
        for name in ("reward", "solver_stake", "challenger_bond", "submit_window"):
            if getattr(order, name) == 0:
                raise _invalid(f"order.{name}", "must be positive")
        if order.challenge_window == 0:
            raise _invalid("order.challenge_window", "must be positive")
        least = min_challenge_window(sealed.spec, graph_params=graph_params)
        if order.challenge_window < least:
            raise _invalid(
                "order.challenge_window",
                f"{order.challenge_window} s is too short to re-execute the job's "
                f"{sealed.spec.steps} steps: at least {least} s at the reference rate",
            )
        try:
            submitter = Web3.to_checksum_address(order.submitter)
        except ValueError:
            raise _invalid("order.submitter", "bad address checksum") from None
        return OrderTerms(
            spec_hash=sealed.hash,
            spec_cid=sealed.cid,
            reward=order.reward,
            solver_stake=order.solver_stake,
            challenger_bond=order.challenger_bond,
            claim_deadline=order.claim_deadline,
            submit_window=order.submit_window,
            challenge_window=order.challenge_window,
            steps_per_checkpoint=sealed.steps_per_checkpoint,
            checkpoint_count=sealed.checkpoint_count,
            submitter=submitter,  # type: ignore[arg-type]
            nonce=order.nonce,
            deadline=order.deadline,
        )

    def _check_permit(self, gateway: MarketGateway, permit: PermitIn, order: OrderTerms) -> Permit:
        terms = Permit(
            owner=order.submitter,
            spender=gateway.market_address,
            value=order.reward,
            nonce=permit.nonce,
            deadline=permit.deadline,
        )
        try:
            name = gateway.token_name()
        except (ChainError, OSError) as exc:
            raise Unavailable(f"chain unavailable: {exc}") from None
        typed = permit_typed_data(gateway.chain_id, gateway.token_address, name, terms)
        signature = bytes.fromhex(permit.r[2:]) + bytes.fromhex(permit.s[2:]) + bytes([permit.v])
        try:
            require_signer(typed, signature, order.submitter)
        except SignatureInvalid as exc:
            raise _invalid("permit", str(exc)) from None
        return terms

    def _check_chain(
        self,
        gateway: MarketGateway,
        order: OrderTerms,
        permit: PermitIn,
        signature: bytes,
        order_digest: str,
    ) -> None:
        try:
            self._check_chain_state(gateway, order, permit, signature, order_digest)
        except (NodeUnreachable, OSError) as exc:
            raise Unavailable(f"chain unavailable: {exc}") from None

    def _check_chain_state(
        self,
        gateway: MarketGateway,
        order: OrderTerms,
        permit: PermitIn,
        signature: bytes,
        order_digest: str,
    ) -> None:
        with self.sessions() as session:
            known = session.scalars(
                select(SubmissionRow).where(SubmissionRow.order_digest == order_digest)
            ).first()
            active = active_for(session, order.submitter)
        if known is not None:
            raise Conflict(
                "this signed order was already submitted",
                [Problem("order", f"already submitted as {known.id} ({known.state})")],
            )
        if any(row.nonce == order.nonce for row in active):
            raise Conflict(
                f"order nonce {order.nonce} of {order.submitter} is already in flight",
                [Problem("order.nonce", "another order with this nonce is in flight")],
            )
        chain_nonce = gateway.order_nonce(order.submitter)
        if order.nonce < chain_nonce:
            raise Conflict(
                f"order nonce {order.nonce} was already used (next is {chain_nonce})",
                [Problem("order.nonce", f"already used; the next nonce is {chain_nonce}")],
            )
        pending = len([r for r in active if r.nonce >= chain_nonce])
        if order.nonce > chain_nonce + pending:
            raise _invalid(
                "order.nonce", f"too far ahead: the next nonce is {chain_nonce + pending}"
            )
        now = gateway.now()
        if order.deadline <= now:
            raise _invalid("order.deadline", f"passed at {order.deadline} (chain time {now})")
        if order.claim_deadline <= now:
            raise _invalid("order.claim_deadline", f"is not after chain time {now}")
        if permit.deadline < now:
            raise _invalid("permit.deadline", f"passed at {permit.deadline} (chain time {now})")
        max_window = gateway.max_window()
        for name in ("submit_window", "challenge_window"):
            if getattr(order, name) > max_window:
                raise _invalid(f"order.{name}", f"longer than the maximum {max_window} s")
        permit_nonce = gateway.permit_nonce(order.submitter)
        if not permit_nonce <= permit.nonce <= permit_nonce + pending:
            raise _invalid(
                "permit.nonce", f"is {permit.nonce}; the token expects {permit_nonce + pending}"
            )
        balance = gateway.balance_of(order.submitter)
        if balance < order.reward:
            raise _invalid(
                "order.reward", f"exceeds the submitter's balance of {balance} (smallest units)"
            )
        if order.nonce == chain_nonce and permit.nonce == permit_nonce:
            fn = gateway.post_job_for(
                order,
                signature,
                permit.deadline,
                permit.v,
                bytes.fromhex(permit.r[2:]),
                bytes.fromhex(permit.s[2:]),
            )
            try:
                gateway.simulate(fn)
            except ContractRevert as exc:
                raise _invalid("order", f"JobMarket would refuse it: {exc}") from None


def _payload(
    order: OrderTerms, signature: bytes, permit: Permit, permit_in: PermitIn
) -> dict[str, Any]:
    """What the relayer needs, as JSON (big integers as decimal strings)."""
    return {
        "order": {
            "spec_hash": "0x" + order.spec_hash.hex(),
            "spec_cid": order.spec_cid,
            "reward": str(order.reward),
            "solver_stake": str(order.solver_stake),
            "challenger_bond": str(order.challenger_bond),
            "claim_deadline": order.claim_deadline,
            "submit_window": order.submit_window,
            "challenge_window": order.challenge_window,
            "steps_per_checkpoint": order.steps_per_checkpoint,
            "checkpoint_count": order.checkpoint_count,
            "submitter": order.submitter,
            "nonce": str(order.nonce),
            "deadline": str(order.deadline),
        },
        "signature": "0x" + signature.hex(),
        "permit": {
            "nonce": str(permit.nonce),
            "deadline": str(permit.deadline),
            "v": permit_in.v,
            "r": permit_in.r,
            "s": permit_in.s,
        },
        "accepted_at": time.time(),
    }


def order_from_payload(payload: dict[str, Any]) -> OrderTerms:
    """The OrderTerms stored by `submit` (used by the relayer)."""
    o = payload["order"]
    return OrderTerms(
        spec_hash=bytes.fromhex(o["spec_hash"][2:]),
        spec_cid=o["spec_cid"],
        reward=int(o["reward"]),
        solver_stake=int(o["solver_stake"]),
        challenger_bond=int(o["challenger_bond"]),
        claim_deadline=int(o["claim_deadline"]),
        submit_window=int(o["submit_window"]),
        challenge_window=int(o["challenge_window"]),
        steps_per_checkpoint=int(o["steps_per_checkpoint"]),
        checkpoint_count=int(o["checkpoint_count"]),
        submitter=o["submitter"],
        nonce=int(o["nonce"]),
        deadline=int(o["deadline"]),
    )
