"""The static tape: a graph builder over the `Op` vocabulary, reverse-mode autodiff, and
the executor that runs a tape on any device.

A tape is a list of nodes in execution order.  Leaves are INPUT (state and batch tensors,
by name) and CONST (tensors fixed by the program); every other node is one operator of
the step's chain, numbered j = 1..M in tape order.  The tape is built deterministically
from the program, so op j means the same thing on every machine.

The executor is the only code that runs tapes: normal training, replay with per-op
hashes and single-op re-execution all go through it, which is what makes a full step and
an op-by-op replay bit-identical.  This module must never call torch autograd or any op
outside `repops.ops.KERNELS`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from repops import numerics, rng
from repops.errors import TapeError
from repops.ops import KERNELS, Kernel, Op

Shape = tuple[int, ...]
DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "int64": torch.int64}


@dataclass(frozen=True)
class Node:
    """One tape entry: op, input node ids, static argument, output shape and dtype."""

    op: Op
    inputs: tuple[int, ...]
    arg: Any
    shape: Shape
    dtype: str


@dataclass
class Graph:
    """Builds a tape.  Methods take and return node ids (ints)."""

    nodes: list[Node] = field(default_factory=list)
    consts: list[torch.Tensor] = field(default_factory=list)
    inputs: dict[str, int] = field(default_factory=dict)
    _scalar_cache: dict[tuple[str, bytes], int] = field(default_factory=dict)
    # State written by forward ops (batch norm running statistics): {INPUT node id of the
    # buffer: node id of its new value}.  Whoever builds the program makes each entry a
    # state output, so the buffer's next value is part of the step's state hash.
    buffer_updates: dict[int, int] = field(default_factory=dict)

    # -- bookkeeping ---------------------------------------------------------------------
    def shape(self, v: int) -> Shape:
        return self.nodes[v].shape

    def dtype(self, v: int) -> str:
        return self.nodes[v].dtype

    def _emit(self, op: Op, inputs: Sequence[int], arg: Any, shape: Shape, dtype: str) -> int:
        self.nodes.append(Node(op, tuple(inputs), arg, tuple(int(d) for d in shape), dtype))
        return len(self.nodes) - 1

    def _f32(self, *vs: int) -> None:
        for v in vs:
            if self.nodes[v].dtype != "float32":
                raise TapeError(f"node {v} ({self.nodes[v].op.value}) must be float32")

    # -- leaves --------------------------------------------------------------------------
    def input(self, name: str, shape: Shape, dtype: str = "float32") -> int:
        if name in self.inputs:
            raise TapeError(f"duplicate input {name!r}")
        v = self._emit(Op.INPUT, (), name, shape, dtype)
        self.inputs[name] = v
        return v

    def const(self, value: float | int | torch.Tensor, dtype: str = "float32") -> int:
        """A constant; Python numbers are rounded once to `dtype` (RNE) and deduplicated."""
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu").contiguous()
            if t.dtype not in (torch.float32, torch.int64):
                raise TapeError(f"constant of dtype {t.dtype}")
            self.consts.append(t)
            name = "float32" if t.dtype == torch.float32 else "int64"
            return self._emit(Op.CONST, (), len(self.consts) - 1, tuple(t.shape), name)
        t = torch.tensor(value, dtype=DTYPES[dtype])
        key = (dtype, t.numpy().tobytes())
        hit = self._scalar_cache.get(key)
        if hit is None:
            self.consts.append(t)
            hit = self._emit(Op.CONST, (), len(self.consts) - 1, (), dtype)
            self._scalar_cache[key] = hit
        return hit

    # -- elementwise ---------------------------------------------------------------------
    def _binary(self, op: Op, a: int, b: int) -> int:
        da, db = self.dtype(a), self.dtype(b)
        if da != db or (da != "float32" and op is not Op.ADD):
            raise TapeError(f"{op.value}: dtypes {da} and {db}")
        shape = _broadcast(self.shape(a), self.shape(b))
        if shape is None:
            raise TapeError(f"{op.value}: shapes {self.shape(a)} and {self.shape(b)}")
        return self._emit(op, (a, b), None, shape, da)

    def add(self, a: int, b: int) -> int:
        return self._binary(Op.ADD, a, b)

    def sub(self, a: int, b: int) -> int:
        return self._binary(Op.SUB, a, b)

    def mul(self, a: int, b: int) -> int:
        return self._binary(Op.MUL, a, b)

    def div(self, a: int, b: int) -> int:
        return self._binary(Op.DIV, a, b)

    def maximum(self, a: int, b: int) -> int:
        return self._binary(Op.MAXIMUM, a, b)

    def minimum(self, a: int, b: int) -> int:
        return self._binary(Op.MINIMUM, a, b)

    def relu_grad(self, x: int, g: int) -> int:
        return self._binary(Op.RELU_GRAD, x, g)

    def _unary(self, op: Op, a: int) -> int:
        self._f32(a)
        return self._emit(op, (a,), None, self.shape(a), "float32")

    def neg(self, a: int) -> int:
        return self._unary(Op.NEG, a)

    def sqrt(self, a: int) -> int:
        return self._unary(Op.SQRT, a)

    def relu(self, a: int) -> int:
        return self._unary(Op.RELU, a)

    def exp(self, a: int) -> int:
        return self._unary(Op.EXP, a)

    def log(self, a: int) -> int:
        return self._unary(Op.LOG, a)

    def tanh(self, a: int) -> int:
        return self._unary(Op.TANH, a)

    def layer_norm(self, a: int, eps: float) -> int:
        """(a - mean) / sqrt(var + eps) over the last axis (one fused op)."""
        self._f32(a)
        if not self.shape(a):
            raise TapeError("layer_norm needs at least one axis")
        return self._emit(Op.LAYER_NORM, (a,), float(eps), self.shape(a), "float32")

    def layer_norm_grad(self, x: int, g: int, eps: float) -> int:
        self._f32(x, g)
        if self.shape(x) != self.shape(g):
            raise TapeError(f"layer_norm_grad shapes {self.shape(x)} and {self.shape(g)}")
        return self._emit(Op.LAYER_NORM_GRAD, (x, g), float(eps), self.shape(x), "float32")

    def softmax(self, a: int) -> int:
        """Softmax over the last axis (one fused op; its derivative is SOFTMAX_GRAD)."""
        if not self.shape(a):
            raise TapeError("softmax needs at least one axis")
        return self._unary(Op.SOFTMAX, a)

    def softmax_grad(self, y: int, g: int) -> int:
        self._f32(y, g)
        if self.shape(y) != self.shape(g):
            raise TapeError(f"softmax_grad shapes {self.shape(y)} and {self.shape(g)}")
        return self._emit(Op.SOFTMAX_GRAD, (y, g), None, self.shape(y), "float32")

    def gelu(self, a: int) -> int:
        return self._unary(Op.GELU, a)

    def gelu_grad(self, x: int, g: int) -> int:
        self._f32(x, g)
        if self.shape(x) != self.shape(g):
            raise TapeError(f"gelu_grad shapes {self.shape(x)} and {self.shape(g)}")
        return self._emit(Op.GELU_GRAD, (x, g), None, self.shape(x), "float32")

    def to_f32(self, a: int) -> int:
        if self.dtype(a) != "int64":
            raise TapeError("to_f32 takes int64")
        return self._emit(Op.TO_F32, (a,), None, self.shape(a), "float32")

    # -- issue 13 primitives (see `Op`; composites over them are in repops.composites) ---
    def sigmoid(self, a: int) -> int:
        return self._unary(Op.SIGMOID, a)

    def gelu_erf(self, a: int) -> int:
        return self._unary(Op.GELU_ERF, a)

    def gelu_erf_grad(self, x: int, g: int) -> int:
        self._f32(x, g)
        if self.shape(x) != self.shape(g):
            raise TapeError(f"gelu_erf_grad shapes {self.shape(x)} and {self.shape(g)}")
        return self._emit(Op.GELU_ERF_GRAD, (x, g), None, self.shape(x), "float32")

    def sin(self, a: int) -> int:
        return self._unary(Op.SIN, a)

    def cos(self, a: int) -> int:
        return self._unary(Op.COS, a)

    def take(self, x: int, idx: torch.Tensor | int, lead: int = 0) -> int:
        """Gather with fixed indices (a constant int64 tensor, -1 for +0) per leading index."""
        if isinstance(idx, torch.Tensor):
            if idx.dtype != torch.int64:
                raise TapeError("take indices must be int64")
            idx = self.const(idx)
        node = self.nodes[idx]
        if node.op is not Op.CONST or node.dtype != "int64":
            raise TapeError("take indices must be an int64 constant")
        sx = self.shape(x)
        if not 0 <= lead <= len(sx):
            raise TapeError(f"take lead {lead} for shape {sx}")
        per = _prod(sx[lead:])
        t = self.consts[node.arg]
        if t.numel() and (int(t.min()) < -1 or int(t.max()) >= per):
            raise TapeError(f"take index out of range for {per} elements per entry")
        shape = (*sx[:lead], *node.shape)
        return self._emit(Op.TAKE, (x, idx), int(lead), shape, self.dtype(x))

    def amax(self, a: int, axis: int) -> int:
        self._f32(a)
        ax = self._axis(a, axis)
        shape = list(self.shape(a))
        shape[ax] = 1
        return self._emit(Op.AMAX, (a,), ax, tuple(shape), "float32")

    def max_grad(self, x: int, g: int, axis: int) -> int:
        self._f32(x, g)
        ax = self._axis(x, axis)
        want = list(self.shape(x))
        want[ax] = 1
        if self.shape(g) != tuple(want):
            raise TapeError(f"max_grad shapes {self.shape(x)} and {self.shape(g)}")
        return self._emit(Op.MAX_GRAD, (x, g), ax, self.shape(x), "float32")

    def compare(self, a: int, b: int, how: str) -> int:
        if how not in ("gt", "ge", "lt", "le", "eq", "ne"):
            raise TapeError(f"compare {how!r}: use gt, ge, lt, le, eq or ne")
        if self.dtype(a) != self.dtype(b):
            raise TapeError(f"compare dtypes {self.dtype(a)} and {self.dtype(b)}")
        shape = _broadcast(self.shape(a), self.shape(b))
        if shape is None:
            raise TapeError(f"compare shapes {self.shape(a)} and {self.shape(b)}")
        return self._emit(Op.COMPARE, (a, b), how, shape, "int64")

    def where(self, c: int, a: int, b: int) -> int:
        if self.dtype(c) != "int64" or self.dtype(a) != self.dtype(b):
            raise TapeError("where takes an int64 condition and two values of one dtype")
        s1 = _broadcast(self.shape(a), self.shape(b))
        shape = None if s1 is None else _broadcast(self.shape(c), s1)
        if shape is None:
            raise TapeError(f"where shapes {self.shape(c)}, {self.shape(a)}, {self.shape(b)}")
        return self._emit(Op.WHERE, (c, a, b), None, shape, self.dtype(a))

    def cat(self, xs: Sequence[int], axis: int) -> int:
        if not xs:
            raise TapeError("cat of nothing")
        ax = self._axis(xs[0], axis)
        s0 = self.shape(xs[0])
        total = 0
        for v in xs:
            sv = self.shape(v)
            if (
                self.dtype(v) != self.dtype(xs[0])
                or len(sv) != len(s0)
                or any(p != q for k, (p, q) in enumerate(zip(sv, s0, strict=True)) if k != ax)
            ):
                raise TapeError(f"cat shapes {[self.shape(u) for u in xs]} on axis {ax}")
            total += sv[ax]
        if len(xs) == 1:
            return xs[0]
        shape = (*s0[:ax], total, *s0[ax + 1 :])
        return self._emit(Op.CAT, tuple(xs), ax, shape, self.dtype(xs[0]))

    def dropout_mask(self, shape: Shape, p: float, seed: int, step: int) -> int:
        """The float32 mask of one dropout op: 0 with probability p (in steps of 2**-24),
        else f32(1/(1-p)); the k-th mask of the graph uses stream stream_id("dropout.k")."""
        if not 0.0 <= p < 1.0:
            raise TapeError(f"dropout p={p} must be in [0, 1)")
        for v in (seed, step):
            if self.dtype(v) != "int64" or self.shape(v) != ():
                raise TapeError("dropout seed and step must be int64 scalars")
        k = sum(1 for n in self.nodes if n.op is Op.DROPOUT_MASK)
        stream = rng.stream_id(f"dropout.{k}")
        threshold = round(p * (1 << 24))
        scale = float(torch.tensor(1.0 / (1.0 - p), dtype=torch.float32).item())
        arg = (stream, threshold, scale, tuple(int(d) for d in shape))
        return self._emit(Op.DROPOUT_MASK, (seed, step), arg, shape, "float32")

    def slice(self, a: int, axis: int, start: int, stop: int, step: int = 1) -> int:
        """a[..., start:stop:step, ...] on `axis` (Python slice rules): a TAKE."""
        ax = self._axis(a, axis)
        sa = self.shape(a)
        if step <= 0:
            raise TapeError(f"slice step {step} must be positive")
        picks = range(*slice(start, stop, step).indices(sa[ax]))
        if len(picks) == sa[ax]:
            return a
        inner = _prod(sa[ax + 1 :])
        base = torch.tensor(list(picks), dtype=torch.int64).reshape(-1, 1) * inner
        idx = (base + torch.arange(inner, dtype=torch.int64)).reshape(len(picks), *sa[ax + 1 :])
        return self.take(a, idx, ax)

    # -- fused optimizer pieces (after the loss: never differentiated) --------------------
    def _scalars(self, *vs: int) -> None:
        self._f32(*vs)
        for v in vs:
            if self.shape(v) != ():
                raise TapeError(f"node {v} must be a 0-dim scalar")

    def adam_moment(self, m: int, g: int, b: int, c: int, square: bool) -> int:
        self._f32(m, g)
        self._scalars(b, c)
        if self.shape(m) != self.shape(g):
            raise TapeError(f"adam_moment shapes {self.shape(m)} and {self.shape(g)}")
        return self._emit(Op.ADAM_MOMENT, (m, g, b, c), bool(square), self.shape(m), "float32")

    def adamw_param(self, p: int, m: int, v: int, scalars: Sequence[int], decay: bool) -> int:
        """scalars: (bc1, bc2, eps, lr, wd)."""
        self._f32(p, m, v)
        self._scalars(*scalars)
        if len(scalars) != 5 or not self.shape(p) == self.shape(m) == self.shape(v):
            raise TapeError("adamw_param takes p, m, v of one shape and 5 scalars")
        ins = (p, m, v, *scalars)
        return self._emit(Op.ADAMW_PARAM, ins, bool(decay), self.shape(p), "float32")

    # -- reductions, matmul, shapes ------------------------------------------------------
    def _axis(self, a: int, axis: int) -> int:
        nd = len(self.shape(a))
        if not -nd <= axis < nd:
            raise TapeError(f"axis {axis} out of range for shape {self.shape(a)}")
        return axis % nd

    def sum(self, a: int, axis: int) -> int:
        self._f32(a)
        ax = self._axis(a, axis)
        shape = list(self.shape(a))
        shape[ax] = 1
        return self._emit(Op.SUM, (a,), ax, tuple(shape), "float32")

    def max(self, a: int, axis: int) -> int:
        self._f32(a)
        ax = self._axis(a, axis)
        shape = list(self.shape(a))
        shape[ax] = 1
        return self._emit(Op.MAX, (a,), ax, tuple(shape), "float32")

    def matmul(self, a: int, b: int) -> int:
        self._f32(a, b)
        sa, sb = self.shape(a), self.shape(b)
        if len(sa) < 2 or len(sb) < 2 or sa[-1] != sb[-2]:
            raise TapeError(f"matmul shapes {sa} @ {sb}")
        if len(sb) > 2 and sa[:-2] != sb[:-2]:
            raise TapeError(f"matmul batch dims {sa} @ {sb}")
        return self._emit(Op.MATMUL, (a, b), None, (*sa[:-1], sb[-1]), "float32")

    def reshape(self, a: int, shape: Shape) -> int:
        n_in = 1
        for d in self.shape(a):
            n_in *= d
        n_out = 1
        for d in shape:
            n_out *= d
        if n_in != n_out:
            raise TapeError(f"reshape {self.shape(a)} -> {shape}")
        if tuple(shape) == self.shape(a):
            return a
        return self._emit(Op.RESHAPE, (a,), tuple(shape), shape, self.dtype(a))

    def permute(self, a: int, perm: Shape) -> int:
        sa = self.shape(a)
        if sorted(perm) != list(range(len(sa))):
            raise TapeError(f"permute {perm} of shape {sa}")
        shape = tuple(sa[p] for p in perm)
        return self._emit(Op.PERMUTE, (a,), tuple(perm), shape, self.dtype(a))

    def transpose_last(self, a: int) -> int:
        nd = len(self.shape(a))
        return self.permute(a, (*range(nd - 2), nd - 1, nd - 2))

    def expand(self, a: int, shape: Shape) -> int:
        sa = self.shape(a)
        if len(sa) != len(shape) or any(x != y and x != 1 for x, y in zip(sa, shape, strict=True)):
            raise TapeError(f"expand {sa} -> {shape}")
        return self._emit(Op.EXPAND, (a,), tuple(shape), shape, self.dtype(a))

    def onehot(self, idx: int, classes: int) -> int:
        if self.dtype(idx) != "int64":
            raise TapeError("onehot takes int64 indices")
        return self._emit(Op.ONEHOT, (idx,), int(classes), (*self.shape(idx), classes), "float32")

    def gather_rows(self, table: int, idx: int) -> int:
        self._f32(table)
        if self.dtype(idx) != "int64" or len(self.shape(table)) != 2:
            raise TapeError("gather_rows takes a (V, C) float32 table and int64 indices")
        shape = (*self.shape(idx), self.shape(table)[1])
        return self._emit(Op.GATHER_ROWS, (table, idx), None, shape, "float32")

    # -- composites (expanded into primitives at build time) -----------------------------
    def sum_to(self, g: int, shape: Shape) -> int:
        """Sum a broadcast result back to `shape` (used by autodiff)."""
        gs = self.shape(g)
        if gs == tuple(shape):
            return g
        lead = len(gs) - len(shape)
        for ax in range(len(gs)):
            if ax < lead or (shape[ax - lead] == 1 and gs[ax] != 1):
                g = self.sum(g, ax)
        return self.reshape(g, tuple(shape))


# ----------------------------------------------------------------------------------------
# Reverse-mode autodiff
# ----------------------------------------------------------------------------------------

_NO_GRAD = frozenset(
    {
        Op.INPUT,
        Op.CONST,
        Op.MAX,
        Op.ONEHOT,
        Op.TO_F32,
        Op.RELU_GRAD,
        Op.GELU_GRAD,
        Op.SOFTMAX_GRAD,
        Op.LAYER_NORM_GRAD,
        Op.ADAM_MOMENT,
        Op.ADAMW_PARAM,
        Op.GELU_ERF_GRAD,
        Op.MAX_GRAD,
        Op.COMPARE,
        Op.DROPOUT_MASK,
    }
)


def _take_transpose(g: Graph, gi: int, x_shape: Shape, idx_node: int, lead: int) -> int:
    """The derivative of TAKE: each element of x sums the gradients of the outputs that
    copied it, in increasing output position, by the halving tree (a TAKE of the gradient
    with the inverse index, then SUM); an element nobody copied gets +0."""
    idx = g.consts[g.nodes[idx_node].arg].reshape(-1)
    per = _prod(x_shape[lead:])
    valid = torch.nonzero(idx >= 0).reshape(-1)
    src = idx[valid]
    counts = (
        torch.bincount(src, minlength=per) if src.numel() else torch.zeros(per, dtype=torch.int64)
    )
    kmax = max(1, int(counts.max()) if per else 1)
    order = torch.argsort(src * (idx.numel() + 1) + valid)  # by element, then position
    src_sorted, pos_sorted = src[order], valid[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(src_sorted.numel()) - starts[src_sorted]
    inv = torch.full((per, kmax), -1, dtype=torch.int64)
    inv[src_sorted, rank] = pos_sorted
    lead_shape = x_shape[:lead]
    flat = g.reshape(gi, (*lead_shape, _prod(g.shape(gi)[lead:])))
    if kmax == 1:  # a plain permutation or selection: no sum needed
        return g.reshape(g.take(flat, inv.reshape(per), lead), x_shape)
    gx = g.sum(g.take(flat, inv, lead), -1)
    return g.reshape(gx, x_shape)


def backward(g: Graph, loss: int, wrt: Sequence[int], start: int = 0) -> dict[int, int]:
    """Append the backward pass of scalar `loss`; returns {node: gradient node} for `wrt`.

    Gradients of a node used several times are summed in reverse tape order, a fixed
    order, so the backward tape is as deterministic as the forward one.

    `start` (a micro-batch's first node): the nodes from `start` to `loss` read no
    operator below `start`, only leaves (checked: TapeError otherwise), so the pass looks
    at that range only; the nodes it appends are the same as with ``start = 0``.
    """
    if g.shape(loss) != ():
        raise TapeError("loss must be a scalar")
    n = loss + 1
    targets = set(wrt)
    needs = [False] * n
    for i in range(start):
        needs[i] = i in targets and g.nodes[i].op.is_leaf
    for i in range(start, n):
        node = g.nodes[i]
        for j in node.inputs:
            if j < start and not g.nodes[j].op.is_leaf:
                raise TapeError(f"backward from node {start}: node {i} reads operator {j}")
        needs[i] = i in targets or (node.op not in _NO_GRAD and any(needs[j] for j in node.inputs))
    grads: dict[int, int] = {loss: g.const(1.0)}

    def acc(v: int, gv: int) -> None:
        if not needs[v]:
            return
        prev = grads.get(v)
        grads[v] = gv if prev is None else g.add(prev, gv)

    for i in range(loss, start - 1, -1):
        gi = grads.get(i)
        node = g.nodes[i]
        if gi is None or node.op in _NO_GRAD:
            continue
        ins = node.inputs
        op = node.op
        if op is Op.ADD:
            acc(ins[0], g.sum_to(gi, g.shape(ins[0])))
            acc(ins[1], g.sum_to(gi, g.shape(ins[1])))
        elif op is Op.SUB:
            acc(ins[0], g.sum_to(gi, g.shape(ins[0])))
            if needs[ins[1]]:
                acc(ins[1], g.sum_to(g.neg(gi), g.shape(ins[1])))
        elif op is Op.MUL:
            if needs[ins[0]]:
                acc(ins[0], g.sum_to(g.mul(gi, ins[1]), g.shape(ins[0])))
            if needs[ins[1]]:
                acc(ins[1], g.sum_to(g.mul(gi, ins[0]), g.shape(ins[1])))
        elif op is Op.DIV:
            if needs[ins[0]]:
                acc(ins[0], g.sum_to(g.div(gi, ins[1]), g.shape(ins[0])))
            if needs[ins[1]]:
                t = g.neg(g.div(g.mul(gi, i), ins[1]))  # -(g * a/b) / b
                acc(ins[1], g.sum_to(t, g.shape(ins[1])))
        elif op is Op.NEG:
            acc(ins[0], g.neg(gi))
        elif op is Op.SQRT:
            acc(ins[0], g.div(g.mul(gi, g.const(0.5)), i))
        elif op is Op.RELU:
            acc(ins[0], g.relu_grad(ins[0], gi))
        elif op is Op.EXP:
            acc(ins[0], g.mul(gi, i))
        elif op is Op.LOG:
            acc(ins[0], g.div(gi, ins[0]))
        elif op is Op.TANH:
            acc(ins[0], g.mul(gi, g.sub(g.const(1.0), g.mul(i, i))))
        elif op is Op.GELU:
            acc(ins[0], g.gelu_grad(ins[0], gi))
        elif op is Op.SOFTMAX:
            acc(ins[0], g.softmax_grad(i, gi))
        elif op is Op.LAYER_NORM:
            acc(ins[0], g.layer_norm_grad(ins[0], gi, node.arg))
        elif op is Op.SUM:
            acc(ins[0], g.expand(gi, g.shape(ins[0])))
        elif op is Op.MATMUL:
            a, b = ins
            if needs[a]:
                acc(a, g.matmul(gi, g.transpose_last(b)))
            if needs[b]:
                sa, sb = g.shape(a), g.shape(b)
                if len(sb) == 2 and len(sa) > 2:
                    a2 = g.reshape(a, (_prod(sa[:-1]), sa[-1]))
                    g2 = g.reshape(gi, (_prod(sa[:-1]), sb[-1]))
                    acc(b, g.matmul(g.transpose_last(a2), g2))
                else:
                    acc(b, g.matmul(g.transpose_last(a), gi))
        elif op is Op.RESHAPE:
            acc(ins[0], g.reshape(gi, g.shape(ins[0])))
        elif op is Op.PERMUTE:
            inv = [0] * len(node.arg)
            for k, p in enumerate(node.arg):
                inv[p] = k
            acc(ins[0], g.permute(gi, tuple(inv)))
        elif op is Op.EXPAND:
            acc(ins[0], g.sum_to(gi, g.shape(ins[0])))
        elif op is Op.GATHER_ROWS:
            table, idx = ins
            v_, c_ = g.shape(table)
            oh = g.reshape(g.onehot(idx, v_), (_prod(g.shape(idx)), v_))
            g2 = g.reshape(gi, (_prod(g.shape(idx)), c_))
            acc(table, g.matmul(g.transpose_last(oh), g2))
        elif op is Op.SIGMOID:  # g * (y * (1 - y))
            acc(ins[0], g.mul(gi, g.mul(i, g.sub(g.const(1.0), i))))
        elif op is Op.GELU_ERF:
            acc(ins[0], g.gelu_erf_grad(ins[0], gi))
        elif op is Op.SIN:
            acc(ins[0], g.mul(gi, g.cos(ins[0])))
        elif op is Op.COS:
            acc(ins[0], g.neg(g.mul(gi, g.sin(ins[0]))))
        elif op is Op.TAKE:
            acc(ins[0], _take_transpose(g, gi, g.shape(ins[0]), ins[1], node.arg))
        elif op is Op.AMAX:
            acc(ins[0], g.max_grad(ins[0], gi, node.arg))
        elif op is Op.WHERE:
            c, a, b = ins
            zero = g.const(0.0)
            if needs[a]:
                acc(a, g.sum_to(g.where(c, gi, zero), g.shape(a)))
            if needs[b]:
                acc(b, g.sum_to(g.where(c, zero, gi), g.shape(b)))
        elif op is Op.CAT:
            ax = node.arg
            off = 0
            for v in ins:
                n_v = g.shape(v)[ax]
                if needs[v]:
                    acc(v, g.slice(gi, ax, off, off + n_v))
                off += n_v
        else:
            raise TapeError(f"no derivative for {op.value}")
    return {w: grads[w] for w in wrt if w in grads}


def _broadcast(a: Shape, b: Shape) -> Shape | None:
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + a
    pb = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            return None
        out.append(y if x == 1 else x)
    return tuple(out)


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


# ----------------------------------------------------------------------------------------
# The finished tape and its executor
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tape:
    """A finished program step: nodes, constants, named inputs and named outputs."""

    nodes: tuple[Node, ...]
    consts: tuple[torch.Tensor, ...]
    inputs: Mapping[str, int]
    outputs: Mapping[str, int]
    loss: int
    chain: tuple[int, ...]  # chain[j - 1] = node id of op j
    last_use: tuple[int, ...]
    # [start, stop) node ids of each micro-batch's forward and backward (data.micro_batches
    # M > 1; empty when M = 1): what a data-parallel worker runs (`repops.parallel`)
    micro_ranges: tuple[tuple[int, int], ...] = ()

    @staticmethod
    def from_graph(
        g: Graph,
        outputs: Mapping[str, int],
        loss: int,
        micro_ranges: Sequence[tuple[int, int]] = (),
    ) -> Tape:
        chain = tuple(i for i, n in enumerate(g.nodes) if not n.op.is_leaf)
        keep = set(outputs.values()) | {loss}
        last = list(range(len(g.nodes)))
        for i, n in enumerate(g.nodes):
            for j in n.inputs:
                last[j] = max(last[j], i)
        for k in keep:
            last[k] = len(g.nodes)
        return Tape(
            nodes=tuple(g.nodes),
            consts=tuple(g.consts),
            inputs=dict(g.inputs),
            outputs=dict(outputs),
            loss=loss,
            chain=chain,
            last_use=tuple(last),
            micro_ranges=tuple((int(a), int(b)) for a, b in micro_ranges),
        )

    @property
    def num_ops(self) -> int:
        """M: the number of operators in the chain."""
        return len(self.chain)

    def fingerprint(self) -> bytes:
        """A canonical byte description of the tape (ops, wiring, args, shapes, consts)."""
        parts: list[bytes] = []
        for n in self.nodes:
            parts.append(
                repr((n.op.value, n.inputs, n.arg, n.shape, n.dtype)).encode("ascii") + b"\n"
            )
        for c in self.consts:
            parts.append(repr((str(c.dtype), tuple(c.shape))).encode("ascii"))
            parts.append(struct.pack("<Q", c.numel()))
            parts.append(c.numpy().tobytes())
        return b"".join(parts)


Hook = Callable[[int, int, torch.Tensor], None]


class Executor:
    """Runs a tape on one device.  Constants are moved to the device once."""

    def __init__(self, tape: Tape, device: torch.device) -> None:
        if torch.device(device).type not in ("cpu", "cuda"):
            raise TapeError(
                f"repops runs tapes on cpu or cuda only, not {device} (the repops-2 kernels "
                "and the checked torch twins exist for those two)"
            )
        self.tape = tape
        self.device = device
        self.consts = [c.to(device) for c in tape.consts]
        self._plan = [
            (i, n.op, KERNELS.get(n.op), n.inputs, n.arg) for i, n in enumerate(tape.nodes)
        ]
        # The plain run (no hook, no stop): constants prefilled, inputs read up front, then
        # only the chain ops, each with the inputs whose last use it is (same values, same
        # order of kernel calls, same freeing as the general loop).
        last = tape.last_use
        self._init: list[torch.Tensor | None] = [None] * len(tape.nodes)
        self._feeds: list[tuple[int, str]] = []
        self._ops: list[tuple[int, Kernel, tuple[int, ...], Any, tuple[int, ...]]] = []
        for i, op, kern, ins, arg in self._plan:
            if op is Op.INPUT:
                self._feeds.append((i, arg))
            elif op is Op.CONST:
                self._init[i] = self.consts[arg]
            else:
                assert kern is not None
                frees = tuple(dict.fromkeys(k for k in ins if last[k] == i))
                self._ops.append((i, kern, ins, arg, frees))

    def run(
        self,
        feeds: Mapping[str, torch.Tensor],
        hook: Hook | None = None,
        stop_after: int | None = None,
    ) -> list[torch.Tensor | None]:
        """Execute the tape; returns the value list (outputs and loss are kept).

        `hook(j, node_id, value)` is called after each chain op j (1-based);
        `stop_after` ends the run after node id `stop_after`.
        """
        numerics.fp_guard()
        if hook is None and stop_after is None:
            vals = self._init.copy()
            for i, name in self._feeds:
                vals[i] = feeds[name]
            for i, kernel, ins, arg, frees in self._ops:
                vals[i] = kernel(arg, [vals[k] for k in ins])
                for k in frees:
                    vals[k] = None
            return vals
        vals = [None] * len(self._plan)
        last = self.tape.last_use  # the general loop: hooks (replay) and stop_after
        j = 0
        for i, op, kern, ins, arg in self._plan:
            if op is Op.INPUT:
                vals[i] = feeds[arg]
                continue
            if op is Op.CONST:
                vals[i] = self.consts[arg]
                continue
            assert kern is not None
            args = [vals[k] for k in ins]
            out = kern(arg, args)  # type: ignore[arg-type]
            vals[i] = out
            j += 1
            if hook is not None:
                hook(j, i, out)
            if stop_after is not None and i >= stop_after:
                break
            for k in ins:
                if last[k] == i:
                    vals[k] = None
        return vals
