"""`assay model check|lower` and `assay train --local`: your own torch model on repops.

    assay model check MODEL.pt2 [--data FILE [--data-format tensors|tokens]] [--batch-size B]
    assay model lower MODEL.pt2 --out DIR [--batch-size B] [--weights FILE]
    assay train --local --model MODEL.pt2|DIR --data FILE --steps N --batch-size B --seed S
                [--data-format tensors|tokens] [--weights FILE] [--threads T]
                [--reference torch] [--lr LR] [--weight-decay WD] [--warmup-steps W]
                [--checkpoint-interval K] [--out DIR]
                [--loss cross_entropy|mse [--label-smoothing E]]
                [--micro-batches M [--world-size W | --prepare-only]]

MODEL.pt2 is a `torch.export.save` file of a module whose ``forward(inputs, targets)``
returns the scalar loss, or whose ``forward(inputs)`` returns logits / predictions: then
``--loss`` names the loss the program applies to them and the dataset's ``targets``
(required for such a model, refused for one that returns its loss).  It is the
submitter's own file, opened only by these commands on the submitter's machine
(``torch.export.load`` may run code from it).  `model lower` writes what solvers and
referees load instead: ``graph.json`` (the canonical repops graph) and
``weights.safetensors``; `train --local` accepts that directory too.

`train --local` trains exactly as a solver would (`repops.program.train`, checkpoints
every K steps saved in --out) and ends with ``final_loss: X`` and ``state_hash: H``;
``--reference torch`` also trains the exported module with plain torch fp32 AdamW on the
same batches and prints ``reference (plain torch fp32) final_loss: X`` just before them
(never a hash: it is not reproducible).
``--micro-batches M`` sets the spec's ``data.micro_batches`` (the model is lowered at
batch-size / M); ``--world-size W`` trains on W local worker processes
(`roles.dataparallel.launch`: same ``state_hash``, resumes from --out's last checkpoint,
restarts lost workers); ``--prepare-only`` writes --out as a run directory for
``torchrun ... -m roles.dataparallel worker DIR`` on several machines.
Every user error is one line and exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class ModelCliError(Exception):
    """A model or data file the command refuses (one line for the user)."""


@dataclass
class Loaded:
    """A lowered model plus, for a .pt2, the exported program (for --reference torch)."""

    graph: Any  # repops.lowering.graph_json.LoweredGraph
    exported: Any | None
    dynamic: bool
    example_size: int


def add_model_commands(sub: Any, flags: argparse.ArgumentParser) -> None:
    model = sub.add_parser(
        "model", help="check or lower your own torch.export model", parents=[flags]
    )
    mcmds = model.add_subparsers(dest="model_command", required=True)
    check = mcmds.add_parser(
        "check", help="does MODEL.pt2 lower to repops (and fit --data)?", parents=[flags]
    )
    check.add_argument("model")
    check.add_argument("--data", help="a dataset (safetensors) to check against")
    check.add_argument("--data-format", choices=("tensors", "tokens"), default="tensors")
    check.add_argument("--batch-size", type=int, help="lower at this batch size")
    check.set_defaults(func=cmd_model_check)
    low = mcmds.add_parser("lower", help="write graph.json + weights.safetensors", parents=[flags])
    low.add_argument("model")
    low.add_argument("--out", required=True, help="output directory")
    low.add_argument("--batch-size", type=int, help="lower at this batch size")
    low.add_argument("--weights", help="initial weights (safetensors) instead of the export's")
    low.set_defaults(func=cmd_model_lower)
    tr = sub.add_parser(
        "train", help="train a model locally exactly as a solver would", parents=[flags]
    )
    tr.add_argument("--local", action="store_true", help="train on this machine (required)")
    tr.add_argument("--model", required=True, help="MODEL.pt2 or a `model lower` directory")
    tr.add_argument("--data", required=True, help="a dataset (safetensors)")
    tr.add_argument(
        "--data-format",
        choices=("tensors", "tokens"),
        default="tensors",
        help="tensors: named rows; tokens: one 1-D 'tokens' stream, windows of the model's T",
    )
    tr.add_argument("--steps", type=int, required=True)
    tr.add_argument("--batch-size", type=int, required=True)
    tr.add_argument("--seed", type=int, default=0, help="the data-order seed")
    tr.add_argument("--weights", help="initial weights (safetensors) instead of the export's")
    tr.add_argument("--threads", type=int, help="torch CPU threads")
    tr.add_argument("--reference", choices=("torch",), help="also train in plain torch fp32")
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay of matrices")
    tr.add_argument("--warmup-steps", type=int, default=0, help="> 0: linear schedule")
    tr.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    tr.add_argument("--momentum", type=float, default=0.9, help="SGD momentum")
    tr.add_argument(
        "--schedule",
        choices=("constant", "linear", "cosine"),
        help="default: linear when --warmup-steps > 0, else constant",
    )
    tr.add_argument("--min-lr-ratio", type=float, default=0.0, help="cosine: final lr / lr")
    tr.add_argument("--clip-grad-norm", type=float, help="global-norm gradient clipping")
    tr.add_argument(
        "--loss",
        choices=("cross_entropy", "mse"),
        help="for a model whose forward returns logits/predictions (required for it)",
    )
    tr.add_argument("--label-smoothing", type=float, help="cross_entropy label smoothing")
    tr.add_argument("--checkpoint-interval", type=int, help="K (default: steps)")
    tr.add_argument(
        "--micro-batches",
        type=int,
        default=1,
        help="M: each step is M micro-batches of batch-size/M rows (the model is lowered "
        "at batch-size/M); gradients combine by a fixed tree",
    )
    tr.add_argument(
        "--world-size",
        type=int,
        help="train on W local worker processes (torch.distributed, gloo; W divides M): the "
        "same state hash as one process; resumes from --out's last checkpoint",
    )
    tr.add_argument(
        "--prepare-only",
        action="store_true",
        help="only write the run directory --out for torchrun workers (several machines)",
    )
    tr.add_argument("--out", default="assay-train", help="checkpoint directory")
    tr.set_defaults(func=cmd_train)


# ----------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------


def _read(path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ModelCliError(f"cannot read {path}: {exc.strerror}") from None


def load_model(path: str, batch_size: int | None) -> Loaded:
    """Lower a .pt2 (submitter's machine) or load a lowered directory (no code runs)."""
    from repops.lowering import graph_json

    p = Path(path)
    if p.is_dir():
        try:
            lg = graph_json.loads(_read(p / "graph.json"))
            lg.weights = graph_json.load_weights(lg, _read(p / "weights.safetensors"))
        except graph_json.GraphInvalid as e:
            raise ModelCliError(f"{path}: {e}") from None
        if batch_size is not None and batch_size != lg.batch_size:
            how = "lower it again at that size" if lg.dynamic_batch else "its export is static"
            raise ModelCliError(f"{path} is lowered at batch size {lg.batch_size}: {how}")
        return Loaded(lg, None, lg.dynamic_batch, lg.batch_size)
    import torch

    from repops.lowering.export import inspect_batch, lower

    if not p.exists():
        raise ModelCliError(f"cannot read {path}: no such file")
    try:
        ep = torch.export.load(str(p))
    except Exception as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise ModelCliError(f"{path} is not a torch.export program: {first}") from None
    info = inspect_batch(ep)
    return Loaded(lower(ep, batch_size), ep, info.dynamic, info.example_size)


def use_weights(m: Loaded, path: str | None) -> None:
    """Replace the initial weights by a safetensors file (fine-tuning), checked strictly."""
    if path is None:
        return
    from repops.lowering import graph_json

    try:
        m.graph.weights = graph_json.load_weights(m.graph, _read(path))
    except graph_json.GraphInvalid as e:
        raise ModelCliError(f"{path}: {e}") from None


def load_data(path: str, fmt: str = "tensors") -> Any:
    from repops import data as data_mod
    from repops.errors import DatasetInvalid

    try:
        return data_mod.Dataset.of_format(fmt, _read(path))
    except DatasetInvalid as e:
        raise ModelCliError(f"{path}: {e}") from None


# ----------------------------------------------------------------------------------------
# model check / lower
# ----------------------------------------------------------------------------------------


def _summary(console: Console, m: Loaded) -> None:
    lg = m.graph
    console.print(f"parameters: {lg.param_count:,} in {len(lg.params)} tensors")
    console.print(f"ops: {lg.op_count}")
    batch = (
        f"dynamic (torch.export.Dim): any batch size; lowered at {lg.batch_size}"
        if m.dynamic
        else f"static: trains only at batch size {m.example_size}"
    )
    console.print(f"batch: {batch}")
    inputs = ", ".join(f"{k} {dt}{list(s)}" for k, (s, dt) in sorted(lg.batch.items()))
    console.print(f"inputs: {inputs}")
    if lg.returns == "loss":
        console.print("returns: the loss (forward computes it; the spec names no loss)")
    else:
        out = lg.graph.nodes[lg.loss]
        console.print(
            f"returns: logits/predictions {out.dtype}{list(out.shape)}: the spec must name "
            "a loss (--loss cross_entropy | mse), applied to them and the data's targets",
            highlight=False,
        )
    if lg.buffers:
        bufs = ", ".join(f"{k} {dt}{list(s)}" for k, (s, dt) in sorted(lg.buffers.items()))
        console.print(f"state buffers (updated by forward, not trained): {bufs}")
    table = Table(title="ops by kind")
    table.add_column("op")
    table.add_column("count", justify="right")
    for op, n in lg.ops_by_kind().items():
        table.add_row(op, str(n))
    console.print(table)


def cmd_model_check(args: argparse.Namespace, console: Console) -> int:
    m = load_model(args.model, args.batch_size)
    _summary(console, m)
    if args.data:
        from repops.lowering.graph_json import dataset_problems, tokens_problems

        ds = load_data(args.data, args.data_format)
        if args.data_format == "tokens":
            problems = tokens_problems(m.graph, ds.tensors["tokens"])
        else:
            problems = dataset_problems(m.graph, ds.tensors, _guess_targets(m.graph, ds.tensors))
        if problems:
            console.print(f"[red]error:[/] {args.data} does not fit the model:", highlight=False)
            for p in problems:
                console.print(f"  {p}", highlight=False, soft_wrap=True)
            return 1
        rows = next(iter(ds.tensors.values())).shape[0]
        console.print(f"data: {args.data} fits ({rows} rows)")
    console.print("[green]ok:[/] the model lowers to repops")
    return 0


def _guess_targets(lg: Any, tensors: Any) -> tuple[tuple[int, ...], str] | None:
    """For an output graph: the targets spec that the dataset's targets dtype implies
    (integers: cross_entropy classes; floats: mse); None for a loss graph."""
    if lg.returns != "output":
        return None
    from repops import program as prog_mod
    from repops.errors import SpecInvalid

    t = tensors.get("targets")
    name = "mse" if t is not None and t.dtype.is_floating_point else "cross_entropy"
    try:
        return prog_mod._targets_spec(lg, prog_mod.GraphLoss(name))
    except SpecInvalid:  # logits of rank 1: report the dataset's targets against mse's
        return lg.graph.nodes[lg.loss].shape, "float32"


def cmd_model_lower(args: argparse.Namespace, console: Console) -> int:
    m = load_model(args.model, args.batch_size)
    use_weights(m, args.weights)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gj, wj = m.graph.to_json(), m.graph.weights_bytes()
    (out / "graph.json").write_bytes(gj)
    (out / "weights.safetensors").write_bytes(wj)
    console.print(f"wrote {out / 'graph.json'} (sha256 {hashlib.sha256(gj).hexdigest()})")
    console.print(f"wrote {out / 'weights.safetensors'} (sha256 {hashlib.sha256(wj).hexdigest()})")
    return 0


# ----------------------------------------------------------------------------------------
# train --local
# ----------------------------------------------------------------------------------------


def local_spec(
    graph_sha: str,
    weights_sha: str,
    steps: int,
    batch_size: int,
    seed: int,
    lr: float,
    weight_decay: float,
    warmup_steps: int,
    checkpoint_interval: int,
    data_format: str = "tensors",
    *,
    optimizer: dict[str, Any] | None = None,
    lr_schedule: dict[str, Any] | None = None,
    clip_grad_norm: float | None = None,
    loss: str | dict[str, Any] | None = None,
    micro_batches: int = 1,
) -> dict[str, Any]:
    """The job spec a solver would receive for this local run (graph model, tensors data):
    AdamW with a linear or constant schedule unless `optimizer` / `lr_schedule` are given
    (`jobspec.factory.sgd`, `jobspec.factory.schedule`); no clipping unless asked."""
    schedule: dict[str, Any] = (
        {"name": "linear", "warmup_steps": warmup_steps} if warmup_steps else {"name": "constant"}
    )
    spec: dict[str, Any] = {
        "repops_version": "repops-2",
        "program": {
            "model": {
                "name": "graph",
                "graph": {"sha256": graph_sha},
                "weights": {"sha256": weights_sha},
            },
            "optimizer": optimizer
            or {
                "name": "adamw",
                "lr": lr,
                "beta1": 0.9,
                "beta2": 0.999,
                "eps": 1e-8,
                "weight_decay": weight_decay,
            },
            "lr_schedule": lr_schedule or schedule,
        },
        "data": {"format": data_format, "batch_size": batch_size, "seed": seed},
        "steps": steps,
        "checkpoint_interval": checkpoint_interval,
        "seed": seed,
    }
    if clip_grad_norm is not None:
        spec["program"]["clip_grad_norm"] = clip_grad_norm
    if loss is not None:  # a model that returns logits: the loss the program applies
        spec["program"]["loss"] = loss
    if micro_batches != 1:
        spec["data"]["micro_batches"] = micro_batches
    return spec


def spec_loss(returns: str, loss: str | None, label_smoothing: float | None) -> Any:
    """``program.loss`` for --loss / --label-smoothing, refusing what does not fit."""
    if returns == "loss" and (loss is not None or label_smoothing is not None):
        raise ModelCliError("this model's forward returns its loss: drop --loss")
    if returns == "output" and loss is None:
        raise ModelCliError(
            "this model's forward returns logits: name the loss with --loss cross_entropy|mse"
        )
    if label_smoothing is not None:
        if loss != "cross_entropy":
            raise ModelCliError("--label-smoothing applies to --loss cross_entropy only")
        return {"name": loss, "label_smoothing": label_smoothing}
    return loss


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    import torch

    from jobspec import factory
    from repops import hashing
    from repops import program as prog_mod
    from repops.errors import DatasetInvalid, SpecInvalid

    if not args.local:
        raise ModelCliError("only --local training runs here; submit a job with `assay job submit`")
    if args.threads is not None:
        if args.threads < 1:
            raise ModelCliError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    micro = args.micro_batches
    if micro < 1 or args.batch_size % micro:
        raise ModelCliError(f"--micro-batches {micro} must divide --batch-size {args.batch_size}")
    if args.world_size is not None and (args.world_size < 1 or micro % args.world_size):
        raise ModelCliError(f"--world-size {args.world_size} must divide --micro-batches {micro}")
    m = load_model(args.model, args.batch_size // micro)
    use_weights(m, args.weights)
    if args.reference and m.exported is None:
        raise ModelCliError("--reference torch needs the MODEL.pt2, not a lowered directory")
    loss = spec_loss(m.graph.returns, args.loss, args.label_smoothing)
    ds = load_data(args.data, args.data_format)
    g_sha, w_sha, fetch = prog_mod.local_artifacts(m.graph)
    k = args.checkpoint_interval or args.steps
    spec = local_spec(
        g_sha,
        w_sha,
        args.steps,
        args.batch_size,
        args.seed,
        args.lr,
        args.weight_decay,
        args.warmup_steps,
        k,
        args.data_format,
        optimizer=(
            factory.sgd(args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
            if args.optimizer == "sgd"
            else None
        ),
        lr_schedule=(
            None
            if args.schedule is None
            else factory.schedule(
                args.warmup_steps, name=args.schedule, min_lr_ratio=args.min_lr_ratio
            )
        ),
        clip_grad_norm=args.clip_grad_norm,
        loss=loss,
        micro_batches=micro,
    )
    try:
        program = prog_mod.build_program(spec, fetch)
        prog_mod.check_dataset(program, ds)
    except (SpecInvalid, DatasetInvalid) as e:
        raise ModelCliError(str(e)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.json").write_bytes(prog_mod.canonical_json(spec))
    (out / "graph.json").write_bytes(fetch("graph", {"sha256": g_sha}))
    (out / "weights.safetensors").write_bytes(fetch("weights", {"sha256": w_sha}))
    if args.world_size is not None or args.prepare_only:
        return _train_parallel(args, console, program, spec, fetch, (g_sha, w_sha))
    state = prog_mod.init_state(program)
    (out / "ckpt-0000.safetensors").write_bytes(prog_mod.save_checkpoint(program, state))
    console.print(
        f"training {args.steps} steps, batch {args.batch_size}, {program.tape.num_ops} ops/step, "
        f"{torch.get_num_threads()} threads; checkpoints every {k} steps in {out}"
    )
    losses: list[float] = []
    progress = Progress(
        TextColumn("repops"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=args.steps, loss="-")
        while prog_mod.step_of(state) < args.steps:
            state, part = prog_mod.train(
                program,
                state,
                ds,
                k,
                on_step=lambda _s, loss: progress.update(task, advance=1, loss=f"{loss:.4f}"),
            )
            losses.extend(part)
            i = prog_mod.step_of(state) // k
            blob = prog_mod.save_checkpoint(program, state)
            (out / f"ckpt-{i:04d}.safetensors").write_bytes(blob)
    if args.reference:
        ref = torch_reference_losses(m.exported, program, ds)
        console.print(f"reference (plain torch fp32) final_loss: {ref[-1]!r}", highlight=False)
    console.print(f"final_loss: {losses[-1]!r}", highlight=False)
    console.print(f"state_hash: {hashing.state_hash(state).hex()}", highlight=False)
    return 0


def _train_parallel(
    args: argparse.Namespace,
    console: Console,
    program: Any,
    spec: dict[str, Any],
    fetch: Any,
    shas: tuple[str, str],
) -> int:
    """`train --local --world-size W`: W local workers (`roles.dataparallel.launch`)."""
    from repops import hashing
    from repops import program as prog_mod
    from roles import dataparallel as dp

    out = Path(args.out)
    arts = {sha: fetch("artifact", {"sha256": sha}) for sha in shas}
    try:
        dp.prepare_run(out, spec, _read(args.data), arts)
    except dp.RunInvalid as e:
        raise ModelCliError(str(e)) from None
    if args.prepare_only:
        console.print(f"prepared {out}: start the workers (one per process) on every machine with")
        console.print(
            "  torchrun --nnodes N --node-rank I --nproc-per-node P --master-addr HOST0 "
            f"--master-port 29500 -m roles.dataparallel worker {out}",
            highlight=False,
        )
        return 0
    w = args.world_size
    console.print(
        f"training {args.steps} steps, batch {args.batch_size} = {program.micro_batches} "
        f"micro-batches, on {w} workers (gloo); checkpoints in {out}, logs in {out / 'logs'}"
    )
    progress = Progress(
        TextColumn("repops x{task.fields[w]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[ranks]}"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    with progress:
        task = progress.add_task("train", total=args.steps, loss="-", ranks="", w=w)

        def on_status(st: dp.Status) -> None:
            progress.update(task, completed=st.step, loss=f"{st.loss:.4f}", ranks=st.line())

        def on_event(ev: dp.Event) -> None:
            progress.console.print(f"[yellow]{ev.text}[/yellow]")

        try:
            res = dp.launch(out, w, threads=args.threads, on_status=on_status, on_event=on_event)
        except (dp.RunInvalid, dp.LaunchFailed) as e:
            raise ModelCliError(str(e)) from None
    state = prog_mod.load_checkpoint(program, res.state)
    if res.losses:
        console.print(f"final_loss: {res.losses[-1]!r}", highlight=False)
    console.print(f"state_hash: {hashing.state_hash(state).hex()}", highlight=False)
    return 0


def torch_reference_losses(exported: Any, program: Any, ds: Any) -> list[float]:
    """Train the exported module in plain torch fp32 (same optimizer, schedule, clipping
    and batches: `repops.torch_reference.torch_optimizer`).

    Not reproducible (torch kernels, torch autograd): for comparison only.
    """
    import copy

    import torch

    from repops import data as data_mod
    from repops.torch_reference import torch_optimizer

    # a copy: exported.module() shares its tensors with the export's state dict
    module = copy.deepcopy(exported.module())
    init = program.initial
    with torch.no_grad():
        named = dict(module.named_parameters())
        buffers = dict(module.named_buffers())
        for name, t in init.items():
            (named[name] if name in named else buffers[name]).copy_(t)
    decay = [p for n, p in named.items() if p.dim() >= 2]
    rest = [p for n, p in named.items() if p.dim() < 2]
    opt, sched = torch_optimizer(program, decay, rest)
    n = program.steps
    names = sorted(program.batch_specs)
    losses: list[float] = []
    for t in range(n):
        b = data_mod.batch(ds, program.data_seed, t, program.batch_size, program.block)
        loss = module(*[b[k] for k in _input_order(exported, names)])
        spec_named = program.graph_loss
        if spec_named is not None and spec_named.name == "mse":
            loss = torch.nn.functional.mse_loss(loss, b["targets"])
        elif spec_named is not None:
            loss = torch.nn.functional.cross_entropy(
                loss,
                b["targets"],
                ignore_index=spec_named.ignore_index,
                label_smoothing=spec_named.label_smoothing,
            )
        opt.zero_grad()
        loss.backward()
        if program.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), program.clip_grad_norm)
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        if not math.isfinite(losses[-1]):
            break
    return losses


def _input_order(exported: Any, names: list[str]) -> list[str]:
    """The user inputs in forward-argument order."""
    from torch.export.graph_signature import InputKind

    order = [
        s.arg.name for s in exported.graph_signature.input_specs if s.kind == InputKind.USER_INPUT
    ]
    return [n for n in order if n in names]


def run_model_command(args: argparse.Namespace, console: Console) -> int:
    """Run model/train with their errors as one red line (exit 1)."""
    from repops.errors import RepopsError

    try:
        code: int = args.func(args, console)
        return code
    except (ModelCliError, RepopsError) as exc:
        message = str(exc)
        problems = getattr(exc, "problems", None)
        if isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems):
            console.print(f"[red]error:[/] {len(problems)} problem(s):", highlight=False)
            for p in problems:
                console.print(f"  {p}", highlight=False, soft_wrap=True)
        else:
            console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
        return 1
