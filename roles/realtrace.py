"""A TraceView over a real repops training run: checkpoints in hand, the rest replayed.

The committed leaves come from checkpoints; a state s steps past checkpoint c is
recomputed by training forward from checkpoint c; an operator chain is recomputed by
`replay_step` (per-op hashes are never produced during normal training).  The same class
serves a solver defending its result and a whistleblower attacking one: each holds its own
checkpoints and computes its own values.  A `Stepper` can be swapped in for tests that
need a dishonest party; shipped code only ever uses the honest one.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import torch

from repops import data as data_mod
from repops import hashing, merkle
from repops.program import Program, State, batch_for, train_step
from repops.trace import StepTrace, extract_bundle, replay_step

log = logging.getLogger(__name__)

_V = TypeVar("_V")

LINK0_BUNDLE = (
    b'{"format":"assay-link0-v1","note":"h_0 needs no operands: the batch of step t is public"}'
)
"""What a solver publishes when the disputed link is h_0 (the referee recomputes the batch)."""


class Stepper(Protocol):
    """How one party advances a state by one step and replays one step's chain."""

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        """The next state and the step's training loss."""
        ...

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace: ...

    def bundle(
        self, program: Program, state: State, dataset: data_mod.Dataset, link: int
    ) -> bytes: ...


@dataclass(frozen=True)
class HonestStepper:
    """repops, as specified: the only stepper the shipped roles use."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        return train_step(program, state, dataset, self.device)

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        batch = batch_for(program, dataset, int(state["meta.data_cursor"].item()))
        return replay_step(program, state, batch, self.device)

    def bundle(self, program: Program, state: State, dataset: data_mod.Dataset, link: int) -> bytes:
        if link == 0:
            return LINK0_BUNDLE
        batch = batch_for(program, dataset, int(state["meta.data_cursor"].item()))
        return extract_bundle(program, state, batch, link, self.device).to_bytes()


class RealTrace:
    """Positions of a real trace (see arbiter/dissection.py), computed on demand."""

    def __init__(
        self,
        program: Program,
        dataset: data_mod.Dataset,
        spec_hash: bytes,
        leaves: list[bytes],
        load_checkpoint: Callable[[int], State],
        stepper: Stepper | None = None,
        cache_states: int = 8,
    ) -> None:
        self.program = program
        self.dataset = dataset
        self._spec_hash = spec_hash
        self.leaves = leaves
        self.load_checkpoint = load_checkpoint
        self.stepper: Stepper = stepper or HonestStepper()
        self._states: OrderedDict[int, State] = OrderedDict()
        self._chains: OrderedDict[int, StepTrace] = OrderedDict()
        self._cache = cache_states

    # ------------------------------------------------------------ TraceView

    def spec_hash(self) -> bytes:
        return self._spec_hash

    def checkpoint_count(self) -> int:
        return len(self.leaves)

    def steps_per_checkpoint(self) -> int:
        return self.program.checkpoint_interval

    def checkpoint_leaf(self, index: int) -> bytes:
        return self.leaves[index]

    def checkpoint_proof(self, index: int) -> list[bytes]:
        return merkle.merkle_proof(self.leaves, index)

    def step_state(self, checkpoint: int, offset: int) -> bytes:
        if offset == 0:
            return self.leaves[checkpoint]
        return hashing.state_hash(
            self.state_at(checkpoint * self.program.checkpoint_interval + offset)
        )

    def op_count(self, step: int) -> int:
        return self.program.tape.num_ops

    def op_link(self, step: int, j: int) -> bytes:
        return self._chain(step).chain[j]

    # -------------------------------------------------------------- replays

    def state_at(self, step: int) -> State:
        """The state after `step` steps, trained forward from the checkpoint below it."""
        cached = self._states.get(step)
        if cached is not None:
            self._states.move_to_end(step)
            return cached
        k = self.program.checkpoint_interval
        base = max((s for s in self._states if s <= step and s // k == step // k), default=None)
        if base is None:
            base = step - step % k
            state = self.load_checkpoint(base // k)
        else:
            state = self._states[base]
        for _ in range(step - base):
            state, _ = self.stepper.step(self.program, state, self.dataset)
        self._remember(self._states, step, state)
        return state

    def bundle(self, step: int, link: int) -> bytes:
        """The operand bundle for `link` of `step`'s chain, as this party computes it."""
        return self.stepper.bundle(self.program, self.state_at(step), self.dataset, link)

    def _chain(self, step: int) -> StepTrace:
        cached = self._chains.get(step)
        if cached is None:
            cached = self.stepper.replay(self.program, self.state_at(step), self.dataset)
            self._remember(self._chains, step, cached)
        return cached

    def _remember(self, cache: OrderedDict[int, _V], key: int, value: _V) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self._cache:
            cache.popitem(last=False)
