"""Composite operators for bring-your-own-model graphs, built only from `Graph` methods.

Each function emits a fixed sequence of primitive ops (exact ops, one rounding each), so
its bits are exactly the sequence written here on every device and its derivative comes
from the generic autodiff of `repops.tape.backward`: nothing here needs a backward rule
or a kernel of its own.  Static indices (im2col windows, pooling windows, slices) are
int64 constants of a TAKE, computed here at build time from the shapes alone.

This module must never build a node through anything but `Graph` methods, and never
depend on tensor values (only on shapes and static arguments).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from repops.errors import TapeError
from repops.tape import Graph, Shape


def _prod(xs: Sequence[int]) -> int:
    out = 1
    for x in xs:
        out *= int(x)
    return out


def _ones(g: Graph, shape: Shape) -> int:
    one = g.const(1.0)
    if not shape:
        return one
    return g.expand(g.reshape(one, (1,) * len(shape)), shape)


# -- activations -----------------------------------------------------------------------


def silu(g: Graph, x: int) -> int:
    """x * SIGMOID(x) (one binary32 multiplication after the once-rounded sigmoid)."""
    return g.mul(x, g.sigmoid(x))


def rsqrt(g: Graph, x: int) -> int:
    """1 / SQRT(x): two binary32 roundings (the correctly rounded sqrt, then the division)."""
    return g.div(g.const(1.0), g.sqrt(x))


def pow_scalar(g: Graph, x: int, p: float) -> int:
    """x ** p for a Python number p.

    Integer p: binary powering, left to right over the bits of |p| (square, then multiply
    by x for a 1 bit; x**2 = x*x, x**3 = (x*x)*x, x**4 = (x*x)*(x*x)), one binary32
    rounding per multiplication; 1 / x**|p| for p < 0; all ones for p = 0.  p = 0.5: SQRT;
    p = -0.5: RSQRT.  Any other p: EXP(LOG(x) * f32(p)) (NaN for x < 0, as torch; the
    error grows with |p ln x|, about (1 + |p ln x|) ulp).
    """
    pf = float(p)
    if pf.is_integer() and abs(pf) <= 1 << 30:
        n = int(pf)
        if n == 0:
            return _ones(g, g.shape(x))
        out = x
        for bit in bin(abs(n))[3:]:
            out = g.mul(out, out)
            if bit == "1":
                out = g.mul(out, x)
        return out if n > 0 else g.div(g.const(1.0), out)
    if pf == 0.5:
        return g.sqrt(x)
    if pf == -0.5:
        return rsqrt(g, x)
    return g.exp(g.mul(g.log(x), g.const(pf)))


def dropout(g: Graph, x: int, p: float) -> int:
    """x * DROPOUT_MASK (one binary32 multiplication: x * f32(1/(1-p)) or x * +0).  The
    mask reads the int64 scalar inputs "rng.seed" (the job seed, fed by the program) and
    "meta.step" (the step counter), created on first use, so it changes every step and
    is the same on every machine."""
    if p == 0.0:
        return x
    seed = g.inputs.get("rng.seed")
    if seed is None:
        seed = g.input("rng.seed", (), "int64")
    step = g.inputs.get("meta.step")
    if step is None:
        step = g.input("meta.step", (), "int64")
    return g.mul(x, g.dropout_mask(g.shape(x), p, seed, step))


# -- normalisation -----------------------------------------------------------------------


def rms_norm(g: Graph, x: int, n_axes: int, weight: int | None, eps: float) -> int:
    """x / sqrt(SUM(x*x)/C + eps) (* weight) over the last `n_axes` axes (C elements):
    ms = SUM(x*x) / f32(C) (halving tree over the flattened axes, one division);
    r = 1 / SQRT(ms + f32(eps)); y = x * r; then * weight."""
    sx = g.shape(x)
    if not 1 <= n_axes <= len(sx):
        raise TapeError(f"rms_norm over {n_axes} axes of shape {sx}")
    c = _prod(sx[len(sx) - n_axes :])
    flat = g.reshape(x, (*sx[: len(sx) - n_axes], c))
    ms = g.div(g.sum(g.mul(flat, flat), -1), g.const(float(c)))
    r = g.div(g.const(1.0), g.sqrt(g.add(ms, g.const(float(eps)))))
    y = g.reshape(g.mul(flat, r), sx)
    return y if weight is None else g.mul(y, weight)


def batch_norm(
    g: Graph,
    x: int,
    weight: int | None,
    bias: int | None,
    running_mean: int | None,
    running_var: int | None,
    training: bool,
    momentum: float,
    eps: float,
) -> tuple[int, int, int, int | None, int | None]:
    """Batch norm over every axis but axis 1 (channels C) of x (N, C, ...).

    Training: M = N * prod(spatial); mean = SUM(SUM(x, axis 2), axis 0) / f32(M) over x
    viewed as (N, C, S); xc = x - mean; var = (the same SUM of xc*xc) / f32(M) (biased);
    rstd = 1 / SQRT(var + f32(eps)); y = (xc * rstd) * weight + bias.  The running
    statistics' new values are (1 - m)*running + m*stat with f32(1 - m), f32(m) and, for
    the variance, stat = var * f32(M / (M - 1)) (unbiased), each product and sum rounded
    once.  Eval: y = ((x - running_mean) * rstd) * weight + bias, rstd from running_var.

    Returns (y, mean (C,), rstd (C,), new running mean, new running var); the new running
    values are None in eval mode or without buffers.  In training the caller makes them the
    buffers' next state (`Graph.buffer_updates` via `batch_norm_update`)."""
    sx = g.shape(x)
    if len(sx) < 2:
        raise TapeError(f"batch_norm needs (N, C, ...), got {sx}")
    n, c = sx[0], sx[1]
    s = _prod(sx[2:])
    x3 = g.reshape(x, (n, c, s))
    if training:
        m_count = n * s
        cnt = g.const(float(m_count))
        mean = g.div(g.sum(g.sum(x3, 2), 0), cnt)  # (1, C, 1)
        xc = g.sub(x3, mean)
        var = g.div(g.sum(g.sum(g.mul(xc, xc), 2), 0), cnt)
    else:
        if running_mean is None or running_var is None:
            raise TapeError("batch_norm in eval mode needs running statistics")
        mean = g.reshape(running_mean, (1, c, 1))
        var = g.reshape(running_var, (1, c, 1))
        xc = g.sub(x3, mean)
    rstd = g.div(g.const(1.0), g.sqrt(g.add(var, g.const(float(eps)))))
    y = g.mul(xc, rstd)
    if weight is not None:
        y = g.mul(y, g.reshape(weight, (1, c, 1)))
    if bias is not None:
        y = g.add(y, g.reshape(bias, (1, c, 1)))
    y = g.reshape(y, sx)
    new_rm: int | None = None
    new_rv: int | None = None
    if training and running_mean is not None and running_var is not None:
        keep, mom = g.const(1.0 - float(momentum)), g.const(float(momentum))
        m_count = n * s
        unbias = g.const(m_count / (m_count - 1) if m_count > 1 else float("nan"))
        mean_c = g.reshape(mean, (c,))
        var_c = g.mul(g.reshape(var, (c,)), unbias)
        new_rm = g.add(g.mul(keep, running_mean), g.mul(mom, mean_c))
        new_rv = g.add(g.mul(keep, running_var), g.mul(mom, var_c))
    return y, g.reshape(mean, (c,)), g.reshape(rstd, (c,)), new_rm, new_rv


def batch_norm_update(
    g: Graph,
    x: int,
    weight: int | None,
    bias: int | None,
    running_mean: int | None,
    running_var: int | None,
    training: bool,
    momentum: float,
    eps: float,
) -> int:
    """`batch_norm` that records the new running statistics in `g.buffer_updates`
    (for graphs where the buffer update is a side effect, e.g. aten.batch_norm)."""
    y, _, _, new_rm, new_rv = batch_norm(
        g, x, weight, bias, running_mean, running_var, training, momentum, eps
    )
    for buf, new in ((running_mean, new_rm), (running_var, new_rv)):
        if buf is not None and new is not None:
            # keyed by the buffer's value so far: an INPUT, or an earlier update when the
            # same module runs twice (the exporter chains them)
            g.buffer_updates[buf] = new
    return y


def amax(g: Graph, x: int, axes: Sequence[int], keepdim: bool) -> int:
    """The exact maximum over several axes: AMAX axis by axis in increasing axis order
    (the value does not depend on the order; the gradient goes to the first maximal
    element of each successive reduction)."""
    sx = g.shape(x)
    nd = len(sx)
    axs = sorted({a % nd for a in axes}) if axes else list(range(nd))
    for a in axs:
        x = g.amax(x, a)
    if keepdim:
        return x
    return g.reshape(x, tuple(d for k, d in enumerate(sx) if k not in axs))


def attention(
    g: Graph,
    q: int,
    k: int,
    v: int,
    mask: int | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> int:
    """softmax((q @ k^T) * f32(scale) [+ mask]) @ v over (..., L, E), (..., S, E),
    (..., S, Ev): MATMUL, one MUL by f32(scale) (default 1/sqrt(E) in binary64), the
    causal mask as a constant added (-inf above the diagonal, top-left aligned, + 0
    elsewhere), a float mask added, an int64 mask applied as WHERE(mask, s, -inf); SOFTMAX
    over S; MATMUL with v."""
    sq, sk = g.shape(q), g.shape(k)
    if len(sq) < 2 or sq[:-2] != sk[:-2] or sq[-1] != sk[-1]:
        raise TapeError(f"attention shapes {sq} and {sk}")
    big_l, e = sq[-2], sq[-1]
    big_s = sk[-2]
    sc = float(scale) if scale is not None else 1.0 / float(np.sqrt(e))
    s = g.mul(g.matmul(q, g.transpose_last(k)), g.const(sc))
    if causal:
        m = np.triu(np.full((big_l, big_s), -np.inf, dtype=np.float32), 1)
        s = g.add(s, g.const(torch.from_numpy(m)))
    if mask is not None and g.dtype(mask) == "int64":
        s = g.where(mask, s, g.const(float("-inf")))
    elif mask is not None:
        s = g.add(s, mask)
    return g.matmul(g.softmax(s), v)


# -- losses ------------------------------------------------------------------------------


def _to_last(g: Graph, x: int, axis: int) -> tuple[int, tuple[int, ...] | None]:
    nd = len(g.shape(x))
    ax = axis % nd
    if ax == nd - 1:
        return x, None
    perm = (*(k for k in range(nd) if k != ax), ax)
    inv = [0] * nd
    for k, p in enumerate(perm):
        inv[p] = k
    return g.permute(x, perm), tuple(inv)


def log_softmax(g: Graph, x: int, axis: int = -1) -> int:
    """z - LOG(SUM(EXP(z))) with z = x - MAX(x) over `axis` (MAX is the exact,
    non-differentiated shift; the derivative of the rest is exact calculus)."""
    if not g.shape(x):
        raise TapeError("log_softmax needs at least one axis")
    xl, inv = _to_last(g, x, axis)
    z = g.sub(xl, g.max(xl, -1))
    out = g.sub(z, g.log(g.sum(g.exp(z), -1)))
    return out if inv is None else g.permute(out, inv)


def softmax_axis(g: Graph, x: int, axis: int = -1) -> int:
    """SOFTMAX over any axis (moved last by exact permutes)."""
    xl, inv = _to_last(g, x, axis)
    out = g.softmax(xl)
    return out if inv is None else g.permute(out, inv)


def _reduce(g: Graph, per: int, weight: int | None, reduction: str) -> int:
    """Reduce a per-element loss tensor: 'none', 'sum' (halving tree over the flattened
    tensor) or 'mean' (the sum divided by f32(count), or by the sum of `weight`)."""
    if reduction == "none":
        return per
    n = _prod(g.shape(per))
    total = g.reshape(g.sum(g.reshape(per, (n,)), 0), ())
    if reduction == "sum":
        return total
    if reduction != "mean":
        raise TapeError(f"reduction {reduction!r}: use none, mean or sum")
    if weight is None:
        return g.div(total, g.const(float(n)))
    return g.div(total, g.reshape(g.sum(g.reshape(weight, (n,)), 0), ()))


def cross_entropy(
    g: Graph,
    logits: int,
    target: int,
    *,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> int:
    """torch's cross_entropy with class indices (no class weights).

    logits (N, C) or (N, C, d...) (classes on axis 1) or (C,); target int64 (N, d...).
    With logp = log_softmax over the classes, oh = ONEHOT(target) * keep where keep is
    1 except 0 on class `ignore_index` (a target outside [0, C), such as -100, has an
    all-zero one-hot, so it is ignored too), valid = SUM(oh) per row (1 or 0):
    nll = -SUM(logp * oh); smooth = -SUM(logp) * valid; per-row loss
    = f32(1 - eps) * nll + f32(eps / C) * smooth (just nll when eps = 0).
    'mean' divides the SUM of per-row losses by SUM(valid) (NaN if every row is ignored,
    as torch); 'sum' and 'none' as named."""
    sl = g.shape(logits)
    if g.dtype(target) == "float32":
        return _soft_cross_entropy(g, logits, target, label_smoothing, reduction)
    if len(sl) == 1:
        logits = g.reshape(logits, (1, sl[0]))
        target = g.reshape(target, (1,))
        sl = g.shape(logits)
    c = sl[1]
    rest = (sl[0], *sl[2:])
    if g.shape(target) != rest or g.dtype(target) != "int64":
        raise TapeError(f"cross_entropy target must be int64 {rest}, got {g.shape(target)}")
    xl, _ = _to_last(g, logits, 1)  # (N, d..., C)
    rows = _prod(rest)
    x2 = g.reshape(xl, (rows, c))
    t1 = g.reshape(target, (rows,))
    logp = log_softmax(g, x2, -1)
    oh = g.onehot(t1, c)
    if 0 <= ignore_index < c:
        keep = torch.ones(c, dtype=torch.float32)
        keep[ignore_index] = 0.0
        oh = g.mul(oh, g.const(keep))
    valid = g.sum(oh, -1)  # (rows, 1)
    nll = g.neg(g.sum(g.mul(logp, oh), -1))
    eps = float(label_smoothing)
    if eps == 0.0:
        per = nll
    else:
        smooth = g.mul(g.neg(g.sum(logp, -1)), valid)
        per = g.add(g.mul(g.const(1.0 - eps), nll), g.mul(g.const(eps / c), smooth))
    per = g.reshape(per, rest)
    if reduction == "none":
        return per if len(sl) > 1 else g.reshape(per, ())
    return _reduce(g, per, g.reshape(valid, rest) if reduction == "mean" else None, reduction)


def _soft_cross_entropy(
    g: Graph, logits: int, target: int, label_smoothing: float, reduction: str
) -> int:
    """Class probabilities (target float32, the shape of logits): per row
    -SUM(logp * q) over the classes, q = f32(1 - eps)*target + f32(eps/C) (q = target when
    eps = 0); 'mean' divides by the number of rows, numel / C (torch's rule for
    probability targets)."""
    sl = g.shape(logits)
    if g.shape(target) != sl:
        raise TapeError(f"cross_entropy probabilities {g.shape(target)} for logits {sl}")
    axis = 0 if len(sl) == 1 else 1
    c = sl[axis]
    logp = log_softmax(g, logits, axis)
    q = target
    eps = float(label_smoothing)
    if eps != 0.0:
        q = g.add(g.mul(g.const(1.0 - eps), target), g.const(eps / c))
    per = g.neg(g.sum(g.mul(logp, q), axis))
    rest = tuple(d for k, d in enumerate(sl) if k != axis)
    per = g.reshape(per, rest)
    if reduction == "none":
        return per
    if reduction == "mean":
        total = _reduce(g, per, None, "sum")
        return g.div(total, g.const(float(_prod(rest))))
    return _reduce(g, per, None, reduction)


def mse(g: Graph, a: int, b: int, reduction: str = "mean") -> int:
    """(a - b)**2 as d*d with d = a - b, then reduced (halving tree; mean divides by
    f32(count))."""
    d = g.sub(a, b)
    return _reduce(g, g.mul(d, d), None, reduction)


# -- convolution and pooling (im2col TAKE + existing ops) -------------------------------


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    t = tuple(int(x) for x in v)
    if len(t) == 1:
        return t[0], t[0]
    if len(t) != 2:
        raise TapeError(f"expected one or two sizes, got {list(t)}")
    return t[0], t[1]


def _out_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        raise TapeError(f"window {k} (dilation {d}) larger than padded input {size + 2 * p}")
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


def _windows(
    h: int,
    w: int,
    k: tuple[int, int],
    s: tuple[int, int],
    p: tuple[int, int],
    d: tuple[int, int],
    ceil: bool = False,
) -> tuple[np.ndarray, int, int]:
    """(Ho*Wo, kh*kw) flat indices h*W + w of every window element, -1 outside the input."""
    ho = _out_size(h, k[0], s[0], p[0], d[0], ceil)
    wo = _out_size(w, k[1], s[1], p[1], d[1], ceil)
    ih = (np.arange(ho) * s[0] - p[0])[:, None] + np.arange(k[0])[None, :] * d[0]  # (Ho, kh)
    iw = (np.arange(wo) * s[1] - p[1])[:, None] + np.arange(k[1])[None, :] * d[1]  # (Wo, kw)
    ok = (ih >= 0)[:, None, :, None] & (ih < h)[:, None, :, None]
    ok = ok & ((iw >= 0) & (iw < w))[None, :, None, :]  # (Ho, Wo, kh, kw)
    flat = ih[:, None, :, None] * w + iw[None, :, None, :]
    idx = np.where(ok, flat, -1).reshape(ho * wo, k[0] * k[1])
    return idx.astype(np.int64), ho, wo


def conv2d(
    g: Graph,
    x: int,
    weight: int,
    bias: int | None,
    stride: int | Sequence[int] = 1,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    groups: int = 1,
) -> int:
    """2-D convolution (cross-correlation, torch's conv2d) of x (N, C, H, W) with weight
    (Co, C/groups, kh, kw), as im2col + MATMUL:

    cols = TAKE(x, idx, lead 1) of shape (N, G, Ho*Wo, K), K = (C/G)*kh*kw, whose last
    axis runs over (c, i, j) in row-major order (zero padding: index -1); per group the
    MATMUL cols @ W_g^T with W_g = weight[g*Co/G:(g+1)*Co/G] viewed as (Co/G, K); the
    result permuted to (N, Co, Ho, Wo), then + bias (broadcast over (Co, 1, 1)).
    Its derivative: matmuls by the generic rule, and the transpose of the TAKE (each input
    element sums, by the halving tree, the column entries that copied it, in increasing
    column position).
    """
    sx, sw = g.shape(x), g.shape(weight)
    if len(sx) != 4 or len(sw) != 4:
        raise TapeError(f"conv2d needs x (N, C, H, W) and weight (Co, C/G, kh, kw): {sx}, {sw}")
    n, c, h, w = sx
    co, cg, kh, kw = sw
    if groups < 1 or c % groups or co % groups or cg != c // groups:
        raise TapeError(f"conv2d groups {groups} for x {sx} and weight {sw}")
    s, p, d = _pair(stride), _pair(padding), _pair(dilation)
    win, ho, wo = _windows(h, w, (kh, kw), s, p, d)  # (L, kh*kw)
    big_l, kk = win.shape
    chan = np.arange(c).reshape(groups, cg)  # (G, Cg)
    idx = np.where(
        win[None, :, None, :] < 0,
        -1,
        chan[:, None, :, None] * (h * w) + win[None, :, None, :],
    )  # (G, L, Cg, kh*kw)
    k = cg * kk
    idx_t = torch.from_numpy(np.ascontiguousarray(idx.reshape(groups, big_l, k)))
    cog = co // groups
    if groups == 1:
        cols = g.take(x, idx_t.reshape(big_l, k), 1)  # (N, L, K)
        wt = g.transpose_last(g.reshape(weight, (co, k)))  # (K, Co)
        out = g.permute(g.matmul(cols, wt), (0, 2, 1))  # (N, Co, L)
    else:
        cols = g.take(x, idx_t, 1)  # (N, G, L, K)
        wg = g.permute(g.reshape(weight, (groups, cog, k)), (0, 2, 1))  # (G, K, Cog)
        wg = g.expand(g.reshape(wg, (1, groups, k, cog)), (n, groups, k, cog))
        out = g.permute(g.matmul(cols, wg), (0, 1, 3, 2))  # (N, G, Cog, L)
    out = g.reshape(out, (n, co, ho, wo))
    if bias is not None:
        out = g.add(out, g.reshape(bias, (co, 1, 1)))
    return out


def max_pool2d(
    g: Graph,
    x: int,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    dilation: int | Sequence[int] = 1,
    ceil_mode: bool = False,
) -> int:
    """Max over each window of x (N, C, H, W) (or (C, H, W)): TAKE the windows
    (N, C, Ho*Wo, kh*kw), add a constant -inf at padded positions (x + 0 elsewhere, which
    only turns -0 into +0), AMAX over the window; the derivative routes each output's
    gradient to the first maximal element of its window (row-major window order)."""
    sx = g.shape(x)
    if len(sx) == 3:
        y = max_pool2d(g, g.reshape(x, (1, *sx)), kernel, stride, padding, dilation, ceil_mode)
        return g.reshape(y, g.shape(y)[1:])
    if len(sx) != 4:
        raise TapeError(f"max_pool2d needs (N, C, H, W), got {sx}")
    n, c, h, w = sx
    k = _pair(kernel)
    s = _pair(stride) if stride is not None and stride != [] else k
    win, ho, wo = _windows(h, w, k, s, _pair(padding), _pair(dilation), ceil_mode)
    chan = np.arange(c)[:, None, None] * (h * w)
    idx = np.where(win[None] < 0, -1, chan + win[None])  # (C, L, kk)
    cols = g.take(g.reshape(x, (n, c * h * w)), torch.from_numpy(idx), 1)
    if (win < 0).any():
        mask = torch.from_numpy(np.where(win < 0, -np.inf, 0.0).astype(np.float32))
        cols = g.add(cols, g.const(mask))
    return g.reshape(g.amax(cols, -1), (n, c, ho, wo))


def avg_pool2d(
    g: Graph,
    x: int,
    kernel: int | Sequence[int],
    stride: int | Sequence[int] | None = None,
    padding: int | Sequence[int] = 0,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> int:
    """Mean over each window of x (N, C, H, W): TAKE the windows (zero padding), SUM over
    the window by the halving tree, divide by f32(divisor): divisor_override, else kh*kw
    (count_include_pad) or the number of window elements inside the input."""
    sx = g.shape(x)
    if len(sx) != 4:
        raise TapeError(f"avg_pool2d needs (N, C, H, W), got {sx}")
    n, c, h, w = sx
    k = _pair(kernel)
    s = _pair(stride) if stride is not None and stride != [] else k
    win, ho, wo = _windows(h, w, k, s, _pair(padding), (1, 1))
    chan = np.arange(c)[:, None, None] * (h * w)
    idx = np.where(win[None] < 0, -1, chan + win[None])
    sums = g.sum(g.take(g.reshape(x, (n, c * h * w)), torch.from_numpy(idx), 1), -1)
    if divisor_override:
        div = g.const(float(divisor_override))
    elif count_include_pad or not (win < 0).any():
        div = g.const(float(k[0] * k[1]))
    else:
        counts = (win >= 0).sum(axis=1).astype(np.float32).reshape(-1, 1)
        div = g.const(torch.from_numpy(counts))
    return g.reshape(g.div(sums, div), (n, c, ho, wo))


# -- shapes ------------------------------------------------------------------------------


def split(g: Graph, x: int, sizes: Sequence[int], axis: int) -> tuple[int, ...]:
    """Consecutive slices of the given sizes along `axis` (TAKEs; exact)."""
    ax = axis % len(g.shape(x))
    if sum(sizes) != g.shape(x)[ax]:
        raise TapeError(f"split sizes {list(sizes)} for axis of {g.shape(x)[ax]}")
    out = []
    off = 0
    for sz in sizes:
        out.append(g.slice(x, ax, off, off + sz))
        off += sz
    return tuple(out)


def stack(g: Graph, xs: Sequence[int], axis: int) -> int:
    """CAT of the inputs each given a new size-1 axis at `axis` (exact)."""
    s0 = g.shape(xs[0])
    ax = axis % (len(s0) + 1)
    new = (*s0[:ax], 1, *s0[ax:])
    return g.cat([g.reshape(v, new) for v in xs], ax)


def arange(
    start: float, end: float | None = None, step: float = 1, dtype: str | None = None
) -> torch.Tensor:
    """The constant of torch.arange: int64 if every argument is an integer (and no float
    dtype is asked), else float32 values f32(start + i*step) computed in binary64."""
    if end is None:
        start, end = 0, start
    ints = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, step))
    if step == 0:
        raise TapeError("arange step must not be zero")
    n = max(0, int(np.ceil((float(end) - float(start)) / float(step))))
    if dtype == "int64" or (dtype is None and ints):
        return torch.arange(int(start), int(end), int(step), dtype=torch.int64)
    vals = float(start) + np.arange(n, dtype=np.float64) * float(step)
    return torch.from_numpy(vals.astype(np.float32))
