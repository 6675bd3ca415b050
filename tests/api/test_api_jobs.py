"""POST /jobs end to end: signed order -> pin -> relay -> receipt -> indexed job; and the
ways a submission must be refused without touching the chain."""

from __future__ import annotations

import copy
import dataclasses
import json
import uuid
from typing import Any

from tests.fixtures.api import DATASET, TERMS, ApiStack, base_spec


def _post(
    stack: ApiStack, body: dict[str, Any], dataset: bytes | None = DATASET, key: str | None = None
) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    if dataset is None:
        return stack.http.post("/jobs", json=body, headers=headers)
    files = {
        "submission": (None, json.dumps(body), "application/json"),
        "dataset": ("data.bin", dataset, "application/octet-stream"),
    }
    return stack.http.post("/jobs", files=files, headers=headers)


def test_post_jobs_with_upload_posts_job_on_chain_and_indexes_it(stack: ApiStack) -> None:
    submitter = stack.account(2)
    before = stack.job_count()
    body = stack.signed(submitter)
    response = _post(stack, body, key=uuid.uuid4().hex)
    assert response.status_code == 202, response.text
    sub = response.json()
    assert response.headers["location"] == f"/submissions/{sub['id']}"
    done = stack.wait_state(sub["id"])
    assert done["state"] == "posted", done
    assert stack.job_count() == before + 1
    record = stack.market.get_job(done["job_id"])
    assert record.submitter == submitter.address
    assert record.spec_cid == sub["spec_cid"]
    stack.indexer().sync_once()
    job = stack.http.get(f"/jobs/{done['job_id']}").json()
    assert job["status"] == "Open"
    assert job["submitter"] == submitter.address
    assert job["terms"]["steps_per_checkpoint"] == 5
    assert job["terms"]["checkpoint_count"] == 5
    assert [e["name"] for e in job["events"]] == ["JobPosted"]


def test_post_jobs_same_idempotency_key_same_body_returns_first_answer(stack: ApiStack) -> None:
    body = stack.signed(stack.account(3))
    key = uuid.uuid4().hex
    first = _post(stack, body, key=key)
    assert first.status_code == 202, first.text
    again = _post(stack, body, key=key)
    assert again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert stack.wait_state(first.json()["id"])["state"] == "posted"


def test_post_jobs_idempotency_key_reused_with_other_body_is_422(stack: ApiStack) -> None:
    account = stack.account(4)
    key = uuid.uuid4().hex
    first = _post(stack, stack.signed(account), key=key)
    assert first.status_code == 202, first.text
    stack.wait_state(first.json()["id"])
    count = stack.job_count()
    other = _post(stack, stack.signed(account), dataset=DATASET + b"x", key=key)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "Idempotency-Key"
    assert stack.job_count() == count


def test_post_jobs_replayed_order_is_409_and_posts_nothing(stack: ApiStack) -> None:
    body = stack.signed(stack.account(5))
    first = _post(stack, body)
    assert first.status_code == 202, first.text
    assert stack.wait_state(first.json()["id"])["state"] == "posted"
    count = stack.job_count()
    replay = _post(stack, body)
    assert replay.status_code == 409, replay.text
    assert stack.job_count() == count


def test_post_jobs_used_nonce_with_fresh_signature_is_409(stack: ApiStack) -> None:
    account = stack.account(6)
    first = _post(stack, stack.signed(account))
    assert stack.wait_state(first.json()["id"])["state"] == "posted"
    count = stack.job_count()
    other_terms = dataclasses.replace(TERMS, reward=TERMS.reward + 1)
    stale = stack.signed(account, order_nonce=0, permit_nonce=0, terms=other_terms)
    stale_response = _post(stack, stale)
    assert stale_response.status_code == 409, stale_response.text
    assert any(p["field"] == "order.nonce" for p in stale_response.json()["errors"])
    assert stack.job_count() == count


def test_post_jobs_order_signed_by_other_key_is_422(stack: ApiStack) -> None:
    victim, attacker = stack.account(7), stack.account(8)
    body = stack.signed(attacker)
    forged = copy.deepcopy(body)
    forged["order"]["submitter"] = victim.address
    count = stack.job_count()
    response = _post(stack, forged)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "order.signature"
    assert stack.job_count() == count


def test_post_jobs_malleable_high_s_signature_is_422(stack: ApiStack) -> None:
    body = stack.signed(stack.account(7))
    sig = bytes.fromhex(body["order"]["signature"][2:])
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    high_s = (n - int.from_bytes(sig[32:64], "big")).to_bytes(32, "big")
    flipped = sig[:32] + high_s + bytes([55 - sig[64]])
    body["order"]["signature"] = "0x" + flipped.hex()
    response = _post(stack, body)
    assert response.status_code == 422
    assert "lower half" in response.json()["errors"][0]["reason"]


def test_post_jobs_wrong_permit_signature_is_422(stack: ApiStack) -> None:
    body = stack.signed(stack.account(7))
    body["permit"]["r"] = "0x" + "11" * 32
    count = stack.job_count()
    response = _post(stack, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "permit"
    assert stack.job_count() == count


def test_post_jobs_tampered_reward_breaks_signature_is_422(stack: ApiStack) -> None:
    body = stack.signed(stack.account(7))
    body["order"]["reward"] = str(int(body["order"]["reward"]) * 2)
    response = _post(stack, body)
    assert response.status_code == 422


def test_post_jobs_malformed_spec_names_the_field(stack: ApiStack) -> None:
    spec = base_spec()
    spec["checkpoint_interval"] = 3
    body = stack.signed(stack.account(7))
    body["spec"] = spec
    del body["order"]["spec_hash"]
    response = _post(stack, body)
    assert response.status_code == 422
    fields = [p["field"] for p in response.json()["errors"]]
    assert fields == ["spec.checkpoint_interval"]
    assert "not divisible" in response.json()["errors"][0]["reason"]


def test_post_jobs_spec_not_matching_signed_hash_is_422(stack: ApiStack) -> None:
    body = stack.signed(stack.account(7))
    body["spec"]["seed"] = 99
    response = _post(stack, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "order.spec_hash"


def test_post_jobs_oversized_upload_is_413(stack: ApiStack) -> None:
    big = b"\0" * (stack.settings.max_upload_bytes + 1)
    body = stack.signed(stack.account(7), dataset=big)
    count = stack.job_count()
    response = _post(stack, body, dataset=big)
    assert response.status_code == 413
    assert stack.job_count() == count


def test_post_jobs_body_over_limit_is_413_before_parsing(stack: ApiStack) -> None:
    limit = stack.settings.max_upload_bytes + stack.settings.max_spec_bytes + 1024 * 1024
    response = stack.http.post(
        "/jobs", content=b"{" + b" " * limit, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_post_jobs_without_dataset_or_cid_is_422(stack: ApiStack) -> None:
    body = stack.signed(stack.account(7), dataset=None)
    response = _post(stack, body, dataset=None)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "spec.data.cid"


def test_post_jobs_by_cid_of_stored_dataset_is_accepted(stack: ApiStack) -> None:
    first = _post(stack, stack.signed(stack.account(8)))
    assert stack.wait_state(first.json()["id"])["state"] == "posted"
    spec = base_spec()
    spec["data"]["cid"] = first.json()["dataset_cid"]
    body = stack.signed(stack.account(8), spec=spec, dataset=None)
    response = _post(stack, body, dataset=None)
    assert response.status_code == 202, response.text
    assert stack.wait_state(response.json()["id"])["state"] == "posted"


def test_post_jobs_unknown_dataset_cid_is_422(stack: ApiStack) -> None:
    spec = base_spec()
    spec["data"]["cid"] = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
    body = stack.signed(stack.account(7), spec=spec, dataset=None)
    response = _post(stack, body, dataset=None)
    assert response.status_code == 422
    assert "not in the artifact store" in response.json()["errors"][0]["reason"]


def test_post_jobs_insufficient_balance_is_422(stack: ApiStack) -> None:
    poor = stack.account(1)  # the relayer holds no tokens
    body = stack.signed(poor)
    response = _post(stack, body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "order.reward"


def test_post_jobs_text_body_is_415(stack: ApiStack) -> None:
    response = stack.http.post("/jobs", content=b"hi", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_post_jobs_pins_spec_and_dataset(stack: ApiStack) -> None:
    from market.store import open_store

    response = _post(stack, stack.signed(stack.account(2)))
    sub = stack.wait_state(response.json()["id"])
    assert sub["state"] == "posted"
    pins = open_store(stack.settings.store).pins()
    assert sub["spec_cid"] in pins and sub["dataset_cid"] in pins


def test_get_unknown_job_submission_and_dispute_are_404(stack: ApiStack) -> None:
    assert stack.http.get("/jobs/999999").status_code == 404
    assert stack.http.get("/disputes/999999").status_code == 404
    assert stack.http.get("/submissions/" + "0" * 32).status_code == 404


def test_health_with_all_components_up_is_ok(stack: ApiStack) -> None:
    response = stack.http.get("/health")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
    assert set(response.json()["components"]) == {"database", "chain", "broker", "store"}


def test_list_jobs_filters_by_submitter(stack: ApiStack) -> None:
    account = stack.account(9)
    response = _post(stack, stack.signed(account))
    job_id = stack.wait_state(response.json()["id"])["job_id"]
    stack.indexer().sync_once()
    page = stack.http.get("/jobs", params={"submitter": account.address.lower()}).json()
    assert [j["job_id"] for j in page["items"]] == [job_id]
    assert stack.http.get("/jobs", params={"status": "Open", "limit": 1}).json()["next_cursor"]


def test_solver_record_counts_claims_and_finalizations(stack: ApiStack) -> None:
    submitter, solver = stack.account(2), stack.account(3)
    response = _post(stack, stack.signed(submitter))
    job_id = stack.wait_state(response.json()["id"])["job_id"]
    solver_token = stack.token.as_account(solver)
    solver_token.approve(stack.market.address, TERMS.solver_stake)
    stack.market.as_account(solver).claim(job_id)
    stack.indexer().sync_once()
    record = stack.http.get(f"/solvers/{solver.address}").json()
    assert job_id in record["jobs"]
    assert record["active"] >= 1
    detail = stack.http.get(f"/jobs/{job_id}").json()
    assert detail["status"] == "Claimed" and detail["solver"] == solver.address


def test_job_detail_shows_manifest_checkpoints_and_loss_curve(stack: ApiStack) -> None:
    from chain.types import Cid, Hash32
    from market.manifest import build_manifest
    from market.store import open_store

    submitter, solver = stack.account(4), stack.account(5)
    response = _post(stack, stack.signed(submitter))
    sub = stack.wait_state(response.json()["id"])
    job_id = sub["job_id"]
    store = open_store(stack.settings.store)
    checkpoint_cids = [store.add_bytes(f"checkpoint {i}".encode()) for i in range(5)]
    entries = [(cid, bytes([i]) * 32) for i, cid in enumerate(checkpoint_cids)]
    manifest = build_manifest(
        Cid(sub["spec_cid"]),
        20,
        5,
        [Cid(c) for c, _ in entries],
        [h for _, h in entries],
        [bytes([0xF0 + i]) * 32 for i in range(len(entries))],
        [2.0 - 0.05 * t for t in range(20)],
    )
    manifest_cid = store.add_bytes(manifest.to_bytes())
    stack.token.as_account(solver).approve(stack.market.address, TERMS.solver_stake)
    market = stack.market.as_account(solver)
    market.claim(job_id)
    market.submit_result(
        job_id,
        Hash32(b"\xa1" * 32),
        5,
        manifest_cid,
        Hash32(b"\xf5" * 32),
        Hash32(b"\xf6" * 32),
    )
    stack.indexer().sync_once()
    job = stack.http.get(f"/jobs/{job_id}").json()
    assert job["status"] == "Submitted"
    assert job["result"]["manifest_cid"] == manifest_cid
    assert [c["index"] for c in job["checkpoints"]] == [0, 1, 2, 3, 4]
    assert job["checkpoints"][1]["state_hash"] == "0x" + "01" * 32
    assert len(job["loss_curve"]) == 20 and job["loss_curve"][0] == {"step": 0, "loss": 2.0}
