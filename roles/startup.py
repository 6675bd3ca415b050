"""What every long-running role (solver, whistleblower, arbiter) shares at start-up.

Settings from ASSAY_* variables overridden by flags, the common flags themselves, logging,
the connection (key, chain, deployment check, artifact store) and a stop flag set by
SIGTERM/SIGINT so a role finishes its current step and exits cleanly.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from eth_account.signers.local import LocalAccount
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.logging import RichHandler
from web3.exceptions import TimeExhausted

from chain.client import ChainClient
from chain.deploy import Deployment
from chain.errors import NodeUnreachable, TransactionTimeout
from chain.keys import load_key
from market.store import ArtifactStore, StoreUnreachable, open_store

COMMON_FLAGS = ("rpc_url", "deployment", "key_file", "store")


log = logging.getLogger(__name__)


class RoleSettings(BaseSettings):
    """Where a role finds the chain, its key and the artifact store."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path = Path("var/deployment.json")
    key_file: Path = Path("var/keys/role.key")
    store: str = "embedded:var/ipfs"
    poll_interval: float = 1.0


def add_common_flags(parser: argparse.ArgumentParser, role: str) -> None:
    parser.add_argument("--rpc-url", help="JSON-RPC endpoint (ASSAY_RPC_URL)")
    parser.add_argument("--deployment", type=Path, help="deployment JSON (ASSAY_DEPLOYMENT)")
    parser.add_argument("--key-file", type=Path, help=f"{role} key file (ASSAY_KEY_FILE)")
    parser.add_argument("--store", help="embedded:DIR or http://host:port (ASSAY_STORE)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def overrides(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags that were given, as settings keyword arguments."""
    return {
        n: getattr(args, n) for n in (*COMMON_FLAGS, *names) if getattr(args, n, None) is not None
    }


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
    )


@dataclass(frozen=True)
class RoleContext:
    account: LocalAccount
    client: ChainClient
    deployment: Deployment
    store: ArtifactStore


def connect(settings: RoleSettings) -> RoleContext:
    """Load the key, reach the node, check the deployment against it, open the store."""
    account = load_key(settings.key_file)
    client = ChainClient.connect(settings.rpc_url, account)
    deployment = Deployment.load(settings.deployment)
    deployment.check(client)
    return RoleContext(account, client, deployment, open_store(settings.store))


def stop_flag() -> Callable[[], bool]:
    """A function that turns True once SIGTERM or SIGINT arrived."""
    stopping = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    return lambda: stopping


TRANSIENT_ROLE_ERRORS: tuple[type[BaseException], ...] = (
    StoreUnreachable,
    NodeUnreachable,
    TransactionTimeout,
    TimeExhausted,  # raw web3 waits outside ChainClient
    OSError,  # requests' connection errors and timeouts are OSErrors
)
"""Failures of a dependency (IPFS, the chain node) that a role waits out instead of exiting."""


class Backoff:
    """Delays after consecutive transient failures: `start`, doubling, at most `cap` seconds."""

    def __init__(self, start: float = 1.0, cap: float = 60.0) -> None:
        self.start = start
        self.cap = cap
        self.delay = start

    def failed(self, role: str, exc: BaseException, should_stop: Callable[[], bool]) -> None:
        """Log one line and sleep the current delay (waking early on a stop request)."""
        log.warning("%s: %s: %s; retrying in %.0f s", role, type(exc).__name__, exc, self.delay)
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.25, self.delay))
        self.delay = min(self.cap, self.delay * 2)

    def succeeded(self) -> None:
        self.delay = self.start
