"""Job specs built from one factory: tests, the demo and the benches name only what they vary.

Every function returns a fresh plain ``dict`` in the wire shape of DESIGN.md section 3
(the shape `jobspec.schema` validates for the market and `repops.program.build_program`), with
every optimizer field spelled out, so the bytes hashed never depend on a default that
one side fills in and the other does not.  Nothing here validates: a factory may build
an invalid spec on purpose (tests mutate the result to get one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jobspec.schema import DATASET_FORMATS, REPOPS_VERSION


def schedule(
    warmup_steps: int | None = None, *, name: str | None = None, min_lr_ratio: float = 0.0
) -> dict[str, Any]:
    """``constant`` when `warmup_steps` and `name` are None, else ``linear`` (the default
    name) or ``cosine`` with that warm-up (0 when None); cosine also names `min_lr_ratio`."""
    if warmup_steps is None and name is None:
        return {"name": "constant"}
    if name == "constant":
        return {"name": "constant"}
    w = 0 if warmup_steps is None else warmup_steps
    if name == "cosine":
        return {"name": "cosine", "warmup_steps": w, "min_lr_ratio": min_lr_ratio}
    return {"name": name or "linear", "warmup_steps": w}


def sgd(lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0) -> dict[str, Any]:
    """A torch.optim.SGD block (dampening 0, not nesterov) with every field present."""
    return {
        "name": "sgd",
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "dampening": 0.0,
        "nesterov": False,
    }


def adamw(
    lr: float,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> dict[str, Any]:
    """An AdamW optimizer block with every field present."""
    return {
        "name": "adamw",
        "lr": lr,
        "beta1": beta1,
        "beta2": beta2,
        "eps": eps,
        "weight_decay": weight_decay,
    }


def job_spec(
    model: dict[str, Any],
    dataset: str,
    *,
    optimizer: dict[str, Any],
    batch_size: int,
    data_seed: int,
    steps: int,
    checkpoint_interval: int,
    seed: int,
    lr_schedule: dict[str, Any] | None = None,
    clip_grad_norm: float | None = None,
) -> dict[str, Any]:
    """A spec training `model` ({"name", "config"}) on a built-in `dataset` (no gradient
    clipping when `clip_grad_norm` is None: the key is left out)."""
    program: dict[str, Any] = {
        "model": model,
        "loss": "cross_entropy",
        "optimizer": optimizer,
        "lr_schedule": lr_schedule if lr_schedule is not None else schedule(),
    }
    if clip_grad_norm is not None:
        program["clip_grad_norm"] = clip_grad_norm
    return {
        "repops_version": REPOPS_VERSION,
        "program": program,
        "data": {
            "dataset": dataset,
            "format": DATASET_FORMATS[dataset],
            "batch_size": batch_size,
            "seed": data_seed,
        },
        "steps": steps,
        "checkpoint_interval": checkpoint_interval,
        "seed": seed,
    }


def mlp_spec(
    *,
    hidden: Sequence[int] = (32,),
    lr: float = 0.01,
    beta2: float = 0.999,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    batch_size: int = 16,
    data_seed: int = 7,
    steps: int = 8,
    checkpoint_interval: int = 2,
    seed: int = 3,
    optimizer: dict[str, Any] | None = None,
    lr_schedule: dict[str, Any] | None = None,
    clip_grad_norm: float | None = None,
) -> dict[str, Any]:
    """The digits MLP (64 pixels -> `hidden` -> 10 classes) with AdamW (or `optimizer`,
    e.g. `sgd(...)`, and `lr_schedule`, e.g. `schedule(..., name="cosine")`)."""
    return job_spec(
        {"name": "mlp", "config": {"in_features": 64, "hidden": list(hidden), "classes": 10}},
        "digits",
        optimizer=optimizer or adamw(lr, beta2=beta2, weight_decay=weight_decay),
        lr_schedule=lr_schedule or schedule(warmup_steps),
        clip_grad_norm=clip_grad_norm,
        batch_size=batch_size,
        data_seed=data_seed,
        steps=steps,
        checkpoint_interval=checkpoint_interval,
        seed=seed,
    )


def small_mlp_spec() -> dict[str, Any]:
    """The 20-step digits MLP (hidden 16, batch 8, 4 checkpoints) that API tests and
    `bench.api` submit: cheap to train, with real checkpoints to dispute."""
    return mlp_spec(
        hidden=[16],
        weight_decay=0.0,
        batch_size=8,
        data_seed=1,
        steps=20,
        checkpoint_interval=5,
        seed=0,
    )


def gpt_spec(
    *,
    vocab: int = 128,
    block: int = 16,
    n_layer: int = 1,
    n_head: int = 2,
    n_embd: int = 16,
    lr: float = 3e-3,
    beta2: float = 0.99,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    batch_size: int = 4,
    data_seed: int = 5,
    steps: int = 4,
    checkpoint_interval: int = 2,
    seed: int = 11,
) -> dict[str, Any]:
    """The character GPT on the stdlib_chars dataset with AdamW."""
    config = {
        "vocab": vocab,
        "block": block,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_embd": n_embd,
    }
    return job_spec(
        {"name": "gpt", "config": config},
        "stdlib_chars",
        optimizer=adamw(lr, beta2=beta2, weight_decay=weight_decay),
        lr_schedule=schedule(warmup_steps),
        batch_size=batch_size,
        data_seed=data_seed,
        steps=steps,
        checkpoint_interval=checkpoint_interval,
        seed=seed,
    )


def artifact(sha256: str, cid: str | None = None) -> dict[str, Any]:
    """An artifact reference ``{"sha256", "cid"?}`` (a graph model's graph or weights)."""
    return {"sha256": sha256} if cid is None else {"sha256": sha256, "cid": cid}


def graph_spec(
    graph: dict[str, Any],
    weights: dict[str, Any],
    *,
    data_format: str = "tensors",
    lr: float = 0.01,
    beta2: float = 0.999,
    weight_decay: float = 0.01,
    warmup_steps: int | None = None,
    batch_size: int = 8,
    data_seed: int = 1,
    steps: int = 8,
    checkpoint_interval: int = 2,
    seed: int = 5,
) -> dict[str, Any]:
    """A user's own model (a lowered torch.export graph, see `artifact`) on a ``tensors``
    or ``tokens`` dataset file; the graph returns its own loss."""
    return {
        "repops_version": REPOPS_VERSION,
        "program": {
            "model": {"name": "graph", "graph": graph, "weights": weights},
            "loss": "graph",
            "optimizer": adamw(lr, beta2=beta2, weight_decay=weight_decay),
            "lr_schedule": schedule(warmup_steps),
        },
        "data": {
            "format": data_format,
            "batch_size": batch_size,
            "seed": data_seed,
        },
        "steps": steps,
        "checkpoint_interval": checkpoint_interval,
        "seed": seed,
    }
