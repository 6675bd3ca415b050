"""Training recipes (issue 13 item 4): SGD with momentum, cosine schedule, global-norm
clipping; each against plain torch doing the same recipe, and bit-identical over threads."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from jobspec.factory import mlp_spec, schedule, sgd
from repops import data
from repops.hashing import state_hash
from repops.optim import schedule_lr
from repops.program import (
    Program,
    batch_for,
    build_program,
    init_state,
    load_checkpoint,
    save_checkpoint,
    train,
)
from repops.tape import Executor, Graph, Tape
from repops.torch_reference import TorchTwin, lr_factor, make_optimizer, torch_step
from repops.trace import extract_bundle, reexecute, replay_step, step_batch
from tests.repops.conftest import under_threads

STEPS = 24
CLIP = 0.5


def _spec(**kw: Any) -> dict[str, Any]:
    return mlp_spec(hidden=(64,), batch_size=32, steps=STEPS, checkpoint_interval=STEPS // 2, **kw)


RECIPES: dict[str, dict[str, Any]] = {
    "sgd momentum + weight decay": _spec(optimizer=sgd(0.1, momentum=0.9, weight_decay=0.01)),
    "sgd plain + cosine": _spec(
        optimizer=sgd(0.5, momentum=0.0), lr_schedule=schedule(name="cosine")
    ),
    "adamw + cosine warm-up": _spec(lr_schedule=schedule(4, name="cosine", min_lr_ratio=0.1)),
    "adamw + clipping": _spec(clip_grad_norm=CLIP),
    "sgd + clipping + cosine": _spec(
        optimizer=sgd(0.5, momentum=0.5),
        clip_grad_norm=CLIP,
        lr_schedule=schedule(3, name="cosine", min_lr_ratio=0.2),
    ),
}


def _torch_losses(
    prog: Program, ds: data.Dataset, st0: dict[str, torch.Tensor]
) -> tuple[TorchTwin, list[float]]:
    twin = TorchTwin(prog, st0)
    opt, sched = make_optimizer(twin)
    return twin, [torch_step(twin, opt, sched, batch_for(prog, ds, t)) for t in range(STEPS)]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_tracks_torch_and_is_bit_identical_over_threads(
    name: str, digits: data.Dataset
) -> None:
    prog = build_program(RECIPES[name])
    st0 = init_state(prog)
    (st1, ours), (st2, _) = under_threads(lambda: train(prog, st0, digits, STEPS))
    assert state_hash(st1) == state_hash(st2)
    twin, theirs = _torch_losses(prog, digits, st0)
    assert ours[-1] < 0.8 * ours[0], ours
    assert abs(ours[-1] - theirs[-1]) / theirs[-1] < 0.02, (ours[-1], theirs[-1])
    if prog.clip_grad_norm is not None:
        # clipping was active (torch's total norm over max_norm) on some steps
        assert sum(n > CLIP for n in twin.grad_norms) >= 3, twin.grad_norms


def test_recipe_state_names_follow_the_optimizer() -> None:
    with_mom = build_program(RECIPES["sgd momentum + weight decay"])
    assert {n for n in with_mom.state_specs if not n.startswith(("param.", "meta."))} == {
        f"sgd.buf.{p}" for p in with_mom.params
    }
    plain = build_program(RECIPES["sgd plain + cosine"])
    assert all(n.startswith(("param.", "meta.")) for n in plain.state_specs)
    adam = build_program(RECIPES["adamw + cosine warm-up"])
    assert "adam.beta1_pow" in adam.state_specs
    assert not any(n.startswith("sgd.") for n in adam.state_specs)


def test_recipe_sgd_buffer_is_hashed_and_checkpointed(digits: data.Dataset) -> None:
    prog = build_program(RECIPES["sgd momentum + weight decay"])
    st, _ = train(prog, init_state(prog), digits, 2)
    buf = st["sgd.buf.l0.weight"]
    assert bool(buf.abs().sum() > 0)
    again = load_checkpoint(prog, save_checkpoint(prog, st))
    assert state_hash(again) == state_hash(st)
    changed = dict(st)
    changed["sgd.buf.l0.weight"] = buf.clone()
    changed["sgd.buf.l0.weight"].view(-1)[0] += 1.0
    assert state_hash(changed) != state_hash(st)
    # resume from the checkpoint equals the uninterrupted run (the buffer carries on)
    full, _ = train(prog, init_state(prog), digits, 4)
    resumed, _ = train(prog, again, digits, 2)
    assert state_hash(resumed) == state_hash(full)


def test_recipe_clipping_norm_on_the_tape_matches_torch_and_changes_the_run(
    digits: data.Dataset,
) -> None:
    prog = build_program(RECIPES["adamw + clipping"])
    assert prog.grad_norm_node is not None
    st0 = init_state(prog)
    ex = prog.executor(torch.device("cpu"))
    feeds = {**st0, **batch_for(prog, digits, 0)}
    seen: list[float] = []

    def hook(_j: int, node: int, value: torch.Tensor) -> None:
        if node == prog.grad_norm_node:
            seen.append(float(value))

    ex.run(feeds, hook=hook)
    twin = TorchTwin(prog, st0)
    opt, sched = make_optimizer(twin)
    torch_step(twin, opt, sched, batch_for(prog, digits, 0))
    (ours,) = seen
    assert ours == pytest.approx(twin.grad_norms[0], rel=1e-5)
    # a clipped run differs from the unclipped one, and a huge max_norm changes nothing
    unclipped = build_program(_spec())
    loose = build_program(_spec(clip_grad_norm=1e6))
    assert unclipped.grad_norm_node is None
    a = state_hash(train(prog, st0, digits, 3)[0])
    b = state_hash(train(unclipped, st0, digits, 3)[0])
    c = state_hash(train(loose, st0, digits, 3)[0])
    assert a != b and c == b
    assert len({p.program_hash for p in (prog, unclipped, loose)}) == 3


@pytest.mark.parametrize(
    "sch",
    [
        schedule(name="cosine"),
        schedule(5, name="cosine", min_lr_ratio=0.1),
        schedule(5),
        schedule(),
    ],
    ids=["cosine", "cosine warm-up", "linear", "constant"],
)
def test_recipe_schedule_lr_on_the_tape_matches_the_binary64_formula(
    sch: dict[str, Any],
) -> None:
    lr = 0.01
    prog = build_program(_spec(lr_schedule=sch))
    g = Graph()
    step = g.input("meta.step", (), "int64")
    out = schedule_lr(g, lr, prog.schedule, prog.steps, step)
    ex = Executor(Tape.from_graph(g, {"lr": out}, out), torch.device("cpu"))
    factor = lr_factor(prog)
    got = []
    for t in range(STEPS):
        v = ex.run({"meta.step": torch.tensor(t, dtype=torch.int64)})[out]
        assert v is not None
        got.append(float(v))
        assert got[-1] == pytest.approx(lr * factor(t), rel=2e-6, abs=lr * 1e-6), t
    if sch["name"] == "cosine":
        w = sch["warmup_steps"]
        assert got[w] == pytest.approx(lr, rel=1e-6)  # the peak right after warm-up
        assert all(x >= y for x, y in zip(got[w:], got[w + 1 :], strict=False))
        r = sch["min_lr_ratio"]
        assert got[-1] > lr * r and got[-1] < lr * (r + 0.02)
        assert math.isfinite(sum(got))


def test_recipe_every_link_of_a_step_reexecutes_from_its_bundle(digits: data.Dataset) -> None:
    """The arbiter's one-op re-execution covers the clipping, cosine and SGD ops too."""
    spec = mlp_spec(
        hidden=(8,),
        batch_size=4,
        steps=8,
        checkpoint_interval=4,
        optimizer=sgd(0.1, momentum=0.9, weight_decay=0.01),
        lr_schedule=schedule(2, name="cosine", min_lr_ratio=0.1),
        clip_grad_norm=0.1,
    )
    prog = build_program(spec)
    st, _ = train(prog, init_state(prog), digits, 3)  # past warm-up, buffers non-zero
    batch = step_batch(prog, st, digits)
    tr = replay_step(prog, st, batch)
    ops = {prog.tape.nodes[n].op.value for n in prog.tape.chain}
    assert {"sqrt", "cos", "where", "minimum"} <= ops
    for j in range(1, prog.tape.num_ops + 2):
        r = reexecute(
            prog,
            extract_bundle(prog, st, batch, j).to_bytes(),
            tr.chain[j - 1],
            expected_batch_hash=tr.batch_hash,
            expected_state_hash=tr.state_hash,
        )
        assert r.h == tr.chain[j], j
