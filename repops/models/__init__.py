"""The model zoo: named architectures that emit repops tapes.

Each model module has a frozen config dataclass (`from_dict` collects field errors),
`param_specs(cfg)` naming every parameter with its shape and initialisation, the batch
shapes, and `forward(g, cfg, params, batch)` that appends the forward pass and returns
the scalar loss node.  Models must never touch torch directly: they only emit ops.
"""

from __future__ import annotations

from repops.models import gpt, mlp
from repops.models.common import ParamSpec

MODELS = {"mlp": mlp, "gpt": gpt}

__all__ = ["MODELS", "ParamSpec", "gpt", "mlp"]
