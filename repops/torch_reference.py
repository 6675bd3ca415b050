"""Plain-torch float32 twins of the zoo models, for benchmarks and loss-parity tests only.

These use ordinary torch ops (F.layer_norm, softmax, gelu, torch.optim.AdamW) whose
rounding is unspecified, so they are NOT reproducible and must never feed a hash, a
trace or a checkpoint.  They start from the same initial parameters (a repops state) and
consume the same batches, which makes "repops vs plain fp32" comparisons meaningful.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F

from repops.program import Program, Sgd


class TorchTwin(torch.nn.Module):
    """The program's model in plain torch; parameters named like the repops state."""

    def __init__(self, program: Program, state: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        self.program = program
        self.cfg = program.config
        self.names = list(program.params)
        self.p = torch.nn.ParameterList(
            [torch.nn.Parameter(state[f"param.{n}"].detach().clone()) for n in self.names]
        )
        self.idx = {n: i for i, n in enumerate(self.names)}
        self.grad_norms: list[float] = []  # torch's total norm per step, when clipping

    def w(self, name: str) -> torch.Tensor:
        w: torch.Tensor = self.p[self.idx[name]]
        return w

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.program.model_name == "mlp":
            n = len(self.cfg.hidden) + 1
            h = x
            for i in range(n):
                h = h @ self.w(f"l{i}.weight") + self.w(f"l{i}.bias")
                if i < n - 1:
                    h = torch.relu(h)
            return F.cross_entropy(h, y)
        cfg = self.cfg
        b, t = x.shape
        c, nh = cfg.n_embd, cfg.n_head
        d = c // nh
        h = self.w("wte")[x] + self.w("wpe")
        mask = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        for i in range(cfg.n_layer):
            p = f"h{i}."
            a = F.layer_norm(h, (c,), self.w(p + "ln1.g"), self.w(p + "ln1.b"), 1e-5)
            q, k, v = (
                (a @ self.w(p + "attn." + nm)).view(b, t, nh, d).transpose(1, 2)
                for nm in ("wq", "wk", "wv")
            )
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
            att = att.masked_fill(~mask, float("-inf")).softmax(-1)
            yy = (att @ v).transpose(1, 2).reshape(b, t, c)
            h = h + yy @ self.w(p + "attn.wo")
            m = F.layer_norm(h, (c,), self.w(p + "ln2.g"), self.w(p + "ln2.b"), 1e-5)
            m = F.gelu(m @ self.w(p + "mlp.w1") + self.w(p + "mlp.b1"), approximate="tanh")
            h = h + m @ self.w(p + "mlp.w2") + self.w(p + "mlp.b2")
        h = F.layer_norm(h, (c,), self.w("lnf.g"), self.w("lnf.b"), 1e-5)
        logits = h @ self.w("head")
        return F.cross_entropy(logits.reshape(b * t, -1), y.reshape(b * t))


def torch_optimizer(
    program: Program, decay: list[torch.Tensor], rest: list[torch.Tensor]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """torch AdamW or SGD + LambdaLR matching the program's optimizer and schedule;
    weight decay only on `decay` (the matrices)."""
    o = program.optim
    groups: list[dict[str, Any]] = [
        {"params": decay, "weight_decay": o.weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    opt: torch.optim.Optimizer
    if isinstance(o, Sgd):
        opt = torch.optim.SGD(groups, lr=o.lr, momentum=o.momentum)
    else:
        opt = torch.optim.AdamW(groups, lr=o.lr, betas=(o.beta1, o.beta2), eps=o.eps)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(program))


def lr_factor(program: Program) -> Callable[[int], float]:
    """The schedule's multiplier of lr at step t, in binary64 (repops.program's formulas)."""
    sch = program.schedule
    n, w, r = program.steps, sch.warmup_steps, sch.min_lr_ratio

    def factor(t: int) -> float:
        if sch.name == "constant":
            return 1.0
        up = (t + 1) / w if w else math.inf
        if sch.name == "linear":
            return min(up, (n - t) / (n - w))
        if t < w:
            return up
        return r + (1.0 - r) * (0.5 * (1.0 + math.cos(math.pi * (t - w) / (n - w))))

    return factor


def make_optimizer(
    twin: TorchTwin,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """`torch_optimizer` over the twin's parameters."""
    prog = twin.program
    decay = [twin.w(n) for n in twin.names if prog.params[n].decay]
    rest = [twin.w(n) for n in twin.names if not prog.params[n].decay]
    return torch_optimizer(prog, decay, rest)


def torch_step(
    twin: TorchTwin,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LambdaLR,
    batch: Mapping[str, torch.Tensor],
) -> float:
    """One plain-torch training step (clipping with clip_grad_norm_ when the program
    clips); returns the loss."""
    opt.zero_grad(set_to_none=True)
    loss = twin(batch["batch.x"], batch["batch.y"])
    loss.backward()
    if twin.program.clip_grad_norm is not None:
        norm = torch.nn.utils.clip_grad_norm_(twin.parameters(), twin.program.clip_grad_norm)
        twin.grad_norms.append(float(norm))
    opt.step()
    sched.step()
    return float(loss.item())
