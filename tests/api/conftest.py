"""The API test stack: real anvil, real Redis, a real Celery worker, the embedded store.

One stack per session: its own anvil (the shared `devnet` fixture is left to the chain
tests, which revert snapshots under it), the full contract deployment (JobMarket,
WorkToken, ArbiterReferee, DisputeGame), a redis-server, an in-process Celery worker
(`start_worker`, solo pool) running frontend_api.tasks, and the FastAPI app behind
Starlette's TestClient.  The API's own Celery app has no task registered: it can only
send tasks by name, as in production.
"""

from __future__ import annotations

import copy
import json
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from chain.client import ChainClient
from chain.contracts import JobMarketClient, WorkTokenClient
from chain.deploy import Deployment, deploy
from chain.devnet import Devnet, start_devnet
from frontend_api.app import create_app
from frontend_api.celery_app import make_celery
from frontend_api.client import ApiClient, MarketTerms, prepare_spec, sign_submission
from frontend_api.settings import Settings
from frontend_api.tasks import build_worker_app
from market.indexer import Indexer, make_engine

ONE = 10**18
INITIAL_BALANCE = 1_000 * ONE
RELAYER = 1


def safetensors_file(tensors: dict[str, tuple[list[int], bytes]], meta: dict[str, str]) -> bytes:
    """Canonical safetensors bytes of U8 tensors name -> (shape, data), written by hand
    (the API's tests never import the training engine)."""
    header: dict[str, Any] = {"__metadata__": meta}
    offset = 0
    for name in sorted(tensors):
        shape, data = tensors[name]
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")
    raw += b" " * (-len(raw) % 8)
    body = b"".join(tensors[name][1] for name in sorted(tensors))
    return struct.pack("<Q", len(raw)) + raw + body


def digits_file(train_rows: int = 12, salt: int = 0, label_max: int = 9) -> bytes:
    """A small valid repops-digits-v1 file (pixels 0..16, labels 0..label_max)."""

    def rows(n: int, start: int) -> tuple[bytes, bytes]:
        x = bytes((start + i * 7 + j * 3 + salt) % 17 for i in range(n) for j in range(64))
        y = bytes((start + i) % (label_max + 1) for i in range(n))
        return x, y

    train_x, train_y = rows(train_rows, 0)
    test_x, test_y = rows(3, train_rows)
    return safetensors_file(
        {
            "train_x": ([train_rows, 64], train_x),
            "train_y": ([train_rows], train_y),
            "test_x": ([3, 64], test_x),
            "test_y": ([3], test_y),
        },
        {"format": "repops-digits-v1"},
    )


DATASET = digits_file()

BASE_SPEC: dict[str, Any] = {
    "repops_version": "repops-2",
    "program": {
        "model": {"name": "mlp", "config": {"in_features": 64, "hidden": [16], "classes": 10}},
        "loss": "cross_entropy",
        "optimizer": {"name": "adamw", "lr": 0.01},
        "lr_schedule": {"name": "constant"},
    },
    "data": {"dataset": "digits", "format": "repops-digits-v1", "batch_size": 8, "seed": 1},
    "steps": 20,
    "checkpoint_interval": 5,
    "seed": 0,
}
TERMS = MarketTerms(reward=10 * ONE, solver_stake=5 * ONE, challenger_bond=2 * ONE)


def base_spec() -> dict[str, Any]:
    return copy.deepcopy(BASE_SPEC)


@dataclass
class ApiStack:
    devnet: Devnet
    deployment: Deployment
    settings: Settings
    http: TestClient
    api: ApiClient
    token: WorkTokenClient
    market: JobMarketClient
    engine_url: str

    def account(self, index: int) -> LocalAccount:
        return self.devnet.accounts[index]

    def signed(
        self,
        account: LocalAccount,
        spec: dict[str, Any] | None = None,
        dataset: bytes | None = DATASET,
        terms: MarketTerms = TERMS,
        order_nonce: int | None = None,
        permit_nonce: int | None = None,
    ) -> dict[str, Any]:
        """A JobSubmission signed by `account` with the API's current nonces."""
        sealed = prepare_spec(spec or base_spec(), dataset)
        nonces = self.api.nonces(account.address)
        return sign_submission(
            account,
            sealed,
            terms,
            self.api.chain(),
            nonces["order_nonce"] if order_nonce is None else order_nonce,
            nonces["permit_nonce"] if permit_nonce is None else permit_nonce,
        )

    def indexer(self) -> Indexer:
        return Indexer(self.devnet.web3(), self.deployment, make_engine(self.engine_url))

    def wait_state(self, submission_id: str, timeout_s: float = 60.0) -> dict[str, Any]:
        return self.api.wait_posted(submission_id, timeout_s=timeout_s, poll_s=0.1)

    def job_count(self) -> int:
        return self.market.job_count()


@pytest.fixture(scope="session")
def api_devnet() -> Iterator[Devnet]:
    node = start_devnet(accounts=10)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def api_stack(
    api_devnet: Devnet,
    redis_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ApiStack]:
    root = tmp_path_factory.mktemp("api")
    deployer = api_devnet.accounts[0]
    client = ChainClient(api_devnet.web3(), deployer)
    deployment = deploy(client)
    deployment.write(root / "deployment.json")
    token = deployment.token(client)
    for account in api_devnet.accounts[2:]:
        token.mint(account.address, INITIAL_BALANCE)
    key_file = root / "relayer.key"
    key_file.write_text("0x" + bytes(api_devnet.accounts[RELAYER].key).hex())
    os.chmod(key_file, 0o600)
    engine_url = f"sqlite:///{root / 'assay.db'}"
    settings = Settings(
        rpc_url=api_devnet.rpc_url,
        deployment=root / "deployment.json",
        store=f"embedded:{root / 'ipfs'}",
        redis_url=redis_server.url,
        database_url=engine_url,
        relayer_key_file=key_file,
        max_upload_bytes=256 * 1024,
        receipt_timeout_s=20.0,
        relay_retry_s=0.2,
        chain_cache_s=0.0,
    )
    worker_app = build_worker_app(settings)
    with (
        start_worker(
            worker_app,
            pool="solo",
            perform_ping_check=False,
            loglevel="WARNING",
            shutdown_timeout=20,
        ),
        TestClient(create_app(settings, celery=make_celery(settings))) as http,
    ):
        stack = ApiStack(
            devnet=api_devnet,
            deployment=deployment,
            settings=settings,
            http=http,
            api=ApiClient("http://testserver", client=http),
            token=token,
            market=deployment.market(client),
            engine_url=engine_url,
        )
        yield stack


def wait_for(predicate: Any, timeout_s: float = 30.0, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(poll_s)


@pytest.fixture
def stack(api_stack: ApiStack) -> ApiStack:
    return api_stack


def spec_path(tmp_path: Path, spec: dict[str, Any]) -> Path:
    import json

    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    return path


@dataclass
class ServedApi:
    url: str
    server: Any


@pytest.fixture(scope="session")
def api_server(api_stack: ApiStack) -> Iterator[ServedApi]:
    """The same API served by a real uvicorn on a loopback port (its own app instance)."""
    import threading

    import uvicorn

    from chain.devnet import free_port

    port = free_port()
    app = create_app(api_stack.settings, celery=make_celery(api_stack.settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout_s=20)
    try:
        yield ServedApi(f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
