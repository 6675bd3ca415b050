"""`assay job ...` and `assay dispute ...`: a submitter's whole lifecycle, signing locally.

    assay job submit spec.json --data digits.safetensors --key submitter.key --reward 10
    assay job status 3            (a job id)   |   assay job status <submission id>
    assay job watch 3             (live progress, loss, rate in the job's units)
    assay job cancel 3 | finalize 3 | withdraw | revoke       (transactions, your key)
    assay job result 3 --out model/   (download the final checkpoint, verify it on-chain)
    assay dispute show 1          (the bisection as text)

The key file holds the submitter's hex private key, loaded through chain.keys (mode 600
enforced); it never leaves this process (the API receives signatures; transactions are
signed here and sent to --rpc).  The contracts' addresses come from the API's /chain.
Amounts are in WORK (18 decimals) unless --wei.  Global flags (--api, --rpc, --json) are
accepted anywhere on the line.  Every error is one red line and exit status 2.
"""

from __future__ import annotations

import argparse
import hashlib
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
from eth_account.signers.local import LocalAccount
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from chain.client import ChainClient, web3_errors
from chain.contracts import JobMarketClient
from chain.errors import ChainError
from chain.keys import load_key
from chain.types import JobId
from frontend_api.errors import ApiError
from jobspec.factory import artifact, graph_spec
from market.jobspec import JobSpecError
from market.store import StoreError, compute_cid
from submitter.client import ApiClient, MarketTerms, prepare_spec, sign_submission

ONE = 10**18
TERMINAL = {"Finalized", "Cancelled", "Expired", "Slashed"}
LEVELS = ("CHECKPOINT", "STEP", "OP")
DEFAULT_API = "http://127.0.0.1:8000"
DEFAULT_RPC = "http://127.0.0.1:8545"


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


def _work(wei: Any) -> str:
    return f"{Decimal(int(wei)) / ONE:,.4f} WORK"


DEVNET_SUBMITTER_KEY = Path("var/devnet/keys/submitter.key")


def _key(args: argparse.Namespace) -> LocalAccount:
    if not args.key:
        if DEVNET_SUBMITTER_KEY.is_file():  # `assay devnet up` in this folder wrote it
            return load_key(DEVNET_SUBMITTER_KEY)
        raise CliError("no key: pass --key FILE or set ASSAY_SUBMITTER_KEY_FILE")
    return load_key(Path(args.key))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{path} is not JSON: {exc}") from None


def _job_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise CliError(f"not a job id or submission id: {text!r}") from None
    if value < 1:
        raise CliError("job ids start at 1")
    return value


def _market(args: argparse.Namespace, api: ApiClient, account: LocalAccount) -> JobMarketClient:
    chain = api.chain()
    client = ChainClient.connect(args.rpc, account, timeout_s=30.0)
    if int(client.w3.eth.chain_id) != int(chain["chain_id"]):
        raise CliError(
            f"--rpc {args.rpc} is chain {client.w3.eth.chain_id}, the API's is {chain['chain_id']}"
        )
    return JobMarketClient(client, chain["market"])


# --------------------------------------------------------------------------- commands


def _model_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The spec of an own-model job: the given JSON, or one from the training flags."""
    spec: dict[str, Any]
    if args.spec:
        raw = _read_json(Path(args.spec))
        if not isinstance(raw, dict):
            raise CliError(f"{args.spec}: a spec is a JSON object")
        spec = raw
    else:
        spec = _flags_spec(args)
    if args.micro_batches is not None and isinstance(spec.get("data"), dict):
        spec["data"]["micro_batches"] = args.micro_batches
    return spec


def _flags_spec(args: argparse.Namespace) -> dict[str, Any]:
    return graph_spec(
        artifact("0" * 64),
        artifact("0" * 64),
        data_format=args.data_format,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_steps=args.warmup_steps or None,
        batch_size=args.batch_size,
        data_seed=args.seed,
        steps=args.steps,
        checkpoint_interval=args.checkpoint_interval or args.steps,
        seed=args.seed,
    )


def _own_model(
    args: argparse.Namespace, console: Console, api: ApiClient, dataset: bytes | None
) -> dict[str, Any]:
    """Lower, check against the dataset, upload graph + weights; the spec naming them."""
    from submitter import model as model_mod

    if dataset is None:
        raise CliError("--model/--model-dir need --data FILE (checked against the model)")
    spec = _model_spec(args)
    data = spec.get("data")
    batch = data.get("batch_size") if isinstance(data, dict) else None
    if not isinstance(batch, int):
        raise CliError("spec.data.batch_size: required to lower the model")
    micro = data.get("micro_batches", 1) if isinstance(data, dict) else 1
    if not isinstance(micro, int) or micro < 1 or batch % micro:
        raise CliError(f"spec.data.micro_batches: {micro} must divide batch_size {batch}")
    try:
        lowered = model_mod.lower_model(
            Path(args.model) if args.model else None,
            Path(args.model_dir) if args.model_dir else None,
            Path(args.weights) if args.weights else None,
            batch // micro,  # the graph computes one micro-batch
        )
        spec = model_mod.with_model(spec, lowered, args.loss)
        model_mod.check_job(spec, lowered, dataset)
    except model_mod.ModelProblem as exc:
        raise CliError(str(exc)) from None
    refs = spec["program"]["model"]
    for name, blob in (("graph", lowered.graph), ("weights", lowered.weights)):
        stored = api.upload_artifact(blob)
        if stored.get("sha256") != refs[name]["sha256"]:
            raise CliError(f"the API stored {name} with sha256 {stored.get('sha256')}")
        refs[name]["cid"] = str(stored["cid"])
        console.print(f"{name} {stored['cid']} ({len(blob)} bytes)")
    return spec


def cmd_submit(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    account = _key(args)
    own_model = bool(args.model or args.model_dir)
    if not own_model and not args.spec:
        raise CliError("a job spec (JSON) is required unless --model/--model-dir is given")
    if args.weights and not own_model:
        raise CliError("--weights is the initial state of --model/--model-dir")
    dataset: bytes | None = None
    if args.data:
        try:
            dataset = Path(args.data).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {args.data}: {exc.strerror}") from None
    if own_model:
        spec = _own_model(args, console, api, dataset)
    else:
        spec = _read_json(Path(args.spec))
        if not isinstance(spec, dict):
            raise CliError(f"{args.spec}: a spec is a JSON object")
    if args.data_cid:
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
        raise CliError(f"submission {sub['id']} failed: {sub.get('error')}")
    console.print(f"[green]posted[/] job {sub['job_id']} in tx {sub['tx_hash']}")
    return 0


def _progress_line(job: dict[str, Any]) -> str | None:
    p = job.get("progress")
    if not p:
        return None
    parts = [f"step {p['step']}/{p['total_steps']}"]
    if p.get("loss") is not None:
        parts.append(f"loss {p['loss']:.4f}")
    if p.get("rate") is not None:
        parts.append(f"{p['rate']:,.1f} {p['unit']}")
    if p.get("eta_s") is not None:
        parts.append(f"ETA {p['eta_s']:.0f} s")
    return ", ".join(parts)


def _sparkline(values: Sequence[float], width: int = 40) -> str:
    if not values:
        return ""
    if len(values) > width:
        values = [values[int(i * len(values) / width)] for i in range(width)]
    lo, hi = min(values), max(values)
    bars = "▁▂▃▄▅▆▇█"
    span = (hi - lo) or 1.0
    return "".join(bars[min(7, int((v - lo) / span * 7.999))] for v in values)


def _job_table(job: dict[str, Any]) -> Table:
    table = Table(title=f"job {job['job_id']}", show_header=False)
    table.add_row("status", f"[bold]{job['status']}[/]")
    table.add_row("submitter", job["submitter"])
    table.add_row("solver", job.get("solver") or "-")
    table.add_row("spec", job["spec_cid"])
    table.add_row("reward", _work(job["reward"]))
    terms = job.get("terms")
    if terms:
        table.add_row(
            "stake / bond", f"{_work(terms['solver_stake'])} / {_work(terms['challenger_bond'])}"
        )
    progress = _progress_line(job)
    if progress:
        table.add_row("progress", progress)
    result = job.get("result")
    if result:
        table.add_row("trace root", result["trace_root"])
        table.add_row("manifest", result["manifest_cid"] or "-")
    cps = job.get("checkpoints", [])
    if cps:
        table.add_row("checkpoints", f"{len(cps)} (last {cps[-1].get('cid')})")
    curve = job.get("loss_curve") or ((job.get("progress") or {}).get("curve") or [])
    if curve:
        last = curve[-1]
        table.add_row(
            "loss",
            f"{last['loss']:.4f} at step {last['step']}  {_sparkline([p['loss'] for p in curve])}",
        )
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
    if not console.is_terminal:
        console.line()  # Live leaves its last frame unterminated on a pipe
    console.print(f"job {job_id}: [bold]{job['status']}[/]")
    return 0


def _transact(args: argparse.Namespace, console: Console, api: ApiClient, what: str) -> int:
    account = _key(args)
    market = _market(args, api, account)
    if what == "cancel":
        receipt = market.cancel(JobId(_job_id(args.id)))
        done = f"cancelled job {args.id}: reward refunded to your balance"
    elif what == "finalize":
        receipt = market.finalize(JobId(_job_id(args.id)))
        done = f"finalized job {args.id}: reward and stake credited to its solver"
    elif what == "withdraw":
        credit = int(market.credits(account.address))
        if credit == 0:
            console.print(f"nothing to withdraw for {account.address}")
            return 0
        receipt = market.withdraw()
        done = f"withdrew {_work(credit)} to {account.address}"
    else:
        receipt = market.revoke_orders()
        done = f"revoked every order of {account.address} signed so far (not yet relayed)"
    if args.json:
        console.print_json(json.dumps({"tx_hash": receipt.tx_hash, "block": receipt.block_number}))
    else:
        console.print(f"[green]{done}[/] (tx {receipt.tx_hash}, block {receipt.block_number})")
    return 0


def cmd_result(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    """Download the final checkpoint and check it against the chain's finalStateHash."""
    job_id = _job_id(args.id)
    job = api.job(job_id)
    if not job.get("result") or not job.get("checkpoints"):
        raise CliError(f"job {job_id} has no result yet (status {job['status']})")
    final = job["checkpoints"][-1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dest = out / f"job{job_id}-final.safetensors"
    size = api.download(final["cid"], dest)
    data = dest.read_bytes()
    if compute_cid(data).cid != final["cid"]:
        raise CliError(f"{dest}: the bytes do not match CID {final['cid']}")
    client = ChainClient.connect(args.rpc, timeout_s=30.0)
    chain = api.chain()
    record = JobMarketClient(client, chain["market"]).get_job(JobId(job_id))
    on_chain = "0x" + bytes(record.final_state_hash).hex()
    from repops import hashing, stio  # torch only for this command

    tensors, _meta = stio.loads(data)
    computed = "0x" + hashing.state_hash(tensors).hex()
    summary = {
        "job_id": job_id,
        "file": str(dest),
        "bytes": size,
        "cid": final["cid"],
        "sha256": hashlib.sha256(data).hexdigest(),
        "state_hash": computed,
        "chain_final_state_hash": on_chain,
        "status": record.status.name,
        "verified": computed == on_chain,
    }
    if args.json:
        console.print_json(json.dumps(summary))
    if computed != on_chain:
        raise CliError(
            f"{dest}: state hash {computed} differs from the chain's finalStateHash {on_chain}"
        )
    if not args.json:
        console.print(
            f"[green]verified[/] {dest} ({size:,} bytes, {len(tensors)} tensors): state hash "
            f"{computed[:18]}… equals job {job_id}'s finalStateHash on-chain ({record.status.name})"
        )
    return 0


def bisection_lines(game: dict[str, Any]) -> list[str]:
    """A dispute game's moves as readable lines (also used by the demo)."""
    lines = []
    for m in game.get("moves", []):
        a = m.get("args", {})
        name = m["name"]
        level = a.get("level")
        level_name = LEVELS[level] if isinstance(level, int) and level < len(LEVELS) else level
        if name == "GameCreated":
            lines.append(
                f"opened at {level_name} level over [{a['lo']}, {a['hi']}], arity {a['arity']}"
            )
        elif name == "LevelEntered":
            lines.append(f"entered {level_name} level: [{a['lo']}, {a['hi']}] at base {a['base']}")
        elif name == "Dissected":
            parts = len(a.get("hashes", [])) + 1
            lines.append(f"  solver dissected [{a['lo']}, {a['hi']}] into {parts} parts")
        elif name == "Selected":
            lines.append(f"  challenger disputed part {a['part']}: [{a['lo']}, {a['hi']}]")
        elif name == "OpLevelOpened":
            lines.append(f"  operator chain revealed: {a['op_count']} ops")
        elif name == "BundleRequested":
            lines.append(f"disputed step {a['base']}, operator {a['position']}: bundle requested")
        elif name == "BundlePosted":
            lines.append(f"operand bundle posted: {a.get('bundle_cid')}")
        elif name == "RulingRequested":
            lines.append(f"ruling requested: the arbiters re-execute operator {a['position']}")
        elif name == "GameResolved":
            lines.append(f"game resolved: {game['status']}")
        else:
            shown = " ".join(f"{k}={v}" for k, v in a.items() if k != "game_id")
            lines.append(f"{name} {shown}")
    return lines


def cmd_dispute_show(args: argparse.Namespace, console: Console, api: ApiClient) -> int:
    game = api.dispute(_job_id(args.id))
    if args.json:
        console.print_json(json.dumps(game))
        return 0
    c = game["clocks"]
    head = Table(title=f"dispute game {game['game_id']} on job {game['job_id']}", show_header=False)
    head.add_row("status", f"[bold]{game['status']}[/]")
    head.add_row("level", f"{game['level']} [{game['interval']['lo']}, {game['interval']['hi']}]")
    head.add_row("rounds", f"{game['rounds']} (arity {game['arity']}, {game['op_count']} ops)")
    head.add_row("solver", f"{game['solver']} (clock {c['solver_s']} s)")
    head.add_row("challenger", f"{game['challenger']} (clock {c['challenger_s']} s)")
    if c.get("mover_remaining_s") is not None:
        head.add_row("turn", f"{c['turn']}, {c['mover_remaining_s']} s left")
    if game.get("bundle_cid"):
        head.add_row("bundle", game["bundle_cid"])
    console.print(Group(head, *bisection_lines(game)))
    for line in ruling_lines(game.get("ruling")):
        console.print(line, soft_wrap=True, highlight=False, markup=False)
    return 0


def ruling_lines(ruling: dict[str, Any] | None) -> list[str]:
    """The arbiter committee's ruling: phase and decision, then one line per vote."""
    if not ruling:
        return []
    if ruling.get("computed_hash"):
        decided = "solver won" if ruling["solver_won"] else "solver lost"
        decided += ", proposal overturned" if ruling.get("overturned") else ""
    else:
        decided = "expired: game voided" if ruling.get("expired") else "not decided yet"
    lines = [f"ruling: {ruling['phase']}, {decided} (committee of {ruling['committee_size']})"]
    if ruling.get("computed_hash"):
        lines.append(f"  computed hash {ruling['computed_hash']}")
    if ruling.get("appellant"):
        lines.append(f"  appealed by {ruling['appellant']}: escalated to the whole committee")
    for vote in ruling["votes"]:
        slashed = vote.get("slashed")
        lost = f", slashed {int(slashed) / 1e18:g} WORK" if slashed else ""
        lines.append(
            f"  vote {vote['arbiter']}: {vote['computed_hash']} (tally {vote['tally']}){lost}"
        )
    return lines


# ------------------------------------------------------------------------------ parser


def global_flags(defaults: bool) -> argparse.ArgumentParser:
    """--api, --rpc, --json; with `defaults=False` they leave earlier values alone, so the
    same flags work before or after any subcommand."""
    parent = argparse.ArgumentParser(add_help=False)
    keep = argparse.SUPPRESS
    parent.add_argument(
        "--api",
        default=os.environ.get("ASSAY_API_URL", DEFAULT_API) if defaults else keep,
        help="the Assay API (default $ASSAY_API_URL or %(default)s)" if defaults else None,
    )
    parent.add_argument(
        "--rpc",
        default=os.environ.get("ASSAY_RPC_URL", DEFAULT_RPC) if defaults else keep,
        help="the chain's JSON-RPC, for transactions (default $ASSAY_RPC_URL)"
        if defaults
        else None,
    )
    parent.add_argument(
        "--json", action="store_true", default=False if defaults else keep, help="print JSON"
    )
    return parent


def _with_key(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--key",
        default=os.environ.get("ASSAY_SUBMITTER_KEY_FILE"),
        help="file with your hex private key, mode 600 (default $ASSAY_SUBMITTER_KEY_FILE,"
        " else the devnet's var/devnet/keys/submitter.key)",
    )


def add_job_commands(sub: Any) -> None:
    """Add `job ...` and `dispute ...` to an argparse subparsers object."""
    flags = global_flags(defaults=False)
    job = sub.add_parser("job", help="submit, follow and settle training jobs", parents=[flags])
    cmds = job.add_subparsers(dest="job_command", required=True)

    submit = cmds.add_parser("submit", help="sign and submit a job spec", parents=[flags])
    submit.add_argument(
        "spec", nargs="?", help="the job spec (JSON); optional with --model/--model-dir"
    )
    own = submit.add_mutually_exclusive_group()
    own.add_argument("--model", help="your own model: a torch.export program (.pt2)")
    own.add_argument("--model-dir", help="your own model, lowered by `assay model lower`")
    submit.add_argument("--weights", help="initial weights (safetensors): fine-tuning")
    submit.add_argument(
        "--loss", choices=("cross_entropy", "mse"), help="for a --model that returns logits"
    )
    submit.add_argument("--data-format", choices=("tensors", "tokens"), default="tensors")
    submit.add_argument("--steps", type=int, default=100, help="with --model and no spec")
    submit.add_argument("--batch-size", type=int, default=16, help="with --model and no spec")
    submit.add_argument("--checkpoint-interval", type=int, help="K (default: steps)")
    submit.add_argument(
        "--micro-batches",
        type=int,
        help="M (data.micro_batches): solvers may train the job on any W workers dividing M",
    )
    submit.add_argument("--seed", type=int, default=0, help="data-order seed")
    submit.add_argument("--lr", type=float, default=1e-3)
    submit.add_argument("--weight-decay", type=float, default=0.0)
    submit.add_argument("--warmup-steps", type=int, default=0, help="> 0: linear schedule")
    data = submit.add_mutually_exclusive_group(required=True)
    data.add_argument(
        "--data", help="dataset file to upload (build one with `assay dataset build|pack`)"
    )
    data.add_argument("--data-cid", help="CID of a dataset already in the artifact store")
    _with_key(submit)
    submit.add_argument("--reward", required=True, help="WORK paid to the solver")
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

    status = cmds.add_parser(
        "status", help="show a job (id) or a submission (32-hex id)", parents=[flags]
    )
    status.add_argument("id")
    status.set_defaults(func=cmd_status)

    watch = cmds.add_parser("watch", help="follow a job live until it ends", parents=[flags])
    watch.add_argument("id")
    watch.add_argument("--interval", type=float, default=2.0)
    watch.add_argument("--timeout", type=float, default=0.0, help="stop after (0: never)")
    watch.set_defaults(func=cmd_watch)

    for name, text in (
        ("cancel", "cancel your open, unclaimed job (refunds the reward)"),
        ("finalize", "finalize a job whose challenge window closed (pays the solver)"),
    ):
        p = cmds.add_parser(name, help=text, parents=[flags])
        p.add_argument("id")
        _with_key(p)
        p.set_defaults(func=lambda a, c, api, what=name: _transact(a, c, api, what))
    for name, text in (
        ("withdraw", "withdraw your credited tokens (refunds, winnings)"),
        ("revoke", "invalidate every order you signed that was not relayed yet"),
    ):
        p = cmds.add_parser(name, help=text, parents=[flags])
        _with_key(p)
        p.set_defaults(func=lambda a, c, api, what=name: _transact(a, c, api, what))

    result = cmds.add_parser(
        "result", help="download the final checkpoint and verify it on-chain", parents=[flags]
    )
    result.add_argument("id")
    result.add_argument("--out", default=".", help="folder to write the checkpoint into")
    result.set_defaults(func=cmd_result)

    dispute = sub.add_parser("dispute", help="inspect dispute games", parents=[flags])
    dcmds = dispute.add_subparsers(dest="dispute_command", required=True)
    show = dcmds.add_parser("show", help="print a game's bisection", parents=[flags])
    show.add_argument("id", help="dispute game id")
    show.set_defaults(func=cmd_dispute_show)


def report_error(console: Console, exc: BaseException) -> None:
    """One line for the error, then each field problem not already in that line."""
    message = str(exc)
    console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    for problem in getattr(exc, "problems", ()):
        line = f"{problem.field}: {problem.reason}"
        if line not in message:
            console.print(f"  {line}", highlight=False, soft_wrap=True)
    for problem in getattr(exc, "errors", ()):
        if str(problem) not in message:
            console.print(f"  {problem}", highlight=False, soft_wrap=True)


def run_job_command(args: argparse.Namespace, console: Console) -> int:
    api = ApiClient(args.api)
    try:
        with web3_errors(getattr(args, "rpc", None) or "the chain node", transport=False):
            code: int = args.func(args, console, api)
        return code
    except (ApiError, CliError, JobSpecError, ChainError, StoreError) as exc:
        report_error(console, exc)
        return 2
    except httpx.HTTPError as exc:
        console.print(
            f"[red]error:[/] cannot reach the API at {args.api}: {exc}",
            highlight=False,
            soft_wrap=True,
        )
        return 2
    finally:
        api.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="assay", description="Assay submitter CLI", parents=[global_flags(defaults=True)]
    )
    add_job_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_job_command(args, Console())


if __name__ == "__main__":
    sys.exit(main())
