"""The client's side of the API: prepare a spec, sign the order and permit, call the API.

Used by the `assay` CLI, the tests, the benchmark and the solver (for its signed progress
reports).  Signing happens here, in the
submitter's process, with the submitter's own key: the API receives signatures only.
The dataset's CID is computed locally (the same CID the artifact store will give it), so
the spec that is signed is the spec that is pinned.  This module must never send a key
or a key file anywhere.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from chain.types import Address
from frontend_api.errors import ApiError, Problem
from frontend_api.orders import (
    OrderTerms,
    Permit,
    job_order_typed_data,
    permit_typed_data,
    sign_progress,
    sign_typed,
)
from market.jobspec import SealedSpec, seal, with_data_cid
from market.store import compute_cid

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class MarketTerms:
    """The money and time a submitter offers (amounts in the token's smallest unit)."""

    reward: int
    solver_stake: int
    challenger_bond: int
    claim_ttl_s: int = 24 * 3600
    submit_window_s: int = 24 * 3600
    challenge_window_s: int = 3600
    order_ttl_s: int = 3600


def prepare_spec(spec: Mapping[str, Any], dataset: bytes | None) -> SealedSpec:
    """Validate `spec`, with data.cid set to the dataset's CID when a file is given."""
    raw = dict(spec)
    if dataset is not None:
        raw = with_data_cid(raw, compute_cid(dataset).cid)
    return seal(raw)


def sign_submission(
    account: LocalAccount,
    sealed: SealedSpec,
    terms: MarketTerms,
    chain: Mapping[str, Any],
    order_nonce: int,
    permit_nonce: int,
    now: int | None = None,
) -> dict[str, Any]:
    """A JobSubmission body (JSON-ready) signed by `account` for the chain `chain` (/chain)."""
    t = int(chain.get("chain_time", time.time())) if now is None else now
    order = OrderTerms(
        spec_hash=sealed.hash,
        spec_cid=sealed.cid,
        reward=terms.reward,
        solver_stake=terms.solver_stake,
        challenger_bond=terms.challenger_bond,
        claim_deadline=t + terms.claim_ttl_s,
        submit_window=terms.submit_window_s,
        challenge_window=terms.challenge_window_s,
        steps_per_checkpoint=sealed.steps_per_checkpoint,
        checkpoint_count=sealed.checkpoint_count,
        submitter=Address(account.address),
        nonce=order_nonce,
        deadline=t + terms.order_ttl_s,
    )
    chain_id = int(chain["chain_id"])
    signature = sign_typed(account, job_order_typed_data(chain_id, chain["market"], order))
    permit = Permit(
        owner=Address(account.address),
        spender=chain["market"],
        value=terms.reward,
        nonce=permit_nonce,
        deadline=order.deadline,
    )
    permit_sig = sign_typed(
        account, permit_typed_data(chain_id, chain["token"], chain["token_name"], permit)
    )
    return {
        "spec": sealed.raw,
        "order": {
            "reward": str(order.reward),
            "solver_stake": str(order.solver_stake),
            "challenger_bond": str(order.challenger_bond),
            "claim_deadline": order.claim_deadline,
            "submit_window": order.submit_window,
            "challenge_window": order.challenge_window,
            "submitter": order.submitter,
            "nonce": str(order.nonce),
            "deadline": str(order.deadline),
            "signature": "0x" + signature.hex(),
            "spec_hash": "0x" + sealed.hash.hex(),
            "spec_cid": sealed.cid,
            "steps_per_checkpoint": order.steps_per_checkpoint,
            "checkpoint_count": order.checkpoint_count,
        },
        "permit": {
            "nonce": str(permit.nonce),
            "deadline": str(permit.deadline),
            "v": permit_sig[64],
            "r": "0x" + permit_sig[:32].hex(),
            "s": "0x" + permit_sig[32:64].hex(),
        },
    }


def progress_report(
    account: LocalAccount,
    chain: Mapping[str, Any],
    job_id: int,
    *,
    step: int,
    total_steps: int,
    loss: float | None,
    rate: float | None,
    unit: str,
    eta_s: float | None,
    now: int | None = None,
) -> dict[str, Any]:
    """A ProgressIn body (JSON-ready) signed by the solver `account` for `job_id`."""
    body: dict[str, Any] = {
        "solver": account.address,
        "step": step,
        "total_steps": total_steps,
        "loss": loss,
        "rate": rate,
        "unit": unit,
        "eta_s": eta_s,
        "timestamp": int(time.time()) if now is None else now,
    }
    body["signature"] = sign_progress(
        account, int(chain["chain_id"]), str(chain["market"]), job_id, body
    )
    return body


class ApiClient:
    """A thin httpx client for the Assay API; errors raise `ApiError` with the server's text."""

    def __init__(self, base_url: str, *, client: httpx.Client | None = None) -> None:
        self.http = client or httpx.Client(base_url=base_url, timeout=DEFAULT_TIMEOUT_S)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            try:
                body = response.json()
                detail = str(body.get("detail", response.text))
                problems = [Problem(p["field"], p["reason"]) for p in body.get("errors", [])]
            except (ValueError, KeyError, TypeError, AttributeError):
                detail, problems = response.text, []
            error = ApiError(f"HTTP {response.status_code}: {detail}", problems)
            error.status = response.status_code
            raise error
        return response.json()

    def chain(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get("/chain"))
        return result

    def nonces(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/submitters/{address}/nonces"))
        return result

    def submit(
        self,
        body: Mapping[str, Any],
        dataset: bytes | Path | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if dataset is None:
            response = self.http.post("/jobs", json=dict(body), headers=headers)
        else:
            content = dataset.read_bytes() if isinstance(dataset, Path) else dataset
            files: dict[str, tuple[str | None, bytes | str, str]] = {
                "submission": (None, json.dumps(body), "application/json"),
                "dataset": ("dataset", content, "application/octet-stream"),
            }
            response = self.http.post("/jobs", files=files, headers=headers)
        result: dict[str, Any] = self._json(response)
        return result

    def upload_artifact(self, data: bytes) -> dict[str, Any]:
        """POST /artifacts: store a model artifact (unpinned until a job names it);
        returns {"cid", "sha256", "size"}."""
        response = self.http.post(
            "/artifacts", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        result: dict[str, Any] = self._json(response)
        return result

    def submission(self, submission_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/submissions/{submission_id}"))
        return result

    def job(self, job_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/jobs/{job_id}"))
        return result

    def dispute(self, game_id: int) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/disputes/{game_id}"))
        return result

    def solver(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self.http.get(f"/solvers/{address}"))
        return result

    def report_progress(self, job_id: int, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            self.http.post(f"/jobs/{job_id}/progress", json=dict(body))
        )
        return result

    def download(self, cid: str, dest: Path) -> int:
        """Stream artifact `cid` into `dest` (written atomically); the bytes written."""
        tmp = dest.with_name(dest.name + ".part")
        size = 0
        with self.http.stream("GET", f"/artifacts/{cid}") as response:
            if response.status_code >= 400:
                response.read()
                self._json(response)
            with tmp.open("wb") as out:
                for piece in response.iter_bytes():
                    out.write(piece)
                    size += len(piece)
        tmp.replace(dest)
        return size

    def wait_posted(
        self, submission_id: str, timeout_s: float = 120.0, poll_s: float = 0.25
    ) -> dict[str, Any]:
        """Poll a submission until it is posted or failed (raises `ApiError` on timeout)."""
        deadline = time.monotonic() + timeout_s
        while True:
            sub = self.submission(submission_id)
            if sub["state"] in ("posted", "failed"):
                return sub
            if time.monotonic() > deadline:
                raise ApiError(
                    f"submission {submission_id} still {sub['state']} after {timeout_s}s"
                )
            time.sleep(poll_s)
