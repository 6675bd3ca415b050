"""Run the shipped role CLIs (`solver`, `whistleblower`, `arbiter`) as real subprocesses.

Each process writes stdout and stderr to files (never a pipe that could fill and block it),
runs with a wide terminal so rich does not wrap the lines tests assert on, and is always
killed when its context exits, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from chain.keys import write_key
from tests.fixtures.dispute import DisputeEnv

BIN = Path(sys.executable).parent
POLL_INTERVAL_S = "0.1"


def role_env() -> dict[str, str]:
    env = dict(os.environ)
    env |= {"COLUMNS": "250", "ASSAY_POLL_INTERVAL": POLL_INTERVAL_S, "TERM": "dumb"}
    env.pop("FORCE_COLOR", None)
    return env


@dataclass
class RoleFiles:
    """What every role needs on disk: the deployment JSON and per-role key files."""

    root: Path
    deployment: Path

    @classmethod
    def write(cls, env: DisputeEnv, root: Path) -> RoleFiles:
        deployment = root / "deployment.json"
        env.deployment.write(deployment)
        return cls(root, deployment)

    def key(self, name: str, account: object) -> Path:
        path = self.root / "keys" / f"{name}.key"
        write_key(path, account)  # type: ignore[arg-type]
        return path

    def common(self, env: DisputeEnv, key_file: Path, store: str) -> list[str]:
        return [
            "--rpc-url",
            env.devnet.rpc_url,
            "--deployment",
            str(self.deployment),
            "--key-file",
            str(key_file),
            "--store",
            store,
        ]


@dataclass
class Role:
    """A running (or finished) role process and its captured output."""

    name: str
    process: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- {self.name} stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} still running after {timeout}s\n{self.output()}"
            ) from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)


@contextmanager
def role(name: str, argv: Sequence[str], workdir: Path) -> Iterator[Role]:
    """Start `<venv>/bin/<argv[0]> argv[1:]`; SIGKILL it on exit if it still runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    out, err = workdir / f"{name}.out", workdir / f"{name}.err"
    with open(out, "wb") as fo, open(err, "wb") as fe:
        process = subprocess.Popen(
            [str(BIN / argv[0]), *argv[1:]],
            stdout=fo,
            stderr=fe,
            stdin=subprocess.DEVNULL,
            env=role_env(),
            cwd=workdir,
        )
    proc = Role(name, process, out, err)
    try:
        yield proc
    finally:
        proc.kill()


def run_role(argv: Sequence[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a role command to completion, capturing its output."""
    return subprocess.run(
        [str(BIN / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        env=role_env(),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def wait_for(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.02,
    alive: Role | None = None,
) -> None:
    """Poll `condition` until true; fail after `timeout` s or as soon as `alive` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        if alive is not None and alive.process.poll() is not None:
            raise AssertionError(
                f"{alive.name} exited ({alive.process.returncode}) before {what}\n{alive.output()}"
            )
        if time.monotonic() > deadline:
            detail = f"\n{alive.output()}" if alive is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")
        time.sleep(interval)


class CuttableProxy:
    """A loopback TCP forwarder to `target_port` that can be cut (every connection closed,
    new ones refused) and restored on the same port: a node outage for one client only."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = self.restore()

    def restore(self) -> int:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", getattr(self, "port", 0)))
        server.listen(16)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()
        return int(server.getsockname()[1])

    def cut(self) -> None:
        with self._lock:
            if self._server is not None:
                # shutdown wakes the thread blocked in accept(); close alone would leave
                # the socket listening until that call returns.
                with suppress(OSError):
                    self._server.shutdown(socket.SHUT_RDWR)
                self._server.close()
                self._server = None
            for conn in self._conns:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._conns.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
