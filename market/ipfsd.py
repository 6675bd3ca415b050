"""Launch a private js-ipfs daemon (npm `ipfs` 0.66) for tests, the demo and local runs.

`IpfsDaemon` initialises a repo in a directory of your choice (IPFS_PATH),
locks its config down to loopback and offline (no swarm addresses, no
bootstrap peers, no delegates, no MDNS/WebRTC discovery, no preload, no pubsub),
gives the API, gateway and gRPC endpoints free ports on 127.0.0.1, starts
`node_modules/.bin/jsipfs daemon --offline` as a subprocess with its output in
`<repo>/daemon.log`, waits until the RPC API answers, and stops it with SIGTERM
(SIGKILL after a grace period).  Use it as a context manager::

    with IpfsDaemon(tmp_path / "ipfs") as daemon:
        store = KuboStore(daemon.api_url)

node_modules is found next to the repository root (the parent of the `market`
package) unless ASSAY_NODE_MODULES names another.  This module must never
reach the network, write outside the repo directory it was given, or leave a
daemon running after `stop` (or interpreter exit) returns.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

import httpx

from chain.devnet import free_port
from market.store.errors import StoreError

log = logging.getLogger(__name__)

NODE_MODULES_ENV: Final = "ASSAY_NODE_MODULES"
_LOOPBACK: Final = "127.0.0.1"


class IpfsDaemonError(StoreError):
    """The js-ipfs daemon could not be installed, initialised, started or stopped."""


def find_node_modules() -> Path:
    """The node_modules holding `ipfs` (ASSAY_NODE_MODULES, else next to the repo root)."""
    override = os.environ.get(NODE_MODULES_ENV)
    root = (
        Path(override).expanduser()
        if override
        else Path(__file__).resolve().parent.parent / "node_modules"
    )
    if not (root / ".bin" / "jsipfs").exists():
        raise IpfsDaemonError(
            f"js-ipfs not found: {root / '.bin' / 'jsipfs'} is missing "
            f"(run `make setup`, or set {NODE_MODULES_ENV})"
        )
    return root


def _tcp(port: int) -> str:
    return f"/ip4/{_LOOPBACK}/tcp/{port}"


class IpfsDaemon:
    """One js-ipfs daemon on loopback with a private repo; start/stop or `with`."""

    def __init__(
        self,
        repo: str | os.PathLike[str],
        *,
        api_port: int | None = None,
        node_modules: str | os.PathLike[str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        fsync: bool = False,
    ) -> None:
        """Prepare a daemon whose repo is `repo` (created on first start).

        `api_port` None picks a free port.  `fsync=False` turns off the block
        store's per-block fsync: much faster adds, and a crash can lose only
        blocks that are re-added anyway (pass True for a long-lived node).
        """
        self.repo = Path(repo).expanduser().resolve()
        self._requested_port = api_port
        self._node_modules = Path(node_modules) if node_modules is not None else None
        self._startup_timeout = startup_timeout
        self._stop_timeout = stop_timeout
        self._fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self.api_port = 0
        self.gateway_port = 0

    @property
    def api_url(self) -> str:
        """The RPC API base URL, e.g. http://127.0.0.1:45123 (valid once started)."""
        if not self.api_port:
            raise IpfsDaemonError("the IPFS daemon has not been started")
        return f"http://{_LOOPBACK}:{self.api_port}"

    @property
    def log_path(self) -> Path:
        """Where the daemon's stdout and stderr go."""
        return self.repo / "daemon.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int | None:
        """The daemon's process id (also its process group) while it runs."""
        return self._process.pid if self.running and self._process is not None else None

    def restart(self) -> Self:
        """Start again after the daemon died (killed, crashed): same repo, same API port.

        A killed daemon leaves its repo lock behind, which js-ipfs would honour for 20 s;
        the process is known dead here, so the lock is stale and removed.
        """
        if self.running:
            return self
        self._close()
        self._remove_stale_lock()
        if self.api_port:
            self._requested_port = self.api_port
        return self.start()

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["IPFS_PATH"] = str(self.repo)
        env["NO_UPDATE_NOTIFIER"] = "1"  # update-notifier would phone npm
        env.pop("DEBUG", None)  # js debug logging would flood the log
        return env

    def _jsipfs(self) -> Path:
        root = self._node_modules if self._node_modules is not None else find_node_modules()
        return root / ".bin" / "jsipfs"

    def _init_repo(self, jsipfs: Path) -> None:
        if (self.repo / "config").exists():
            return
        self.repo.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [str(jsipfs), "init", "--emptyRepo", "--algorithm", "ed25519"],
            env=self._env(),
            capture_output=True,
            timeout=self._startup_timeout,
            check=False,
        )
        if result.returncode != 0:
            tail = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
            raise IpfsDaemonError(
                f"jsipfs init failed in {self.repo}: {tail[0] if tail else result.returncode}"
            )

    def _configure(self, api_port: int, gateway_port: int, grpc_port: int) -> None:
        path = self.repo / "config"
        config = json.loads(path.read_text())
        addresses = config.setdefault("Addresses", {})
        addresses.update(
            Swarm=[],
            Announce=[],
            NoAnnounce=[],
            API=_tcp(api_port),
            Gateway=_tcp(gateway_port),
            RPC=_tcp(grpc_port),
            Delegates=[],
        )
        config["Bootstrap"] = []
        config["Discovery"] = {
            "MDNS": {"Enabled": False, "Interval": 10},
            "webRTCStar": {"Enabled": False},
        }
        config["Pubsub"] = {"Router": "gossipsub", "Enabled": False}
        config["Routing"] = {"Type": "none"}
        config.setdefault("Swarm", {})["DisableNatPortMap"] = True
        for mount in config.get("Datastore", {}).get("Spec", {}).get("mounts", []):
            child = mount.get("child", {})
            if child.get("type") == "flatfs":
                child["sync"] = self._fsync
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        os.replace(tmp, path)

    def start(self) -> Self:
        """Initialise (first time), configure and start the daemon; wait until it answers."""
        if self.running:
            return self
        jsipfs = self._jsipfs()
        self._init_repo(jsipfs)
        attempts = 1 if self._requested_port else 3
        for attempt in range(attempts):
            self.api_port = self._requested_port or free_port()
            self.gateway_port = free_port()
            self._configure(self.api_port, self.gateway_port, free_port())
            try:
                self._spawn(jsipfs)
                return self
            except IpfsDaemonError:
                self._kill()
                if attempt + 1 == attempts or "EADDRINUSE" not in self._log_tail():
                    raise
                log.info("port race on %d, retrying with other ports", self.api_port)
        raise AssertionError("unreachable")

    def _spawn(self, jsipfs: Path) -> None:
        self._log_handle = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the daemon
        self._process = subprocess.Popen(
            [str(jsipfs), "daemon", "--offline", "--enable-preload=false"],
            env=self._env(),
            cwd=self.repo,
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal must not skip our clean stop
        )
        atexit.register(self.stop)
        log.info("starting js-ipfs daemon (pid %d) on %s", self._process.pid, self.api_url)
        deadline = time.monotonic() + self._startup_timeout
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                code = self._process.poll()
                if code is not None:
                    raise IpfsDaemonError(
                        f"js-ipfs daemon exited with code {code} during start-up: "
                        f"{self._log_tail()} (log: {self.log_path})"
                    )
                try:
                    if client.post(f"{self.api_url}/api/v0/id").status_code == 200:
                        log.info("js-ipfs daemon ready on %s", self.api_url)
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise IpfsDaemonError(
            f"js-ipfs daemon did not answer on {self.api_url} within "
            f"{self._startup_timeout:.0f}s (log: {self.log_path})"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        useful = [line.strip() for line in lines if line.strip()]
        return useful[-1] if useful else ""

    def stop(self) -> None:
        """SIGTERM the daemon, SIGKILL it after `stop_timeout`; idempotent."""
        process = self._process
        if process is not None and process.poll() is None:
            log.info("stopping js-ipfs daemon (pid %d)", process.pid)
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self._stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("js-ipfs daemon ignored SIGTERM for %.0fs; killing", self._stop_timeout)
                self._kill()
        self._close()

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            self._remove_stale_lock()
        self._close()

    def _remove_stale_lock(self) -> None:
        """A killed daemon leaves its lock, which js-ipfs honours for 20 s; the lock is a
        directory (proper-lockfile's mkdir lock), so `unlink` alone would not remove it."""
        lock = self.repo / "repo.lock"
        if lock.is_dir():
            shutil.rmtree(lock, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                lock.unlink()

    def _close(self) -> None:
        if self._process is not None:
            atexit.unregister(self.stop)
        self._process = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"running on {self.api_url}" if self.running else "stopped"
        return f"IpfsDaemon({str(self.repo)!r}, {state})"
