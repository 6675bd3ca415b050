"""Lowering rules for the aten ops of the issue-13 vocabulary (activations, norms, losses,
convolution, pooling, RoPE pieces, masks, concatenation and slicing).

Each rule maps one aten overload onto `Graph` primitives or the composites of
`repops.composites`, following the contract of `repops.lowering.registry` (tensor
arguments arrive as `T`, the rule returns node ids), and raises `Unsupported` for any
argument combination that the repops ops cannot express exactly.  Importing this module
registers the rules; it must never import the exporter.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from repops import composites as C
from repops.lowering.registry import T, Unsupported, rule
from repops.tape import Graph

_REDUCTIONS = {0: "none", 1: "mean", 2: "sum"}


def _t(v: Any, what: str) -> int:
    if not isinstance(v, T):
        raise Unsupported(f"{what} must be a tensor")
    return v.id


def _opt(v: Any) -> int | None:
    return None if v is None else _t(v, "optional tensor argument")


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _num(g: Graph, v: Any, like: int) -> int:
    """A tensor argument, or a Python number as a constant of the tensor's dtype."""
    if isinstance(v, T):
        return v.id
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise Unsupported(f"scalar argument {v!r}")
    dt = g.dtype(like)
    if dt == "int64" and not isinstance(v, int):
        raise Unsupported("a float scalar with an int64 tensor")
    return g.const(v, dt)


# -- activations and elementwise -------------------------------------------------------


@rule("aten.sigmoid.default")
def _sigmoid(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return g.sigmoid(_t(args[0], "input"))


@rule("aten.silu.default")
def _silu(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return C.silu(g, _t(args[0], "input"))


@rule("aten.rsqrt.default")
def _rsqrt(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return C.rsqrt(g, _t(args[0], "input"))


@rule("aten.pow.Tensor_Scalar")
def _pow(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    p = _arg(args, kwargs, 1, "exponent", None)
    if isinstance(p, bool) or not isinstance(p, int | float):
        raise Unsupported(f"pow exponent {p!r}")
    return C.pow_scalar(g, _t(args[0], "input"), p)


@rule("aten.pow.Scalar")
def _pow_scalar_base(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """base ** x for a positive number base: EXP(x * f32(ln base)) (RoPE frequencies)."""
    base = _arg(args, kwargs, 0, "self", None)
    if isinstance(base, bool) or not isinstance(base, int | float) or not base > 0:
        raise Unsupported(f"pow with base {base!r} (a positive number is supported)")
    x = _t(_arg(args, kwargs, 1, "exponent", None), "exponent")
    if g.dtype(x) != "float32":
        raise Unsupported("pow with an integer tensor exponent")
    return g.exp(g.mul(x, g.const(math.log(float(base)))))


@rule("aten.reciprocal.default")
def _reciprocal(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """1 / x, one rounding (DIV)."""
    x = _t(args[0], "input")
    if g.dtype(x) != "float32":
        raise Unsupported("reciprocal of an integer tensor")
    return g.div(g.const(1.0), x)


@rule("aten.gelu.default")
def _gelu(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    approx = _arg(args, kwargs, 1, "approximate", "none")
    x = _t(args[0], "input")
    if approx == "none":
        return g.gelu_erf(x)
    if approx == "tanh":
        return g.gelu(x)
    raise Unsupported(f"gelu approximate={approx!r}")


@rule("aten.sin.default")
def _sin(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return g.sin(_t(args[0], "input"))


@rule("aten.cos.default")
def _cos(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return g.cos(_t(args[0], "input"))


@rule("aten.abs.default")
def _abs(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """WHERE(x < 0, -x, x) + 0 (the + 0 makes abs(-0) = +0; exact otherwise)."""
    x = _t(args[0], "input")
    if g.dtype(x) != "float32":
        raise Unsupported("abs of a non-float32 tensor")
    zero = g.const(0.0)
    return g.add(g.where(g.compare(x, zero, "lt"), g.neg(x), x), zero)


_CMP = {"gt": "gt", "ge": "ge", "lt": "lt", "le": "le", "eq": "eq", "ne": "ne"}


def _compare_rule(how: str) -> None:
    def fn(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        a = _t(args[0], "input")
        return g.compare(a, _num(g, args[1], a), how)

    rule(f"aten.{how}.Tensor", f"aten.{how}.Scalar")(fn)


for _how in _CMP:
    _compare_rule(_how)


@rule("aten.where.self", "aten.where.ScalarSelf", "aten.where.ScalarOther", "aten.where.Scalar")
def _where(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    c = _t(args[0], "condition")
    a, b = args[1], args[2]
    like = a.id if isinstance(a, T) else b.id if isinstance(b, T) else None
    if like is None:
        raise Unsupported("where with two scalars")
    return g.where(c, _num(g, a, like), _num(g, b, like))


@rule("aten.masked_fill.Scalar", "aten.masked_fill.Tensor")
def _masked_fill(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x = _t(args[0], "input")
    value = args[2]
    if isinstance(value, T) and g.shape(value.id) != ():
        raise Unsupported("masked_fill with a non-scalar value tensor")
    return g.where(_t(args[1], "mask"), _num(g, value, x), x)


# -- normalisation ---------------------------------------------------------------------


@rule("aten.rms_norm.default")
def _rms_norm(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    shape = list(_arg(args, kwargs, 1, "normalized_shape", []))
    weight = _opt(_arg(args, kwargs, 2, "weight", None))
    eps = _arg(args, kwargs, 3, "eps", None)
    x = _t(args[0], "input")
    if list(g.shape(x)[len(g.shape(x)) - len(shape) :]) != shape:
        raise Unsupported(f"rms_norm shape {shape} for input {g.shape(x)}")
    eps_v = float(torch.finfo(torch.float32).eps) if eps is None else float(eps)
    return C.rms_norm(g, x, len(shape), weight, eps_v)


def _bn_args(args: tuple[Any, ...]) -> tuple[int, int | None, int | None, int | None, int | None]:
    return (
        _t(args[0], "input"),
        _opt(args[1]),
        _opt(args[2]),
        _opt(args[3]),
        _opt(args[4]),
    )


@rule("aten.batch_norm.default")
def _batch_norm(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """(input, weight, bias, running_mean, running_var, training, momentum, eps, cudnn):
    the running-statistic update is a side effect here: recorded in g.buffer_updates."""
    x, w, b, rm, rv = _bn_args(args)
    training, momentum, eps = bool(args[5]), float(args[6]), float(args[7])
    return C.batch_norm_update(g, x, w, b, rm, rv, training, momentum, eps)


@rule("aten._native_batch_norm_legit_functional.default")
def _bn_functional(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """-> (out, save_mean, save_rstd, new_running_mean, new_running_var)."""
    x, w, b, rm, rv = _bn_args(args)
    training, momentum, eps = bool(args[5]), float(args[6]), float(args[7])
    if rm is None or rv is None:
        raise Unsupported("functional batch norm without running statistics")
    y, mean, rstd, new_rm, new_rv = C.batch_norm(g, x, w, b, rm, rv, training, momentum, eps)
    return (y, mean, rstd, rm if new_rm is None else new_rm, rv if new_rv is None else new_rv)


@rule("aten._native_batch_norm_legit.default")
def _bn_legit(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """In-place running statistics: recorded in g.buffer_updates; -> (out, mean, rstd)."""
    x, w, b, rm, rv = _bn_args(args)
    training, momentum, eps = bool(args[5]), float(args[6]), float(args[7])
    y, mean, rstd, new_rm, new_rv = C.batch_norm(g, x, w, b, rm, rv, training, momentum, eps)
    for buf, new in ((rm, new_rm), (rv, new_rv)):
        if buf is not None and new is not None:
            g.buffer_updates[buf] = new
    return (y, mean, rstd)


@rule("aten._native_batch_norm_legit_no_training.default")
def _bn_eval(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """(input, weight, bias, running_mean, running_var, momentum, eps) -> (out, mean, rstd)."""
    x, w, b, rm, rv = _bn_args(args)
    y, mean, rstd, _, _ = C.batch_norm(g, x, w, b, rm, rv, False, 0.0, float(args[6]))
    return (y, mean, rstd)


@rule("aten.amax.default")
def _amax(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    dims = _arg(args, kwargs, 1, "dim", [])
    keep = bool(_arg(args, kwargs, 2, "keepdim", False))
    return C.amax(g, _t(args[0], "input"), [int(d) for d in dims], keep)


@rule("aten.scaled_dot_product_attention.default")
def _sdpa(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """(q, k, v, attn_mask, dropout_p, is_causal, *, scale, enable_gqa)."""
    if float(_arg(args, kwargs, 4, "dropout_p", 0.0)) != 0.0:
        raise Unsupported("scaled_dot_product_attention with dropout")
    if kwargs.get("enable_gqa"):
        raise Unsupported("scaled_dot_product_attention with grouped-query heads")
    mask = _opt(_arg(args, kwargs, 3, "attn_mask", None))
    causal = bool(_arg(args, kwargs, 5, "is_causal", False))
    if causal and mask is not None:
        raise Unsupported("scaled_dot_product_attention with both a mask and is_causal")
    return C.attention(
        g,
        _t(args[0], "query"),
        _t(args[1], "key"),
        _t(args[2], "value"),
        mask,
        causal,
        kwargs.get("scale"),
    )


# -- losses ------------------------------------------------------------------------------


@rule("aten.log_softmax.int", "aten._log_softmax.default")
def _log_softmax(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    if len(args) > 2 and args[2] not in (None, False, torch.float32):
        raise Unsupported(f"log_softmax to dtype {args[2]}")
    return C.log_softmax(g, _t(args[0], "input"), int(args[1]))


@rule("aten.cross_entropy_loss.default")
def _cross_entropy(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """(input, target, weight, reduction, ignore_index, label_smoothing)."""
    if _arg(args, kwargs, 2, "weight", None) is not None:
        raise Unsupported("cross_entropy with class weights")
    target = _t(args[1], "target")
    reduction = int(_arg(args, kwargs, 3, "reduction", 1))
    if reduction not in _REDUCTIONS:
        raise Unsupported(f"cross_entropy reduction {reduction}")
    return C.cross_entropy(
        g,
        _t(args[0], "input"),
        target,
        ignore_index=int(_arg(args, kwargs, 4, "ignore_index", -100)),
        label_smoothing=float(_arg(args, kwargs, 5, "label_smoothing", 0.0)),
        reduction=_REDUCTIONS[reduction],
    )


@rule("aten.mse_loss.default")
def _mse(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    reduction = int(_arg(args, kwargs, 2, "reduction", 1))
    if reduction not in _REDUCTIONS:
        raise Unsupported(f"mse_loss reduction {reduction}")
    return C.mse(g, _t(args[0], "input"), _t(args[1], "target"), _REDUCTIONS[reduction])


# -- convolution and pooling -----------------------------------------------------------


@rule("aten.conv2d.default")
def _conv2d(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    padding = _arg(args, kwargs, 4, "padding", [0, 0])
    if isinstance(padding, str):
        raise Unsupported(f"conv2d padding={padding!r}")
    return C.conv2d(
        g,
        _t(args[0], "input"),
        _t(args[1], "weight"),
        _opt(_arg(args, kwargs, 2, "bias", None)),
        _arg(args, kwargs, 3, "stride", [1, 1]),
        padding,
        _arg(args, kwargs, 5, "dilation", [1, 1]),
        int(_arg(args, kwargs, 6, "groups", 1)),
    )


@rule("aten.convolution.default")
def _convolution(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """(input, weight, bias, stride, padding, dilation, transposed, output_padding, groups)."""
    if args[6]:
        raise Unsupported("transposed convolution")
    if len(g.shape(_t(args[0], "input"))) != 4:
        raise Unsupported("convolution other than 2-D")
    return C.conv2d(
        g,
        args[0].id,
        _t(args[1], "weight"),
        _opt(args[2]),
        args[3],
        args[4],
        args[5],
        int(args[8]),
    )


@rule("aten.max_pool2d.default")
def _max_pool2d(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    return C.max_pool2d(
        g,
        _t(args[0], "input"),
        _arg(args, kwargs, 1, "kernel_size", None),
        _arg(args, kwargs, 2, "stride", None),
        _arg(args, kwargs, 3, "padding", 0),
        _arg(args, kwargs, 4, "dilation", 1),
        bool(_arg(args, kwargs, 5, "ceil_mode", False)),
    )


@rule("aten.avg_pool2d.default")
def _avg_pool2d(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x = _t(args[0], "input")
    if bool(_arg(args, kwargs, 4, "ceil_mode", False)):
        raise Unsupported("avg_pool2d with ceil_mode")
    return C.avg_pool2d(
        g,
        x,
        _arg(args, kwargs, 1, "kernel_size", None),
        _arg(args, kwargs, 2, "stride", None),
        _arg(args, kwargs, 3, "padding", 0),
        bool(_arg(args, kwargs, 5, "count_include_pad", True)),
        _arg(args, kwargs, 6, "divisor_override", None),
    )


# -- RoPE pieces, dropout, shapes --------------------------------------------------------


@rule("aten.arange.default", "aten.arange.start", "aten.arange.start_step")
def _arange(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    dtype = kwargs.get("dtype")
    names = {None: None, torch.float32: "float32", torch.int64: "int64"}
    if dtype not in names:
        raise Unsupported(f"arange of dtype {dtype}")
    if any(isinstance(a, T) for a in args) or not 1 <= len(args) <= 3:
        raise Unsupported("arange with tensor bounds")
    start, end, step = (0, args[0], 1) if len(args) == 1 else (*args, 1)[:3]
    return g.const(C.arange(start, end, step, names[dtype]))


@rule("aten.dropout.default")
def _dropout(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    p, train = float(args[1]), bool(args[2])
    x = _t(args[0], "input")
    if not train or p == 0.0:
        return x
    if not 0.0 < p < 1.0:
        raise Unsupported(f"dropout p={p}")
    return C.dropout(g, x, p)


@rule("aten.native_dropout.default")
def _native_dropout(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    """-> (output, mask): the mask as float32 (nonzero where kept), not bool."""
    p, train = float(args[1]), args[2]
    x = _t(args[0], "input")
    if train is False or p == 0.0:
        return (x, g.compare(x, x, "eq"))
    if not 0.0 < p < 1.0:
        raise Unsupported(f"dropout p={p}")
    y = C.dropout(g, x, p)
    return (y, g.nodes[y].inputs[1])


@rule("aten.cat.default")
def _cat(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    xs = [_t(v, "cat input") for v in args[0]]
    return g.cat(xs, int(_arg(args, kwargs, 1, "dim", 0)))


@rule("aten.stack.default")
def _stack(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    xs = [_t(v, "stack input") for v in args[0]]
    return C.stack(g, xs, int(_arg(args, kwargs, 1, "dim", 0)))


@rule("aten.split_with_sizes.default")
def _split_sizes(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    x = _t(args[0], "input")
    return C.split(g, x, [int(s) for s in args[1]], int(_arg(args, kwargs, 2, "dim", 0)))


@rule("aten.split.Tensor")
def _split(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[int, ...]:
    x = _t(args[0], "input")
    size = int(args[1])
    ax = int(_arg(args, kwargs, 2, "dim", 0)) % len(g.shape(x))
    n = g.shape(x)[ax]
    sizes = [min(size, n - o) for o in range(0, n, size)]
    return C.split(g, x, sizes, ax)


@rule("aten.slice.Tensor")
def _slice(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x = _t(args[0], "input")
    dim = int(_arg(args, kwargs, 1, "dim", 0))
    start = _arg(args, kwargs, 2, "start", None)
    end = _arg(args, kwargs, 3, "end", None)
    step = int(_arg(args, kwargs, 4, "step", 1))
    n = g.shape(x)[dim]
    lo = 0 if start is None else int(start)
    hi = n if end is None else min(int(end), n)
    return g.slice(x, dim, lo, hi, step)


@rule("aten.narrow.default")
def _narrow(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x = _t(args[0], "input")
    dim, start, length = int(args[1]), int(args[2]), int(args[3])
    if start < 0:
        start += g.shape(x)[dim]
    return g.slice(x, dim, start, start + length)


@rule("aten.select.int")
def _select(g: Graph, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    x = _t(args[0], "input")
    sx = g.shape(x)
    dim = int(args[1]) % len(sx)
    i = int(args[2]) % sx[dim]
    y = g.slice(x, dim, i, i + 1)
    return g.reshape(y, (*sx[:dim], *sx[dim + 1 :]))
