"""POST /jobs throughput and latency: real uvicorn, Redis, Celery worker, anvil, embedded store.

    python -m bench.api [--submitters 8] [--per-submitter 8]

Every request is a small MLP spec with a 4 KiB digits dataset upload (multipart), signed in
advance by its submitter (signing is the client's cost, not the API's).  Submitters post
concurrently, each its own orders in nonce order.  Prints the POST latency (p50/p99: until
the 202, which includes off-chain signature checks, chain reads, the eth_call simulation,
the store write and the enqueue) and the throughput; then waits for the worker to post
every job on-chain and prints that end-to-end rate too.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import struct
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from celery.contrib.testing.worker import start_worker

from chain.client import ChainClient
from chain.deploy import deploy
from chain.devnet import free_port, running_devnet
from frontend_api.app import create_app
from frontend_api.celery_app import make_celery
from frontend_api.redis_server import RedisServer
from frontend_api.settings import Settings
from frontend_api.tasks import build_worker_app
from jobspec.factory import small_mlp_spec
from submitter.client import MarketTerms, prepare_spec, sign_submission

ONE = 10**18
SPEC: dict[str, Any] = small_mlp_spec()
TERMS = MarketTerms(reward=ONE, solver_stake=ONE, challenger_bond=ONE)


def _digits_dataset(salt: int, rows: int = 60) -> bytes:
    """A distinct ~4 KiB repops-digits-v1 file (canonical safetensors, written by hand)."""
    x = bytes((salt + i * 7 + j * 3) % 17 for i in range(rows + 4) for j in range(64))
    y = bytes((salt + i) % 10 for i in range(rows + 4))
    parts = {
        "test_x": ([4, 64], x[rows * 64 :]),
        "test_y": ([4], y[rows:]),
        "train_x": ([rows, 64], x[: rows * 64]),
        "train_y": ([rows], y[:rows]),
    }
    header: dict[str, Any] = {"__metadata__": {"format": "repops-digits-v1"}}
    offset = 0
    for name, (shape, data) in parts.items():  # sorted names: the canonical layout
        header[name] = {"dtype": "U8", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    raw = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("ascii")
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + b"".join(d for _, d in parts.values())


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(submitters: int, per_submitter: int, workdir: Path) -> None:
    with running_devnet(accounts=submitters + 2) as devnet, RedisServer(workdir / "redis") as rs:
        client = ChainClient(devnet.web3(), devnet.accounts[0])
        deployment = deploy(client)
        deployment.write(workdir / "deployment.json")
        token = deployment.token(client)
        accounts = devnet.accounts[2 : 2 + submitters]
        for account in accounts:
            token.mint(account.address, 1_000 * ONE)
        key = workdir / "relayer.key"
        key.write_text("0x" + bytes(devnet.accounts[1].key).hex())
        settings = Settings(
            rpc_url=devnet.rpc_url,
            deployment=workdir / "deployment.json",
            store=f"embedded:{workdir / 'ipfs'}",
            redis_url=rs.url,
            database_url=f"sqlite:///{workdir / 'assay.db'}",
            relayer_key_file=key,
            relay_retry_s=0.1,
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, celery=make_celery(settings)),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        http = httpx.Client(base_url=base, timeout=60)
        chain = http.get("/chain").json()

        # Pre-sign every order: nonce n of each submitter, permit nonce n.
        bodies: list[list[tuple[dict[str, Any], bytes]]] = []
        for s, account in enumerate(accounts):
            mine = []
            for n in range(per_submitter):
                dataset = _digits_dataset(s * per_submitter + n)
                sealed = prepare_spec({**SPEC, "seed": n}, dataset)
                body = sign_submission(account, sealed, TERMS, chain, n, n)
                mine.append((body, dataset))
            bodies.append(mine)

        latencies: list[float] = []
        ids: list[str] = []
        lock = threading.Lock()

        def submit_all(mine: list[tuple[dict[str, Any], bytes]]) -> None:
            with httpx.Client(base_url=base, timeout=60) as c:
                for body, dataset in mine:
                    files: dict[str, tuple[str | None, bytes | str, str]] = {
                        "submission": (None, json.dumps(body), "application/json"),
                        "dataset": ("d", dataset, "application/octet-stream"),
                    }
                    t0 = time.perf_counter()
                    r = c.post("/jobs", files=files)
                    dt = time.perf_counter() - t0
                    if r.status_code != 202:
                        raise RuntimeError(f"POST /jobs -> {r.status_code}: {r.text}")
                    with lock:
                        latencies.append(dt)
                        ids.append(r.json()["id"])

        worker = build_worker_app(settings)
        with start_worker(worker, pool="solo", perform_ping_check=False, loglevel="WARNING"):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=submitters) as pool:
                list(pool.map(submit_all, bodies))
            accept_s = time.perf_counter() - t0
            pending = set(ids)
            while pending:
                for sid in list(pending):
                    state = http.get(f"/submissions/{sid}").json()["state"]
                    if state == "failed":
                        raise RuntimeError(f"submission {sid} failed")
                    if state == "posted":
                        pending.discard(sid)
                time.sleep(0.05)
            posted_s = time.perf_counter() - t0
        # Stop the API (its lifespan closes its Celery connections) before Redis goes away.
        http.close()
        server.should_exit = True
        thread.join(timeout=10)
        n = len(latencies)
        print(f"POST /jobs: {n} requests, {submitters} concurrent submitters, embedded store")
        print(f"  throughput  {n / accept_s:8.1f} req/s  ({accept_s:.2f} s)")
        print(f"  latency p50 {1000 * statistics.median(latencies):8.1f} ms")
        print(f"  latency p99 {1000 * _percentile(latencies, 0.99):8.1f} ms")
        print(f"  on-chain    {n / posted_s:8.1f} jobs/s posted end to end ({posted_s:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.api")
    parser.add_argument("--submitters", type=int, default=8)
    parser.add_argument("--per-submitter", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="assay-bench-") as tmp:
        run(args.submitters, args.per_submitter, Path(tmp))


if __name__ == "__main__":
    main()
