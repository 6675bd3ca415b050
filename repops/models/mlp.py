"""MLP classifier for 8x8 digits: Linear -> ReLU -> ... -> Linear, cross-entropy loss.

Config: {"in_features": 64, "hidden": [64], "classes": 10}.  Parameters
`l{i}.weight` (in, out) and `l{i}.bias` (out,), initialised uniform on
+-1/sqrt(in) like torch.nn.Linear.  Batch: x float32 (B, in), y int64 (B,).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from repops.errors import FieldError
from repops.models.common import ParamSpec, cross_entropy, int_field, linear
from repops.tape import Graph

DATASET_FORMATS = ("repops-digits-v1",)


@dataclass(frozen=True)
class Config:
    in_features: int = 64
    hidden: tuple[int, ...] = (64,)
    classes: int = 10

    @staticmethod
    def from_dict(cfg: Mapping[str, Any], path: str, errors: list[FieldError]) -> Config:
        unknown = set(cfg) - {"in_features", "hidden", "classes"}
        for k in sorted(unknown):
            errors.append(FieldError(f"{path}.{k}", "unknown field"))
        inf = int_field(cfg, "in_features", path, errors, 1, 1 << 16)
        if inf != 64:
            errors.append(FieldError(f"{path}.in_features", "digits images have 64 pixels"))
        classes = int_field(cfg, "classes", path, errors, 2, 1 << 16)
        if classes != 10:
            errors.append(FieldError(f"{path}.classes", "digits has 10 classes"))
        hidden = cfg.get("hidden", [])
        if not isinstance(hidden, list) or not all(
            isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= 4096 for h in hidden
        ):
            errors.append(FieldError(f"{path}.hidden", "must be a list of integers in [1, 4096]"))
            hidden = []
        elif len(hidden) > 8:
            errors.append(FieldError(f"{path}.hidden", "at most 8 hidden layers"))
        return Config(inf, tuple(hidden), classes)


def dims(cfg: Config) -> list[int]:
    return [cfg.in_features, *cfg.hidden, cfg.classes]


def param_specs(cfg: Config) -> dict[str, ParamSpec]:
    d = dims(cfg)
    out: dict[str, ParamSpec] = {}
    for i in range(len(d) - 1):
        bound = 1.0 / math.sqrt(d[i])
        out[f"l{i}.weight"] = ParamSpec((d[i], d[i + 1]), "uniform", bound, decay=True)
        out[f"l{i}.bias"] = ParamSpec((d[i + 1],), "uniform", bound)
    return out


def batch_specs(cfg: Config, batch_size: int) -> dict[str, tuple[tuple[int, ...], str]]:
    return {"x": ((batch_size, cfg.in_features), "float32"), "y": ((batch_size,), "int64")}


def logits(g: Graph, cfg: Config, params: Mapping[str, int], x: int) -> int:
    h = x
    n = len(dims(cfg)) - 1
    for i in range(n):
        h = linear(g, h, params[f"l{i}.weight"], params[f"l{i}.bias"])  # (B, d[i+1])
        if i < n - 1:
            h = g.relu(h)
    return h


def forward(g: Graph, cfg: Config, params: Mapping[str, int], batch: Mapping[str, int]) -> int:
    return cross_entropy(g, logits(g, cfg, params, batch["x"]), batch["y"])
