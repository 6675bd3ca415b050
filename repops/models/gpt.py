"""A small GPT (nanoGPT-style) for character-level language modelling.

Config: {"vocab": 128, "block": 64, "n_layer": 2, "n_head": 4, "n_embd": 64}.
Token + learned position embeddings, pre-norm blocks (layer norm -> causal multi-head
attention -> residual; layer norm -> 4x MLP with tanh-GELU -> residual), final layer norm,
untied linear head, mean cross-entropy over all B*T positions.  Weights are initialised
uniform with std 0.02 (residual projections 0.02/sqrt(2 n_layer)), biases 0, norms 1.
Batch: x, y int64 (B, block).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from repops.errors import FieldError
from repops.models.common import (
    ParamSpec,
    cross_entropy,
    gelu_tanh,
    int_field,
    layer_norm,
    linear,
    softmax,
)
from repops.tape import Graph

DATASET_FORMATS = ("repops-chars-v1",)
_SQRT3 = math.sqrt(3.0)


@dataclass(frozen=True)
class Config:
    vocab: int = 128
    block: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64

    @staticmethod
    def from_dict(cfg: Mapping[str, Any], path: str, errors: list[FieldError]) -> Config:
        for k in sorted(set(cfg) - {"vocab", "block", "n_layer", "n_head", "n_embd"}):
            errors.append(FieldError(f"{path}.{k}", "unknown field"))
        vocab = int_field(cfg, "vocab", path, errors, 2, 1 << 16)
        if vocab != 128:
            errors.append(FieldError(f"{path}.vocab", "the character corpus has 128 symbols"))
        block = int_field(cfg, "block", path, errors, 1, 4096)
        n_layer = int_field(cfg, "n_layer", path, errors, 1, 64)
        n_head = int_field(cfg, "n_head", path, errors, 1, 256)
        n_embd = int_field(cfg, "n_embd", path, errors, 1, 8192)
        if n_embd % n_head:
            errors.append(FieldError(f"{path}.n_embd", f"{n_embd} is not divisible by n_head"))
        return Config(vocab, block, n_layer, n_head, n_embd)


def _w(shape: tuple[int, ...], std: float) -> ParamSpec:
    return ParamSpec(shape, "uniform", std * _SQRT3, decay=True)


def param_specs(cfg: Config) -> dict[str, ParamSpec]:
    c = cfg.n_embd
    proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
    out: dict[str, ParamSpec] = {
        "wte": _w((cfg.vocab, c), 0.02),
        "wpe": _w((cfg.block, c), 0.02),
    }
    for i in range(cfg.n_layer):
        p = f"h{i}."
        out[p + "ln1.g"] = ParamSpec((c,), "ones")
        out[p + "ln1.b"] = ParamSpec((c,), "zeros")
        for n in ("wq", "wk", "wv"):
            out[p + "attn." + n] = _w((c, c), 0.02)
        out[p + "attn.wo"] = _w((c, c), proj_std)
        out[p + "ln2.g"] = ParamSpec((c,), "ones")
        out[p + "ln2.b"] = ParamSpec((c,), "zeros")
        out[p + "mlp.w1"] = _w((c, 4 * c), 0.02)
        out[p + "mlp.b1"] = ParamSpec((4 * c,), "zeros")
        out[p + "mlp.w2"] = _w((4 * c, c), proj_std)
        out[p + "mlp.b2"] = ParamSpec((c,), "zeros")
    out["lnf.g"] = ParamSpec((c,), "ones")
    out["lnf.b"] = ParamSpec((c,), "zeros")
    out["head"] = _w((c, cfg.vocab), 0.02)
    return out


def batch_specs(cfg: Config, batch_size: int) -> dict[str, tuple[tuple[int, ...], str]]:
    return {"x": ((batch_size, cfg.block), "int64"), "y": ((batch_size, cfg.block), "int64")}


def causal_mask(t: int) -> torch.Tensor:
    """(T, T) float32: 0 on and below the diagonal, -inf above."""
    keep = torch.ones(t, t, dtype=torch.bool).tril()
    return torch.where(keep, 0.0, float("-inf")).to(torch.float32)


def _heads(g: Graph, x: int, b: int, t: int, h: int, d: int) -> int:
    return g.permute(g.reshape(x, (b, t, h, d)), (0, 2, 1, 3))  # (B, H, T, D)


def forward(g: Graph, cfg: Config, params: Mapping[str, int], batch: Mapping[str, int]) -> int:
    b, t = g.shape(batch["x"])
    c, h = cfg.n_embd, cfg.n_head
    d = c // h
    x = g.add(g.gather_rows(params["wte"], batch["x"]), params["wpe"])  # (B, T, C)
    mask = g.const(causal_mask(t))
    scale = g.const(1.0 / math.sqrt(d))
    for i in range(cfg.n_layer):
        p = f"h{i}."
        a = layer_norm(g, x, params[p + "ln1.g"], params[p + "ln1.b"])
        q = _heads(g, g.matmul(a, params[p + "attn.wq"]), b, t, h, d)
        k = _heads(g, g.matmul(a, params[p + "attn.wk"]), b, t, h, d)
        v = _heads(g, g.matmul(a, params[p + "attn.wv"]), b, t, h, d)
        att = g.add(g.mul(g.matmul(q, g.transpose_last(k)), scale), mask)  # (B, H, T, T)
        y = g.matmul(softmax(g, att), v)  # (B, H, T, D)
        y = g.reshape(g.permute(y, (0, 2, 1, 3)), (b, t, c))
        x = g.add(x, g.matmul(y, params[p + "attn.wo"]))
        m = layer_norm(g, x, params[p + "ln2.g"], params[p + "ln2.b"])
        m = gelu_tanh(g, linear(g, m, params[p + "mlp.w1"], params[p + "mlp.b1"]))
        x = g.add(x, linear(g, m, params[p + "mlp.w2"], params[p + "mlp.b2"]))
    x = layer_norm(g, x, params["lnf.g"], params["lnf.b"])
    logits = g.reshape(g.matmul(x, params["head"]), (b * t, cfg.vocab))
    return cross_entropy(g, logits, g.reshape(batch["y"], (b * t,)))
