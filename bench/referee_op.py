"""The referee's real work for one dispute: re-execute the GPT's largest matmul on CPU.

Builds the GPT program of a demo-sized spec, replays one step up to its largest MATMUL
(by multiply-adds), packages that operator's operand bundle as the solver would, and
times `repops.trace.reexecute` on it (bundle checks included): the whole CPU cost of a
ruling once a game has been bisected down to that operator.
"""

from __future__ import annotations

import math
import time
from functools import cache
from typing import Any

from jobspec.factory import gpt_spec
from repops import data as data_mod
from repops.ops import Op
from repops.program import Program, batch_for, build_program, init_state
from repops.trace import OperandBundle, extract_bundle, reexecute

GPT_SPEC: dict[str, Any] = gpt_spec(
    block=64,
    n_layer=2,
    n_head=4,
    n_embd=128,
    lr=1e-3,
    beta2=0.999,
    batch_size=16,
    data_seed=1,
    steps=10,
    checkpoint_interval=5,
    seed=0,
)


def largest_matmul(program: Program) -> int:
    """1-based chain index of the MATMUL with the most multiply-adds (first if tied)."""
    tape = program.tape
    best, best_cost = 0, -1
    for j, node_id in enumerate(tape.chain, start=1):
        node = tape.nodes[node_id]
        if node.op is not Op.MATMUL:
            continue
        a = tape.nodes[node.inputs[0]].shape
        cost = math.prod(node.shape) * a[-1]
        if cost > best_cost:
            best, best_cost = j, cost
    if best == 0:
        raise RuntimeError("the GPT tape has no MATMUL")
    return best


@cache
def _prepared() -> tuple[Program, OperandBundle, bytes]:
    program = build_program(GPT_SPEC)
    dataset = data_mod.Dataset.from_bytes(data_mod.build_stdlib_chars())
    state = init_state(program)
    batch = batch_for(program, dataset, 0)
    j = largest_matmul(program)
    bundle = extract_bundle(program, state, batch, j)
    return program, bundle, bundle.prev_hash()


def time_largest_matmul() -> float:
    """CPU seconds of one ruling on the GPT's largest matmul (bundle checks + re-execution)."""
    program, bundle, agreed = _prepared()
    started = time.process_time()
    reexecute(program, bundle, agreed)
    return time.process_time() - started
