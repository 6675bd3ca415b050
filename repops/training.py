"""States, batches and the training loop of a built `Program` (`repops.program`).

A training state maps names to tensors (the names are listed in `repops.program`'s module
doc); `init_state` makes step 0 from the spec's seed with the counter-based RNG, on CPU,
so it is the same everywhere.  One training step is one execution of the program's tape
on the state plus the batch at the state's data cursor (`batch_for`).  Nothing here
builds ops: it feeds the tape and reads its outputs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch

from repops import data as data_mod
from repops import hashing, rng
from repops.checkpoint import State
from repops.data import DATASETS
from repops.errors import CheckpointInvalid, DatasetInvalid, FieldError, SpecInvalid
from repops.lowering import graph_json
from repops.models import MODELS
from repops.tape import DTYPES, Executor, Graph, Tape

if TYPE_CHECKING:
    from repops.program import Program

log = logging.getLogger(__name__)


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
