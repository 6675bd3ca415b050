"""The canonical repops graph: a lowered forward pass as JSON, and its safetensors weights.

This is the only form in which a submitter's model reaches solvers, whistleblowers and
arbiters.  Loading it parses JSON and safetensors and nothing else: no pickle, no
``torch.load``, no ``torch.export.load``, no submitter code.  Every node is rebuilt
through the public `Graph` method of its op (so shapes and dtypes are re-checked) and
must reproduce the recorded shape and dtype.

Format ``repops-graph-v2`` (docs/protocol.md §4, "Bring your own model")::

    {"format": "repops-graph-v2", "repops_version": "repops-2",
     "batch_size": 8, "dynamic_batch": true, "loss": 41,
     "params": [{"name": "l1.weight", "shape": [16, 8]}, ...],          # sorted by name
     "batch":  [{"name": "inputs", "shape": [8, 8], "dtype": "float32"}, ...],
     "buffers": [{"name": "bn.running_mean", "shape": [4], "dtype": "float32",
                  "update": 17}, ...],                                  # sorted by name
     "consts": [{"dtype": "float32", "shape": [], "hex": "0000803f"}, ...],
     "nodes":  [{"op": "input", "in": [], "arg": "param.l1.weight",
                 "shape": [16, 8], "dtype": "float32"}, ...]}

A buffer is state that forward writes (batch-norm running statistics): the INPUT node
``buffer.<name>`` holds its value at the step's start and node ``update`` its next value
(same shape and dtype), which the program makes a state output.  Besides ``param.``,
``batch.`` and ``buffer.`` leaves a graph may read the int64 scalars ``rng.seed`` (the
job seed) and ``meta.step`` (the step counter): dropout masks depend on them.
(v2 added ``buffers``, the two scalar inputs and nested ``arg`` lists; v1 had none.)

A graph records exactly one of ``"loss"`` (forward returned the scalar loss: a 0-dim
float32 node) or ``"output"`` (forward returned logits or predictions: a float32 node of
rank >= 1 whose dim 0 is the batch; the job spec's ``program.loss`` names the loss the
program applies to it and ``batch.targets``, so such a graph may not read a batch input
named ``targets``).  A file with both keys, or neither, is refused.

A node's ``arg`` is null, a bool, an int, a string (INPUT names), a float written
exactly as ``{"f64": "<float.hex()>"}``, or a list of these; constants are the little-endian
bytes of the tensor in hex.  The bytes are canonical: sorted keys, no whitespace, ASCII;
a file that is not byte-identical to its own re-serialisation is refused, so one graph
has exactly one sha256.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from repops import stio
from repops.errors import CheckpointInvalid, RepopsError, TapeError
from repops.ops import Op
from repops.tape import DTYPES, Graph, Node
from repops.version import REPOPS_VERSION

GRAPH_FORMAT = "repops-graph-v2"
MAX_GRAPH_BYTES = 1 << 28
MAX_NODES = 1 << 20
MAX_NUMEL = 1 << 31  # elements of one node: a graph may not demand absurd memory
_NP = {"float32": "<f4", "int64": "<i8"}
# Ops that only a backward pass or an optimizer emits: never in a forward graph.
_NOT_FORWARD = frozenset({Op.ADAM_MOMENT, Op.ADAMW_PARAM}) | frozenset(
    o for o in Op if o.value.endswith("_grad")
)
# The ops through which an int64 value keeps being an index of the same batch tensor.
_INDEX_PASS = frozenset({Op.RESHAPE, Op.PERMUTE, Op.EXPAND})
# Scalar int64 inputs a graph may read without declaring them (fed by the program).
SCALAR_INPUTS = ("rng.seed", "meta.step")


class GraphInvalid(RepopsError):
    """A graph file is not a canonical repops graph (untrusted input: one-line reason)."""


@dataclass
class LoweredGraph:
    """A forward graph whose one output is the scalar loss (``returns == "loss"``) or
    the logits/predictions a spec-named loss is applied to (``returns == "output"``)."""

    graph: Graph
    loss: int  # the returned node: the loss, or the output when returns == "output"
    params: dict[str, tuple[int, ...]]  # state-dict name -> shape (float32)
    batch: dict[str, tuple[tuple[int, ...], str]]  # input name -> (shape, dtype)
    batch_size: int
    dynamic_batch: bool
    weights: dict[str, torch.Tensor] = field(default_factory=dict)  # initial values
    # state written by forward: buffer name -> (shape, dtype), and -> node of its new value
    buffers: dict[str, tuple[tuple[int, ...], str]] = field(default_factory=dict)
    updates: dict[str, int] = field(default_factory=dict)
    returns: str = "loss"  # "loss" | "output"

    # -- facts ----------------------------------------------------------------------------
    @property
    def param_count(self) -> int:
        return sum(math.prod(s) for s in self.params.values())

    def ops_by_kind(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.graph.nodes:
            if not n.op.is_leaf:
                counts[n.op.value] = counts.get(n.op.value, 0) + 1
        return dict(sorted(counts.items()))

    @property
    def op_count(self) -> int:
        return sum(self.ops_by_kind().values())

    def index_bounds(self) -> dict[str, int]:
        """For int64 batch inputs used as class or row indices: values must be < bound."""
        nodes = self.graph.nodes
        origin: dict[int, str] = {}
        bounds: dict[str, int] = {}
        for i, n in enumerate(nodes):
            if n.op is Op.INPUT and n.dtype == "int64" and str(n.arg).startswith("batch."):
                origin[i] = str(n.arg)[len("batch.") :]
            elif n.op in _INDEX_PASS and n.inputs[0] in origin:
                origin[i] = origin[n.inputs[0]]
            elif n.op is Op.ONEHOT and n.inputs[0] in origin:
                k = origin[n.inputs[0]]
                bounds[k] = min(bounds.get(k, n.arg), int(n.arg))
            elif n.op is Op.GATHER_ROWS and n.inputs[1] in origin:
                k = origin[n.inputs[1]]
                rows = nodes[n.inputs[0]].shape[0]
                bounds[k] = min(bounds.get(k, rows), rows)
        return bounds

    # -- replay into a tape -------------------------------------------------------------
    def replay(self, g: Graph, leaves: Mapping[str, int]) -> int:
        """Append this graph to `g`, INPUT ``name`` -> ``leaves[name]``; returns the loss id."""
        return _replay(self.graph, g, leaves, self.loss)[self.loss]

    def replay_state(self, g: Graph, leaves: Mapping[str, int]) -> tuple[int, dict[str, int]]:
        """`replay` that also returns each buffer's new value: (loss id, {buffer: id})."""
        ids = _replay(self.graph, g, leaves, self.loss, wanted=self.updates.values())
        return ids[self.loss], {k: ids[v] for k, v in self.updates.items()}

    # -- bytes ----------------------------------------------------------------------------
    def to_json(self) -> bytes:
        """The canonical JSON bytes of the graph (weights excluded)."""
        nodes = [
            {
                "op": n.op.value,
                "in": list(n.inputs),
                "arg": _enc_arg(n.arg),
                "shape": list(n.shape),
                "dtype": n.dtype,
            }
            for n in self.graph.nodes
        ]
        consts = [
            {
                "dtype": "float32" if c.dtype == torch.float32 else "int64",
                "shape": list(c.shape),
                "hex": c.contiguous().numpy().astype(_NP[_dt(c)], copy=False).tobytes().hex(),
            }
            for c in self.graph.consts
        ]
        doc = {
            "format": GRAPH_FORMAT,
            "repops_version": REPOPS_VERSION,
            "batch_size": self.batch_size,
            "dynamic_batch": self.dynamic_batch,
            self.returns: self.loss,
            "params": [{"name": k, "shape": list(s)} for k, s in sorted(self.params.items())],
            "batch": [
                {"name": k, "shape": list(s), "dtype": dt}
                for k, (s, dt) in sorted(self.batch.items())
            ],
            "buffers": [
                {"name": k, "shape": list(s), "dtype": dt, "update": self.updates[k]}
                for k, (s, dt) in sorted(self.buffers.items())
            ],
            "consts": consts,
            "nodes": nodes,
        }
        return _canonical(doc)

    def weights_bytes(self) -> bytes:
        """Canonical safetensors of the initial parameters and buffers (state-dict names)."""
        names = sorted({*self.params, *self.buffers})
        missing = [k for k in names if k not in self.weights]
        if missing:
            raise CheckpointInvalid(f"no initial value for parameters {missing[:3]}")
        return stio.dumps({k: self.weights[k] for k in names})

    def sha256(self) -> str:
        return hashlib.sha256(self.to_json()).hexdigest()


def _dt(t: torch.Tensor) -> str:
    return "float32" if t.dtype == torch.float32 else "int64"


def _canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _enc_arg(arg: Any) -> Any:
    if arg is None or isinstance(arg, bool | int | str):
        return arg
    if isinstance(arg, float):
        return {"f64": float.hex(arg)}
    if isinstance(arg, tuple | list):
        return [_enc_arg(x) for x in arg]
    raise TapeError(f"node argument {arg!r} has no canonical JSON form")


def _dec_arg(x: Any, where: str, depth: int = 0) -> Any:
    if x is None or isinstance(x, bool | int | str):
        return x
    if isinstance(x, list) and depth < 4:
        return tuple(_dec_arg(v, where, depth + 1) for v in x)
    if isinstance(x, dict) and set(x) == {"f64"} and isinstance(x["f64"], str):
        try:
            return float.fromhex(x["f64"])
        except ValueError:
            raise GraphInvalid(f"{where}: bad float {x['f64']!r}") from None
    raise GraphInvalid(f"{where}: argument {x!r} is not a canonical argument")


# ----------------------------------------------------------------------------------------
# Loading untrusted bytes
# ----------------------------------------------------------------------------------------


def _sniff(data: bytes) -> None:
    if data[:4] == b"PK\x03\x04":
        raise GraphInvalid(
            "this is a zip archive (a .pt2 or torch.save file), not a canonical repops graph: "
            "lower it on your machine with `assay model lower`"
        )
    if data[:1] == b"\x80" or data[:2] in (b"(d", b"(l", b"}q", b"]q"):
        raise GraphInvalid("this is a Python pickle, not a canonical repops graph (never loaded)")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise GraphInvalid(f"duplicate JSON key {k!r}")
        out[k] = v
    return out


def _reject_constant(name: str) -> Any:
    raise GraphInvalid(f"JSON constant {name} is not allowed")


def _int(v: Any, where: str, lo: int = 0, hi: int = 1 << 40) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise GraphInvalid(f"{where}: must be an integer in [{lo}, {hi}]")
    return v


def _shape(v: Any, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or len(v) > 16:
        raise GraphInvalid(f"{where}: shape must be a list of at most 16 sizes")
    return tuple(_int(d, where, 0, 1 << 32) for d in v)


def _dtype(v: Any, where: str) -> str:
    if v not in DTYPES:
        raise GraphInvalid(f"{where}: dtype must be one of {sorted(DTYPES)}")
    return str(v)


def loads(data: bytes) -> LoweredGraph:
    """Parse and check canonical graph bytes (untrusted); raises `GraphInvalid`."""
    if not isinstance(data, bytes | bytearray):
        raise GraphInvalid("graph must be bytes")
    data = bytes(data)
    if len(data) > MAX_GRAPH_BYTES:
        raise GraphInvalid(f"graph file of {len(data)} bytes exceeds {MAX_GRAPH_BYTES}")
    _sniff(data)
    try:
        doc = json.loads(
            data.decode("ascii"),
            object_pairs_hook=_no_dupes,
            parse_constant=_reject_constant,
        )
    except UnicodeDecodeError:
        raise GraphInvalid("graph file is not ASCII JSON") from None
    except json.JSONDecodeError as e:
        raise GraphInvalid(f"graph file is not JSON: {e.msg} at byte {e.pos}") from None
    if not isinstance(doc, dict):
        raise GraphInvalid("graph file must be a JSON object")
    returned = [k for k in ("loss", "output") if k in doc]
    if len(returned) != 1:
        raise GraphInvalid("a graph records exactly one of 'loss' and 'output'")
    want = {"format", "repops_version", "batch_size", "dynamic_batch", returned[0]}
    want |= {"params", "batch", "buffers", "consts", "nodes"}
    if set(doc) != want:
        extra, missing = sorted(set(doc) - want), sorted(want - set(doc))
        raise GraphInvalid(f"graph keys differ: missing {missing}, unexpected {extra}")
    if doc["format"] != GRAPH_FORMAT:
        raise GraphInvalid(f"format {doc['format']!r} is not {GRAPH_FORMAT}")
    if doc["repops_version"] != REPOPS_VERSION:
        raise GraphInvalid(f"graph is for {doc['repops_version']!r}; this is {REPOPS_VERSION}")
    lg = _build(doc)
    if lg.to_json() != data:
        raise GraphInvalid("graph bytes are not canonical (sorted keys, no whitespace, ASCII)")
    return lg


def _build(doc: dict[str, Any]) -> LoweredGraph:
    batch_size = _int(doc["batch_size"], "batch_size", 1, 1 << 20)
    if not isinstance(doc["dynamic_batch"], bool):
        raise GraphInvalid("dynamic_batch must be true or false")
    consts: list[torch.Tensor] = []
    if not isinstance(doc["consts"], list):
        raise GraphInvalid("consts must be a list")
    for i, c in enumerate(doc["consts"]):
        w = f"consts[{i}]"
        if not isinstance(c, dict) or set(c) != {"dtype", "shape", "hex"}:
            raise GraphInvalid(f"{w}: needs exactly dtype, shape, hex")
        dt, shape = _dtype(c["dtype"], w), _shape(c["shape"], w)
        if not isinstance(c["hex"], str):
            raise GraphInvalid(f"{w}: hex must be a string")
        try:
            raw = bytes.fromhex(c["hex"])
        except ValueError:
            raise GraphInvalid(f"{w}: bad hex") from None
        size = 4 if dt == "float32" else 8
        if len(raw) != math.prod(shape) * size:
            raise GraphInvalid(f"{w}: {len(raw)} bytes do not fit shape {list(shape)}")
        arr = np.frombuffer(raw, dtype=_NP[dt]).astype(_NP[dt][1:], copy=True)
        consts.append(torch.from_numpy(arr).reshape(shape))
    params: dict[str, tuple[int, ...]] = {}
    if not isinstance(doc["params"], list):
        raise GraphInvalid("params must be a list")
    for i, p in enumerate(doc["params"]):
        if not isinstance(p, dict) or set(p) != {"name", "shape"} or not isinstance(p["name"], str):
            raise GraphInvalid(f"params[{i}]: needs exactly a string name and a shape")
        params[p["name"]] = _shape(p["shape"], f"params[{i}]")
    batch: dict[str, tuple[tuple[int, ...], str]] = {}
    if not isinstance(doc["batch"], list):
        raise GraphInvalid("batch must be a list")
    for i, b in enumerate(doc["batch"]):
        if not isinstance(b, dict) or set(b) != {"name", "shape", "dtype"}:
            raise GraphInvalid(f"batch[{i}]: needs exactly name, shape, dtype")
        if not isinstance(b["name"], str):
            raise GraphInvalid(f"batch[{i}]: name must be a string")
        s = _shape(b["shape"], f"batch[{i}]")
        if not s or s[0] != batch_size:
            raise GraphInvalid(f"batch[{i}]: dimension 0 must be the batch size {batch_size}")
        batch[b["name"]] = (s, _dtype(b["dtype"], f"batch[{i}]"))
    buffers: dict[str, tuple[tuple[int, ...], str]] = {}
    updates: dict[str, int] = {}
    if not isinstance(doc["buffers"], list):
        raise GraphInvalid("buffers must be a list")
    for i, b in enumerate(doc["buffers"]):
        w = f"buffers[{i}]"
        if not isinstance(b, dict) or set(b) != {"name", "shape", "dtype", "update"}:
            raise GraphInvalid(f"{w}: needs exactly name, shape, dtype, update")
        if not isinstance(b["name"], str) or b["name"] in params:
            raise GraphInvalid(f"{w}: name must be a string that names no parameter")
        buffers[b["name"]] = (_shape(b["shape"], w), _dtype(b["dtype"], w))
        updates[b["name"]] = _int(b["update"], w, 0, MAX_NODES)
    nodes = doc["nodes"]
    if not isinstance(nodes, list) or not 1 <= len(nodes) <= MAX_NODES:
        raise GraphInvalid(f"nodes must be a list of 1..{MAX_NODES} nodes")
    src = Graph(consts=consts)
    ops = {o.value: o for o in Op}
    for i, n in enumerate(nodes):
        w = f"nodes[{i}]"
        if not isinstance(n, dict) or set(n) != {"op", "in", "arg", "shape", "dtype"}:
            raise GraphInvalid(f"{w}: needs exactly op, in, arg, shape, dtype")
        op = ops.get(n["op"]) if isinstance(n["op"], str) else None
        if op is None or op in _NOT_FORWARD:
            raise GraphInvalid(f"{w}: {n['op']!r} is not a forward op of {REPOPS_VERSION}")
        if not isinstance(n["in"], list):
            raise GraphInvalid(f"{w}: in must be a list")
        ins = tuple(_int(j, w, 0, i - 1) if i else _int(j, w, 0, -1) for j in n["in"])
        arg = _dec_arg(n["arg"], w)
        shape, dt = _shape(n["shape"], w), _dtype(n["dtype"], w)
        if math.prod(shape) > MAX_NUMEL:
            raise GraphInvalid(f"{w}: {math.prod(shape)} elements exceed {MAX_NUMEL}")
        if op is Op.CONST:
            if ins or not isinstance(arg, int) or isinstance(arg, bool) or arg >= len(consts):
                raise GraphInvalid(f"{w}: const must index the consts list")
            c = consts[arg]
            if tuple(c.shape) != shape or _dt(c) != dt:
                raise GraphInvalid(f"{w}: shape/dtype differ from consts[{arg}]")
        elif op is Op.INPUT:
            name = arg if isinstance(arg, str) else ""
            is_param = name.startswith("param.") and params.get(name[6:]) == shape
            is_batch = name.startswith("batch.") and batch.get(name[6:]) == (shape, dt)
            is_buffer = name.startswith("buffer.") and buffers.get(name[7:]) == (shape, dt)
            is_scalar = name in SCALAR_INPUTS and (shape, dt) == ((), "int64")
            ok = not ins and ((is_param and dt == "float32") or is_batch or is_buffer or is_scalar)
            if not ok or name in src.inputs:
                raise GraphInvalid(f"{w}: input {name!r} is not a declared param/batch/buffer leaf")
            src.inputs[name] = i
        src.nodes.append(Node(op, ins, arg, shape, dt))
    declared = {f"param.{k}" for k in params} | {f"batch.{k}" for k in batch}
    declared |= {f"buffer.{k}" for k in buffers}
    if set(src.inputs) - set(SCALAR_INPUTS) != declared:
        raise GraphInvalid("the input nodes differ from the declared params, batch and buffers")
    returns = "loss" if "loss" in doc else "output"
    loss = _int(doc[returns], returns, 0, len(nodes) - 1)
    out_node = src.nodes[loss]
    if returns == "loss" and (out_node.shape != () or out_node.dtype != "float32"):
        raise GraphInvalid("loss must be a 0-dim float32 node")
    if returns == "output":
        if out_node.dtype != "float32" or not out_node.shape or out_node.shape[0] != batch_size:
            raise GraphInvalid(f"output must be a float32 node with dim 0 = batch {batch_size}")
        if "targets" in batch:
            raise GraphInvalid("a graph with an output may not read batch input 'targets'")
    for k, nid in updates.items():
        if nid >= len(nodes) or (src.nodes[nid].shape, src.nodes[nid].dtype) != buffers[k]:
            raise GraphInvalid(f"buffer {k!r}: update node has another shape or dtype")
    lg = LoweredGraph(
        src, loss, params, batch, batch_size, doc["dynamic_batch"], {}, buffers, updates, returns
    )
    # Re-derive every node through the Graph methods: shapes and dtypes must agree.
    try:
        _replay(src, Graph(), {k: -1 for k in src.inputs}, loss, updates.values())
    except (TapeError, TypeError, ValueError, IndexError) as e:
        raise GraphInvalid(f"graph does not type-check: {e}") from None
    return lg


def _replay(
    src: Graph, g: Graph, leaves: Mapping[str, int], loss: int, wanted: Iterable[int] = ()
) -> dict[int, int]:
    """Emit `src` into `g` through the Graph methods, up to the loss and every `wanted`
    node; returns {src node id: id in g}."""
    ids: dict[int, int] = {}
    last = max([loss, *wanted])
    for i, n in enumerate(src.nodes):
        if n.op is Op.INPUT:
            v = leaves[n.arg]
            if v < 0:  # type-check mode: a fresh leaf of the declared shape
                v = g.input(n.arg, n.shape, n.dtype)
            ids[i] = v
            continue
        if n.op is Op.CONST:
            c = src.consts[n.arg]
            ids[i] = g.const(c)
            continue
        if n.op is Op.DROPOUT_MASK:
            ids[i] = _dropout_mask(g, n, [ids[j] for j in n.inputs])
            continue
        method = getattr(g, n.op.value, None)
        if method is None:
            raise TapeError(f"op {n.op.value} has no Graph method")
        extra = [] if n.arg is None else [n.arg]
        if n.op is Op.CAT:  # Graph.cat takes its inputs as one list
            out = int(method([ids[j] for j in n.inputs], *extra))
        else:
            out = int(method(*(ids[j] for j in n.inputs), *extra))
        got = g.nodes[out]
        if got.shape != n.shape or got.dtype != n.dtype:
            raise TapeError(
                f"node {i} ({n.op.value}) gives {got.dtype}{list(got.shape)}, "
                f"recorded {n.dtype}{list(n.shape)}"
            )
        ids[i] = out
        if i == last:
            break
    return ids


def _dropout_mask(g: Graph, n: Node, ins: list[int]) -> int:
    """A recorded DROPOUT_MASK node: its arg (stream, threshold, scale, shape) is kept as
    written (p is not re-derived from the threshold), after checking every part."""
    arg = n.arg
    ok = isinstance(arg, tuple) and len(arg) == 4 and len(ins) == 2
    if ok:
        stream, threshold, scale, shape = arg
        ok = (
            isinstance(stream, int)
            and 0 <= stream < 1 << 64
            and isinstance(threshold, int)
            and 0 <= threshold < 1 << 24
            and isinstance(scale, float)
            and math.isfinite(scale)
            and shape == n.shape
            and n.dtype == "float32"
            and all(g.dtype(v) == "int64" and g.shape(v) == () for v in ins)
        )
    if not ok:
        raise TapeError(f"dropout_mask node with arguments {arg!r}")
    return g._emit(Op.DROPOUT_MASK, ins, arg, n.shape, "float32")


# ----------------------------------------------------------------------------------------
# Weights and tensors datasets
# ----------------------------------------------------------------------------------------


def load_weights(lg: LoweredGraph, data: bytes) -> dict[str, torch.Tensor]:
    """Initial parameters and buffers from safetensors bytes: exactly the graph's names."""
    _sniff(data)
    try:
        tensors, _ = stio.loads(data)
    except CheckpointInvalid as e:
        raise GraphInvalid(f"weights file: {e}") from None
    want = {k: (s, "float32") for k, s in lg.params.items()} | dict(lg.buffers)
    if set(tensors) != set(want):
        missing = sorted(set(want) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(want))[:3]
        raise GraphInvalid(f"weights names differ: missing {missing}, unexpected {extra}")
    for k, (shape, dt) in want.items():
        t = tensors[k]
        if t.dtype != DTYPES[dt] or tuple(t.shape) != shape:
            raise GraphInvalid(
                f"weights {k!r}: expected {dt}{list(shape)}, got {t.dtype}{list(t.shape)}"
            )
    return tensors


def dataset_problems(
    lg: LoweredGraph,
    tensors: Mapping[str, torch.Tensor],
    targets: tuple[tuple[int, ...], str] | None = None,
) -> list[str]:
    """Why a `tensors` dataset does not fit the graph's batch inputs (empty when it fits);
    `targets`: the (shape, dtype) of ``targets`` an output graph's spec-named loss takes."""
    out: list[str] = []
    specs = dict(lg.batch) if targets is None else {**lg.batch, "targets": targets}
    names, want = set(tensors), set(specs)
    for k in sorted(want - names):
        out.append(f"dataset has no tensor {k!r} (the model's inputs: {sorted(want)})")
    for k in sorted(names - want):
        out.append(f"dataset tensor {k!r} is not a model input (inputs: {sorted(want)})")
    bounds = lg.index_bounds()
    for k in sorted(names & want):
        t = tensors[k]
        shape, dt = specs[k]
        if DTYPES[dt] != t.dtype:
            out.append(f"{k}: dtype {str(t.dtype).removeprefix('torch.')}, the model takes {dt}")
            continue
        if tuple(t.shape[1:]) != shape[1:]:
            out.append(f"{k}: rows of shape {list(t.shape[1:])}, the model takes {list(shape[1:])}")
            continue
        lo, hi = (int(t.min()), int(t.max())) if t.numel() else (0, 0)
        if k in bounds and (lo < 0 or hi >= bounds[k]):
            out.append(f"{k}: values in [{lo}, {hi}], the model indexes [0, {bounds[k]})")
    return out


def token_block(lg: LoweredGraph) -> int:
    """T for a token model: inputs and targets int64 (B, T) (an output graph: inputs only,
    the program adds targets); 0 for any other graph."""
    names = ("inputs",) if lg.returns == "output" else ("inputs", "targets")
    specs = [lg.batch.get(k) for k in names]
    if specs and lg.returns == "output":
        specs = specs * 2
    if set(lg.batch) != set(names) or any(
        s is None or s[1] != "int64" or len(s[0]) != 2 for s in specs
    ):
        return 0
    t_in, t_out = (s[0][1] for s in specs if s is not None)
    return t_in if t_in == t_out else 0


def tokens_problems(lg: LoweredGraph, tokens: torch.Tensor) -> list[str]:
    """Why a `tokens` stream does not fit the graph (empty when it fits)."""
    block = token_block(lg)
    if not block:
        inputs = {k: f"{dt}{list(s)}" for k, (s, dt) in sorted(lg.batch.items())}
        return [f"a tokens dataset needs inputs and targets int64 (B, T); the model takes {inputs}"]
    out = []
    if tokens.numel() < block + 2:
        out.append(f"{tokens.numel()} tokens are too few for windows of {block} + 1")
    bound = min(lg.index_bounds().get(k, 1 << 62) for k in ("inputs", "targets"))
    hi = int(tokens.max()) if tokens.numel() else 0
    if hi >= bound:
        out.append(f"tokens reach {hi}, the model indexes [0, {bound})")
    return out
