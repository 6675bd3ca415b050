"""From a job spec to a training program: validation, then the tape of one step.

A spec is validated by the schema the market shares (`jobspec.schema`: types, ranges,
cross-field rules) and the program is built from the typed `JobSpec` it returns; the
engine adds one explicit second step of its own (`_zoo_errors`: the zoo module accepts
the model config and trains on the dataset's format), and, for a graph model, the checks
that need the fetched artifacts (`_load_graph`: sha256, graph, weights, batch size).

Spec shape (the parts repops reads; other keys are ignored)::

    {"repops_version": "repops-2",
     "program": {"model": {"name": "mlp" | "gpt", "config": {...}}
                        | {"name": "graph", "graph": {"sha256": "<hex>", "cid": "..."},
                           "weights": {"sha256": "<hex>", "cid": "..."}},
                 "loss": "cross_entropy",   (a graph model: absent/"graph", or a named
                                             loss for one that returns logits: see
                                             `jobspec.schema._loss_errors`)
                 "optimizer": {"name": "adamw", "lr": 1e-3, "beta1": 0.9, "beta2": 0.999,
                               "eps": 1e-8, "weight_decay": 0.01}
                            | {"name": "sgd", "lr": 0.1, "momentum": 0.9,
                               "weight_decay": 0.0},
                 "lr_schedule": {"name": "constant"}
                              | {"name": "linear", "warmup_steps": 10}
                              | {"name": "cosine", "warmup_steps": 10, "min_lr_ratio": 0.1},
                 "clip_grad_norm": 1.0},   (optional: no clipping when absent)
     "data": {"dataset": "digits" | "stdlib_chars", "format": "repops-digits-v1" | ...,
              "batch_size": 32, "seed": 1, "cid": "..."},
     (either "dataset" or "format" names the dataset; "cid" does not change the bits)
     | {"format": "tensors" | "tokens", "batch_size": 8, "seed": 1, "cid": "..."}

A "graph" model is a canonical repops graph lowered from the submitter's torch.export
program (`repops.lowering`): its bytes and its initial weights (safetensors) are bound by
sha256 in the spec, fetched through the `fetch` argument of `build_program`, and trained
on a ``tensors`` dataset whose tensors are named like the graph's batch inputs.
     "steps": 100, "checkpoint_interval": 10, "seed": 0}

A training state maps names to tensors: ``param.<p>``; with AdamW ``adam.m.<p>``,
``adam.v.<p>``, ``adam.beta1_pow``/``adam.beta2_pow`` (float32 scalars: beta**t); with
SGD and momentum > 0 ``sgd.buf.<p>`` (the momentum buffer, zeros at step 0; none when
momentum is 0); ``meta.step`` and
``meta.data_cursor`` (int64 scalars), and for a graph model ``buffer.<b>`` for each
buffer its forward writes (batch-norm running statistics: not trained, initialised from
the weights file, next value = the graph's update node).  A graph's dropout masks read
``meta.step`` and ``rng.seed``, a constant of the tape equal to the spec's ``seed``.
One step is one execution of the tape: forward, loss, backward, LR schedule, AdamW,
counter increments, all as repops ops.

The optimizers (AdamW, SGD), gradient clipping and the learning-rate schedules are
specified and built in `repops.optim`; states, batches and the training loop live in
`repops.training`, checkpoint files in `repops.checkpoint`.  This module validates a spec
and builds its `Program` (the tape of one step); it re-exports the names of those modules
that callers have always imported from here.

This module must never read the clock, the environment or global random state.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from jobspec import schema
from repops import composites, optim
from repops import data as data_mod

# Re-exported (callers import these from here): the checkpoint, optimizer and training
# modules this one was split into.
from repops.checkpoint import State as State
from repops.checkpoint import check_state as check_state
from repops.checkpoint import load_checkpoint as load_checkpoint
from repops.checkpoint import save_checkpoint as save_checkpoint
from repops.data import DATASETS as DATASETS
from repops.errors import FieldError, RepopsError, SpecInvalid
from repops.lowering import graph_json
from repops.models import MODELS, ParamSpec
from repops.optim import CLIP_EPS as CLIP_EPS
from repops.optim import Optim as Optim
from repops.optim import Schedule as Schedule
from repops.optim import Sgd as Sgd
from repops.tape import Executor, Graph, Tape, backward
from repops.training import batch_for as batch_for
from repops.training import batch_hash as batch_hash
from repops.training import check_dataset as check_dataset
from repops.training import digits_accuracy as digits_accuracy
from repops.training import eval_loss as eval_loss
from repops.training import init_state as init_state
from repops.training import step_of as step_of
from repops.training import train as train
from repops.training import train_checkpoints as train_checkpoints
from repops.training import train_step as train_step

log = logging.getLogger(__name__)

GRAPH_MODEL = "graph"
# fetch(field path, {"sha256": ..., "cid": ...}) -> the artifact's bytes
Fetch = Callable[[str, Mapping[str, Any]], bytes]
MAX_STEPS = schema.MAX_STEPS  # the step counter converts to float32 exactly below 2**24
MAX_TAPE_NODES = 1 << 19  # a micro-batched step's tape (every micro-batch's copy) at most


def local_artifacts(lg: graph_json.LoweredGraph) -> tuple[str, str, Fetch]:
    """(graph sha256, weights sha256, a `fetch` serving both by sha256): a lowered graph
    trained without a store (local runs, benches, tests)."""
    gj, wj = lg.to_json(), lg.weights_bytes()
    g_sha, w_sha = hashlib.sha256(gj).hexdigest(), hashlib.sha256(wj).hexdigest()
    blobs = {g_sha: gj, w_sha: wj}
    return g_sha, w_sha, lambda _path, ref: blobs[ref["sha256"]]


@dataclass(eq=False)
class Program:
    """A validated job spec with its tape (build with `build_program`)."""

    spec: dict[str, Any]
    model_name: str
    config: Any
    optim: Optim | Sgd
    schedule: Schedule
    clip_grad_norm: float | None
    dataset: str
    batch_size: int
    data_seed: int
    steps: int
    checkpoint_interval: int
    seed: int
    params: dict[str, ParamSpec]
    tape: Tape
    state_specs: dict[str, tuple[tuple[int, ...], str]]
    batch_specs: dict[str, tuple[tuple[int, ...], str]]
    grad_norm_node: int | None = None  # the tape's total gradient norm (clipping only)
    _executors: dict[str, Executor] = field(default_factory=dict)
    initial: dict[str, torch.Tensor] = field(default_factory=dict)  # "weights" init values
    graph_loss: GraphLoss | None = None  # a graph model's spec-named loss (None: "graph")
    micro_batches: int = 1  # data.micro_batches: M micro-batches of batch_size / M rows

    @property
    def program_hash(self) -> bytes:
        """sha256 of the canonical JSON of the spec's deterministic part."""
        return hashlib.sha256(canonical_json(self.spec)).digest()

    def executor(self, device: torch.device) -> Executor:
        key = str(device)
        ex = self._executors.get(key)
        if ex is None:
            ex = Executor(self.tape, device)
            self._executors[key] = ex
        return ex

    @property
    def block(self) -> int:
        if isinstance(self.config, graph_json.LoweredGraph):
            return graph_json.token_block(self.config)
        return int(getattr(self.config, "block", 0))


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8 (DESIGN.md section 3)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# ----------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------


def spec_errors(spec: Any) -> list[FieldError]:
    """Every problem of `spec` as (field path, reason); empty when the spec is valid.

    Step 1 is the shared schema (`jobspec.schema.spec_errors`, the market's rules too);
    step 2, `_zoo_errors`, the engine's own: a zoo model's config must be one its module
    accepts and its dataset one of the module's formats.
    """
    errs = schema.spec_errors(spec)
    if errs:
        return errs
    return _zoo_errors(schema.JobSpec.model_validate(spec))[1]


def validate_spec(spec: Any) -> None:
    """Raise `SpecInvalid` naming every bad field, or return None."""
    errs = spec_errors(spec)
    if errs:
        raise SpecInvalid(errs)


# ---- program.loss of a graph model: validated by jobspec.schema (`_loss_errors`); here it
# ---- becomes the program's GraphLoss and is checked against the loaded graph ------------
@dataclass(frozen=True)
class GraphLoss:
    """The loss the program applies to an output graph's result and ``batch.targets``."""

    name: str  # "cross_entropy" | "mse"
    label_smoothing: float = 0.0
    ignore_index: int = -100


def graph_loss_of(loss: str | schema.GraphLoss) -> GraphLoss | None:
    """``program.loss`` of a graph model, as validated by `jobspec.schema` (its loss rule):
    "graph" or absent (the graph returns its loss: None), "cross_entropy", "mse" or the
    object form.  Whether it fits the graph (a loss graph takes none, an output graph
    needs one) is `graph_loss_fits`, once the graph is loaded."""
    if loss == "graph":
        return None
    if isinstance(loss, schema.GraphLoss):
        return GraphLoss(loss.name, float(loss.label_smoothing), int(loss.ignore_index))
    return GraphLoss(str(loss))


def graph_loss_fits(lg: graph_json.LoweredGraph, loss: GraphLoss | None) -> None:
    """Refuse (SpecInvalid, one line) a spec loss for a loss graph and none for an output."""
    if lg.returns == "loss" and loss is not None:
        raise SpecInvalid(
            [FieldError("program.loss", "this graph returns its loss: 'graph' or absent")]
        )
    if lg.returns == "output" and loss is None:
        raise SpecInvalid(
            [FieldError("program.loss", "this graph returns logits: name 'cross_entropy' or 'mse'")]
        )


# ---- end of program.loss ------------------------------------------------------


def _zoo_errors(js: schema.JobSpec) -> tuple[Any, list[FieldError]]:
    """Step 2 (engine only): (the zoo module's config, its errors); (None, []) for a graph
    model, whose checks need the fetched artifacts (`_load_graph`)."""
    model = js.program.model
    if isinstance(model, schema.GraphModel):
        return None, []
    errs: list[FieldError] = []
    mod = MODELS[model.name]
    config = mod.Config.from_dict(model.config.model_dump(), "program.model.config", errs)
    if DATASETS[str(js.data.name)] not in mod.DATASET_FORMATS:
        errs.append(
            FieldError("data.dataset", f"model {model.name} cannot train on {js.data.name}")
        )
    return config, errs


def _parse(spec: Any) -> dict[str, Any]:
    """The typed spec as `Program`'s fields (raises `SpecInvalid`)."""
    errs = schema.spec_errors(spec)
    if errs:
        raise SpecInvalid(errs)
    js = schema.JobSpec.model_validate(spec)
    config, errs = _zoo_errors(js)
    if errs:
        raise SpecInvalid(errs)
    prog = js.program
    opt = prog.optimizer
    optim: Optim | Sgd
    if isinstance(opt, schema.SgdOptimizer):
        optim = Sgd(lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    else:
        optim = Optim(opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weight_decay)
    sch = prog.lr_schedule
    if isinstance(sch, schema.CosineSchedule):
        schedule = Schedule("cosine", sch.warmup_steps, sch.min_lr_ratio)
    elif isinstance(sch, schema.LinearSchedule):
        schedule = Schedule("linear", sch.warmup_steps)
    else:
        schedule = Schedule("constant")
    name = prog.model.name
    return {
        "model_name": name,
        "config": config,
        "optim": optim,
        "schedule": schedule,
        "clip_grad_norm": None if prog.clip_grad_norm is None else float(prog.clip_grad_norm),
        "dataset": js.data.name,
        "batch_size": js.data.batch_size,
        "data_seed": js.data.seed,
        "micro_batches": js.data.micro_batches,
        "steps": js.steps,
        "checkpoint_interval": js.checkpoint_interval,
        "seed": js.seed,
        "module": _GraphModel if name == GRAPH_MODEL else MODELS[name],
        # an absent loss is "graph" for a graph model (the schema's default is the zoo's)
        "graph_loss": (
            graph_loss_of(prog.loss if "loss" in prog.model_fields_set else "graph")
            if name == GRAPH_MODEL
            else None
        ),
    }


# ----------------------------------------------------------------------------------------
# Tape construction
# ----------------------------------------------------------------------------------------


def build_program(spec: Mapping[str, Any], fetch: Fetch | None = None) -> Program:
    """Validate `spec` and build its program (raises `SpecInvalid`).

    A "graph" model's graph and weights bytes come from `fetch`; each must match the
    sha256 the spec names.
    """
    parsed = _parse(dict(spec))
    mod = parsed.pop("module")
    initial: dict[str, torch.Tensor] = {}
    if mod is _GraphModel:
        parsed["config"], initial = _load_graph(spec["program"]["model"], parsed, fetch)
        graph_loss_fits(parsed["config"], parsed["graph_loss"])
    cfg = parsed["config"]
    params: dict[str, ParamSpec] = mod.param_specs(cfg)
    micro = parsed["micro_batches"]
    # the batch of one micro-batch (batch_size / M rows), then the step's whole batch
    mspecs: dict[str, tuple[tuple[int, ...], str]] = mod.batch_specs(
        cfg, parsed["batch_size"] // micro
    )
    if mod is _GraphModel and parsed["graph_loss"] is not None:
        mspecs["targets"] = _targets_spec(cfg, parsed["graph_loss"])
    bspecs = _whole_batch(mspecs, micro)
    det = {
        k: spec[k]
        for k in ("repops_version", "program", "data", "steps", "checkpoint_interval", "seed")
    }
    det = json.loads(canonical_json(det))
    det["data"].pop("cid", None)  # where the file lives does not change the bits
    if det["data"].get("micro_batches") == 1:  # the default, spelled out: the same program
        del det["data"]["micro_batches"]
    if mod is _GraphModel:
        det["program"]["model"]["graph"].pop("cid", None)
        det["program"]["model"]["weights"].pop("cid", None)
    tape, sspecs, norm = _build_tape(
        mod,
        cfg,
        params,
        mspecs,
        parsed["optim"],
        parsed["schedule"],
        parsed["steps"],
        parsed["seed"],
        parsed["clip_grad_norm"],
        parsed["graph_loss"],
        micro,
    )
    return Program(
        spec=det,
        params=params,
        tape=tape,
        state_specs=sspecs,
        grad_norm_node=norm,
        batch_specs=bspecs,
        initial=initial,
        **parsed,
    )


def _load_graph(
    model: Mapping[str, Any], parsed: Mapping[str, Any], fetch: Fetch | None
) -> tuple[graph_json.LoweredGraph, dict[str, torch.Tensor]]:
    """Fetch, check and parse a graph model's canonical graph and initial weights."""
    blobs: dict[str, bytes] = {}
    for k in ("graph", "weights"):
        path = f"program.model.{k}"
        if fetch is None:
            raise SpecInvalid([FieldError(path, "no artifact resolver to fetch it with")])
        try:
            data = fetch(path, model[k])
        except (OSError, RepopsError, KeyError) as e:
            raise SpecInvalid([FieldError(path, f"cannot fetch: {e}")]) from None
        if hashlib.sha256(data).hexdigest() != model[k]["sha256"]:
            raise SpecInvalid([FieldError(f"{path}.sha256", "the fetched bytes hash differently")])
        blobs[k] = data
    try:
        lg = graph_json.loads(blobs["graph"])
        weights = graph_json.load_weights(lg, blobs["weights"])
    except graph_json.GraphInvalid as e:
        raise SpecInvalid([FieldError("program.model", str(e))]) from None
    b, micro = parsed["batch_size"], parsed["micro_batches"]
    if b != lg.batch_size * micro:
        how = "lower it again at this size" if lg.dynamic_batch else "its export is static"
        per = f" = micro-batch size {b // micro} x micro_batches {micro}" if micro > 1 else ""
        raise SpecInvalid(
            [
                FieldError(
                    "data.batch_size",
                    f"the graph is lowered at batch {lg.batch_size}, not {b // micro}{per}: {how}",
                )
            ]
        )
    return lg, weights


def _whole_batch(
    mspecs: Mapping[str, tuple[tuple[int, ...], str]], micro: int
) -> dict[str, tuple[tuple[int, ...], str]]:
    """The step's batch inputs: M micro-batches stacked on axis 0 of every tensor."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for k, (shape, dt) in mspecs.items():
        if micro > 1 and not shape:
            raise SpecInvalid(
                [FieldError("data.micro_batches", f"batch input {k} has no batch axis")]
            )
        out[k] = ((shape[0] * micro, *shape[1:]) if micro > 1 else shape, dt)
    return out


class _GraphModel:
    """The zoo-module interface over a lowered graph (config = the `LoweredGraph`)."""

    DATASET_FORMATS = (data_mod.TENSORS_FORMAT, data_mod.TOKENS_FORMAT)

    @staticmethod
    def param_specs(lg: graph_json.LoweredGraph) -> dict[str, ParamSpec]:
        # weight decay on matrices (ndim >= 2), like the zoo; initial values from weights
        return {n: ParamSpec(s, "weights", decay=len(s) >= 2) for n, s in lg.params.items()}

    @staticmethod
    def batch_specs(
        lg: graph_json.LoweredGraph, batch_size: int
    ) -> dict[str, tuple[tuple[int, ...], str]]:
        return dict(lg.batch)

    @staticmethod
    def apply_loss(g: Graph, out: int, targets: int, loss: GraphLoss) -> int:
        """The spec-named loss of an output graph (torch's, mean reduction)."""
        if loss.name == "mse":
            return composites.mse(g, out, targets)
        return composites.cross_entropy(
            g, out, targets, ignore_index=loss.ignore_index, label_smoothing=loss.label_smoothing
        )

    @staticmethod
    def buffer_specs(lg: graph_json.LoweredGraph) -> dict[str, tuple[tuple[int, ...], str]]:
        return dict(lg.buffers)

    @staticmethod
    def forward_state(
        g: Graph,
        lg: graph_json.LoweredGraph,
        leaves: Mapping[str, int],
    ) -> tuple[int, dict[str, int]]:
        """(loss, {buffer name: new value}); `leaves` names every INPUT of the graph."""
        return lg.replay_state(g, leaves)


def _targets_spec(lg: graph_json.LoweredGraph, loss: GraphLoss) -> tuple[tuple[int, ...], str]:
    """``batch.targets`` of an output graph: mse -> the output's shape (float32);
    cross_entropy -> class indices int64 (B, d...) for an output (B, C, d...)."""
    out = lg.graph.nodes[lg.loss].shape
    if loss.name == "mse":
        return out, "float32"
    if len(out) < 2:
        raise SpecInvalid(
            [FieldError("program.loss", f"cross_entropy needs logits (B, C, ...), got {list(out)}")]
        )
    return (out[0], *out[2:]), "int64"


def _build_tape(
    mod: Any,
    cfg: Any,
    params: Mapping[str, ParamSpec],
    mspecs: Mapping[str, tuple[tuple[int, ...], str]],
    opt: Optim | Sgd,
    sch: Schedule,
    steps: int,
    seed: int,
    clip: float | None = None,
    graph_loss: GraphLoss | None = None,
    micro: int = 1,
) -> tuple[Tape, dict[str, tuple[tuple[int, ...], str]], int | None]:
    """The tape of one step (node order is part of the program).

    With ``micro`` = M > 1 (``data.micro_batches``) the step is M micro-batches: for
    i = 0..M-1 in order, slices of rows [i*b, (i+1)*b) of every batch tensor (b = batch_size
    / M), the forward and loss of that micro-batch and its backward, each micro-batch's
    nodes a contiguous range (`Tape.micro_ranges`); then the step's loss and each
    parameter's gradient are `micro_mean` of the M per-micro-batch values, emitted where the
    optimizer first needs them; a graph's buffers take micro-batch 0's new values, and
    micro-batch i > 0 of a graph that reads ``meta.step`` (its dropout masks' counter)
    reads ADD(meta.step, i * 2**24) instead (steps are < 2**24: one counter per step and
    micro-batch).  With
    M = 1 the tape is exactly the single-batch one (no slice, no combine).
    """
    g = Graph()
    sspecs: dict[str, tuple[tuple[int, ...], str]] = {}

    def inp(name: str, shape: tuple[int, ...], dtype: str = "float32") -> int:
        sspecs[name] = (shape, dtype)
        return g.input(name, shape, dtype)

    pid = {n: inp(f"param.{n}", s.shape) for n, s in params.items()}
    opt_state = optim.state_leaves(opt, params, inp)
    step = inp("meta.step", (), "int64")
    cursor = inp("meta.data_cursor", (), "int64")
    bspecs = _whole_batch(mspecs, micro)
    batch = {k: g.input(f"batch.{k}", shape, dt) for k, (shape, dt) in bspecs.items()}
    bufs: dict[str, int] = {}
    if mod is _GraphModel:
        bufs = {n: inp(f"buffer.{n}", s, dt) for n, (s, dt) in mod.buffer_specs(cfg).items()}

    def forward(mb: Mapping[str, int], i: int = 0) -> tuple[int, dict[str, int]]:
        """(loss, {buffer: new value}) of (micro-)batch i."""
        if mod is not _GraphModel:
            return mod.forward(g, cfg, pid, mb), {}
        leaves = {f"param.{k}": v for k, v in pid.items()}
        leaves.update({f"batch.{k}": v for k, v in mb.items()})
        leaves.update({f"buffer.{k}": v for k, v in bufs.items()})
        leaves["meta.step"] = step
        if i and "meta.step" in cfg.graph.inputs:  # dropout counters: one per micro-batch
            leaves["meta.step"] = g.add(step, g.const(i * MAX_STEPS, "int64"))
        if "rng.seed" in cfg.graph.inputs:
            leaves["rng.seed"] = g.const(seed, "int64")
        out, written = mod.forward_state(g, cfg, leaves)
        if graph_loss is not None:  # an output graph: the spec's loss on it and the targets
            out = mod.apply_loss(g, out, mb["targets"], graph_loss)
        return out, {n: written.get(n, v) for n, v in bufs.items()}

    ranges: list[tuple[int, int]] = []
    if micro == 1:
        loss, new_buffers = forward(batch)
        backs = [backward(g, loss, list(pid.values()))]
    else:
        losses: list[int] = []
        backs = []
        new_buffers = {}
        for i in range(micro):
            first = len(g.nodes)
            mb = {}
            for k, v in batch.items():
                rows = mspecs[k][0][0]
                mb[k] = g.slice(v, 0, i * rows, (i + 1) * rows)
            loss_i, written = forward(mb, i)
            backs.append(backward(g, loss_i, list(pid.values()), first))
            ranges.append((first, len(g.nodes)))
            if i == 0 and first + micro * (len(g.nodes) - first) > MAX_TAPE_NODES:
                raise SpecInvalid(
                    [
                        FieldError(
                            "data.micro_batches",
                            f"{micro} micro-batches of {len(g.nodes) - first} nodes exceed the "
                            f"{MAX_TAPE_NODES} nodes a step's tape may have",
                        )
                    ]
                )
            losses.append(loss_i)
            if i == 0:
                new_buffers = written
        loss = micro_mean(g, losses)
    grads: dict[str, int] = {}

    def grad(n: str) -> int:  # lazily, so that an AdamW tape keeps its node order
        if n not in grads:
            parts = [b.get(pid[n]) for b in backs]
            if parts[0] is None:
                grads[n] = g.const(torch.zeros(params[n].shape, dtype=torch.float32))
            else:
                got = [p for p in parts if p is not None]
                grads[n] = got[0] if micro == 1 else micro_mean(g, got)
        return grads[n]

    norm = None
    if clip is not None:
        grads, norm = optim.clip_gradients(g, grad, params, clip)
    lr = optim.schedule_lr(g, opt.lr, sch, steps, step)
    outputs = optim.update(g, opt, params, pid, grad, lr, opt_state)
    one_i = g.const(1, "int64")
    outputs["meta.step"] = g.add(step, one_i)
    outputs["meta.data_cursor"] = g.add(cursor, one_i)
    for n, v in new_buffers.items():
        outputs[f"buffer.{n}"] = v
    return Tape.from_graph(g, outputs, loss, ranges), sspecs, norm


def micro_sum(g: Graph, xs: Sequence[int]) -> int:
    """S(x_0..x_{n-1}), the fixed tree over micro-batches: S(x) = x for one value, else
    S(x_0..x_{h-1}) + S(x_h..x_{n-1}) with h = ceil(n/2); nodes emitted left subtree,
    right subtree, then the ADD."""
    if len(xs) == 1:
        return xs[0]
    h = (len(xs) + 1) // 2
    left = micro_sum(g, xs[:h])
    return g.add(left, micro_sum(g, xs[h:]))


def micro_mean(g: Graph, xs: Sequence[int]) -> int:
    """DIV(S(x_0..x_{M-1}), f32(M)): a loss or gradient of the step from its M
    per-micro-batch values (one binary32 rounding per ADD and one for the DIV)."""
    return g.div(micro_sum(g, xs), g.const(float(len(xs))))
