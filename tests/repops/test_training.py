"""Training: accuracy, bit-identity across threads and checkpoint-resume, checkpoints."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from safetensors.torch import load as st_load

from repops import CheckpointInvalid, data, stio
from repops.hashing import state_hash
from repops.merkle import merkle_proof, verify_merkle_proof
from repops.program import (
    build_program,
    digits_accuracy,
    init_state,
    load_checkpoint,
    save_checkpoint,
    train,
    train_checkpoints,
)
from repops.trace import trace_root
from tests.repops.conftest import under_threads


def mlp_job(spec: dict[str, Any], steps: int, hidden: list[int], lr: float) -> dict[str, Any]:
    spec["program"]["model"]["config"]["hidden"] = hidden
    spec["program"]["optimizer"]["lr"] = lr
    spec["program"]["lr_schedule"] = {"name": "linear", "warmup_steps": 10}
    spec["data"]["batch_size"] = 64
    spec["steps"] = steps
    spec["checkpoint_interval"] = steps
    return spec


def test_mlp_short_run_learns_digits(mlp_spec: dict[str, Any], digits: data.Dataset) -> None:
    prog = build_program(mlp_job(mlp_spec, 120, [32], 0.01))
    st, losses = train(prog, init_state(prog), digits, 120)
    assert sum(losses[-10:]) / 10 < 0.5 * losses[0]
    assert digits_accuracy(prog, st, digits) >= 0.88


@pytest.mark.slow
def test_mlp_full_run_reaches_95_percent(mlp_spec: dict[str, Any], digits: data.Dataset) -> None:
    prog = build_program(mlp_job(mlp_spec, 600, [128], 0.005))
    st, _ = train(prog, init_state(prog), digits, 600)
    acc = digits_accuracy(prog, st, digits)
    assert acc >= 0.95, acc


def test_train_thread_counts_bit_identical(gpt_spec: dict[str, Any], chars: data.Dataset) -> None:
    prog = build_program(gpt_spec)
    st0 = init_state(prog)
    h1, h2 = under_threads(lambda: state_hash(train(prog, st0, chars, 2)[0]))
    assert h1 == h2


def test_checkpoint_resume_equals_uninterrupted(
    mlp_spec: dict[str, Any], digits: data.Dataset
) -> None:
    prog = build_program(mlp_spec)
    st0 = init_state(prog)
    straight, _ = train(prog, st0, digits, 4)
    half, _ = train(prog, st0, digits, 2)
    raw = save_checkpoint(prog, half)
    resumed_start = load_checkpoint(prog, raw)
    assert state_hash(resumed_start) == state_hash(half)
    resumed, _ = train(prog, resumed_start, digits, 2)
    assert state_hash(resumed) == state_hash(straight)
    assert save_checkpoint(prog, resumed_start) == raw
    # Any safetensors reader sees the same state.
    assert state_hash(st_load(raw)) == state_hash(half)


def test_load_checkpoint_tampered_or_foreign_rejected(
    mlp_spec: dict[str, Any], digits: data.Dataset
) -> None:
    prog = build_program(mlp_spec)
    st = init_state(prog)
    tensors, meta = stio.loads(save_checkpoint(prog, st))
    tensors["param.l0.bias"] = tensors["param.l0.bias"] + 1.0
    with pytest.raises(CheckpointInvalid, match="state_hash"):
        load_checkpoint(prog, stio.dumps(tensors, meta))
    del tensors["param.l0.bias"]
    with pytest.raises(CheckpointInvalid, match="names"):
        load_checkpoint(prog, stio.dumps(tensors, meta))
    mlp_spec["seed"] = 99
    other = build_program(mlp_spec)
    with pytest.raises(CheckpointInvalid, match="another program"):
        load_checkpoint(other, save_checkpoint(prog, st))


def test_train_checkpoints_trace_root_and_proofs(
    mlp_spec: dict[str, Any], digits: data.Dataset
) -> None:
    prog = build_program(mlp_spec)
    saved: dict[int, bytes] = {}
    hashes = train_checkpoints(
        prog, digits, on_checkpoint=lambda i, s: saved.__setitem__(i, save_checkpoint(prog, s))
    )
    assert len(hashes) == prog.steps // prog.checkpoint_interval + 1
    # A verifier restarting from checkpoint 2 reproduces stateHash_3.
    st2 = load_checkpoint(prog, saved[2])
    st3, _ = train(prog, st2, digits, prog.checkpoint_interval)
    assert state_hash(st3) == hashes[3]
    root = trace_root(hashes)
    assert verify_merkle_proof(root, hashes[3], 3, merkle_proof(hashes, 3))
    # Resuming the whole job from checkpoint 1 gives the same trace.
    st1 = load_checkpoint(prog, saved[1])
    assert train_checkpoints(prog, digits, state=st1) == hashes[1:]


def test_save_checkpoint_wrong_dtype_rejected(mlp_spec: dict[str, Any]) -> None:
    prog = build_program(mlp_spec)
    st = init_state(prog)
    st["meta.step"] = st["meta.step"].to(torch.float32)
    with pytest.raises(CheckpointInvalid):
        save_checkpoint(prog, st)
