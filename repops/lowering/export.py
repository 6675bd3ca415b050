"""Lower a `torch.export.ExportedProgram` to a repops forward graph (bring your own model).

The submitter's module has ``forward(*inputs) -> scalar loss`` (e.g. ``forward(inputs,
targets)``) or ``forward(*inputs) -> logits`` (e.g. ``forward(inputs)``; the graph then
records an ``output`` and the job spec names the loss).  `lower` walks the exported FX
graph node by node: parameters become INPUT leaves ``param.<state-dict name>``, user
inputs become INPUT leaves ``batch.<argument name>``, constant tensors and never-mutated
buffers become CONST leaves, buffers that forward updates (batch-norm running
statistics, written in place or returned as torch.export BUFFER_MUTATION outputs) become
INPUT leaves ``buffer.<name>`` whose new values the graph records
(`LoweredGraph.updates`), and every aten call goes through its rule in
`repops.lowering.registry.RULES`.  Every aten op without a rule, or whose rule raises
`Unsupported`, is collected with its source location and all
of them are raised together as one `LoweringFailed`.

If some ops have no rule but torch has a decomposition for them, the program is
decomposed for exactly those ops (``run_decompositions``) and lowered again, so a
composite op lowers when its parts do.

Only dimension 0 of the user inputs may be dynamic (`torch.export.Dim`); the graph is
lowered at one concrete batch size (the job's), which for a static export must be the
example size.  This module runs on the submitter's machine only: solvers, whistleblowers
and arbiters load the canonical graph JSON (`repops.lowering.graph_json`), never a
``.pt2`` file.
"""

from __future__ import annotations

import contextlib
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from repops.errors import RepopsError, TapeError
from repops.lowering import rules_core, rules_ext  # noqa: F401  (register the rules)
from repops.lowering.graph_json import LoweredGraph
from repops.lowering.registry import RULES, T, Unsupported
from repops.tape import Graph

_TORCH_DIR = os.path.dirname(torch.__file__)
_DTYPES = {torch.float32: "float32", torch.int64: "int64"}
_SKIP = frozenset(
    {
        "aten._assert_tensor_metadata.default",
        "aten._assert_scalar.default",
        "aten.sym_constrain_range_for_size.default",
        "aten.sym_constrain_range.default",
        "aten._assert_async.msg",
    }
)
_PY_OPS: dict[Any, Callable[[Any, Any], Any]] = {
    operator.add: operator.add,
    operator.sub: operator.sub,
    operator.mul: operator.mul,
    operator.floordiv: operator.floordiv,
    operator.mod: operator.mod,
}


class LoweringFailed(RepopsError):
    """Some ops of the exported program do not lower; `problems` lists each with its place."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        n = len(self.problems)
        head = "the model does not lower" if n == 1 else f"the model does not lower ({n} problems)"
        super().__init__(f"{head}: " + "; ".join(problems))


@dataclass(frozen=True)
class BatchInfo:
    """What `inspect_batch` learns from the export: is dim 0 dynamic, and the example size."""

    dynamic: bool
    example_size: int


def where(node: torch.fx.Node) -> str:
    """The user's source line of an FX node (last frame outside torch) and its module path."""
    place = ""
    trace = node.meta.get("stack_trace") or ""
    frames = [ln.strip() for ln in trace.splitlines() if ln.strip().startswith("File ")]
    user = [f for f in frames if _TORCH_DIR not in f]
    pick = (user or frames or [""])[-1]
    if pick:
        # 'File "/x/model.py", line 12, in forward' -> 'model.py:12 in forward'
        try:
            path = pick.split('"')[1]
            line = pick.split(", line ")[1].split(",")[0]
            fn = pick.rsplit(" in ", 1)[1]
            place = f"{os.path.basename(path)}:{line} in {fn}"
        except IndexError:
            place = pick
    stack = node.meta.get("nn_module_stack") or {}
    mods = [f"{path} ({str(cls).rsplit('.', 1)[-1]})" for path, cls in stack.values() if path]
    if mods:
        place = f"{place}, module {mods[-1]}" if place else f"module {mods[-1]}"
    return place or "unknown location"


def _user_inputs(ep: ExportedProgram) -> list[tuple[str, torch.fx.Node]]:
    nodes = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    return [
        (s.arg.name, nodes[s.arg.name])
        for s in ep.graph_signature.input_specs
        if s.kind == InputKind.USER_INPUT
    ]


def inspect_batch(ep: ExportedProgram) -> BatchInfo:
    """Whether dim 0 of the user inputs is a `torch.export.Dim`, and the example batch size."""
    dynamic = False
    symbols: set[Any] = set()
    example = 0
    ex_inputs = getattr(ep, "example_inputs", None)
    for k, (name, node) in enumerate(_user_inputs(ep)):
        val = node.meta.get("val")
        if not isinstance(val, torch.Tensor):
            raise LoweringFailed([f"input {name!r} is not a tensor"])
        for d, size in enumerate(val.shape):
            if isinstance(size, torch.SymInt):
                if d != 0:
                    raise LoweringFailed(
                        [f"input {name!r}: only dimension 0 (the batch) may be dynamic, not {d}"]
                    )
                dynamic = True
                symbols.add(size.node.expr)
        if val.dim() == 0:
            raise LoweringFailed([f"input {name!r} is 0-dim: inputs need a batch dimension"])
        if k:  # the batch size is the first input's dim 0 (every input is checked later)
            continue
        if ex_inputs is not None and ex_inputs[0]:
            example = int(ex_inputs[0][0].shape[0])
        elif not isinstance(val.shape[0], torch.SymInt):
            example = int(val.shape[0])
    if len(symbols) > 1:
        raise LoweringFailed(["the inputs' batch dimensions must be one and the same Dim"])
    return BatchInfo(dynamic, example)


def lower(ep: ExportedProgram, batch_size: int | None = None) -> LoweredGraph:
    """Lower `ep` at `batch_size` (default: the example size); raises `LoweringFailed`."""
    info = inspect_batch(ep)
    b = info.example_size if batch_size is None else int(batch_size)
    if b < 1:
        raise LoweringFailed([f"batch size {b} must be >= 1"])
    if not info.dynamic and b != info.example_size:
        raise LoweringFailed(
            [
                f"exported with static shapes: it trains only at batch size {info.example_size}, "
                f"not {b} (export with dynamic_shapes=torch.export.Dim for dim 0)"
            ]
        )
    tried: set[str] = set()
    for _ in range(4):
        try:
            return _lower_once(ep, b, info.dynamic)
        except _NoRule as e:
            table = torch.export.default_decompositions()
            todo = {op: table[op] for op in e.ops if op in table and str(op) not in tried}
            if not todo:
                raise LoweringFailed(e.problems) from None
            tried.update(str(op) for op in todo)
            ep = ep.run_decompositions(todo)
    raise LoweringFailed(["decomposition did not converge"])


_BN_INPLACE = frozenset({"aten.batch_norm.default", "aten._native_batch_norm_legit.default"})


def _mutated_buffers(ep: ExportedProgram) -> set[str]:
    """State-dict names of the buffers forward writes: BUFFER_MUTATION outputs, the
    written arguments of in-place ops, and the running statistics of training batch norm."""
    sig = ep.graph_signature
    out = set(sig.buffers_to_mutate.values()) if sig.buffers_to_mutate else set()
    buf = {
        s.arg.name: str(s.target)
        for s in sig.input_specs
        if s.kind == InputKind.BUFFER and hasattr(s.arg, "name")
    }
    for node in ep.graph.nodes:
        if node.op != "call_function":
            continue
        written: list[Any] = []
        schema = getattr(node.target, "_schema", None)
        if schema is not None:
            for k, a in enumerate(schema.arguments):
                if a.alias_info is not None and a.alias_info.is_write:
                    written.append(node.args[k] if k < len(node.args) else node.kwargs.get(a.name))
        if str(node.target) in _BN_INPLACE and len(node.args) > 5 and node.args[5] is True:
            written += [node.args[3], node.args[4]]
        for a in written:
            if isinstance(a, torch.fx.Node) and a.name in buf:
                out.add(buf[a.name])
    return out


def _inplace_key(key: str) -> str | None:
    """'aten.add_.Tensor' -> 'aten.add.Tensor' (the functional twin), else None."""
    parts = key.split(".")
    op = parts[1] if len(parts) == 3 and parts[0] == "aten" else ""
    if len(op) > 1 and op.endswith("_") and not op.startswith("_"):
        return f"aten.{op[:-1]}.{parts[2]}"
    return None


class _NoRule(Exception):
    def __init__(self, problems: list[str], ops: list[Any]) -> None:
        self.problems = problems
        self.ops = ops


def _lower_once(ep: ExportedProgram, batch_size: int, dynamic: bool) -> LoweredGraph:
    sig = ep.graph_signature
    mutated = _mutated_buffers(ep)
    specs = {s.arg.name: s for s in sig.input_specs if hasattr(s.arg, "name")}
    g = Graph()
    env: dict[str, Any] = {}
    symbols: dict[Any, int] = {}
    params: dict[str, tuple[int, ...]] = {}
    batch: dict[str, tuple[tuple[int, ...], str]] = {}
    weights: dict[str, torch.Tensor] = {}
    buffers: dict[str, tuple[tuple[int, ...], str]] = {}
    buffer_leaf: dict[str, int] = {}  # buffer name -> its INPUT node id
    current: dict[str, int] = {}  # buffer name -> node id of its value so far
    placeholder: dict[str, str] = {}  # buffer name -> its FX placeholder

    def absorb() -> None:
        """Move the rules' `g.buffer_updates` (keyed by a buffer's value so far) into
        `current`; later reads of the buffer see its new value (a module called twice)."""
        for old, new in g.buffer_updates.items():
            names = [k for k, v in current.items() if v == old]
            if not names:
                raise Unsupported("running statistics that are not a module buffer")
            current[names[0]] = new
            env[placeholder[names[0]]] = T(new)
        g.buffer_updates.clear()

    problems: list[str] = []
    no_rule: list[Any] = []

    def concrete(x: Any) -> Any:
        if isinstance(x, torch.fx.Node):
            return env[x.name]
        if isinstance(x, torch.SymInt):
            expr = x.node.expr.xreplace(symbols)
            try:
                return int(expr)
            except TypeError:
                raise Unsupported(f"symbolic size {x} other than the batch") from None
        if isinstance(x, list | tuple):
            return type(x)(concrete(y) for y in x)
        return x

    def shape_of(val: torch.Tensor) -> tuple[int, ...]:
        out = []
        for d in val.shape:
            if isinstance(d, torch.SymInt):
                symbols.setdefault(d.node.expr, batch_size)
                out.append(batch_size)
            else:
                out.append(int(d))
        return tuple(out)

    def stand_in(node: torch.fx.Node) -> None:
        """After a failed node: a leaf of its shape, so later nodes are still checked and
        one run reports every problem (the graph is discarded when any problem is found)."""
        val = node.meta.get("val")
        if isinstance(val, torch.Tensor) and val.dtype in _DTYPES:
            with contextlib.suppress(Unsupported, TapeError):
                shape = tuple(int(concrete(d)) for d in val.shape)
                env[node.name] = T(g.input(f"unlowered.{node.name}", shape, _DTYPES[val.dtype]))

    for node in ep.graph.nodes:
        if node.op == "placeholder":
            spec = specs[node.name]
            val = node.meta.get("val")
            if spec.kind == InputKind.PARAMETER:
                name = str(spec.target)
                tensor = ep.state_dict[name]
                if tensor.dtype != torch.float32:
                    problems.append(f"parameter {name!r} is {tensor.dtype}; only float32 trains")
                    continue
                params[name] = tuple(tensor.shape)
                weights[name] = tensor.detach().clone()
                env[node.name] = T(g.input(f"param.{name}", tuple(tensor.shape)))
            elif spec.kind in (InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
                name = str(spec.target)
                tensor = (ep.state_dict if name in ep.state_dict else ep.constants)[name]
                assert isinstance(tensor, torch.Tensor)
                if tensor.dtype not in _DTYPES:
                    what = "buffer" if name in mutated else "constant"
                    problems.append(f"{what} {name!r} of dtype {tensor.dtype}")
                    continue
                if name in mutated:  # state: read at the step's start, written by forward
                    shape, dt = tuple(int(d) for d in tensor.shape), _DTYPES[tensor.dtype]
                    buffers[name] = (shape, dt)
                    weights[name] = tensor.detach().clone()
                    buffer_leaf[name] = current[name] = g.input(f"buffer.{name}", shape, dt)
                    placeholder[name] = node.name
                    env[node.name] = T(buffer_leaf[name])
                    continue
                env[node.name] = T(g.const(tensor.detach().clone()))
            elif spec.kind == InputKind.USER_INPUT:
                if not isinstance(val, torch.Tensor) or val.dtype not in _DTYPES:
                    dt = getattr(val, "dtype", type(val).__name__)
                    problems.append(
                        f"input {node.name!r} of dtype {dt}: inputs are float32 or int64"
                    )
                    continue
                shape = shape_of(val)
                dt = _DTYPES[val.dtype]
                if not shape or shape[0] != batch_size:
                    problems.append(
                        f"input {node.name!r} of shape {list(shape)}: dimension 0 of every input "
                        f"is the batch ({batch_size}); pass fixed tensors as buffers"
                    )
                    continue
                batch[node.name] = (shape, dt)
                env[node.name] = T(g.input(f"batch.{node.name}", shape, dt))
            else:
                problems.append(f"input {node.name!r} of kind {spec.kind.name}: unsupported")
        elif node.op == "call_function":
            target = node.target
            key = str(target)
            if key in _SKIP:
                env[node.name] = None
                continue
            try:
                if key == "aten.sym_size.int":
                    t = concrete(node.args[0])
                    env[node.name] = g.shape(t.id)[int(node.args[1])]
                    continue
                if target is operator.getitem:
                    env[node.name] = concrete(node.args[0])[int(node.args[1])]
                    continue
                if target in _PY_OPS:
                    env[node.name] = _PY_OPS[target](*concrete(node.args))
                    continue
                fn = RULES.get(key)
                functional = _inplace_key(key) if fn is None else None
                if functional is not None and functional in RULES:
                    _lower_inplace(g, node, RULES[functional], concrete, env, buffer_leaf, current)
                    absorb()
                    continue
                if fn is None:
                    problems.append(f"{key} at {where(node)}: no lowering rule")
                    no_rule.append(target)
                    stand_in(node)
                    continue
                args = concrete(node.args)
                kwargs = {k: concrete(v) for k, v in node.kwargs.items()}
                out = fn(g, tuple(args), kwargs)
                absorb()
                env[node.name] = tuple(T(i) for i in out) if isinstance(out, tuple) else T(int(out))
            except KeyError:
                continue  # an input did not lower and has no stand-in: reported at its source
            except (Unsupported, TapeError) as e:
                problems.append(f"{key} at {where(node)}: {e}")
                stand_in(node)
            except (TypeError, ValueError, AttributeError, IndexError) as e:
                problems.append(f"{key} at {where(node)}: unexpected arguments ({e})")
                stand_in(node)
        elif node.op == "output":
            pass
        else:
            problems.append(f"FX node {node.name} of kind {node.op}: unsupported")

    if no_rule:
        raise _NoRule(problems, no_rule)
    if problems:
        raise LoweringFailed(problems)
    outs = [s for s in sig.output_specs if s.kind == OutputKind.USER_OUTPUT]
    other = [
        s
        for s in sig.output_specs
        if s.kind not in (OutputKind.USER_OUTPUT, OutputKind.BUFFER_MUTATION)
    ]
    if other:
        raise LoweringFailed(
            [f"output {other[0].arg.name!r} of kind {other[0].kind.name}: unsupported"]
        )
    if len(outs) != 1:
        raise LoweringFailed(
            [f"forward must return one tensor (a scalar loss, or logits), not {len(outs)} outputs"]
        )
    loss = env.get(outs[0].arg.name)
    if not isinstance(loss, T):
        raise LoweringFailed(["forward must return a tensor (a scalar loss, or logits)"])
    shape, dt = g.shape(loss.id), g.dtype(loss.id)
    # A 0-dim result is the loss; a batched one is an output the spec's loss is applied to.
    returns = "loss" if shape == () else "output"
    if dt != "float32" or (returns == "output" and shape[0] != batch_size):
        raise LoweringFailed(
            [
                "forward must return a 0-dim float32 loss or float32 logits/predictions "
                f"with dim 0 = the batch, got {dt}{list(shape)}"
            ]
        )
    if returns == "output" and "targets" in batch:
        raise LoweringFailed(
            [
                "forward takes 'targets' but returns logits: return the loss from it, or "
                "drop the targets argument and name the loss in the spec"
            ]
        )
    updates = _updates(g, sig, env, buffer_leaf, current)
    return LoweredGraph(
        graph=g,
        loss=loss.id,
        params=params,
        batch=batch,
        batch_size=batch_size,
        dynamic_batch=dynamic,
        weights=weights,
        buffers=buffers,
        updates=updates,
        returns=returns,
    )


def _lower_inplace(
    g: Graph,
    node: torch.fx.Node,
    fn: Callable[..., Any],
    concrete: Callable[[Any], Any],
    env: dict[str, Any],
    buffer_leaf: dict[str, int],
    current: dict[str, int],
) -> None:
    """An in-place op (``aten.add_``) on a state buffer (its placeholder, or the result of
    an earlier in-place op on it): its functional rule, whose result is the buffer's new
    value (read by every later use of the buffer)."""
    target = node.args[0] if node.args else None
    val = env.get(target.name) if isinstance(target, torch.fx.Node) else None
    names = [k for k, v in current.items() if isinstance(val, T) and v == val.id]
    if not names:
        raise Unsupported("in-place op on something other than a module buffer")
    name = names[0]
    args = concrete(node.args)
    kwargs = {k: concrete(v) for k, v in node.kwargs.items()}
    out = fn(g, tuple(args), kwargs)
    if isinstance(out, tuple):
        raise Unsupported("in-place op with several results")
    leaf = buffer_leaf[name]
    out = int(out)
    if g.shape(out) != g.shape(leaf) or g.dtype(out) != g.dtype(leaf):
        raise Unsupported(f"in-place op changes buffer {name!r}'s shape or dtype")
    g.buffer_updates[current[name]] = out  # keyed by its value so far
    env[node.name] = T(out)


def _updates(
    g: Graph,
    sig: Any,
    env: dict[str, Any],
    buffer_leaf: dict[str, int],
    current: dict[str, int],
) -> dict[str, int]:
    """Buffer name -> node id of its value after forward (unchanged buffers left out)."""
    out = {k: v for k, v in current.items() if v != buffer_leaf[k]}
    for s in sig.output_specs:
        if s.kind == OutputKind.BUFFER_MUTATION:
            v = env.get(s.arg.name)
            if not isinstance(v, T) or str(s.target) not in buffer_leaf:
                raise LoweringFailed([f"buffer {s.target!r}: its new value did not lower"])
            out[str(s.target)] = v.id
    for name, nid in out.items():
        leaf = buffer_leaf[name]
        if g.shape(nid) != g.shape(leaf) or g.dtype(nid) != g.dtype(leaf):
            raise LoweringFailed([f"buffer {name!r}: its new value has another shape or dtype"])
    return dict(sorted(out.items()))
