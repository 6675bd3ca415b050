"""Building blocks shared by the zoo, written only with `Graph` ops.

linear, layer norm, tanh-GELU, softmax and cross-entropy are composites: they expand into
the primitive ops of the vocabulary at tape-build time, so their rounding is exactly the
sequence written here and their gradients come from the generic autodiff.  Never replace
them with torch's fused versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repops.errors import FieldError
from repops.tape import Graph


@dataclass(frozen=True)
class ParamSpec:
    """A parameter: shape, init ("uniform" with `scale`, "zeros", "ones"), weight decay."""

    shape: tuple[int, ...]
    init: str
    scale: float = 0.0
    decay: bool = False


def int_field(
    cfg: Mapping[str, Any], key: str, path: str, errors: list[FieldError], lo: int, hi: int
) -> int:
    v = cfg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        errors.append(FieldError(f"{path}.{key}", f"must be an integer in [{lo}, {hi}]"))
        return lo
    return v


def linear(g: Graph, x: int, w: int, b: int | None) -> int:
    y = g.matmul(x, w)
    return y if b is None else g.add(y, b)


def layer_norm(g: Graph, x: int, gain: int, bias: int, eps: float = 1e-5) -> int:
    """(x - mean) / sqrt(var + eps) * gain + bias over the last axis; var is biased.
    The normalisation is one fused op (Op.LAYER_NORM); gain and bias are plain ops."""
    return g.add(g.mul(g.layer_norm(x, eps), gain), bias)


def gelu_tanh(g: Graph, x: int) -> int:
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x**3))): one fused op (Op.GELU) whose
    derivative is the fused Op.GELU_GRAD."""
    return g.gelu(x)


def softmax(g: Graph, x: int) -> int:
    """exp(x - max) / sum(exp(x - max)) over the last axis: one fused op (Op.SOFTMAX)."""
    return g.softmax(x)


def cross_entropy(g: Graph, logits: int, targets: int) -> int:
    """Mean over rows of logsumexp(logits) - logits[target]; logits (N, V), targets (N,)."""
    n, v = g.shape(logits)
    z = g.sub(logits, g.max(logits, -1))
    lse = g.log(g.sum(g.exp(z), -1))  # (N, 1)
    picked = g.sum(g.mul(z, g.onehot(targets, v)), -1)  # exact: one non-zero term
    per_row = g.sub(lse, picked)
    total = g.reshape(g.sum(per_row, 0), ())
    return g.div(total, g.const(float(n)))
