"""How the API behaves around its dependencies: /health is fast with either store, a
chain that hangs gets a fast 503, artifacts download by CID, progress reports must be
signed by the job's solver.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from fastapi.testclient import TestClient

from frontend_api.app import create_app
from frontend_api.celery_app import make_celery
from frontend_api.orders import sign_progress
from market.ipfsd import IpfsDaemon
from market.store import compute_cid
from tests.fixtures.api import DATASET, ApiStack

HEALTH_BUDGET_S = 0.050


def _median_health_s(http: TestClient, n: int = 15) -> float:
    http.get("/health")  # first call connects the chain gateway
    times = []
    for _ in range(n):
        start = time.perf_counter()
        response = http.get("/health")
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.text
    return statistics.median(times)


def test_health_with_embedded_store_answers_within_50ms(stack: ApiStack) -> None:
    assert _median_health_s(stack.http) < HEALTH_BUDGET_S


def test_health_with_ipfs_daemon_store_answers_within_50ms(
    stack: ApiStack, ipfs_daemon: IpfsDaemon
) -> None:
    settings = stack.settings.model_copy(update={"store": ipfs_daemon.api_url})
    with TestClient(create_app(settings, celery=make_celery(settings))) as http:
        assert http.get("/health").json()["components"]["store"]["detail"].startswith("http")
        assert _median_health_s(http) < HEALTH_BUDGET_S


@pytest.fixture
def hung_node() -> Iterator[str]:
    """A TCP port that accepts connections and never answers (a paused chain node)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


def test_chain_that_hangs_gets_a_fast_503(stack: ApiStack, hung_node: str) -> None:
    settings = stack.settings.model_copy(update={"rpc_url": hung_node, "rpc_timeout_s": 0.5})
    with TestClient(create_app(settings, celery=make_celery(settings))) as http:
        for path in ("/chain", f"/submitters/{stack.account(2).address}/nonces", "/health"):
            start = time.perf_counter()
            response = http.get(path)
            elapsed = time.perf_counter() - start
            assert response.status_code == 503, (path, response.text)
            assert elapsed < 2.0, (path, elapsed)
        start = time.perf_counter()
        files = {
            "submission": (None, json.dumps(stack.signed(stack.account(2))), "application/json"),
            "dataset": ("d", DATASET, "application/octet-stream"),
        }
        response = http.post("/jobs", files=files)
        assert response.status_code == 503, response.text
        assert time.perf_counter() - start < 2.0
        health = http.get("/health").json()
        assert not health["components"]["chain"]["ok"]
        assert health["components"]["database"]["ok"]


def test_artifact_downloads_by_cid_with_its_bytes(stack: ApiStack) -> None:
    from market.store import open_store

    data = b"checkpoint bytes " * 1000
    with open_store(stack.settings.store) as store:
        cid = store.add_bytes(data)
    assert compute_cid(data).cid == cid
    response = stack.http.get(f"/artifacts/{cid}")
    assert response.status_code == 200
    assert response.content == data
    missing = compute_cid(b"never stored").cid
    assert stack.http.get(f"/artifacts/{missing}").status_code == 404
    assert stack.http.get("/artifacts/not-a-cid").status_code == 422


def _progress(stack: ApiStack, job_id: int, signer: Any, solver: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "solver": solver,
        "step": 3,
        "total_steps": 10,
        "loss": 1.5,
        "rate": 10.0,
        "unit": "samples/s",
        "eta_s": 7.0,
        "timestamp": int(time.time()),
    }
    chain = stack.api.chain()
    body["signature"] = sign_progress(signer, chain["chain_id"], chain["market"], job_id, body)
    return body


def test_progress_is_kept_only_when_signed_by_the_jobs_solver(stack: ApiStack) -> None:
    from chain.contracts import JobTerms
    from chain.types import Cid, Hash32, Wei
    from tests.api.test_disputes_view import _account

    submitter, solver = _account("progress-submitter", stack), _account("progress-solver", stack)
    for who in (submitter, solver):
        stack.token.as_account(who).approve(stack.market.address, 1_000 * 10**18)
    terms = JobTerms(
        spec_hash=Hash32(b"\x01" * 32),
        spec_cid=Cid("bafkreisyntheticspec"),
        reward=Wei(10**18),
        solver_stake=Wei(10**18),
        challenger_bond=Wei(10**18),
        claim_deadline=stack.devnet.timestamp() + 3_600,
        submit_window=3_600,
        challenge_window=3_600,
        steps_per_checkpoint=5,
        checkpoint_count=3,
    )
    job_id, _ = stack.market.as_account(submitter).post_job(terms)
    stack.market.as_account(solver).claim(job_id)
    stack.indexer().sync_once()
    stranger = Account.create()

    answer = stack.http.post(
        f"/jobs/{job_id}/progress", json=_progress(stack, job_id, stranger, stranger.address)
    )
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "solver"
    forged = _progress(stack, job_id, stranger, solver.address)
    answer = stack.http.post(f"/jobs/{job_id}/progress", json=forged)
    assert answer.status_code == 422 and answer.json()["errors"][0]["field"] == "signature"
    other_job = _progress(stack, job_id + 1, solver, solver.address)  # signed for another job
    assert stack.http.post(f"/jobs/{job_id}/progress", json=other_job).status_code == 422
    good = _progress(stack, job_id, solver, solver.address)
    answer = stack.http.post(f"/jobs/{job_id}/progress", json=good)
    assert answer.status_code == 200, answer.text
    assert answer.json()["curve"] == [{"step": 3, "loss": 1.5}]
    job = stack.http.get(f"/jobs/{job_id}").json()
    assert job["progress"]["unit"] == "samples/s" and job["progress"]["step"] == 3
    assert stack.http.post("/jobs/999999/progress", json=good).status_code == 404


def test_broker_outage_keeps_the_order_and_the_sweeper_posts_it(stack: ApiStack) -> None:
    from chain.devnet import free_port
    from frontend_api.sweeper import sweep_once
    from tests.api.test_disputes_view import _account

    account = _account("broker-outage", stack)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = stack.settings.model_copy(update={"redis_url": dead, "sweep_interval_s": 0})
    body = stack.signed(account)
    with TestClient(create_app(settings, celery=make_celery(settings))) as http:
        start = time.perf_counter()
        response = http.post(
            "/jobs",
            files={
                "submission": (None, json.dumps(body), "application/json"),
                "dataset": ("d", DATASET, "application/octet-stream"),
            },
        )
        elapsed = time.perf_counter() - start
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "accepted"
    assert response.json()["error"].startswith("queued:")
    assert elapsed < 10.0
    submission_id = response.json()["id"]
    state = stack.http.app.state.assay  # type: ignore[attr-defined]
    driven = sweep_once(state.sessions, state.celery, state.settings, now=time.time() + 3_600)
    assert submission_id in driven
    posted = stack.wait_state(submission_id)
    assert posted["state"] == "posted" and posted["error"] is None
    assert stack.market.get_job(posted["job_id"]).submitter == account.address
