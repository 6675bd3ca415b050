"""A data-parallel solver that lies in one op of its own micro-batch, or a worker that
dies once (NOT shipped).

    python -m tests.support.dp_liar --node N --step T [--rank R] RUN_DIR [worker flags]
    python -m tests.support.dp_liar --die-at T [--rank R] RUN_DIR [worker flags]

is `roles.dataparallel`'s worker with `LyingExecutor`: at step T, rank R (default 1)
puts node N's output one ulp up (every element) before anything reads it, so every
later op of that rank, the boundary it sends and hence every rank's next state are
computed from the lie.  `OneNodeLiar` is the same lie told by one process (the solver's
in-process replay of the step for its dispute), so a cheater trained with W workers
defends exactly the checkpoints its workers wrote.  With --die-at, rank R exits hard
(status 9) when it is about to run step T, the first time only (a marker file in the
run directory), as a worker whose machine is lost would.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from repops import data as data_mod
from repops import hashing, parallel
from repops.program import Program, State, batch_for, step_of
from repops.tape import Tape
from repops.trace import StepTrace, chain_final, chain_link, chain_start
from roles import dataparallel
from roles.realtrace import HonestStepper


def off_by_one_ulp(value: torch.Tensor) -> None:
    """Every element one ulp up, in place (a lie that survives the rounding after it)."""
    value.copy_(torch.nextafter(value, torch.full_like(value, float("inf"))))


def lie_node(tape: Tape, rank: int = 1, world: int = 2) -> int:
    """The node a rank-`rank` liar lies in: the first MATMUL of its first micro-batch."""
    from repops.ops import Op

    a, b = tape.micro_ranges[rank * (len(tape.micro_ranges) // world)]
    return next(i for i in range(a, b) if tape.nodes[i].op is Op.MATMUL)


class LyingExecutor(parallel.ShardedExecutor):
    """`ShardedExecutor` whose rank `LIE_RANK` puts node `LIE_NODE` one ulp up at step
    `LIE_STEP` (set on the class by `main`: a worker builds its executor itself)."""

    LIE_NODE = -1
    LIE_STEP = -1
    LIE_RANK = 1

    def __init__(self, tape: Tape, device: torch.device, world: int, rank: int) -> None:
        super().__init__(tape, device, world, rank)
        self._now = False

    def run_local(self, feeds: Mapping[str, torch.Tensor]) -> list[torch.Tensor | None]:
        self._now = self.rank == self.LIE_RANK and int(feeds["meta.step"].item()) == self.LIE_STEP
        return super().run_local(feeds)

    def _run(self, ids: Sequence[int], vals: list[torch.Tensor | None]) -> None:
        if not self._now or self.LIE_NODE not in ids:
            super()._run(ids, vals)
            return
        cut = list(ids).index(self.LIE_NODE) + 1
        super()._run(ids[:cut], vals)
        value = vals[self.LIE_NODE]
        assert value is not None
        off_by_one_ulp(value)
        sys.stderr.write(f"dp_liar: rank {self.rank} lied in node {self.LIE_NODE}\n")
        super()._run(ids[cut:], vals)


@dataclass(frozen=True)
class OneNodeLiar(HonestStepper):
    """In one process, the lie `LyingExecutor` tells: node `node` one ulp up at step
    `at_step` (a node id; `lie_node` picks it), the rest of the step computed from it."""

    node: int = -1
    at_step: int = -1

    def _run(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        batch = batch_for(program, dataset, int(state["meta.data_cursor"].item()))
        outs: list[bytes] = []

        def hook(j: int, node: int, value: torch.Tensor) -> None:
            if node == self.node:
                off_by_one_ulp(value)
            outs.append(hashing.tensor_hash(value))

        feeds = {k: v.to(self.device) for k, v in state.items()}
        feeds.update({k: v.to(self.device) for k, v in batch.items()})
        vals = program.executor(self.device).run(feeds, hook=hook)
        new: State = {}
        for name, nid in program.tape.outputs.items():
            v = vals[nid]
            assert v is not None
            new[name] = v
        chain = [chain_start(hashing.state_hash(state), hashing.state_hash(batch))]
        for j, oh in enumerate(outs, start=1):
            chain.append(chain_link(chain[-1], j, oh))
        nsh = hashing.state_hash(new)
        chain.append(chain_final(chain[-1], nsh))
        # StepTrace.state_hash is the state's hash, not h_0
        return StepTrace(
            hashing.state_hash(state),
            hashing.state_hash(batch),
            tuple(outs),
            nsh,
            tuple(chain),
            new,
        )

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        if step_of(state) != self.at_step:
            return super().step(program, state, dataset)
        return self._run(program, state, dataset).new_state, 0.0

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        if step_of(state) != self.at_step:
            return super().replay(program, state, dataset)
        return self._run(program, state, dataset)


def worker_cmd(node: int, step: int, rank: int = 1) -> tuple[str, ...]:
    """The `worker_cmd` of `roles.dataparallel.launch` that starts lying workers."""
    return (
        sys.executable,
        "-m",
        "tests.support.dp_liar",
        "--node",
        str(node),
        "--step",
        str(step),
        "--rank",
        str(rank),
    )


def dying_worker_cmd(step: int, rank: int = 1) -> tuple[str, ...]:
    """The `worker_cmd` whose rank `rank` dies once, about to run step `step`."""
    return (
        sys.executable,
        "-m",
        "tests.support.dp_liar",
        "--die-at",
        str(step),
        "--rank",
        str(rank),
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.support.dp_liar")
    ap.add_argument("--node", type=int, default=-1)
    ap.add_argument("--step", type=int, default=-1)
    ap.add_argument("--die-at", type=int, default=-1)
    ap.add_argument("--rank", type=int, default=1)
    ap.add_argument("run_dir")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--timeout", type=float, default=dataparallel.DEFAULT_TIMEOUT_S)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    LyingExecutor.LIE_NODE, LyingExecutor.LIE_STEP = args.node, args.step
    LyingExecutor.LIE_RANK = args.rank
    marker = Path(args.run_dir) / "dp_liar-died"

    def on_step(rank: int, step: int) -> None:
        if rank == args.rank and step == args.die_at and not marker.exists():
            marker.write_text(f"rank {rank} died at step {step}\n")
            sys.stderr.write(f"dp_liar: rank {rank} dies at step {step}\n")
            sys.stderr.flush()
            os._exit(9)

    return dataparallel.worker_main(
        Path(args.run_dir), args.device, args.timeout, on_step=on_step, executor=LyingExecutor
    )


if __name__ == "__main__":
    raise SystemExit(main())
