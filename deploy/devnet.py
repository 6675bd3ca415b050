"""`assay devnet up|status|down`: a whole market on this machine that stays up.

    assay devnet up [--workdir var/devnet] [--solvers 1] [--whistleblowers 1] [--store embedded]
    assay devnet status [--workdir var/devnet]
    assay devnet down [--workdir var/devnet]

`up` starts a supervisor in the background and returns once the API answers, printing the
dashboard/API URL, the chain's RPC URL and the demo accounts with their key files.  The
supervisor runs anvil (its chain saved to `chain-state.json` every few seconds and on
exit, and loaded again on the next `up`, so restarting the devnet keeps every job and
balance), Redis, the artifact store (embedded, or a js-ipfs daemon with --store ipfs), the
API, the relayer worker, the indexer, N solvers, M whistleblowers and an arbiter.  A
process that exits is restarted after a back-off (1 s doubling to 30 s, reset once it
stayed up for a minute); each restart is logged in `supervisor.log`.  Each process logs
to `logs/NAME.log`.  `down` stops the supervisor, which stops every child process group;
any process still alive after the grace period is killed, so none is left.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

import httpx
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.table import Table

from chain.client import ChainClient
from chain.deploy import Deployment, deploy
from chain.devnet import DEVNET_CHAIN_ID, Devnet, devnet_accounts, free_port, start_devnet
from chain.errors import ChainError
from chain.keys import write_key
from frontend_api.redis_server import RedisServer
from market.store.errors import StoreError

log = logging.getLogger("assay.devnet")

REPO: Final = Path(__file__).resolve().parent.parent
VENV_BIN: Final = Path(sys.executable).parent
ONE: Final = 10**18
FUNDS: Final = 1_000 * ONE
GAS_FUNDS_WEI: Final = 100 * ONE
BACKOFF_START_S: Final = 1.0
BACKOFF_MAX_S: Final = 30.0
HEALTHY_AFTER_S: Final = 60.0
STOP_GRACE_S: Final = 15.0
UP_TIMEOUT_S: Final = 180.0
STATE_FILE: Final = "devnet.json"
DEFAULT_RPC_PORT: Final = 8545
FIXED_ROLES: Final = ("deployer", "submitter", "relayer", "arbiter")


class DevnetCliError(Exception):
    """Something `assay devnet` cannot do (one line for the user)."""


def role_accounts(solvers: int, whistleblowers: int) -> dict[str, LocalAccount]:
    """Which anvil account plays which role (deterministic: same keys on every `up`)."""
    names = [
        *FIXED_ROLES,
        *(f"solver{i + 1}" for i in range(solvers)),
        *(f"whistleblower{i + 1}" for i in range(whistleblowers)),
    ]
    accounts = devnet_accounts(len(names))
    return dict(zip(names, accounts, strict=True))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) counts as gone.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _port_or_free(preferred: int) -> int:
    """`preferred` when nothing listens there (the CLI's defaults then just work), else any."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            return free_port()
    return preferred


def read_state(workdir: Path) -> dict[str, Any] | None:
    path = workdir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# ------------------------------------------------------------------------ supervisor


@dataclass
class Child:
    """One supervised process: restarted with back-off whenever it exits."""

    name: str
    argv: list[str]
    env: dict[str, str]
    logdir: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    backoff_s: float = BACKOFF_START_S
    restart_at: float | None = None
    restarts: int = 0
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self) -> None:
        if self._log is None:
            self._log = open(self.logdir / f"{self.name}.log", "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole
        )
        self.started_at = time.monotonic()
        self.restart_at = None
        log.info("started %s (pid %d)", self.name, self.process.pid)

    def poll(self) -> None:
        """Schedule or perform a restart if the process exited."""
        now = time.monotonic()
        if self.process is not None and self.process.poll() is not None and self.restart_at is None:
            code = self.process.returncode
            if now - self.started_at > HEALTHY_AFTER_S:
                self.backoff_s = BACKOFF_START_S
            log.warning(
                "%s exited with code %s after %.0f s; restarting in %.0f s",
                self.name,
                code,
                now - self.started_at,
                self.backoff_s,
            )
            self.restart_at = now + self.backoff_s
            self.backoff_s = min(BACKOFF_MAX_S, self.backoff_s * 2)
        if self.restart_at is not None and now >= self.restart_at:
            self.restarts += 1
            self.start()

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def wait(self, deadline: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop in time: killing it", self.name)
            self.signal(signal.SIGKILL)
            self.process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Supervisor:
    workdir: Path
    solvers: int
    whistleblowers: int
    store_kind: str
    api_port: int
    stop: threading.Event = field(default_factory=threading.Event)
    children: list[Child] = field(default_factory=list)
    devnet: Devnet | None = None
    redis: RedisServer | None = None
    ipfs: Any = None
    ipfs_restarts: int = 0
    _ipfs_restart_at: float | None = None
    _ipfs_backoff_s: float = BACKOFF_START_S
    _ipfs_started_at: float = 0.0
    _ipfs_thread: threading.Thread | None = None

    def ports(self) -> dict[str, int]:
        """The ports of the first `up`, reused so that URLs stay the same across restarts."""
        path = self.workdir / "ports.json"
        with contextlib.suppress(OSError, json.JSONDecodeError):
            saved = json.loads(path.read_text())
            if isinstance(saved, dict):
                return {k: int(v) for k, v in saved.items()}
        ports = {
            "anvil": _port_or_free(DEFAULT_RPC_PORT),
            "redis": free_port(),
            "api": _port_or_free(self.api_port) if self.api_port else free_port(),
        }
        path.write_text(json.dumps(ports))
        return ports

    def _deployment(self, roles: dict[str, LocalAccount]) -> Path:
        """The deployment of this devnet: reused when the saved chain still holds it."""
        assert self.devnet is not None
        path = self.workdir / "deployment.json"
        client = ChainClient(self.devnet.web3(), roles["deployer"])
        if path.exists():
            try:
                Deployment.load(path).check(client)
                log.info("chain state restored: reusing %s", path)
                return path
            except ChainError as exc:
                log.warning("saved deployment unusable (%s): deploying again", exc)
        deployment = deploy(client, arbiters=[roles["arbiter"].address])
        deployment.write(path)
        token = deployment.token(client)
        for name, account in roles.items():
            if name not in ("deployer", "relayer", "arbiter"):
                token.mint(account.address, FUNDS)
        log.info("deployed %s", json.dumps(deployment.addresses))
        return path

    def _write_state(self, ready: bool, info: dict[str, Any]) -> None:
        state = {
            **info,
            "supervisor": os.getpid(),
            "ready": ready,
            "processes": {
                **{
                    c.name: c.process.pid
                    for c in self.children
                    if c.process is not None and c.process.poll() is None
                },
                **({"anvil": self.devnet.process.pid} if self.devnet else {}),
                **(
                    {"redis": self.redis.process.pid}
                    if self.redis is not None and self.redis.process is not None
                    else {}
                ),
                **({"ipfs": self.ipfs.pid} if self.ipfs is not None and self.ipfs.pid else {}),
            },
            "restarts": {
                **{c.name: c.restarts for c in self.children},
                **({"ipfs": self.ipfs_restarts} if self.ipfs is not None else {}),
            },
        }
        tmp = self.workdir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.workdir / STATE_FILE)

    def _watch_ipfs(self) -> None:
        """Restart the IPFS daemon with back-off when it exited, like any child.

        The restart waits for the daemon to answer (seconds, ~20 s on a loaded machine),
        so it runs on a thread: the other children are still restarted meanwhile.
        """
        if self.ipfs is None:
            return
        if self._ipfs_thread is not None:
            if self._ipfs_thread.is_alive():
                return
            self._ipfs_thread = None
        if self.ipfs.running:
            return
        now = time.monotonic()
        if self._ipfs_restart_at is None:
            if now - self._ipfs_started_at > HEALTHY_AFTER_S:
                self._ipfs_backoff_s = BACKOFF_START_S
            log.warning("ipfs daemon exited; restarting in %.0f s", self._ipfs_backoff_s)
            self._ipfs_restart_at = now + self._ipfs_backoff_s
            self._ipfs_backoff_s = min(BACKOFF_MAX_S, self._ipfs_backoff_s * 2)
            return
        if now < self._ipfs_restart_at:
            return
        self._ipfs_restart_at = None
        self.ipfs_restarts += 1
        self._ipfs_thread = threading.Thread(target=self._restart_ipfs, name="ipfs", daemon=True)
        self._ipfs_thread.start()

    def _restart_ipfs(self) -> None:
        try:
            self.ipfs.restart()  # blocks until it answers
        except StoreError as exc:  # the next poll schedules another attempt
            log.warning("ipfs daemon did not restart: %s", exc)
            return
        self._ipfs_started_at = time.monotonic()
        log.info("restarted ipfs daemon (pid %s) on %s", self.ipfs.pid, self.ipfs.api_url)

    def run(self) -> int:
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        keys = self.workdir / "keys"
        roles = role_accounts(self.solvers, self.whistleblowers)
        for name, account in roles.items():
            write_key(keys / f"{name}.key", account)
        ports = self.ports()
        self.devnet = start_devnet(
            port=ports["anvil"],
            accounts=len(roles),
            log_path=logs / "anvil.log",
            block_time=1,
            state_path=self.workdir / "chain-state.json",
        )
        deployment = self._deployment(roles)
        self.redis = RedisServer(
            str(self.workdir / "redis"), port=ports["redis"], persist=True
        ).start()
        if self.store_kind == "ipfs":
            from market.ipfsd import IpfsDaemon

            self.ipfs = IpfsDaemon(self.workdir / "ipfs-repo", fsync=True)
            self.ipfs.start()
            self._ipfs_started_at = time.monotonic()
            store = self.ipfs.api_url
        else:
            store = f"embedded:{self.workdir / 'ipfs'}"
        api_url = f"http://127.0.0.1:{ports['api']}"
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "ASSAY_RPC_URL": self.devnet.rpc_url,
            "ASSAY_DEPLOYMENT": str(deployment),
            "ASSAY_STORE": store,
            "ASSAY_REDIS_URL": self.redis.url,
            "ASSAY_DATABASE_URL": f"sqlite:///{self.workdir / 'assay.db'}",
            "ASSAY_RELAYER_KEY_FILE": str(keys / "relayer.key"),
            "ASSAY_API_URL": api_url,
            "ASSAY_POLL_INTERVAL": "0.5",
            "COLUMNS": "150",
        }
        py = str(VENV_BIN / "python")
        specs: list[tuple[str, list[str]]] = [
            (
                "api",
                [
                    *(str(VENV_BIN / "uvicorn"), "--factory", "frontend_api.app:create_app"),
                    *("--host", "127.0.0.1", "--port", str(ports["api"]), "--log-level", "warning"),
                ],
            ),
            (
                "worker",
                [
                    *(str(VENV_BIN / "celery"), "-A", "frontend_api.worker", "worker"),
                    *("-Q", "assay", "--pool", "solo", "--loglevel", "WARNING"),
                ],
            ),
            ("indexer", [py, "-m", "market.indexer", "--poll", "0.5"]),
            (
                "arbiter",
                [str(VENV_BIN / "arbiter"), "--key-file", str(keys / "arbiter.key"), "run"],
            ),
        ]
        for i in range(self.solvers):
            name = f"solver{i + 1}"
            specs.append(
                (
                    name,
                    [
                        *(str(VENV_BIN / "solver"), "--key-file", str(keys / f"{name}.key")),
                        *("--state-dir", str(self.workdir / "state" / name)),
                        *("run", "--device", "cpu"),
                    ],
                )
            )
        for i in range(self.whistleblowers):
            name = f"whistleblower{i + 1}"
            specs.append(
                (
                    name,
                    [
                        *(str(VENV_BIN / "whistleblower"), "--key-file", str(keys / f"{name}.key")),
                        *("run", "--check", "all", "--arity", "4"),
                        # Its own secret and cache per devnet (the default is the cwd's var/).
                        *("--state-dir", str(self.workdir / "state" / name)),
                    ],
                )
            )
        self.children = [Child(name, argv, env, logs) for name, argv in specs]
        for child in self.children:
            child.start()
        info = {
            "api_url": api_url,
            "rpc_url": self.devnet.rpc_url,
            "chain_id": DEVNET_CHAIN_ID,
            "store": store,
            "deployment": str(deployment),
            "accounts": {
                name: {"address": a.address, "key_file": str(keys / f"{name}.key")}
                for name, a in roles.items()
            },
        }
        ready = False
        last_state = 0.0
        while not self.stop.is_set():
            for child in self.children:
                child.poll()
            self._watch_ipfs()
            if not ready:
                with contextlib.suppress(httpx.HTTPError):
                    ready = httpx.get(api_url + "/health", timeout=1.0).status_code == 200
            if time.monotonic() - last_state > 1.0:
                self._write_state(ready, info)
                last_state = time.monotonic()
            self.stop.wait(0.5)
        self.shutdown()
        self._write_state(False, {**info, "stopped": True})
        return 0

    def shutdown(self) -> None:
        log.info("stopping %d processes", len(self.children))
        for child in reversed(self.children):
            child.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for child in self.children:
            child.wait(deadline)
        self.children = []
        if self._ipfs_thread is not None:
            self._ipfs_thread.join(timeout=STOP_GRACE_S + 60)
        if self.ipfs is not None:
            self.ipfs.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.devnet is not None:
            self.devnet.stop()  # SIGTERM: anvil dumps its state file on the way out
        log.info("stopped")


def supervise(args: argparse.Namespace) -> int:
    workdir = Path(args.workdir).resolve()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stdout
    )
    sup = Supervisor(workdir, args.solvers, args.whistleblowers, args.store, args.port)

    def _stop(_sig: int, _frame: Any) -> None:
        sup.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        return sup.run()
    except Exception:
        log.exception("supervisor failed")
        sup.shutdown()
        return 1


# ------------------------------------------------------------------------- commands


def _accounts_table(state: dict[str, Any]) -> Table:
    table = Table(title="accounts (anvil's test mnemonic: devnet only)")
    table.add_column("role")
    table.add_column("address")
    table.add_column("key file")
    for name, a in state.get("accounts", {}).items():
        table.add_row(name, a["address"], a["key_file"])
    return table


def cmd_up(args: argparse.Namespace, console: Console) -> int:
    workdir = Path(args.workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    state = read_state(workdir)
    if state and not state.get("stopped") and _alive(int(state.get("supervisor", 0))):
        console.print(f"devnet already running in {workdir}: {state.get('api_url')}")
        return 0
    with contextlib.suppress(FileNotFoundError):
        (workdir / STATE_FILE).unlink()
    log_file = open(workdir / "supervisor.log", "ab")  # noqa: SIM115 (handed to the child)
    argv = [
        sys.executable,
        "-m",
        "deploy.devnet",
        "supervise",
        *("--workdir", str(workdir), "--solvers", str(args.solvers)),
        *("--whistleblowers", str(args.whistleblowers), "--store", args.store),
        *("--port", str(args.port)),
    ]
    process = subprocess.Popen(
        argv,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log_file.close()
    deadline = time.monotonic() + UP_TIMEOUT_S
    with console.status("starting the devnet..."):
        while True:
            state = read_state(workdir)
            if state and state.get("ready"):
                break
            if process.poll() is not None:
                tail = (workdir / "supervisor.log").read_text(errors="replace").splitlines()[-5:]
                raise DevnetCliError(
                    f"the supervisor exited (code {process.returncode}): " + " | ".join(tail)
                )
            if time.monotonic() > deadline:
                raise DevnetCliError(
                    f"the API did not answer within {UP_TIMEOUT_S:.0f} s: "
                    f"see {workdir / 'supervisor.log'} and {workdir / 'logs'}"
                )
            time.sleep(0.5)
    if args.json:
        console.print_json(json.dumps(state))
        return 0
    console.print(f"[green]devnet up[/] in {workdir}")
    console.print(f"  dashboard and API  {state['api_url']}   (API docs at /docs)")
    console.print(f"  chain (JSON-RPC)   {state['rpc_url']}   chain id {state['chain_id']}")
    console.print(_accounts_table(state))
    console.print(
        f"next: export ASSAY_API_URL={state['api_url']} ASSAY_RPC_URL={state['rpc_url']} "
        f"ASSAY_SUBMITTER_KEY_FILE={state['accounts']['submitter']['key_file']}"
    )
    return 0


def cmd_status(args: argparse.Namespace, console: Console) -> int:
    workdir = Path(args.workdir).resolve()
    state = read_state(workdir)
    if state is None:
        raise DevnetCliError(f"no devnet in {workdir}: run `assay devnet up --workdir {workdir}`")
    sup = int(state.get("supervisor", 0))
    running = not state.get("stopped") and _alive(sup)
    health: dict[str, Any] = {}
    if running:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            health = httpx.get(state["api_url"] + "/health", timeout=2.0).json()
    if args.json:
        console.print_json(json.dumps({**state, "running": running, "health": health}))
        return 0 if running else 1
    table = Table(title=f"devnet in {workdir}: {'running' if running else 'stopped'}")
    table.add_column("process")
    table.add_column("pid", justify="right")
    table.add_column("state")
    table.add_column("restarts", justify="right")
    table.add_row("supervisor", str(sup), "up" if running else "down", "-")
    for name, pid in state.get("processes", {}).items():
        up = running and _alive(int(pid))
        restarts = state.get("restarts", {}).get(name, "-")
        table.add_row(name, str(pid), "up" if up else "down", str(restarts))
    console.print(table)
    if running:
        console.print(f"API {state['api_url']}: {health.get('status', 'no answer')}")
    return 0 if running else 1


def cmd_down(args: argparse.Namespace, console: Console) -> int:
    workdir = Path(args.workdir).resolve()
    state = read_state(workdir)
    if state is None:
        console.print(f"no devnet in {workdir}")
        return 0
    sup = int(state.get("supervisor", 0))
    pids = [int(p) for p in state.get("processes", {}).values()]
    if sup and _alive(sup):
        with contextlib.suppress(ProcessLookupError):
            os.kill(sup, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S + 15
    with console.status("stopping..."):
        while time.monotonic() < deadline and any(_alive(p) for p in [sup, *pids]):
            time.sleep(0.25)
    left = [p for p in [sup, *pids] if _alive(p)]
    for pid in left:  # the supervisor's own grace period passed: no process may remain
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    console.print(
        f"[green]devnet down[/]: stopped {len(pids) + 1} processes"
        + (f" ({len(left)} killed)" if left else "")
        + f"; chain state kept in {workdir / 'chain-state.json'}"
    )
    return 0


def cmd_faucet(args: argparse.Namespace, console: Console) -> int:
    """Mint WORK (and gas money) to ADDRESS on a running devnet."""
    from decimal import Decimal, InvalidOperation

    from web3 import Web3
    from web3.types import RPCEndpoint

    workdir = Path(args.workdir).resolve()
    state = read_state(workdir)
    if state is None or state.get("stopped"):
        raise DevnetCliError(f"no running devnet in {workdir}: run `assay devnet up` first")
    if not Web3.is_address(args.address):
        raise DevnetCliError(f"not an address: {args.address!r}")
    try:
        amount = int(Decimal(args.amount) * ONE)
    except InvalidOperation:
        raise DevnetCliError(f"not an amount: {args.amount!r}") from None
    if amount <= 0:
        raise DevnetCliError("the amount must be positive")
    from chain.keys import load_key

    deployer = load_key(Path(state["accounts"]["deployer"]["key_file"]))
    client = ChainClient.connect(state["rpc_url"], deployer, timeout_s=30.0)
    deployment = Deployment.load(Path(state["deployment"]))
    who = Web3.to_checksum_address(args.address)
    receipt = deployment.token(client).mint(who, amount)
    balance = int(client.w3.eth.get_balance(who))
    if balance < GAS_FUNDS_WEI // 10:
        client.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [who, hex(GAS_FUNDS_WEI)])
    console.print(
        f"[green]minted[/] {Decimal(amount) / ONE:f} WORK to {who} (tx {receipt.tx_hash}); "
        f"balance {deployment.token(client).balance_of(who) / ONE:,.4f} WORK"
    )
    return 0


def add_devnet_commands(sub: Any, flags: argparse.ArgumentParser) -> None:
    devnet = sub.add_parser("devnet", help="run a local market in the background", parents=[flags])
    cmds = devnet.add_subparsers(dest="devnet_command", required=True)
    up = cmds.add_parser("up", help="start the market in the background", parents=[flags])
    status = cmds.add_parser("status", help="show each process of the market", parents=[flags])
    down = cmds.add_parser("down", help="stop every process of the market", parents=[flags])
    for p in (up, status, down):
        p.add_argument("--workdir", default="var/devnet", help="state, keys, logs (var/devnet)")
    up.add_argument("--solvers", type=int, default=1, choices=range(0, 5))
    up.add_argument("--whistleblowers", type=int, default=1, choices=range(0, 5))
    up.add_argument("--store", choices=("embedded", "ipfs"), default="embedded")
    up.add_argument("--port", type=int, default=8000, help="API port on the first up (0: any)")
    up.set_defaults(func=cmd_up)
    status.set_defaults(func=cmd_status)
    down.set_defaults(func=cmd_down)
    faucet = sub.add_parser("faucet", help="mint devnet WORK to an address", parents=[flags])
    faucet.add_argument("address")
    faucet.add_argument("amount", help="WORK (18 decimals)")
    faucet.add_argument("--workdir", default="var/devnet")
    faucet.set_defaults(func=cmd_faucet)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.devnet")
    sub = parser.add_subparsers(dest="command", required=True)
    sup = sub.add_parser("supervise", help="(internal) run the supervisor in the foreground")
    sup.add_argument("--workdir", required=True)
    sup.add_argument("--solvers", type=int, default=1)
    sup.add_argument("--whistleblowers", type=int, default=1)
    sup.add_argument("--store", choices=("embedded", "ipfs"), default="embedded")
    sup.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return supervise(args)


if __name__ == "__main__":
    sys.exit(main())
