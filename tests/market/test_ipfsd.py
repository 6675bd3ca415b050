"""The js-ipfs launcher: locked-down config, clean start/stop, one-line failures; the factory."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from market.ipfsd import IpfsDaemon, IpfsDaemonError, find_node_modules
from market.store import EmbeddedStore, KuboStore, StoreError, open_store


def test_ipfsd_running_daemon_config_is_loopback_and_offline(ipfs_daemon: IpfsDaemon) -> None:
    config = json.loads((ipfs_daemon.repo / "config").read_text())
    addresses = config["Addresses"]
    assert addresses["Swarm"] == []
    assert addresses["Delegates"] == []
    assert config["Bootstrap"] == []
    for key in ("API", "Gateway", "RPC"):
        assert addresses[key].startswith("/ip4/127.0.0.1/tcp/")
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert config["Discovery"]["webRTCStar"]["Enabled"] is False
    assert ipfs_daemon.api_url == f"http://127.0.0.1:{ipfs_daemon.api_port}"


def test_ipfsd_running_daemon_has_no_listen_addresses(ipfs_daemon: IpfsDaemon) -> None:
    answer = httpx.post(f"{ipfs_daemon.api_url}/api/v0/id").json()
    assert answer["Addresses"] == []
    assert ipfs_daemon.log_path.exists()


def test_ipfsd_stop_ends_process_and_frees_port(tmp_path: Path) -> None:
    daemon = IpfsDaemon(tmp_path / "repo")
    with daemon:
        assert daemon.running
        url = daemon.api_url
    assert not daemon.running
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{url}/api/v0/id", timeout=2)
    daemon.stop()  # idempotent


def test_ipfsd_restart_after_sigkill_keeps_port_and_content_without_lock_wait(
    tmp_path: Path,
) -> None:
    daemon = IpfsDaemon(tmp_path / "repo", fsync=True)
    with daemon:
        port = daemon.api_port
        cid = KuboStore(daemon.api_url).add_bytes(b"kept across a crash")
        pid = daemon.pid
        assert pid is not None
        os.killpg(pid, signal.SIGKILL)  # as a crash or `kill -9` would, not through stop()
        deadline = time.monotonic() + 10
        while daemon.running:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert (daemon.repo / "repo.lock").exists()  # the dead daemon's lock is left behind
        start = time.monotonic()
        daemon.restart()
        # js-ipfs would refuse the lock for 20 s; the stale lock was removed instead.
        assert time.monotonic() - start < 15
        assert daemon.api_port == port and daemon.pid not in (None, pid)
        assert KuboStore(daemon.api_url).get_bytes(cid) == b"kept across a crash"


def test_ipfsd_missing_node_modules_raises_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ASSAY_NODE_MODULES", str(tmp_path / "nowhere"))
    with pytest.raises(IpfsDaemonError) as info:
        find_node_modules()
    assert "ASSAY_NODE_MODULES" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(IpfsDaemonError):
        IpfsDaemon(tmp_path / "repo").start()


def test_ipfsd_api_url_before_start_raises() -> None:
    with pytest.raises(IpfsDaemonError, match="not been started"):
        _ = IpfsDaemon("/nonexistent").api_url


def test_open_store_paths_and_prefixes_give_embedded(tmp_path: Path) -> None:
    for spec in (tmp_path / "a", str(tmp_path / "b"), f"embedded:{tmp_path / 'c'}"):
        store = open_store(spec)
        assert isinstance(store, EmbeddedStore)
    assert isinstance(open_store("http://127.0.0.1:5001"), KuboStore)


def test_open_store_unknown_scheme_raises_store_error() -> None:
    with pytest.raises(StoreError, match="unknown artifact store"):
        open_store("s3://bucket/key")
