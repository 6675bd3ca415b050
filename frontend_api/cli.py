"""`assay job ...`: submit a job, show its status, watch it live, signing locally.

    assay job submit spec.json --data digits.safetensors --key submitter.key --reward 10
    assay job status 3            (a job id)   |   assay job status <submission id>
    assay job watch 3

The key file holds the submitter's hex private key; it is read here and never leaves
this process (the API receives signatures).  Amounts are in WORK (18 decimals) unless
--wei is given.  `python -m frontend_api.cli job ...` works without the console script;
the `assay` console script (deploy.cli:main) adds `assay deploy`.  Library errors
become one red line and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from rich.console import Console
from rich.live import Live
from rich.table import Table

from frontend_api.client import ApiClient, MarketTerms, prepare_spec, sign_submission
from frontend_api.errors import ApiError
from market.jobspec import JobSpecError

ONE = 10**18
TERMINAL = {"Finalized", "Cancelled", "Expired", "Slashed"}


class CliError(Exception):
    """A user mistake the CLI reports in one line (bad file, bad amount)."""


def _amount(text: str, wei: bool) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise CliError(f"not an amount: {text!r}") from None
    scaled = value if wei else value * ONE
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise CliError(f"amount {text} is not a positive whole number of wei")
    return int(scaled)


def _load_key(path: Path) -> LocalAccount:
    try:
        account: LocalAccount = Account.from_key(path.read_text().strip())
    except OSError as exc:
        raise CliError(f"cannot read key file {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise CliError(f"{path} does not hold a hex private key") from None
    return account


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from None


# --------------------------------------------------------------------------- commands


def cmd_submit(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    account = _load_key(Path(args.key))
    spec = _read_json(Path(args.spec))
    if not isinstance(spec, dict):
        raise CliError(f"{args.spec}: a spec is a JSON object")
    dataset: bytes | None = None
    if args.data:
        try:
            dataset = Path(args.data).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {args.data}: {exc.strerror}") from None
    elif args.data_cid:
        data = spec.get("data")
        spec["data"] = {**(data if isinstance(data, dict) else {}), "cid": args.data_cid}
    sealed = prepare_spec(spec, dataset)
    terms = MarketTerms(
        reward=_amount(args.reward, args.wei),
        solver_stake=_amount(args.stake, args.wei),
        challenger_bond=_amount(args.bond, args.wei),
        claim_ttl_s=args.claim_ttl,
        submit_window_s=args.submit_window,
        challenge_window_s=args.challenge_window,
        order_ttl_s=args.order_ttl,
    )
    chain = api.chain()
    nonces = api.nonces(account.address)
    body = sign_submission(
        account, sealed, terms, chain, int(nonces["order_nonce"]), int(nonces["permit_nonce"])
    )
    key = args.idempotency_key or uuid.uuid4().hex
    console.print(f"spec {sealed.cid} (sha256 0x{sealed.hash.hex()[:16]}...), key {key}")
    sub = api.submit(body, dataset, key)
    console.print(f"[green]accepted[/] submission {sub['id']} ({sub['state']})")
    if not args.wait:
        if args.json:
            console.print_json(json.dumps(sub))
        return 0
    with console.status("relaying..."):
        sub = api.wait_posted(sub["id"], timeout_s=args.timeout)
    if args.json:
        console.print_json(json.dumps(sub))
    if sub["state"] != "posted":
        console.print(f"[red]failed:[/] {sub.get('error')}")
        return 1
    console.print(f"[green]posted[/] job {sub['job_id']} in tx {sub['tx_hash']}")
    return 0


def _job_table(job: dict[str, Any]) -> Table:
    table = Table(title=f"job {job['job_id']}", show_header=False)
    table.add_row("status", f"[bold]{job['status']}[/]")
    table.add_row("submitter", job["submitter"])
    table.add_row("solver", job.get("solver") or "-")
    table.add_row("spec", job["spec_cid"])
    table.add_row("reward", f"{int(job['reward']) / ONE:,.4f} WORK")
    result = job.get("result")
    if result:
        table.add_row("trace root", result["trace_root"])
        table.add_row("manifest", result["manifest_cid"] or "-")
    cps = job.get("checkpoints", [])
    if cps:
        table.add_row("checkpoints", f"{len(cps)} (last {cps[-1].get('cid')})")
    curve = job.get("loss_curve", [])
    if curve:
        last = curve[-1]
        table.add_row("loss", f"{last['loss']:.4f} at step {last['step']} ({len(curve)} points)")
    for d in job.get("disputes", []):
        outcome = (
            "open" if not d["resolved"] else ("solver won" if d["solver_won"] else "solver lost")
        )
        game = f" game {d['game_id']}" if d.get("game_id") else ""
        table.add_row("dispute", f"{d['challenger']}{game}: {outcome}")
    return table


def cmd_status(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    ident = str(args.id)
    if len(ident) == 32 and all(c in "0123456789abcdef" for c in ident):
        sub = api.submission(ident)
        if args.json:
            console.print_json(json.dumps(sub))
        else:
            job_part = f", job {sub['job_id']}" if sub.get("job_id") else ""
            error_part = f", error: {sub['error']}" if sub.get("error") else ""
            console.print(f"submission {sub['id']}: [bold]{sub['state']}[/]{job_part}{error_part}")
        return 0
    job = api.job(_job_id(ident))
    if args.json:
        console.print_json(json.dumps(job))
    else:
        console.print(_job_table(job))
    return 0


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"not a job id or submission id: {text!r}") from None
    if value < 1:
        raise CliError("job ids start at 1")
    return value


def cmd_watch(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    job_id = _job_id(str(args.id))
    deadline = time.monotonic() + args.timeout if args.timeout else None
    job = api.job(job_id)
    with Live(_job_table(job), console=console, refresh_per_second=4) as live:
        while job["status"] not in TERMINAL:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(args.interval)
            job = api.job(job_id)
            live.update(_job_table(job))
    console.print(f"job {job_id}: [bold]{job['status']}[/]")
    return 0


# ------------------------------------------------------------------------------ parser


def add_job_commands(sub: Any) -> None:
    """Add `job submit|status|watch` to an argparse subparsers object."""
    job = sub.add_parser("job", help="submit and follow training jobs")
    job.add_argument("--api", default=os.environ.get("ASSAY_API_URL", "http://127.0.0.1:8000"))
    job.add_argument("--json", action="store_true", help="print raw JSON")
    cmds = job.add_subparsers(dest="job_command", required=True)

    submit = cmds.add_parser("submit", help="sign and submit a job spec")
    submit.add_argument("spec", help="the job spec (JSON)")
    data = submit.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", help="dataset file to upload")
    data.add_argument("--data-cid", help="CID of a dataset already in the artifact store")
    submit.add_argument(
        "--key",
        default=os.environ.get("ASSAY_SUBMITTER_KEY_FILE"),
        required="ASSAY_SUBMITTER_KEY_FILE" not in os.environ,
        help="file with the submitter's hex private key (never sent)",
    )
    submit.add_argument("--reward", required=True)
    submit.add_argument("--stake", required=True, help="solver stake")
    submit.add_argument("--bond", required=True, help="challenger bond")
    submit.add_argument("--wei", action="store_true", help="amounts are in wei, not WORK")
    submit.add_argument("--claim-ttl", type=int, default=24 * 3600, help="seconds to claim")
    submit.add_argument("--submit-window", type=int, default=24 * 3600)
    submit.add_argument("--challenge-window", type=int, default=3600)
    submit.add_argument("--order-ttl", type=int, default=3600, help="order validity (s)")
    submit.add_argument("--idempotency-key", help="retry-safe key (default: random)")
    submit.add_argument("--wait", action="store_true", help="wait until posted on-chain")
    submit.add_argument("--timeout", type=float, default=300.0)
    submit.set_defaults(func=cmd_submit)

    status = cmds.add_parser("status", help="show a job (id) or a submission (32-hex id)")
    status.add_argument("id")
    status.set_defaults(func=cmd_status)

    watch = cmds.add_parser("watch", help="follow a job live until it ends")
    watch.add_argument("id")
    watch.add_argument("--interval", type=float, default=2.0)
    watch.add_argument("--timeout", type=float, default=0.0, help="stop after (0: never)")
    watch.set_defaults(func=cmd_watch)


def run_job_command(args: argparse.Namespace, console: Console) -> int:
    api = ApiClient(args.api)
    try:
        code: int = args.func(args, console, api)
        return code
    except (ApiError, CliError, JobSpecError) as exc:
        console.print(f"[red]error:[/] {exc}")
        for problem in getattr(exc, "problems", ()):
            console.print(f"  {problem.field}: {problem.reason}")
        for problem in getattr(exc, "errors", ()):
            console.print(f"  {problem}")
        return 2
    except httpx.HTTPError as exc:
        console.print(f"[red]error:[/] cannot reach the API at {args.api}: {exc}")
        return 2
    finally:
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="assay", description="Assay submitter CLI")
    add_job_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_job_command(args, Console())


if __name__ == "__main__":
    sys.exit(main())
