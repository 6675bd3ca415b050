"""Dishonest steppers for tests: each cheats in one documented way and then defends its
own (false) trace consistently, as a real cheater would.  They live in the test suite
only; the shipped `solver` has no way to select them.

Every cheater computes the honest operator chain of a step and replaces only what its
lie changes, so disputes land exactly where the lie is: the end link for a corrupted
state, h_0 for a wrong batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch

from repops import data as data_mod
from repops import hashing
from repops.program import Program, State, batch_for, build_program, step_of
from repops.torch_reference import TorchTwin, make_optimizer, torch_step
from repops.trace import StepTrace, chain_final, replay_step
from roles.realtrace import HonestStepper


def _with_final(trace: StepTrace, new_state: State) -> StepTrace:
    chain = list(trace.chain)
    new_hash = hashing.state_hash(new_state)
    chain[-1] = chain_final(chain[-2], new_hash)
    return StepTrace(
        trace.state_hash, trace.batch_hash, trace.out_hashes, new_hash, tuple(chain), new_state
    )


def _advance_counters(state: State) -> State:
    new = {k: v.clone() for k, v in state.items()}
    new["meta.step"] = new["meta.step"] + 1
    new["meta.data_cursor"] = new["meta.data_cursor"] + 1
    return new


@dataclass(frozen=True)
class _StateCheater(HonestStepper):
    """Cheats by replacing the state a step produces (ops stay honest)."""

    at_step: int = 0

    def forge(self, program: Program, before: State, honest_after: State, ds: Any) -> State:
        raise NotImplementedError

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        new, loss = super().step(program, state, dataset)
        if step_of(state) == self.at_step or self._always_after(step_of(state)):
            new = self.forge(program, state, new, dataset)
        return new, loss

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        honest = super().replay(program, state, dataset)
        t = step_of(state)
        if t == self.at_step or self._always_after(t):
            return _with_final(honest, self.forge(program, state, honest.new_state, dataset))
        return honest

    def _always_after(self, t: int) -> bool:
        return False


@dataclass(frozen=True)
class UlpCheater(_StateCheater):
    """Perturbs one parameter element by one ulp after step `at_step`."""

    def forge(self, program: Program, before: State, honest_after: State, ds: Any) -> State:
        new = {k: v.clone() for k, v in honest_after.items()}
        name = sorted(k for k in new if k.startswith("param."))[0]
        flat = new[name].reshape(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf")))
        return new


@dataclass(frozen=True)
class SkipCheater(_StateCheater):
    """Skips the training of step `at_step` (only the counters move)."""

    def forge(self, program: Program, before: State, honest_after: State, ds: Any) -> State:
        return _advance_counters(before)


@dataclass(frozen=True)
class StopEarlyCheater(_StateCheater):
    """Trains honestly up to `at_step`, then stops and only moves the counters to claim N."""

    def forge(self, program: Program, before: State, honest_after: State, ds: Any) -> State:
        return _advance_counters(before)

    def _always_after(self, t: int) -> bool:
        return t >= self.at_step


@dataclass(frozen=True)
class PlainTorchCheater(_StateCheater):
    """Computes step `at_step` with plain torch ops (F.linear, torch AdamW) instead of repops."""

    def forge(self, program: Program, before: State, honest_after: State, ds: Any) -> State:
        twin = TorchTwin(program, before)
        opt, sched = make_optimizer(twin)
        batch = batch_for(program, ds, int(before["meta.data_cursor"].item()))
        with torch.enable_grad():
            torch_step(twin, opt, sched, batch)
        new = dict(honest_after)
        for name in twin.names:
            new[f"param.{name}"] = twin.w(name).detach().clone()
        return new


@dataclass(frozen=True)
class DataOrderCheater(HonestStepper):
    """Trains every step on batches drawn with another data seed."""

    other_seed: int = 12345
    _programs: dict[int, Program] = field(default_factory=dict, compare=False, hash=False)

    def _other(self, program: Program) -> Program:
        cached = self._programs.get(id(program))
        if cached is None:
            spec = copy.deepcopy(program.spec)
            spec["data"]["seed"] = self.other_seed
            cached = build_program(spec)
            self._programs[id(program)] = cached
        return cached

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        return super().step(self._other(program), state, dataset)

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        other = self._other(program)
        batch = batch_for(other, dataset, int(state["meta.data_cursor"].item()))
        return replay_step(program, state, batch, self.device)
