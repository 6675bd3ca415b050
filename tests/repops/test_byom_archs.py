"""Bring your own model: three architectures outside the zoo trained through the program.

The models are plain nn.Modules in `repops.lowering.examples` (shared with bench.repops):
a CNN with batch norm and pooling (running statistics are state), an encoder with layer
norm, attention and erf GELU, and a decoder LM with RoPE on the `tokens` format; plus an
MLP with dropout (masks from the job seed and step).
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import torch

from deploy.model_cli import local_spec, torch_reference_losses
from repops import hashing
from repops.lowering import examples, graph_json
from repops.lowering.export import lower
from repops.program import (
    Program,
    batch_for,
    build_program,
    check_dataset,
    eval_loss,
    init_state,
    load_checkpoint,
    local_artifacts,
    save_checkpoint,
    train,
)
from tests.repops.conftest import threads

STEPS = 30


def _program(lg: graph_json.LoweredGraph, name: str, seed: int = 3, steps: int = STEPS) -> Program:
    ex = examples.EXAMPLES[name]
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = local_spec(
        g_sha, w_sha, steps, ex.batch_size, seed, ex.lr, 0.01, 0, steps, ex.data_format
    )
    return build_program(spec, fetch)


_LOWERED: dict[str, tuple[torch.export.ExportedProgram, graph_json.LoweredGraph]] = {}


def _lowered(name: str) -> tuple[torch.export.ExportedProgram, graph_json.LoweredGraph]:
    if name not in _LOWERED:
        ep = examples.export(name)
        _LOWERED[name] = (ep, lower(ep, examples.EXAMPLES[name].batch_size))
    return _LOWERED[name]


@pytest.mark.parametrize("name", ["cnn", "encoder", "rope"])
def test_architecture_trains_reproducibly_and_like_torch(name: str) -> None:
    ep, lg = _lowered(name)
    program = _program(lg, name)
    ds = examples.dataset(name)
    check_dataset(program, ds)
    runs = []
    for n in (1, 2):
        with threads(n):
            state, losses = train(program, init_state(program), ds, STEPS)
        runs.append((hashing.state_hash(state), losses))
    assert runs[0] == runs[1]  # equal state hashes and losses at 1 and 2 threads
    losses = runs[0][1]
    assert sum(losses[-5:]) < sum(losses[:5])  # it learns
    ref = torch_reference_losses(ep, program, ds)
    assert abs(losses[0] - ref[0]) <= 1e-4 * abs(ref[0])  # same weights, same batch
    assert abs(losses[-1] - ref[-1]) <= 0.02 * abs(ref[-1]), (losses[-1], ref[-1])


def test_ops_the_architectures_lower_to() -> None:
    kinds = {n: set(_lowered(n)[1].ops_by_kind()) for n in ("cnn", "encoder", "rope")}
    assert {"take", "amax", "sqrt"} <= kinds["cnn"]  # im2col / pooling / batch norm
    assert {"gelu_erf", "softmax"} <= kinds["encoder"]
    assert {"sin", "cos", "cat"} <= kinds["rope"]


def test_batch_norm_running_statistics_are_untrained_state_like_torch() -> None:
    ep, lg = _lowered("cnn")
    assert set(lg.buffers) == {
        f"{m}.{b}"
        for m in ("bn1", "bn2")
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    assert lg.buffers["bn1.num_batches_tracked"] == ((), "int64")
    program = _program(lg, "cnn", steps=2)
    state0 = init_state(program)
    assert torch.equal(state0["buffer.bn1.running_var"], torch.ones(4))  # from the module
    assert not any(k.startswith("adam.") and "running" in k for k in program.state_specs)
    ds = examples.dataset("cnn")
    state1, _ = train(program, state0, ds, 1)
    # plain torch: the exported module in training mode on the same batch
    module = copy.deepcopy(ep.module())  # it shares tensors with the export
    b = batch_for(program, ds, 0)
    module(b["batch.inputs"], b["batch.targets"])
    for k, want in module.state_dict().items():
        if "running" in k or "num_batches" in k:
            got = state1[f"buffer.{k}"]
            assert got.dtype == want.dtype
            assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), k
    assert int(state1["buffer.bn2.num_batches_tracked"]) == 1
    assert not torch.equal(state1["buffer.bn1.running_mean"], state0["buffer.bn1.running_mean"])
    # the running statistics are hashed and checkpointed
    moved = dict(state1)
    moved["buffer.bn1.running_mean"] = moved["buffer.bn1.running_mean"] + 1.0
    assert hashing.state_hash(moved) != hashing.state_hash(state1)
    back = load_checkpoint(program, save_checkpoint(program, state1))
    assert torch.equal(back["buffer.bn2.running_var"], state1["buffer.bn2.running_var"])
    assert hashing.state_hash(back) == hashing.state_hash(state1)


def test_graph_json_v2_declares_buffers_and_refuses_bad_updates() -> None:
    _, lg = _lowered("cnn")
    gj = lg.to_json()
    doc = json.loads(gj)
    assert doc["format"] == "repops-graph-v2"
    assert [b["name"] for b in doc["buffers"]] == sorted(lg.buffers)
    again = graph_json.loads(gj)
    assert again.updates == lg.updates and again.buffers == lg.buffers
    assert again.to_json() == gj

    def refused(mutate: Any, match: str) -> None:
        d = json.loads(gj)
        mutate(d)
        with pytest.raises(graph_json.GraphInvalid, match=match):
            graph_json.loads(graph_json._canonical(d))

    def wrong_update(d: dict[str, Any]) -> None:
        d["buffers"][0]["update"] = d["loss"]  # a scalar float for a (4,) buffer

    def undeclared(d: dict[str, Any]) -> None:
        d["buffers"] = d["buffers"][1:]

    refused(wrong_update, "update node has another shape")
    refused(undeclared, "not a declared param/batch/buffer leaf")
    wj = lg.weights_bytes()
    assert set(graph_json.load_weights(lg, wj)) == set(lg.params) | set(lg.buffers)


def test_dropout_masks_follow_the_job_seed_and_step() -> None:
    _, lg = _lowered("dropout")
    assert "rng.seed" in lg.graph.inputs and "meta.step" in lg.graph.inputs
    again = graph_json.loads(lg.to_json())  # the mask's arg survives the canonical JSON
    assert again.to_json() == lg.to_json()
    ds = examples.dataset("dropout")
    runs = {}
    for seed, n in ((3, 1), (3, 2), (4, 1)):
        program = _program(lg, "dropout", seed=seed, steps=6)
        with threads(n):
            state, losses = train(program, init_state(program), ds, 6)
        runs[(seed, n)] = (hashing.state_hash(state), losses)
    assert runs[(3, 1)] == runs[(3, 2)]
    assert runs[(3, 1)][1] != runs[(4, 1)][1]  # another seed: other masks (and batches)
    # the same seed and batch at two steps: other masks, so another loss
    program = _program(lg, "dropout", seed=3, steps=6)
    s0 = init_state(program)
    later = dict(s0)
    later["meta.step"] = torch.tensor(1, dtype=torch.int64)
    _, (l0,) = train(program, s0, ds, 1)
    _, (l1,) = train(program, later, ds, 1)
    assert l0 != l1


def test_eval_mode_batch_norm_reads_its_statistics_as_constants() -> None:
    torch.manual_seed(0)
    model = examples.BNConvNet()
    with torch.no_grad():  # non-trivial running statistics
        model.bn1.running_mean.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
        model.bn1.running_var.copy_(torch.tensor([0.5, 2.0, 1.0, 1.5]))
    model.eval()
    d = examples.dataset_tensors("cnn", 16)
    ep = torch.export.export(model, (d["inputs"], d["targets"]))
    lg = lower(ep)
    assert lg.buffers == {} and "running" not in json.dumps(json.loads(lg.to_json())["params"])
    program = _program(lg, "cnn", steps=1)
    got = eval_loss(program, init_state(program), [dict(d)])
    with torch.no_grad():
        want = float(model(d["inputs"], d["targets"]))
    assert abs(got - want) <= 1e-5 * abs(want), (got, want)


class TwiceBN(torch.nn.Module):
    """One BatchNorm1d module applied twice: its running statistics are updated twice."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)
        self.bn = torch.nn.BatchNorm1d(8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.bn(torch.relu(self.lin(self.bn(inputs))))
        return torch.nn.functional.cross_entropy(self.head(h), targets)


def test_a_batch_norm_module_called_twice_chains_its_updates_like_torch() -> None:
    torch.manual_seed(1)
    d = examples.dataset_tensors("dropout", 16)  # (16, 8) float inputs, 3 classes
    ep = torch.export.export(TwiceBN(), (d["inputs"], d["targets"]))
    lg = lower(ep)
    program = _program(lg, "dropout", steps=1)
    state, _ = train(program, init_state(program), examples.dataset("dropout"), 1)
    module = copy.deepcopy(ep.module())
    b = batch_for(program, examples.dataset("dropout"), 0)
    module(b["batch.inputs"], b["batch.targets"])
    sd = module.state_dict()
    assert int(state["buffer.bn.num_batches_tracked"]) == 2 == int(sd["bn.num_batches_tracked"])
    for k in ("bn.running_mean", "bn.running_var"):
        assert torch.allclose(state[f"buffer.{k}"], sd[k], rtol=1e-5, atol=1e-6), k
