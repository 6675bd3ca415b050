"""Fixtures for the repops tests: datasets built once, small specs, thread-count helper."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from repops import data

MLP_SPEC: dict[str, Any] = {
    "repops_version": "repops-2",
    "program": {
        "model": {"name": "mlp", "config": {"in_features": 64, "hidden": [32], "classes": 10}},
        "loss": "cross_entropy",
        "optimizer": {
            "name": "adamw",
            "lr": 0.01,
            "beta1": 0.9,
            "beta2": 0.999,
            "eps": 1e-8,
            "weight_decay": 0.01,
        },
        "lr_schedule": {"name": "linear", "warmup_steps": 2},
    },
    "data": {"dataset": "digits", "format": "repops-digits-v1", "batch_size": 16, "seed": 7},
    "steps": 8,
    "checkpoint_interval": 2,
    "seed": 3,
}

GPT_SPEC: dict[str, Any] = {
    "repops_version": "repops-2",
    "program": {
        "model": {
            "name": "gpt",
            "config": {"vocab": 128, "block": 16, "n_layer": 1, "n_head": 2, "n_embd": 16},
        },
        "loss": "cross_entropy",
        "optimizer": {
            "name": "adamw",
            "lr": 0.003,
            "beta1": 0.9,
            "beta2": 0.99,
            "eps": 1e-8,
            "weight_decay": 0.01,
        },
        "lr_schedule": {"name": "linear", "warmup_steps": 2},
    },
    "data": {"dataset": "stdlib_chars", "format": "repops-chars-v1", "batch_size": 4, "seed": 5},
    "steps": 4,
    "checkpoint_interval": 2,
    "seed": 11,
}


@pytest.fixture(scope="session")
def digits_bytes() -> bytes:
    return data.build_digits()


@pytest.fixture(scope="session")
def digits(digits_bytes: bytes) -> data.Dataset:
    return data.Dataset.from_bytes(digits_bytes)


@pytest.fixture(scope="session")
def chars_bytes() -> bytes:
    return data.build_stdlib_chars()


@pytest.fixture(scope="session")
def chars(chars_bytes: bytes) -> data.Dataset:
    return data.Dataset.from_bytes(chars_bytes)


@pytest.fixture
def mlp_spec() -> dict[str, Any]:
    return copy.deepcopy(MLP_SPEC)


@pytest.fixture
def gpt_spec() -> dict[str, Any]:
    return copy.deepcopy(GPT_SPEC)


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run a block under torch.set_num_threads(n), restoring the old value."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def under_threads(fn: Callable[[], Any], counts: tuple[int, ...] = (1, 2)) -> list[Any]:
    out = []
    for n in counts:
        with threads(n):
            out.append(fn())
    return out
