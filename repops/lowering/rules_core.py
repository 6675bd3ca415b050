"""Lowering rules for the aten ops that the existing `Graph` methods express exactly.

Each rule maps one aten overload (its `torch.export` training-IR or core-aten form) to
repops nodes.  The lowered program computes with repops semantics (docs/protocol.md §4):
the rounding is that of the repops ops written here, not torch's, so a rule is honest
when the *math* is the same and every rounding step is specified.  Where aten's math
differs (`alpha` scaling, rounding-mode division, embedding `padding_idx`) the rule
raises `Unsupported`.  GELU (erf and tanh), ``mse_loss`` and ``cross_entropy`` are lowered
by `repops.lowering.rules_ext` onto `repops.composites` (one rule per overload).

Composite definitions fixed here (they are part of the lowering contract):

* a multi-axis ``sum`` reduces the axes one at a time in increasing order; a full
  ``sum`` reshapes to one axis and reduces it once; ``mean`` is that sum divided by
  f32(count) (one IEEE division);
* ``linear(x, W, b)`` is ``MATMUL(x, PERMUTE(W)) + b``;
* a Python scalar operand is rounded once to binary32 (``Graph.const``);
* ``var`` is ``SUM((a - mean) * (a - mean)) / f32(n - correction)`` with the mean as
  above (kept dims), ``std`` its SQRT.

This module must never evaluate torch ops on data: it only emits `Graph` nodes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from repops.lowering.registry import T, Unsupported, rule
from repops.tape import Graph, Shape

# -- helpers -----------------------------------------------------------------------------


def _id(x: Any, what: str = "operand") -> int:
    if not isinstance(x, T):
        raise Unsupported(f"{what} must be a tensor, got {type(x).__name__}")
    return x.id


def _prod(xs: Sequence[int]) -> int:
    return math.prod(xs)


def _norm_dim(g: Graph, a: int, d: int) -> int:
    nd = len(g.shape(a))
    if not -nd <= d < max(nd, 1):
        raise Unsupported(f"dim {d} out of range for shape {g.shape(a)}")
    return d % nd if nd else 0


def _operand(g: Graph, x: Any, like: int) -> int:
    """A tensor id, or a Python scalar rounded once to the dtype of `like`."""
    if isinstance(x, T):
        return x.id
    if isinstance(x, bool):
        raise Unsupported("boolean scalar operand")
    if isinstance(x, int | float):
        if g.dtype(like) == "int64":
            if isinstance(x, float):
                raise Unsupported("float scalar with an int64 tensor")
            return g.const(int(x), "int64")
        return g.const(float(x))
    raise Unsupported(f"operand of type {type(x).__name__}")


def _promote(g: Graph, a: int, b: int) -> tuple[int, int]:
    """int64 meets float32: the int64 side is converted (TO_F32), like torch's promotion."""
    da, db = g.dtype(a), g.dtype(b)
    if da == db:
        return a, b
    if da == "int64" and db == "float32":
        return g.to_f32(a), b
    if da == "float32" and db == "int64":
        return a, g.to_f32(b)
    raise Unsupported(f"dtypes {da} and {db}")


def _binary(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any], op: str) -> int:
    if kwargs.get("alpha", 1) != 1 or (len(args) > 2 and args[2] != 1):
        raise Unsupported("alpha != 1 (a scaled operand is a second rounding)")
    x, y = args[0], args[1]
    if not isinstance(x, T):
        if not isinstance(y, T):
            raise Unsupported("two scalar operands")
        a = _operand(g, x, y.id)
        b = y.id
    else:
        a = x.id
        b = _operand(g, y, a)
    a, b = _promote(g, a, b)
    if op != "add" and g.dtype(a) != "float32":
        raise Unsupported(f"{op} on int64 tensors")
    return int(getattr(g, op)(a, b))


def _pad_to(g: Graph, a: int, nd: int) -> int:
    s = g.shape(a)
    if len(s) == nd:
        return a
    return g.reshape(a, (1,) * (nd - len(s)) + s)


def _broadcast_shape(a: Shape, b: Shape) -> Shape:
    n = max(len(a), len(b))
    pa = (1,) * (n - len(a)) + a
    pb = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(pa, pb, strict=True):
        if x != y and 1 not in (x, y):
            raise Unsupported(f"shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(out)


def _expand_to(g: Graph, a: int, shape: Shape) -> int:
    a = _pad_to(g, a, len(shape))
    return a if g.shape(a) == tuple(shape) else g.expand(a, tuple(shape))


def _infer_shape(g: Graph, a: int, shape: Sequence[Any]) -> Shape:
    dims = [int(d) for d in shape]
    numel = _prod(g.shape(a))
    if dims.count(-1) > 1:
        raise Unsupported(f"shape {dims} has more than one -1")
    if -1 in dims:
        rest = _prod([d for d in dims if d != -1])
        if rest == 0 or numel % rest:
            raise Unsupported(f"cannot view {g.shape(a)} as {dims}")
        dims[dims.index(-1)] = numel // rest
    if _prod(dims) != numel:
        raise Unsupported(f"cannot view {g.shape(a)} as {dims}")
    return tuple(dims)


def _reduce_sum(g: Graph, a: int, dims: Sequence[int] | None, keepdim: bool) -> int:
    shape = g.shape(a)
    if dims is None or len(dims) == 0:
        # a full reduction: one halving tree over every element in row-major order
        flat = g.reshape(a, (_prod(shape),)) if len(shape) != 1 else a
        s = g.sum(flat, 0)
        return g.reshape(s, (1,) * len(shape) if keepdim else ())
    axes = sorted({_norm_dim(g, a, int(d)) for d in dims})
    out = a
    for ax in axes:
        out = g.sum(out, ax)
    if not keepdim:
        out = g.reshape(out, tuple(d for i, d in enumerate(shape) if i not in axes))
    return out


def _count(shape: Shape, dims: Sequence[int] | None) -> int:
    if dims is None or len(dims) == 0:
        return _prod(shape)
    nd = len(shape)
    return _prod([shape[int(d) % nd] for d in {int(d) % nd for d in dims}])


def _no_dtype(kwargs: dict[str, Any], extra: Any = None) -> None:
    if kwargs.get("dtype") is not None or extra is not None:
        raise Unsupported("a dtype argument")


# -- elementwise ---------------------------------------------------------------------------


@rule("aten.add.Tensor", "aten.add.Scalar")
def _add(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _binary(g, args, kwargs, "add")


@rule("aten.sub.Tensor", "aten.sub.Scalar")
def _sub(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _binary(g, args, kwargs, "sub")


@rule("aten.rsub.Scalar", "aten.rsub.Tensor")
def _rsub(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _binary(g, (args[1], args[0], *args[2:]), kwargs, "sub")


@rule("aten.mul.Tensor", "aten.mul.Scalar")
def _mul(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _binary(g, args, kwargs, "mul")


@rule("aten.div.Tensor", "aten.div.Scalar")
def _div(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _binary(g, args, kwargs, "div")


@rule("aten.div.Tensor_mode", "aten.div.Scalar_mode")
def _div_mode(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    mode = kwargs.get("rounding_mode", args[2] if len(args) > 2 else None)
    if mode is not None:
        raise Unsupported(f"division with rounding_mode={mode!r}")
    return _binary(g, args[:2], {}, "div")


def _unary(name: str) -> Any:
    def fn(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        return int(getattr(g, name)(_id(args[0])))

    return fn


for _name in ("neg", "relu", "exp", "log", "tanh", "sqrt"):
    rule(f"aten.{_name}.default")(_unary(_name))


# -- identity-like -------------------------------------------------------------------------


@rule("aten.clone.default", "aten.alias.default", "aten.detach.default", "aten.contiguous.default")
def _same(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _id(args[0])


@rule("aten.to.dtype", "aten._to_copy.default", "aten.to.dtype_layout")
def _to(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    dt = kwargs.get("dtype", args[1] if len(args) > 1 else None)
    if dt is None or dt == {"float32": torch.float32, "int64": torch.int64}[g.dtype(a)]:
        return a
    if dt == torch.float32 and g.dtype(a) == "int64":
        return g.to_f32(a)
    raise Unsupported(f"conversion {g.dtype(a)} -> {dt}")


_TORCH_DT = {"float32": torch.float32, "int64": torch.int64}


def _filled(g: Graph, shape: Shape, fill: Any, dtype: Any) -> int:
    """A constant tensor of `shape` (exact: float fills are rounded once to binary32)."""
    if dtype not in (torch.float32, torch.int64) or isinstance(fill, bool) or fill is None:
        raise Unsupported(f"a constant of dtype {dtype} filled with {fill!r}")
    return g.const(torch.full(tuple(shape), fill, dtype=dtype))


def _like(fill: float | None) -> Any:
    def fn(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        a = _id(args[0])
        value = fill if fill is not None else kwargs.get("fill_value", args[1])
        return _filled(g, g.shape(a), value, kwargs.get("dtype") or _TORCH_DT[g.dtype(a)])

    return fn


def _new(fill: float | None) -> Any:
    def fn(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        shape = tuple(int(d) for d in args[0])
        value = fill if fill is not None else kwargs.get("fill_value", args[1])
        return _filled(g, shape, value, kwargs.get("dtype") or torch.float32)

    return fn


rule("aten.zeros_like.default")(_like(0))
rule("aten.ones_like.default")(_like(1))
rule("aten.full_like.default")(_like(None))
rule("aten.zeros.default")(_new(0))
rule("aten.ones.default")(_new(1))
rule("aten.full.default")(_new(None))


# -- matmul family ---------------------------------------------------------------------------


def _matmul(g: Graph, a: int, b: int) -> int:
    sa, sb = g.shape(a), g.shape(b)
    if not sa or not sb:
        raise Unsupported("matmul of a 0-dim tensor")
    drop_row = drop_col = False
    if len(sa) == 1:
        a, drop_row = g.reshape(a, (1, sa[0])), True
    if len(sb) == 1:
        b, drop_col = g.reshape(b, (sb[0], 1)), True
    sa, sb = g.shape(a), g.shape(b)
    if sa[-1] != sb[-2]:
        raise Unsupported(f"matmul shapes {sa} @ {sb}")
    if len(sb) > 2:
        batch = _broadcast_shape(sa[:-2], sb[:-2])
        a = _expand_to(g, a, (*batch, *sa[-2:]))
        b = _expand_to(g, b, (*batch, *sb[-2:]))
    out = g.matmul(a, b)
    so = list(g.shape(out))
    if drop_col:
        so.pop(-1)
    if drop_row:
        so.pop(-2 if not drop_col else -1)
    return g.reshape(out, tuple(so))


@rule("aten.matmul.default", "aten.mm.default", "aten.bmm.default")
def _mm(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return _matmul(g, _id(args[0]), _id(args[1]))


@rule("aten.linear.default")
def _linear(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x, w = _id(args[0]), _id(args[1])
    bias = kwargs.get("bias", args[2] if len(args) > 2 else None)
    if len(g.shape(w)) != 2:
        raise Unsupported(f"linear weight of shape {g.shape(w)}")
    y = _matmul(g, x, g.permute(w, (1, 0)))
    return y if bias is None else g.add(y, _id(bias, "bias"))


@rule("aten.addmm.default")
def _addmm(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        raise Unsupported("addmm with beta or alpha != 1")
    return g.add(_matmul(g, _id(args[1]), _id(args[2])), _id(args[0]))


# -- shapes --------------------------------------------------------------------------------


@rule("aten.t.default")
def _t(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    if len(g.shape(a)) < 2:
        return a
    return g.permute(a, (1, 0))


@rule("aten.transpose.int")
def _transpose(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    nd = len(g.shape(a))
    d0, d1 = _norm_dim(g, a, int(args[1])), _norm_dim(g, a, int(args[2]))
    if d0 == d1:
        return a
    perm = list(range(nd))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return g.permute(a, tuple(perm))


@rule("aten.permute.default")
def _permute(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    perm = tuple(_norm_dim(g, a, int(d)) for d in args[1])
    if perm == tuple(range(len(perm))):
        return a
    return g.permute(a, perm)


@rule(
    "aten.view.default",
    "aten.reshape.default",
    "aten._unsafe_view.default",
)
def _view(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    return g.reshape(a, _infer_shape(g, a, args[1]))


@rule("aten.unsqueeze.default")
def _unsqueeze(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    s = list(g.shape(a))
    d = int(args[1])
    if not -len(s) - 1 <= d <= len(s):
        raise Unsupported(f"unsqueeze dim {d} of shape {tuple(s)}")
    s.insert(d % (len(s) + 1), 1)
    return g.reshape(a, tuple(s))


@rule("aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default")
def _squeeze(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    s = g.shape(a)
    if len(args) < 2:
        dims = set(range(len(s)))
    else:
        raw = args[1] if isinstance(args[1], list | tuple) else [args[1]]
        dims = {_norm_dim(g, a, int(d)) for d in raw} if s else set()
    return g.reshape(a, tuple(d for i, d in enumerate(s) if not (i in dims and d == 1)))


@rule("aten.flatten.using_ints")
def _flatten(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    s = g.shape(a)
    if not s:
        return g.reshape(a, (1,))
    start = _norm_dim(g, a, int(args[1]) if len(args) > 1 else 0)
    end = _norm_dim(g, a, int(args[2]) if len(args) > 2 else -1)
    return g.reshape(a, (*s[:start], _prod(s[start : end + 1]), *s[end + 1 :]))


@rule("aten.expand.default")
def _expand(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    want = [int(d) for d in args[1]]
    s = g.shape(a)
    lead = len(want) - len(s)
    if lead < 0:
        raise Unsupported(f"expand {s} to {want}")
    shape = tuple(s[i - lead] if d == -1 else d for i, d in enumerate(want))
    return _expand_to(g, a, shape)


@rule("aten.broadcast_tensors.default")
def _broadcast_tensors(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    ids = [_id(x) for x in args[0]]
    shape: Shape = ()
    for v in ids:
        shape = _broadcast_shape(shape, g.shape(v))
    return tuple(_expand_to(g, v, shape) for v in ids)


# -- reductions ----------------------------------------------------------------------------


@rule("aten.sum.default")
def _sum_all(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    _no_dtype(kwargs, args[1] if len(args) > 1 else None)
    return _reduce_sum(g, _id(args[0]), None, False)


@rule("aten.sum.dim_IntList")
def _sum_dims(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    _no_dtype(kwargs, args[3] if len(args) > 3 else None)
    keep = bool(kwargs.get("keepdim", args[2] if len(args) > 2 else False))
    return _reduce_sum(g, _id(args[0]), args[1], keep)


@rule("aten.mean.default")
def _mean_all(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    _no_dtype(kwargs, args[1] if len(args) > 1 else None)
    a = _id(args[0])
    return g.div(_reduce_sum(g, a, None, False), g.const(float(_count(g.shape(a), None))))


@rule("aten.mean.dim")
def _mean_dims(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    _no_dtype(kwargs, args[3] if len(args) > 3 else None)
    a = _id(args[0])
    dims = args[1]
    keep = bool(kwargs.get("keepdim", args[2] if len(args) > 2 else False))
    n = _count(g.shape(a), dims)
    return g.div(_reduce_sum(g, a, dims, keep), g.const(float(n)))


def _var(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    dims = kwargs.get("dim", args[1] if len(args) > 1 else None)
    corr = kwargs.get("correction", 1)
    corr = 1 if corr is None else corr
    keep = bool(kwargs.get("keepdim", False))
    n = _count(g.shape(a), dims)
    if isinstance(corr, bool) or not isinstance(corr, int | float) or n - corr <= 0:
        raise Unsupported(f"variance with correction {corr!r} over {n} elements")
    mu = g.div(_reduce_sum(g, a, dims, True), g.const(float(n)))
    d = g.sub(a, mu)
    return g.div(_reduce_sum(g, g.mul(d, d), dims, keep), g.const(float(n - corr)))


@rule("aten.var.correction")
def _var_rule(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """mean-centred sum of squares / f32(n - correction), each step a repops op."""
    return _var(g, args, kwargs)


@rule("aten.std.correction")
def _std_rule(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return g.sqrt(_var(g, args, kwargs))


# -- fused normalisations -------------------------------------------------------------------


@rule("aten.softmax.int", "aten._softmax.default")
def _softmax(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    if len(args) > 2 and args[2] not in (False, None):
        raise Unsupported("softmax with a dtype or half_to_float")
    if kwargs.get("dtype") is not None:
        raise Unsupported("softmax with a dtype")
    nd = len(g.shape(a))
    d = _norm_dim(g, a, int(args[1]))
    if d == nd - 1:
        return g.softmax(a)
    perm = list(range(nd))
    perm[d], perm[-1] = perm[-1], perm[d]
    return g.permute(g.softmax(g.permute(a, tuple(perm))), tuple(perm))


@rule("aten.layer_norm.default")
def _layer_norm(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    a = _id(args[0])
    norm_shape = tuple(int(d) for d in args[1])
    weight = kwargs.get("weight", args[2] if len(args) > 2 else None)
    bias = kwargs.get("bias", args[3] if len(args) > 3 else None)
    eps = float(kwargs.get("eps", args[4] if len(args) > 4 else 1e-5))
    s = g.shape(a)
    k = len(norm_shape)
    if k == 0 or s[len(s) - k :] != norm_shape:
        raise Unsupported(f"layer_norm over {norm_shape} of shape {s}")
    if k == 1:
        y = g.layer_norm(a, eps)
    else:  # normalise the flattened trailing axes: same statistics, one halving tree each
        flat = g.reshape(a, (*s[: len(s) - k], _prod(norm_shape)))
        y = g.reshape(g.layer_norm(flat, eps), s)
    if weight is not None:
        y = g.mul(y, _id(weight, "weight"))
    if bias is not None:
        y = g.add(y, _id(bias, "bias"))
    return y


# -- embedding and losses --------------------------------------------------------------------


@rule("aten.embedding.default")
def _embedding(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    table, idx = _id(args[0]), _id(args[1])
    padding_idx = kwargs.get("padding_idx", args[2] if len(args) > 2 else -1)
    if padding_idx not in (-1, None):
        raise Unsupported("embedding with padding_idx (its row gets no gradient)")
    if len(args) > 3 and (args[3] or (len(args) > 4 and args[4])):
        raise Unsupported("embedding with scale_grad_by_freq or sparse")
    if g.dtype(idx) != "int64":
        raise Unsupported(f"embedding indices of dtype {g.dtype(idx)}")
    return g.gather_rows(table, idx)


_REDUCTION = {0: "none", 1: "mean", 2: "sum"}
