"""Fixtures for the repops tests: datasets built once, small specs, thread-count helper."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from jobspec.factory import gpt_spec, mlp_spec
from repops import data

MLP_SPEC: dict[str, Any] = mlp_spec(warmup_steps=2)

GPT_SPEC: dict[str, Any] = gpt_spec(warmup_steps=2)


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


@pytest.fixture(params=["mlp", "gpt"])
def zoo(
    request: pytest.FixtureRequest, digits: data.Dataset, chars: data.Dataset
) -> tuple[dict[str, Any], data.Dataset]:
    """(spec, dataset): the zoo MLP on digits, then the zoo GPT on chars (one test each)."""
    if request.param == "mlp":
        return copy.deepcopy(MLP_SPEC), digits
    return copy.deepcopy(GPT_SPEC), chars


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
