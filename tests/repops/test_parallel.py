"""Micro-batch semantics (data.micro_batches) and their split between W workers.

In process: `repops.parallel.simulate` runs the W workers' shares one after the other
with the boundaries exchanged in memory, so these tests check the plan's bits without a
process group (tests/e2e/test_dataparallel.py runs real gloo workers).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch

from jobspec.factory import artifact, gpt_spec, graph_spec, mlp_spec, sgd
from repops import data as data_mod
from repops import hashing, parallel
from repops.errors import SpecInvalid, TapeError
from repops.lowering import examples
from repops.lowering.export import lower
from repops.ops import Op
from repops.program import (
    Program,
    State,
    batch_for,
    build_program,
    init_state,
    local_artifacts,
    spec_errors,
    train_step,
)
from repops.tape import Graph, Tape
from repops.trace import replay_step


def _micro(spec: dict[str, Any], m: int) -> dict[str, Any]:
    out = copy.deepcopy(spec)
    out["data"]["micro_batches"] = m
    return out


def _example_program(name: str, micro: int, steps: int = 4) -> tuple[Program, data_mod.Dataset]:
    ex = examples.EXAMPLES[name]
    b = ex.batch_size
    lg = lower(examples.export(name), b // micro)
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = graph_spec(
        artifact(g_sha),
        artifact(w_sha),
        data_format=ex.data_format,
        lr=ex.lr,
        batch_size=b,
        steps=steps,
    )
    return build_program(_micro(spec, micro), fetch), examples.dataset(name)


def _feeds(program: Program, state: State, ds: data_mod.Dataset) -> dict[str, torch.Tensor]:
    feeds = dict(state)
    feeds.update(batch_for(program, ds, int(state["meta.data_cursor"])))
    return feeds


def _sharded_steps(
    program: Program, ds: data_mod.Dataset, world: int, steps: int
) -> list[list[bytes]]:
    """Per step, every rank's state hash after `steps` simulated W-worker steps."""
    states = [init_state(program) for _ in range(world)]
    out = []
    for _ in range(steps):
        vals = parallel.simulate(program.tape, _feeds(program, states[0], ds), world)
        states = [
            {n: v[i] for n, i in program.tape.outputs.items()}  # type: ignore[misc]
            for v in vals
        ]
        out.append([hashing.state_hash(s) for s in states])
    return out


def _single_steps(program: Program, ds: data_mod.Dataset, steps: int) -> list[bytes]:
    st = init_state(program)
    out = []
    for _ in range(steps):
        st, _loss = train_step(program, st, ds)
        out.append(hashing.state_hash(st))
    return out


DIGITS = data_mod.Dataset.from_bytes(data_mod.build_digits())


# ---- the semantics of one step ---------------------------------------------------------


def test_micro_batches_one_is_the_single_batch_program() -> None:
    spec = mlp_spec(batch_size=8)
    p, p1 = build_program(spec), build_program(_micro(spec, 1))
    assert p1.tape.fingerprint() == p.tape.fingerprint()
    assert p1.program_hash == p.program_hash and p1.tape.micro_ranges == ()


@pytest.mark.parametrize("micro", [2, 3, 4])
def test_the_step_gradient_is_the_tree_mean_of_the_micro_batch_gradients(micro: int) -> None:
    """With SGD, lr 1, no decay or momentum, param' = SUB(p, MUL(lr, grad)): the tape's
    gradient node is read off each parameter's update.  Each micro-batch's gradient
    comes from a separate single-batch program over exactly that micro-batch's rows,
    and the step's is DIV(S(g_0..g_{M-1}), M) with S the ceil-half tree, in float32."""
    b = 4
    base = mlp_spec(batch_size=b * micro, optimizer=sgd(1.0, momentum=0.0), weight_decay=0.0)
    prog = build_program(_micro(base, micro))
    state = init_state(prog)
    feeds = _feeds(prog, state, DIGITS)
    kept: dict[int, torch.Tensor] = {}
    prog.executor(torch.device("cpu")).run(feeds, hook=lambda _j, i, v: kept.__setitem__(i, v))

    def grad_node(tape: Tape, name: str) -> int:
        sub = tape.nodes[tape.outputs[f"param.{name}"]]
        assert sub.op is Op.SUB
        mul = tape.nodes[sub.inputs[1]]
        assert mul.op is Op.MUL
        return mul.inputs[1]

    single = build_program(mlp_spec(batch_size=b, optimizer=sgd(1.0, momentum=0.0)))
    for name in prog.params:
        parts = []
        for i in range(micro):
            f = dict(state)
            for k in prog.batch_specs:
                f[f"batch.{k}"] = feeds[f"batch.{k}"][i * b : (i + 1) * b]
            node = grad_node(single.tape, name)
            seen: list[torch.Tensor] = []
            single.executor(torch.device("cpu")).run(
                f, hook=lambda _j, i, v, node=node, seen=seen: seen.append(v) if i == node else None
            )
            parts.append(seen[0])

        def tree(xs: list[torch.Tensor]) -> torch.Tensor:
            if len(xs) == 1:
                return xs[0]
            h = (len(xs) + 1) // 2
            return tree(xs[:h]) + tree(xs[h:])

        want = tree(parts) / torch.tensor(float(micro), dtype=torch.float32)
        assert torch.equal(kept[grad_node(prog.tape, name)], want), name


def test_micro_batch_count_must_divide_the_batch_and_fit_the_graph() -> None:
    errs = spec_errors(_micro(mlp_spec(batch_size=8), 3))
    assert [(e.path, e.reason) for e in errs] == [
        ("data.micro_batches", "3 does not divide batch_size 8")
    ]
    assert spec_errors(_micro(mlp_spec(batch_size=8), 0))[0].path == "data.micro_batches"
    lg = lower(examples.export("dropout"), 16)  # lowered at the whole batch, not batch / M
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = _micro(graph_spec(artifact(g_sha), artifact(w_sha), batch_size=16), 4)
    with pytest.raises(SpecInvalid, match=r"lowered at batch 16, not 4 = micro-batch size 4"):
        build_program(spec, fetch)


def test_a_step_whose_micro_batches_would_make_a_huge_tape_is_refused_early() -> None:
    """A job is built by every solver that looks at it: M copies of a big model must not
    cost them minutes. The refusal comes after building one micro-batch."""
    spec = _micro(gpt_spec(batch_size=1024, n_layer=4, n_embd=32, block=64), 1024)
    with pytest.raises(SpecInvalid, match=r"1024 micro-batches of \d+ nodes exceed"):
        build_program(spec)


def test_each_micro_batch_draws_its_own_dropout_masks() -> None:
    """Micro-batch i > 0 reads the counter meta.step + i * 2**24: other masks than
    micro-batch 0's, at every step."""
    prog, ds = _example_program("dropout", 2)
    masks = [i for i, n in enumerate(prog.tape.nodes) if n.op is Op.DROPOUT_MASK]
    (a0, b0), (a1, b1) = prog.tape.micro_ranges
    first = [i for i in masks if a0 <= i < b0]
    second = [i for i in masks if a1 <= i < b1]
    assert first and len(first) == len(second)
    state = init_state(prog)
    got: dict[int, torch.Tensor] = {}
    prog.executor(torch.device("cpu")).run(
        _feeds(prog, state, ds), hook=lambda _j, i, v: got.__setitem__(i, v)
    )
    for x, y in zip(first, second, strict=True):
        assert not torch.equal(got[x], got[y])
        assert prog.tape.nodes[x].arg == prog.tape.nodes[y].arg  # the same op, another counter


# ---- W workers reproduce the single-process bits ---------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: (build_program(_micro(mlp_spec(batch_size=16), 4)), DIGITS), id="mlp"),
        pytest.param(
            lambda: (
                build_program(_micro(gpt_spec(batch_size=4), 4)),
                data_mod.Dataset.from_bytes(data_mod.build_stdlib_chars()),
            ),
            id="gpt",
        ),
        pytest.param(
            lambda: (
                build_program(
                    _micro(
                        mlp_spec(
                            batch_size=16, optimizer=sgd(0.1, momentum=0.9), clip_grad_norm=0.5
                        ),
                        4,
                    )
                ),
                DIGITS,
            ),
            id="mlp-sgd-clipped",
        ),
        pytest.param(lambda: _example_program("encoder", 2), id="encoder-m2"),
        pytest.param(lambda: _example_program("cnn", 4), id="cnn-batchnorm"),
        pytest.param(lambda: _example_program("dropout", 4), id="dropout"),
    ],
)
def test_every_world_size_that_divides_m_gives_the_single_process_states(make: Any) -> None:
    prog, ds = make()
    want = _single_steps(prog, ds, 3)
    for world in (w for w in (1, 2, 4) if prog.micro_batches % w == 0):
        got = _sharded_steps(prog, ds, world, 3)
        assert all(h == [w] * world for h, w in zip(got, want, strict=True)), world


def test_a_sharded_step_replays_as_one_trace_on_one_process() -> None:
    prog = build_program(_micro(mlp_spec(batch_size=16), 4))
    state = init_state(prog)
    vals = parallel.simulate(prog.tape, _feeds(prog, state, DIGITS), 2)[1]
    after = {n: vals[i] for n, i in prog.tape.outputs.items()}
    trace = replay_step(prog, state, batch_for(prog, DIGITS, 0))
    assert trace.new_state_hash == hashing.state_hash(after)  # type: ignore[arg-type]


# ---- the plan ----------------------------------------------------------------------------


def test_workers_move_what_a_ddp_ring_all_reduce_moves() -> None:
    """DDP's ring all-reduce moves 2(W-1)/W x the gradient bytes to each worker.  W = 2
    (M = 4): each worker broadcasts its one partial gradient per parameter and its
    partial loss whole.  W = 4: each worker receives chunk r of the others' partials (the
    scatter) and the rest of the sums (the gather), nothing whole."""
    prog = build_program(_micro(mlp_spec(batch_size=16), 4))
    sizes = [torch.Size(p.shape).numel() for p in prog.params.values()]
    grads = 4 * sum(sizes)
    two = parallel.plan(prog.tape, 2)
    assert (
        two.reduce == () and [two.boundary_bytes(prog.tape, r) for r in (0, 1)] == [grads + 4] * 2
    )
    assert two.received_bytes(prog.tape, 0) == grads + 4
    world = 4
    plan = parallel.plan(prog.tape, world)
    assert [plan.boundary_bytes(prog.tape, r) for r in range(world)] == [0] * world
    for r in range(world):
        chunk = sum(4 * (n * (r + 1) // world - n * r // world) for n in sizes)
        # the 0-dim loss's one element is the last rank's chunk: it gets the partials
        loss = 4 * (world - 1) if r == world - 1 else 4
        want = (world - 1) * chunk + (grads - chunk) + loss
        assert plan.received_bytes(prog.tape, r) == want, r
    # the tree tops and micro_mean's DIV are REDUCE; gathered: the DIVs
    assert {prog.tape.nodes[i].op for i in plan.reduce} == {Op.ADD, Op.DIV}
    assert {prog.tape.nodes[i].op for i in plan.gather} == {Op.DIV}


def test_a_world_size_that_does_not_divide_m_is_refused() -> None:
    prog = build_program(_micro(mlp_spec(batch_size=12), 4))
    with pytest.raises(TapeError, match="world size 3 does not divide the tape's 4"):
        parallel.plan(prog.tape, 3)
    with pytest.raises(TapeError, match="does not divide"):
        parallel.plan(build_program(mlp_spec()).tape, 2)


def test_a_micro_batch_that_reads_another_ones_nodes_cannot_be_split() -> None:
    g = Graph()
    x = g.input("x", (2,))
    a = g.exp(x)  # micro-batch 0
    b = g.mul(a, x)  # micro-batch 1 reads micro-batch 0's node
    loss = g.sum(g.add(a, b), 0)
    tape = Tape.from_graph(g, {"y": loss}, loss, [(1, 2), (2, 3)])
    with pytest.raises(TapeError, match="node 2 of micro-batch 1 reads node 1"):
        parallel.plan(tape, 2)
