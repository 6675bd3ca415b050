"""The `assay` command: every subcommand a user of the market runs.

    assay devnet up|status|down [--workdir DIR]      a local market in the background
    assay faucet ADDRESS AMOUNT                      devnet WORK for an address
    assay dataset build digits|chars --out FILE      a dataset in repops' formats
    assay dataset pack digits|chars ... --out FILE   your own data into those formats
    assay job submit|status|watch|cancel|finalize|withdraw|revoke|result ...
    assay dispute show GAME
    assay model check|lower MODEL.pt2 ...            your own torch.export model (model_cli)
    assay train --local --model MODEL.pt2 --data FILE --steps N --batch-size B --seed S
                [--micro-batches M [--world-size W | --prepare-only]]
    assay deploy --rpc https://rpc.example --key deployer.key --chain-id 11155111 \
                 --out var/deployment.json [--arbiter 0x...] [--yes]

Global flags (--api, --rpc, --json) are accepted anywhere on the line.

`deploy` connects to any EVM chain, checks its chain id (against --chain-id when given),
shows what it is about to do and asks for confirmation unless --yes, deploys the
contracts (chain.deploy), then verifies every deployed contract's runtime bytecode
against the compiled artifact (immutables masked) before writing the deployment JSON
that the API, worker, indexer and roles read.  The key file is read locally and never
leaves this process.  Errors are one red line, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.prompt import Confirm
from rich.table import Table

from chain.client import ChainClient, load_artifact, web3_errors
from chain.deploy import Deployment, deploy
from chain.errors import ChainError
from chain.keys import load_key
from deploy.devnet import DevnetCliError, add_devnet_commands
from deploy.model_cli import add_model_commands, run_model_command
from submitter.cli import add_job_commands, global_flags, report_error, run_job_command

PUSH32 = 0x7F
PUSH1 = 0x60


class DeployError(Exception):
    """A deployment the CLI refuses or could not verify (one line for the user)."""


def immutable_mask(code: bytes) -> list[bool]:
    """For each byte of compiled runtime code: may it differ once deployed?

    solc leaves every immutable as a zero-filled PUSH32 immediate in the runtime code and
    fills it in the constructor; those 32-byte windows are the only bytes allowed to move.
    """
    mask = [False] * len(code)
    i = 0
    while i < len(code):
        op = code[i]
        if PUSH1 <= op <= PUSH32:
            width = op - PUSH1 + 1
            if op == PUSH32 and not any(code[i + 1 : i + 1 + width]):
                for j in range(i + 1, min(len(code), i + 1 + width)):
                    mask[j] = True
            i += 1 + width
        else:
            i += 1
    return mask


def runtime_matches(expected: bytes, actual: bytes) -> bool:
    """Whether deployed `actual` is compiled `expected` with only immutables filled in."""
    if len(expected) != len(actual):
        return False
    mask = immutable_mask(expected)
    return all(m or e == a for e, a, m in zip(expected, actual, mask, strict=True))


def verify_deployment(client: ChainClient, deployment: Deployment) -> list[str]:
    """Problems with the deployed code (empty when every contract matches its artifact)."""
    problems: list[str] = []
    for name, address in sorted(deployment.addresses.items()):
        try:
            artifact = load_artifact(name)
        except ChainError:
            problems.append(f"{name}: no compiled artifact to verify against")
            continue
        expected = bytes.fromhex(artifact.deployed_bytecode.removeprefix("0x"))
        actual = bytes(client.w3.eth.get_code(address))  # type: ignore[arg-type]
        if not actual:
            problems.append(f"{name} at {address}: no code")
        elif not runtime_matches(expected, actual):
            problems.append(f"{name} at {address}: runtime bytecode differs from the artifact")
    return problems


def cmd_deploy(args: argparse.Namespace, console: Console) -> int:
    account = load_key(Path(args.key))
    client = ChainClient.connect(args.rpc, account)
    chain_id = int(client.w3.eth.chain_id)
    if args.chain_id is not None and args.chain_id != chain_id:
        raise DeployError(f"the node at {args.rpc} is chain {chain_id}, not {args.chain_id}")
    out = Path(args.out)
    balance = int(client.w3.eth.get_balance(account.address))
    table = Table(title="deploy Assay", show_header=False)
    table.add_row("rpc", args.rpc)
    table.add_row("chain id", str(chain_id))
    table.add_row("deployer", f"{account.address} ({balance / 10**18:.4f} native)")
    game = "" if args.no_game else ", ArbiterReferee, DisputeGame"
    table.add_row("contracts", "WorkToken, JobMarket" + game)
    table.add_row("output", str(out))
    console.print(table)
    if out.exists() and not args.force:
        raise DeployError(f"{out} exists: pass --force to replace it")
    if not args.yes and not Confirm.ask("deploy now?", console=console, default=False):
        console.print("aborted: nothing was deployed")
        return 1
    with console.status("deploying..."):
        deployment = deploy(
            client,
            with_dispute_game=not args.no_game,
            arbiters=tuple(args.arbiter or ()),
        )
    problems = verify_deployment(client, deployment)
    if problems:
        raise DeployError("verification failed: " + "; ".join(problems))
    deployment.write(out)
    for name, address in sorted(deployment.addresses.items()):
        console.print(f"[green]verified[/] {name} at {address}")
    console.print(f"wrote {out} (chain {deployment.chain_id}, block {deployment.block})")
    return 0


def cmd_dataset(args: argparse.Namespace, console: Console) -> int:
    from deploy import datasets

    if args.dataset_command == "build":
        data = datasets.build(args.kind)
    elif args.safetensors:
        data = datasets.repack_safetensors(_read(args.safetensors))
    elif args.kind == "digits":
        if not (args.x and args.y):
            raise datasets.DatasetError("pack digits needs --x FILE.npy and --y FILE.npy")
        data = datasets.pack_digits(datasets._npy(Path(args.x)), datasets._npy(Path(args.y)))
    elif args.kind == "chars":
        if not args.text:
            raise datasets.DatasetError("pack chars needs --text FILE")
        data = datasets.pack_chars(_read(args.text))
    else:
        raise datasets.DatasetError("pack needs a kind (digits, chars) or --safetensors FILE")
    ds = datasets.check(data)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    from market.store import compute_cid

    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in sorted(ds.tensors.items()))
    console.print(
        f"[green]wrote[/] {out} ({len(data):,} bytes), format {ds.format}: {shapes}; "
        f"CID {compute_cid(data).cid}"
    )
    return 0


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise DeployError(f"cannot read {path}: {exc.strerror}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="assay",
        description="Assay: verifiable ML training",
        parents=[global_flags(defaults=True)],
    )
    flags = global_flags(defaults=False)
    sub = parser.add_subparsers(dest="command", required=True)
    dep = sub.add_parser("deploy", help="deploy the contracts to an EVM chain", parents=[flags])
    dep.add_argument("--key", required=True, help="file with the deployer's hex private key")
    dep.add_argument("--chain-id", type=int, help="refuse unless the node reports this id")
    dep.add_argument("--out", default="var/deployment.json", help="deployment JSON to write")
    dep.add_argument("--arbiter", action="append", help="register an arbiter (repeatable)")
    dep.add_argument("--no-game", action="store_true", help="JobMarket and WorkToken only")
    dep.add_argument("--force", action="store_true", help="replace an existing output file")
    dep.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    dep.set_defaults(func=cmd_deploy)
    dataset = sub.add_parser("dataset", help="build or pack a dataset file", parents=[flags])
    dcmds = dataset.add_subparsers(dest="dataset_command", required=True)
    build = dcmds.add_parser("build", help="a built-in dataset", parents=[flags])
    build.add_argument("kind", choices=("digits", "chars"))
    build.add_argument("--out", required=True)
    build.set_defaults(func=cmd_dataset)
    pack = dcmds.add_parser("pack", help="your own data into a dataset format", parents=[flags])
    pack.add_argument("kind", nargs="?", choices=("digits", "chars"))
    pack.add_argument("--x", help="digits: (N, 64) pixels 0..16, a .npy file")
    pack.add_argument("--y", help="digits: (N,) labels 0..9, a .npy file")
    pack.add_argument("--text", help="chars: an ASCII text file")
    pack.add_argument("--safetensors", help="a safetensors file already in a format")
    pack.add_argument("--out", required=True)
    pack.set_defaults(func=cmd_dataset)
    add_devnet_commands(sub, flags)
    add_job_commands(sub)
    add_model_commands(sub, flags)
    sub.add_parser("doctor", help="repops conformance report for this machine").set_defaults(
        func=lambda args, console: cmd_doctor(console)
    )
    return parser


def cmd_doctor(console: Console) -> int:
    from repops.conformance import doctor_lines  # torch only for this command

    lines = doctor_lines()
    console.print("\n".join(lines), markup=False)
    return 0 if lines[-1].endswith("conforms") else 1


def main(argv: Sequence[str] | None = None) -> int:
    from deploy.datasets import DatasetError

    args = build_parser().parse_args(argv)
    console = Console()
    if args.command in ("job", "dispute"):
        return run_job_command(args, console)
    if args.command in ("model", "train"):
        return run_model_command(args, console)
    try:
        with web3_errors(getattr(args, "rpc", None) or "the chain node", transport=False):
            code: int = args.func(args, console)
        return code
    except (DeployError, ChainError, DevnetCliError, DatasetError) as exc:
        report_error(console, exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
