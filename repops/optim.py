"""The optimizer, gradient clipping and learning-rate schedules of a training step, as
repops ops on the step's tape (built by `repops.program`).

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

Node order is part of the program (op j means the same everywhere): the tape builder
calls `state_leaves` right after the parameters' leaves, then, after the backward pass,
`clip_gradients` (when the spec clips), `schedule_lr` and `update`, which emit their nodes
in the order written here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from repops.models import ParamSpec
from repops.tape import Graph


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


Leaf = Callable[..., int]  # inp(name, shape[, dtype]) -> node id (a state entry's leaf)
Grad = Callable[[str], int]  # grad(param name) -> node id of its gradient


def state_leaves(opt: Optim | Sgd, params: Mapping[str, ParamSpec], inp: Leaf) -> dict[str, int]:
    """The optimizer's state entries as leaves, by state name: AdamW ``adam.m.<p>`` (all
    parameters), ``adam.v.<p>``, ``adam.beta1_pow``, ``adam.beta2_pow``; SGD with momentum
    ``sgd.buf.<p>``; SGD without momentum none."""
    ids: dict[str, int] = {}
    if isinstance(opt, Optim):
        for n, s in params.items():
            ids[f"adam.m.{n}"] = inp(f"adam.m.{n}", s.shape)
        for n, s in params.items():
            ids[f"adam.v.{n}"] = inp(f"adam.v.{n}", s.shape)
        ids["adam.beta1_pow"] = inp("adam.beta1_pow", ())
        ids["adam.beta2_pow"] = inp("adam.beta2_pow", ())
    elif opt.momentum > 0.0:
        for n, s in params.items():
            ids[f"sgd.buf.{n}"] = inp(f"sgd.buf.{n}", s.shape)
    return ids


def clip_gradients(
    g: Graph, grad: Grad, params: Mapping[str, ParamSpec], clip: float
) -> tuple[dict[str, int], int]:
    """Global-norm clipping: (clipped gradient by parameter, the total-norm node)."""
    acc = None
    for n in sorted(params):  # partial sums of squares in sorted parameter-name order
        sq = g.mul(grad(n), grad(n))
        flat = g.reshape(sq, (math.prod(params[n].shape),))
        part = g.reshape(g.sum(flat, 0), ())
        acc = part if acc is None else g.add(acc, part)
    assert acc is not None
    norm = g.sqrt(acc)
    k = g.div(g.const(clip), g.add(norm, g.const(CLIP_EPS)))
    k = g.minimum(k, g.const(1.0))
    return {n: g.mul(grad(n), k) for n in params}, norm


def schedule_lr(g: Graph, base: float, sch: Schedule, steps: int, step: int) -> int:
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


def update(
    g: Graph,
    opt: Optim | Sgd,
    params: Mapping[str, ParamSpec],
    pid: Mapping[str, int],
    grad: Grad,
    lr: int,
    st: Mapping[str, int],
) -> dict[str, int]:
    """The optimizer step: the next value of every parameter and optimizer state entry."""
    outputs: dict[str, int] = {}
    if isinstance(opt, Optim):
        b1, b2 = g.const(opt.beta1), g.const(opt.beta2)
        c1, c2 = g.const(1.0 - opt.beta1), g.const(1.0 - opt.beta2)
        one = g.const(1.0)
        p1n = g.mul(st["adam.beta1_pow"], b1)
        p2n = g.mul(st["adam.beta2_pow"], b2)
        bc1 = g.sub(one, p1n)
        bc2 = g.sub(one, p2n)
        eps = g.const(opt.eps)
        wd = g.const(opt.weight_decay)
        for n, spec in params.items():
            gr = grad(n)
            m = g.adam_moment(st[f"adam.m.{n}"], gr, b1, c1, square=False)
            v = g.adam_moment(st[f"adam.v.{n}"], gr, b2, c2, square=True)
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
                gr = g.add(g.mul(mu, st[f"sgd.buf.{n}"]), gr)
                outputs[f"sgd.buf.{n}"] = gr
            outputs[f"param.{n}"] = g.sub(pid[n], g.mul(lr, gr))
    return outputs
