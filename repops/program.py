"""From a job spec to a training program: tape, state, training, checkpoints.

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

AdamW (decoupled decay, only on matrices), one binary32 rounding per operation written,
as three fused ops per parameter (ADAM_MOMENT twice, ADAMW_PARAM):
m' = b1*m + (1-b1)*g;  v' = b2*v + (1-b2)*(g*g);  p1' = p1*b1;  p2' = p2*b2;
mhat = m' / (1 - p1');  vhat = v' / (1 - p2');  u = mhat / (sqrt(vhat) + eps) [+ wd*p];
p' = p - lr*u.

SGD (torch.optim.SGD with dampening 0 and nesterov false, the only forms accepted; weight
decay coupled into the gradient, only on matrices like AdamW's), one binary32 rounding per
operation written: [g = g + wd*p]; with momentum mu > 0: buf' = mu*buf + g, d = buf';
else d = g; p' = p - lr*d.  (torch starts buf at g: mu*0 + g is g, so starting at zeros
gives the same values, up to the sign of a zero gradient.)

Gradient clipping ``clip_grad_norm = c`` (torch.nn.utils.clip_grad_norm_, 2-norm): per
parameter s_p = SUM(reshape(g*g, (-1,))) (fixed halving tree); acc = s_p1, acc = acc +
s_pk in sorted parameter-name order; total = SQRT(acc); k = MINIMUM(f32(c) / (total +
f32(1e-6)), 1); every gradient g = g*k (exact when k = 1), before the optimizer.

Schedules (t = float32(step), W = warmup_steps, N = steps, every constant f32 once):
"constant": lr.  "linear": lr * min((t+1)/W, (N-t)/(N-W)).  "cosine" (min_lr_ratio r):
up = (t+1)/W; q = (t - W)/(N - W); c = COS(q * f32(pi)); down = f32(r) + f32(1-r) *
((1 + c) * 0.5); lr * WHERE(t < W, up, down).

This module must never read the clock, the environment or global random state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from jobspec import schema
from repops import composites, hashing, rng, stio
from repops import data as data_mod
from repops.errors import CheckpointInvalid, DatasetInvalid, FieldError, RepopsError, SpecInvalid
from repops.lowering import graph_json
from repops.models import MODELS, ParamSpec
from repops.tape import DTYPES, Executor, Graph, Tape, backward
from repops.version import REPOPS_VERSION

log = logging.getLogger(__name__)

State = dict[str, torch.Tensor]
DATASETS = {
    "digits": data_mod.DIGITS_FORMAT,
    "stdlib_chars": data_mod.CHARS_FORMAT,
    "tensors": data_mod.TENSORS_FORMAT,
    "tokens": data_mod.TOKENS_FORMAT,
}
GRAPH_MODEL = "graph"
# fetch(field path, {"sha256": ..., "cid": ...}) -> the artifact's bytes
Fetch = Callable[[str, Mapping[str, Any]], bytes]
MAX_STEPS = schema.MAX_STEPS  # the step counter converts to float32 exactly below 2**24


@dataclass(frozen=True)
class Optim:
    lr: float
    beta1: float
    beta2: float
    eps: float
    weight_decay: float


@dataclass(frozen=True)
class Sgd:
    lr: float
    momentum: float
    weight_decay: float


@dataclass(frozen=True)
class Schedule:
    name: str
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0


CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


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
    bspecs: dict[str, tuple[tuple[int, ...], str]] = mod.batch_specs(cfg, parsed["batch_size"])
    if mod is _GraphModel and parsed["graph_loss"] is not None:
        bspecs["targets"] = _targets_spec(cfg, parsed["graph_loss"])
    det = {
        k: spec[k]
        for k in ("repops_version", "program", "data", "steps", "checkpoint_interval", "seed")
    }
    det = json.loads(canonical_json(det))
    det["data"].pop("cid", None)  # where the file lives does not change the bits
    if mod is _GraphModel:
        det["program"]["model"]["graph"].pop("cid", None)
        det["program"]["model"]["weights"].pop("cid", None)
    tape, sspecs, norm = _build_tape(
        mod,
        cfg,
        params,
        bspecs,
        parsed["optim"],
        parsed["schedule"],
        parsed["steps"],
        parsed["seed"],
        parsed["clip_grad_norm"],
        parsed["graph_loss"],
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
    b = parsed["batch_size"]
    if b != lg.batch_size:
        how = "lower it again at this size" if lg.dynamic_batch else "its export is static"
        raise SpecInvalid(
            [FieldError("data.batch_size", f"the graph is lowered at batch {lg.batch_size}: {how}")]
        )
    return lg, weights


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
    bspecs: Mapping[str, tuple[tuple[int, ...], str]],
    opt: Optim | Sgd,
    sch: Schedule,
    steps: int,
    seed: int,
    clip: float | None = None,
    graph_loss: GraphLoss | None = None,
) -> tuple[Tape, dict[str, tuple[tuple[int, ...], str]], int | None]:
    g = Graph()
    sspecs: dict[str, tuple[tuple[int, ...], str]] = {}

    def inp(name: str, shape: tuple[int, ...], dtype: str = "float32") -> int:
        sspecs[name] = (shape, dtype)
        return g.input(name, shape, dtype)

    pid = {n: inp(f"param.{n}", s.shape) for n, s in params.items()}
    if isinstance(opt, Optim):
        mid = {n: inp(f"adam.m.{n}", s.shape) for n, s in params.items()}
        vid = {n: inp(f"adam.v.{n}", s.shape) for n, s in params.items()}
        p1 = inp("adam.beta1_pow", ())
        p2 = inp("adam.beta2_pow", ())
    elif opt.momentum > 0.0:
        bid = {n: inp(f"sgd.buf.{n}", s.shape) for n, s in params.items()}
    step = inp("meta.step", (), "int64")
    cursor = inp("meta.data_cursor", (), "int64")
    batch = {k: g.input(f"batch.{k}", shape, dt) for k, (shape, dt) in bspecs.items()}

    new_buffers: dict[str, int] = {}
    if mod is _GraphModel:
        bufs = {n: inp(f"buffer.{n}", s, dt) for n, (s, dt) in mod.buffer_specs(cfg).items()}
        leaves = {f"param.{k}": v for k, v in pid.items()}
        leaves.update({f"batch.{k}": v for k, v in batch.items()})
        leaves.update({f"buffer.{k}": v for k, v in bufs.items()})
        leaves["meta.step"] = step
        if "rng.seed" in cfg.graph.inputs:
            leaves["rng.seed"] = g.const(seed, "int64")
        loss, new_buffers = mod.forward_state(g, cfg, leaves)
        if graph_loss is not None:  # an output graph: the spec's loss on it and the targets
            loss = mod.apply_loss(g, loss, batch["targets"], graph_loss)
        new_buffers = {n: new_buffers.get(n, v) for n, v in bufs.items()}
    else:
        loss = mod.forward(g, cfg, pid, batch)
    back = backward(g, loss, list(pid.values()))
    grads: dict[str, int] = {}

    def grad(n: str) -> int:  # lazily, so that an AdamW tape keeps its node order
        if n not in grads:
            gr = back.get(pid[n])
            zero = torch.zeros(params[n].shape, dtype=torch.float32)
            grads[n] = gr if gr is not None else g.const(zero)
        return grads[n]

    # Global-norm clipping: partial sums of squares in sorted parameter-name order.
    norm = None
    if clip is not None:
        acc = None
        for n in sorted(params):
            sq = g.mul(grad(n), grad(n))
            flat = g.reshape(sq, (math.prod(params[n].shape),))
            part = g.reshape(g.sum(flat, 0), ())
            acc = part if acc is None else g.add(acc, part)
        assert acc is not None
        norm = g.sqrt(acc)
        k = g.div(g.const(clip), g.add(norm, g.const(CLIP_EPS)))
        k = g.minimum(k, g.const(1.0))
        grads = {n: g.mul(grad(n), k) for n in params}

    lr = _schedule_lr(g, opt.lr, sch, steps, step)
    outputs: dict[str, int] = {}
    if isinstance(opt, Optim):
        b1, b2 = g.const(opt.beta1), g.const(opt.beta2)
        c1, c2 = g.const(1.0 - opt.beta1), g.const(1.0 - opt.beta2)
        one = g.const(1.0)
        p1n = g.mul(p1, b1)
        p2n = g.mul(p2, b2)
        bc1 = g.sub(one, p1n)
        bc2 = g.sub(one, p2n)
        eps = g.const(opt.eps)
        wd = g.const(opt.weight_decay)
        for n, spec in params.items():
            gr = grad(n)
            m = g.adam_moment(mid[n], gr, b1, c1, square=False)
            v = g.adam_moment(vid[n], gr, b2, c2, square=True)
            decay = spec.decay and opt.weight_decay > 0.0
            outputs[f"param.{n}"] = g.adamw_param(pid[n], m, v, (bc1, bc2, eps, lr, wd), decay)
            outputs[f"adam.m.{n}"] = m
            outputs[f"adam.v.{n}"] = v
        outputs["adam.beta1_pow"] = p1n
        outputs["adam.beta2_pow"] = p2n
    else:
        wd = g.const(opt.weight_decay)
        mu = g.const(opt.momentum)
        for n, spec in params.items():
            gr = grad(n)
            if spec.decay and opt.weight_decay > 0.0:
                gr = g.add(gr, g.mul(wd, pid[n]))
            if opt.momentum > 0.0:
                gr = g.add(g.mul(mu, bid[n]), gr)
                outputs[f"sgd.buf.{n}"] = gr
            outputs[f"param.{n}"] = g.sub(pid[n], g.mul(lr, gr))
    one_i = g.const(1, "int64")
    outputs["meta.step"] = g.add(step, one_i)
    outputs["meta.data_cursor"] = g.add(cursor, one_i)
    for n, v in new_buffers.items():
        outputs[f"buffer.{n}"] = v
    return Tape.from_graph(g, outputs, loss), sspecs, norm


def _schedule_lr(g: Graph, base: float, sch: Schedule, steps: int, step: int) -> int:
    """The step's learning rate as a 0-dim float32 node (formulas in the module doc)."""
    lr = g.const(base)
    if sch.name == "constant":
        return lr
    t = g.to_f32(step)
    if sch.name == "linear":  # node order kept as it was before cosine existed
        up = g.div(g.add(t, g.const(1.0)), g.const(float(sch.warmup_steps)))
        down = g.div(g.sub(g.const(float(steps)), t), g.const(float(steps - sch.warmup_steps)))
        return g.mul(lr, g.minimum(up, down))
    w = g.const(float(sch.warmup_steps))
    up = g.div(g.add(t, g.const(1.0)), w)
    q = g.div(g.sub(t, w), g.const(float(steps - sch.warmup_steps)))
    c = g.cos(g.mul(q, g.const(math.pi)))
    half = g.mul(g.add(g.const(1.0), c), g.const(0.5))
    r = sch.min_lr_ratio
    down = g.add(g.const(r), g.mul(g.const(1.0 - r), half))
    return g.mul(lr, g.where(g.compare(t, w, "lt"), up, down))


# ----------------------------------------------------------------------------------------
# State, batches, training
# ----------------------------------------------------------------------------------------


def init_state(program: Program, device: torch.device | str = "cpu") -> State:
    """The step-0 state from the spec's seed (counter-based RNG, computed on CPU)."""
    dev = torch.device(device)
    cpu = torch.device("cpu")
    state: State = {}
    for n, spec in program.params.items():
        numel = math.prod(spec.shape)
        if spec.init == "weights":
            t = program.initial[n].to(torch.float32).reshape(-1)
        elif spec.init == "uniform":
            u = rng.uniform_sym(program.seed, rng.stream_id(f"init.{n}"), numel, cpu)
            t = u * torch.tensor(spec.scale, dtype=torch.float32)
        elif spec.init == "ones":
            t = torch.ones(numel, dtype=torch.float32)
        else:
            t = torch.zeros(numel, dtype=torch.float32)
        state[f"param.{n}"] = t.reshape(spec.shape)
    for name, (shape, _dt) in program.state_specs.items():
        if name.startswith(("adam.m.", "adam.v.", "sgd.buf.")):
            state[name] = torch.zeros(shape, dtype=torch.float32)
        elif name in ("adam.beta1_pow", "adam.beta2_pow"):
            state[name] = torch.tensor(1.0, dtype=torch.float32)
    state["meta.step"] = torch.tensor(0, dtype=torch.int64)
    state["meta.data_cursor"] = torch.tensor(0, dtype=torch.int64)
    for name, (shape, dt) in program.state_specs.items():
        if name.startswith("buffer."):  # graph buffers (running statistics): from weights
            t = program.initial[name[len("buffer.") :]]
            state[name] = t.to(DTYPES[dt]).reshape(shape).clone()
    return {k: v.to(dev) for k, v in state.items()}


def step_of(state: Mapping[str, torch.Tensor]) -> int:
    return int(state["meta.step"].item())


def batch_for(program: Program, ds: data_mod.Dataset, cursor: int) -> State:
    """The batch consumed at data cursor `cursor`, named "batch.x"/"batch.y" (CPU)."""
    if ds.format != DATASETS[program.dataset]:
        raise SpecInvalid([FieldError("data.dataset", f"dataset file is {ds.format}")])
    b = data_mod.batch(ds, program.data_seed, cursor, program.batch_size, program.block)
    return {f"batch.{k}": v for k, v in b.items()}


def check_dataset(program: Program, ds: data_mod.Dataset) -> None:
    """Raise DatasetInvalid (one line) unless `ds` fits the program's batch inputs."""
    if ds.format != DATASETS[program.dataset]:
        raise SpecInvalid([FieldError("data.dataset", f"dataset file is {ds.format}")])
    if isinstance(program.config, graph_json.LoweredGraph):
        if ds.format == data_mod.TOKENS_FORMAT:
            problems = graph_json.tokens_problems(program.config, ds.tensors["tokens"])
        else:
            tspec = program.batch_specs.get("targets") if program.graph_loss else None
            problems = graph_json.dataset_problems(program.config, ds.tensors, tspec)
        problems += _targets_problems(program, ds)
        if problems:
            raise DatasetInvalid("; ".join(problems))


def _targets_problems(program: Program, ds: data_mod.Dataset) -> list[str]:
    """Class targets of a spec-named cross_entropy must be in [0, C) or its ignore_index
    (torch refuses others; repops would silently ignore them)."""
    loss, lg = program.graph_loss, program.config
    if loss is not None and ds.format == data_mod.TOKENS_FORMAT:
        want = ((program.batch_size, program.block), "int64")
        if loss.name != "cross_entropy" or program.batch_specs.get("targets") != want:
            return [
                "a tokens dataset's targets are int64 (B, T): its loss must be cross_entropy "
                "on logits (B, V, T) (classes on dim 1, as torch's)"
            ]
    t = ds.tensors.get("targets", ds.tensors.get("tokens"))
    if loss is None or loss.name != "cross_entropy" or t is None or not t.numel():
        return []
    if t.dtype.is_floating_point:
        return []
    c = lg.graph.nodes[lg.loss].shape[1]
    bad = (t < 0) | (t >= c)
    bad &= t != loss.ignore_index
    if bool(bad.any()):
        v = int(t[bad].flatten()[0])
        return [
            f"targets: value {v} is not a class in [0, {c}) nor ignore_index {loss.ignore_index}"
        ]
    return []


def batch_hash(batch: Mapping[str, torch.Tensor]) -> bytes:
    """batchHash: the stateHash construction over the batch tensors."""
    return hashing.state_hash(batch)


def check_state(program: Program, state: Mapping[str, torch.Tensor]) -> None:
    """Raise CheckpointInvalid unless `state` has exactly the program's names/shapes/dtypes."""
    names = set(state)
    want = set(program.state_specs)
    if names != want:
        missing = sorted(want - names)[:3]
        extra = sorted(names - want)[:3]
        raise CheckpointInvalid(f"state names differ: missing {missing}, unexpected {extra}")
    for n, (shape, dt) in program.state_specs.items():
        t = state[n]
        if tuple(t.shape) != shape or t.dtype != DTYPES[dt]:
            raise CheckpointInvalid(
                f"{n}: expected {dt}{list(shape)}, got {t.dtype}{list(t.shape)}"
            )


def train_step(
    program: Program,
    state: Mapping[str, torch.Tensor],
    ds: data_mod.Dataset,
    device: torch.device | str = "cpu",
) -> tuple[State, float]:
    """One step: returns (new state, loss)."""
    dev = torch.device(device)
    cursor = int(state["meta.data_cursor"].item())
    feeds = {k: v.to(dev) for k, v in state.items()}
    feeds.update({k: v.to(dev) for k, v in batch_for(program, ds, cursor).items()})
    vals = program.executor(dev).run(feeds)
    tape = program.tape
    new: State = {}
    for name, nid in tape.outputs.items():
        v = vals[nid]
        assert v is not None
        new[name] = v
    loss = vals[tape.loss]
    assert loss is not None
    return new, float(loss.item())


def train(
    program: Program,
    state: Mapping[str, torch.Tensor],
    ds: data_mod.Dataset,
    steps: int,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[State, list[float]]:
    """Run `steps` steps from `state`; returns the new state and the losses."""
    cur: State = dict(state)
    losses: list[float] = []
    for _ in range(steps):
        cur, loss = train_step(program, cur, ds, device)
        losses.append(loss)
        if on_step is not None:
            on_step(step_of(cur), loss)
    return cur, losses


def train_checkpoints(
    program: Program,
    ds: data_mod.Dataset,
    device: torch.device | str = "cpu",
    state: Mapping[str, torch.Tensor] | None = None,
    on_checkpoint: Callable[[int, State], None] | None = None,
) -> list[bytes]:
    """Train the whole job from `state` (default: init); returns stateHash_0..stateHash_m.

    `on_checkpoint(i, state)` is called for each checkpoint i (e.g. to save it).
    """
    check_dataset(program, ds)
    cur: State = dict(state) if state is not None else init_state(program, device)
    k = program.checkpoint_interval
    first = step_of(cur)
    if first % k:
        raise CheckpointInvalid(f"start step {first} is not a checkpoint boundary")
    hashes = [hashing.state_hash(cur)]
    if on_checkpoint is not None:
        on_checkpoint(first // k, cur)
    while step_of(cur) < program.steps:
        cur, losses = train(program, cur, ds, k, device)
        hashes.append(hashing.state_hash(cur))
        log.info("step %d loss %.4f", step_of(cur), losses[-1])
        if on_checkpoint is not None:
            on_checkpoint(step_of(cur) // k, cur)
    return hashes


# ----------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------


def save_checkpoint(program: Program, state: Mapping[str, torch.Tensor]) -> bytes:
    """Canonical safetensors bytes of `state`; metadata binds version and program hash."""
    check_state(program, state)
    meta = {
        "repops_version": REPOPS_VERSION,
        "program_hash": program.program_hash.hex(),
        "state_hash": hashing.state_hash(state).hex(),
    }
    return stio.dumps(state, meta)


def load_checkpoint(program: Program, data: bytes, device: torch.device | str = "cpu") -> State:
    """Load and check a checkpoint; its stateHash equals the saved one exactly."""
    tensors, meta = stio.loads(data)
    if meta.get("repops_version") != REPOPS_VERSION:
        raise CheckpointInvalid(f"checkpoint version {meta.get('repops_version')!r}")
    if meta.get("program_hash") != program.program_hash.hex():
        raise CheckpointInvalid("checkpoint belongs to another program")
    check_state(program, tensors)
    if hashing.state_hash(tensors).hex() != meta.get("state_hash"):
        raise CheckpointInvalid("checkpoint tensors do not match its recorded state_hash")
    dev = torch.device(device)
    return {k: v.to(dev) for k, v in tensors.items()}


def eval_loss(
    program: Program,
    state: Mapping[str, torch.Tensor],
    batches: list[State],
    device: torch.device | str = "cpu",
) -> float:
    """Mean loss of the current parameters over fixed batches (runs the forward only)."""
    dev = torch.device(device)
    tape = program.tape
    ex = program.executor(dev)
    total = 0.0
    for b in batches:
        feeds = {k: v.to(dev) for k, v in state.items()}
        feeds.update(
            {f"batch.{k}" if not k.startswith("batch.") else k: v.to(dev) for k, v in b.items()}
        )
        vals = ex.run(feeds, stop_after=tape.loss)
        loss = vals[tape.loss]
        assert loss is not None
        total += float(loss.item())
    return total / max(len(batches), 1)


def digits_accuracy(
    program: Program,
    state: Mapping[str, torch.Tensor],
    ds: data_mod.Dataset,
    device: torch.device | str = "cpu",
) -> float:
    """Test-set accuracy of an MLP state on the digits test split (repops forward)."""
    if program.model_name != "mlp":
        raise SpecInvalid([FieldError("program.model.name", "accuracy is defined for mlp")])
    mod = MODELS["mlp"]
    x = data_mod.digits_features(ds.tensors["test_x"])
    y = ds.tensors["test_y"].to(torch.int64)
    g = Graph()
    pid = {n: g.input(f"param.{n}", s.shape) for n, s in program.params.items()}
    xi = g.input("x", tuple(x.shape))
    out = mod.logits(g, program.config, pid, xi)
    tape = Tape.from_graph(g, {"logits": out}, out)
    dev = torch.device(device)
    feeds = {f"param.{n}": state[f"param.{n}"].to(dev) for n in program.params}
    feeds["x"] = x.to(dev)
    logits = Executor(tape, dev).run(feeds)[out]
    assert logits is not None
    pred = logits.argmax(dim=1).cpu()
    return float((pred == y).to(torch.float64).mean())
