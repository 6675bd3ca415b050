"""Run the shipped role CLIs (`solver`, `whistleblower`, `arbiter`) as real subprocesses.

Each process writes stdout and stderr to files (never a pipe that could fill and block it),
runs with a wide terminal so rich does not wrap the lines tests assert on, and is always
killed when its context exits, whatever the test did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
