"""The small GPT: learns the stdlib character corpus; loss parity with plain torch fp32."""

from __future__ import annotations

from typing import Any

import pytest

from repops import data
from repops.program import (
    Program,
    batch_for,
    build_program,
    eval_loss,
    init_state,
    train,
    train_step,
)
from repops.torch_reference import TorchTwin, make_optimizer, torch_step


def gpt_job(spec: dict[str, Any], steps: int, cfg: dict[str, int], batch: int) -> Program:
    spec["program"]["model"]["config"].update(cfg)
    spec["program"]["lr_schedule"] = {"name": "linear", "warmup_steps": 10}
    spec["data"]["batch_size"] = batch
    spec["steps"] = steps
    spec["checkpoint_interval"] = steps
    return build_program(spec)


def losses_both(prog: Program, ds: data.Dataset, steps: int) -> tuple[list[float], list[float]]:
    st0 = init_state(prog)
    _, ours = train(prog, st0, ds, steps)
    twin = TorchTwin(prog, st0)
    opt, sched = make_optimizer(twin)
    theirs = [torch_step(twin, opt, sched, batch_for(prog, ds, t)) for t in range(steps)]
    return ours, theirs


def test_gpt_short_run_loss_falls_and_tracks_torch(
    gpt_spec: dict[str, Any], chars: data.Dataset
) -> None:
    prog = gpt_job(gpt_spec, 30, {"block": 16, "n_layer": 1, "n_head": 2, "n_embd": 32}, 8)
    ours, theirs = losses_both(prog, chars, 30)
    assert abs(ours[0] - theirs[0]) < 1e-4 * theirs[0]
    assert sum(ours[-5:]) / 5 < 0.75 * ours[0]
    assert abs(sum(ours[-5:]) - sum(theirs[-5:])) / sum(theirs[-5:]) < 0.03


@pytest.mark.slow
def test_gpt_loss_after_300_steps_within_3_percent_of_torch(
    gpt_spec: dict[str, Any], chars: data.Dataset
) -> None:
    prog = gpt_job(gpt_spec, 300, {"block": 32, "n_layer": 2, "n_head": 4, "n_embd": 64}, 16)
    ours, theirs = losses_both(prog, chars, 300)
    mean_ours = sum(ours[-20:]) / 20
    mean_theirs = sum(theirs[-20:]) / 20
    assert mean_ours < 0.6 * ours[0]
    assert abs(mean_ours - mean_theirs) / mean_theirs < 0.03, (mean_ours, mean_theirs)


def test_eval_loss_equals_step_loss_on_same_batch(
    gpt_spec: dict[str, Any], chars: data.Dataset
) -> None:
    prog = build_program(gpt_spec)
    st = init_state(prog)
    _, step_loss = train_step(prog, st, chars)
    assert eval_loss(prog, st, [batch_for(prog, chars, 0)]) == step_loss
    windows = data.eval_windows(chars, "val", 4, 16, 2)
    assert len(windows) == 2 and windows[0]["x"].shape == (4, 16)
    assert 3.0 < eval_loss(prog, st, windows) < 6.0
