"""The table of lowering rules: one function per aten overload, building repops nodes.

A rule receives the `Graph` being built and the FX node's ``args`` and ``kwargs`` with
every tensor argument replaced by a `T` (the id of the repops node that holds it) and
every other argument left as torch.export wrote it (ints, floats, bools, lists, None,
`torch.dtype`).  It returns the node id (or a tuple of ids, for multi-output aten ops)
that stands for the FX node's value.  A rule may emit any number of repops nodes, but
only through `Graph` methods, so every node it creates has a backward rule and a
JSON-serialisable static argument.  A rule raises `Unsupported` with a one-line reason
for an argument combination it cannot express exactly (the op is then reported by name
and source location, like an op with no rule at all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from repops.tape import Graph


@dataclass(frozen=True)
class T:
    """A tensor argument of an aten call: the id of the repops node holding its value."""

    id: int


class Unsupported(Exception):
    """This aten call (with these arguments) has no exact lowering."""


Rule = Callable[[Graph, tuple[Any, ...], dict[str, Any]], "int | tuple[int, ...]"]
RULES: dict[str, Rule] = {}


def rule(*targets: str) -> Callable[[Rule], Rule]:
    """Register `fn` for each aten overload name, e.g. ``"aten.relu.default"``."""

    def register(fn: Rule) -> Rule:
        for t in targets:
            if t in RULES:
                raise ValueError(f"two lowering rules for {t}")
            RULES[t] = fn
        return fn

    return register
