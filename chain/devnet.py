"""A local anvil devnet: start it on a free loopback port, snapshot, travel in time, stop it.

anvil comes from the npm package `@foundry-rs/anvil` (its platform binary ships inside the
package; nothing is downloaded at run time).  Accounts are derived from anvil's fixed test
mnemonic, so every run sees the same addresses and keys.  This module must never be pointed
at a real chain: it only ever starts its own node on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import HTTPProvider, Web3

from chain.errors import DevnetError

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEVNET_MNEMONIC = "test test test test test test test test test test test junk"
DEVNET_CHAIN_ID = 31337
DEFAULT_ACCOUNTS = 10
STARTUP_TIMEOUT_S = 30.0


def node_modules() -> Path:
    """The npm install the project's tools come from (ASSAY_NODE_MODULES overrides)."""
    return Path(os.environ.get("ASSAY_NODE_MODULES", REPO_ROOT / "node_modules"))


def anvil_binary() -> Path:
    """The anvil executable: ASSAY_ANVIL, else the platform binary inside node_modules."""
    override = os.environ.get("ASSAY_ANVIL")
    if override:
        return Path(override)
    modules = node_modules()
    for candidate in sorted(modules.glob("@foundry-rs/anvil-*/bin/anvil")):
        if os.access(candidate, os.X_OK):
            return candidate
    wrapper = modules / ".bin" / "anvil"
    if wrapper.exists():
        return wrapper
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise DevnetError("anvil not found: run `make setup` (npm ci installs @foundry-rs/anvil)")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Terminate a child service and wait for it; kill it if it lingers past `timeout`."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def devnet_accounts(count: int = DEFAULT_ACCOUNTS) -> list[LocalAccount]:
    """The first `count` accounts anvil funds from its test mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(DEVNET_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        for i in range(count)
    ]


@dataclass
class Devnet:
    """A running anvil process and a Web3 connected to it."""

    port: int
    process: subprocess.Popen[bytes]
    accounts: list[LocalAccount]
    log_path: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chain_id(self) -> int:
        return DEVNET_CHAIN_ID

    def web3(self) -> Web3:
        return Web3(HTTPProvider(self.rpc_url, request_kwargs={"timeout": 60}))

    def _rpc(self, method: str, params: list[object]) -> object:
        response = self.web3().provider.make_request(method, params)  # type: ignore[arg-type]
        if "error" in response:
            raise DevnetError(f"{method} failed: {response['error']}")
        return response.get("result")

    def snapshot(self) -> str:
        """Save the chain state; returns an id for `revert`."""
        return str(self._rpc("evm_snapshot", []))

    def revert(self, snapshot_id: str) -> None:
        """Restore a snapshot (anvil forgets it afterwards: take a new one to reuse)."""
        if self._rpc("evm_revert", [snapshot_id]) is not True:
            raise DevnetError(f"evm_revert({snapshot_id}) was refused")

    def increase_time(self, seconds: int) -> None:
        """Move the chain clock forward and mine a block stamped with the new time."""
        self._rpc("evm_increaseTime", [seconds])
        self._rpc("evm_mine", [])

    def timestamp(self) -> int:
        """Timestamp of the latest block."""
        return int(self.web3().eth.get_block("latest")["timestamp"])

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate anvil (kill it if it lingers) and close its log."""
        stop_process(self.process, timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


def start_devnet(
    *,
    port: int | None = None,
    accounts: int = DEFAULT_ACCOUNTS,
    log_path: Path | None = None,
    block_time: int | None = None,
    state_path: Path | None = None,
    state_interval_s: int = 5,
) -> Devnet:
    """Start anvil on 127.0.0.1 and wait until it answers JSON-RPC.

    `block_time` None means automine (a block per transaction), which tests want;
    the demo may pass a block time to look like a real chain.  With `state_path`, anvil
    loads the chain from that file when it exists and dumps it there every
    `state_interval_s` seconds and on exit, so a restarted devnet keeps its chain.
    """
    binary = anvil_binary()
    chosen = port or free_port()
    cmd = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        str(chosen),
        "--chain-id",
        str(DEVNET_CHAIN_ID),
        "--accounts",
        str(accounts),
        "--mnemonic",
        DEVNET_MNEMONIC,
        "--silent",
    ]
    if block_time is not None:
        cmd += ["--block-time", str(block_time)]
    if state_path is not None:
        cmd += ["--state", str(state_path), "--state-interval", str(state_interval_s)]
    log_file: IO[bytes] | None = open(log_path, "wb") if log_path else None  # noqa: SIM115
    process = subprocess.Popen(
        cmd,
        stdout=log_file or subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    devnet = Devnet(
        port=chosen,
        process=process,
        accounts=devnet_accounts(accounts),
        log_path=log_path,
        _log_file=log_file,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            devnet.stop()
            raise DevnetError(f"anvil exited with code {process.returncode} (port {chosen})")
        try:
            if devnet.web3().is_connected():
                log.info("anvil up on %s (pid %d)", devnet.rpc_url, process.pid)
                return devnet
        except OSError:
            pass
        time.sleep(0.05)
    devnet.stop()
    raise DevnetError(f"anvil did not answer on {devnet.rpc_url} within {STARTUP_TIMEOUT_S}s")


@contextmanager
def running_devnet(
    *,
    port: int | None = None,
    accounts: int = DEFAULT_ACCOUNTS,
    log_path: Path | None = None,
    block_time: int | None = None,
) -> Iterator[Devnet]:
    """`start_devnet` as a context manager that always stops the node."""
    devnet = start_devnet(port=port, accounts=accounts, log_path=log_path, block_time=block_time)
    try:
        yield devnet
    finally:
        devnet.stop()
