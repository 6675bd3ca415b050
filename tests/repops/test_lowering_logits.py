"""A model whose forward returns logits / predictions: the spec names the loss.

The graph records an ``output`` node instead of a ``loss``; the program applies
``program.loss`` (cross_entropy with its options, or mse) to it and ``batch.targets``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deploy.cli import main
from deploy.model_cli import local_spec, torch_reference_losses
from repops import data as data_mod
from repops import hashing, stio
from repops.errors import DatasetInvalid, SpecInvalid
from repops.lowering import graph_json
from repops.lowering.export import LoweringFailed, lower
from repops.program import (
    build_program,
    check_dataset,
    init_state,
    local_artifacts,
    spec_errors,
    train,
)
from tests.repops.conftest import threads

STEPS = 30
BATCH = 16


class Classifier(nn.Module):
    """forward(inputs) -> logits (B, 4): linear, layer norm, gelu, linear."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(10, 24)
        self.norm = nn.LayerNorm(24)
        self.l2 = nn.Linear(24, 4)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.l2(F.gelu(self.norm(self.l1(inputs))))


class Regressor(nn.Module):
    """forward(inputs) -> predictions (B, 2): a tanh MLP."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(6, 16)
        self.l2 = nn.Linear(16, 2)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.l2(torch.tanh(self.l1(inputs)))


class LossModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(10, 4)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.l1(inputs), targets)


class LogitsWithTargets(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(10, 4)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.l1(inputs) * targets.unsqueeze(1)  # float "targets" weighting the logits


def _data(kind: str, n: int = 256) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(7)
    if kind == "cls":
        x = torch.randn(n, 10, generator=gen)
        y = ((x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()).long()
        return {"inputs": x, "targets": y}
    x = torch.randn(n, 6, generator=gen)
    return {"inputs": x, "targets": torch.stack([torch.sin(x[:, 0]), x[:, 1] * x[:, 2]], 1)}


def _export(model: nn.Module, *args: torch.Tensor) -> torch.export.ExportedProgram:
    b = torch.export.Dim("batch")
    return torch.export.export(model, args, dynamic_shapes=tuple({0: b} for _ in args))


def _classifier() -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    return _export(Classifier(), _data("cls", 4)["inputs"])


def _spec(lg: graph_json.LoweredGraph, loss: Any) -> tuple[dict[str, Any], Any]:
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = local_spec(
        g_sha,
        w_sha,
        STEPS,
        lg.batch_size,
        seed=3,
        lr=0.01,
        weight_decay=0.01,
        warmup_steps=0,
        checkpoint_interval=STEPS,
        loss=loss,
    )
    return spec, fetch


@pytest.mark.parametrize(
    ("kind", "loss"),
    [("cls", {"name": "cross_entropy", "label_smoothing": 0.1}), ("reg", "mse")],
    ids=["classifier-ce-smoothed", "regressor-mse"],
)
def test_logits_model_trains_with_the_spec_loss_like_torch(kind: str, loss: Any) -> None:
    if kind == "cls":
        ep = _classifier()
    else:
        torch.manual_seed(0)
        ep = _export(Regressor(), _data("reg", 4)["inputs"])
    lg = lower(ep, BATCH)
    assert lg.returns == "output" and set(lg.batch) == {"inputs"}
    spec, fetch = _spec(lg, loss)
    program = build_program(spec, fetch)
    ds = data_mod.Dataset.from_tensors_bytes(stio.dumps(_data(kind)))
    check_dataset(program, ds)
    runs = []
    for n in (1, 2):
        with threads(n):
            state, losses = train(program, init_state(program), ds, STEPS)
        runs.append((hashing.state_hash(state), losses))
    assert runs[0] == runs[1]
    losses = runs[0][1]
    assert sum(losses[-5:]) < sum(losses[:5])
    ref = torch_reference_losses(ep, program, ds)  # the same loss, in torch
    assert abs(losses[0] - ref[0]) <= 1e-4 * abs(ref[0])
    assert abs(losses[-1] - ref[-1]) <= 0.02 * abs(ref[-1])
    if kind == "cls":  # the same graph under another loss is another program and run
        other_spec, _ = _spec(lg, "cross_entropy")
        other = build_program(other_spec, fetch)
        assert other.program_hash != program.program_hash
        _, other_losses = train(other, init_state(other), ds, 2)
        assert other_losses[0] != losses[0]


def test_graph_json_records_output_and_round_trips() -> None:
    lg = lower(_classifier(), 8)
    data = lg.to_json()
    doc = json.loads(data)
    assert "output" in doc and "loss" not in doc
    back = graph_json.loads(data)
    assert back.returns == "output" and back.loss == lg.loss and back.to_json() == data
    both = {**doc, "loss": doc["output"]}
    neither = {k: v for k, v in doc.items() if k != "output"}
    for bad in (both, neither):
        raw = json.dumps(bad, sort_keys=True, separators=(",", ":")).encode()
        with pytest.raises(graph_json.GraphInvalid, match="exactly one of 'loss' and 'output'"):
            graph_json.loads(raw)
    param = lg.graph.inputs["param.l1.weight"]  # (24, 10): dim 0 is not the batch
    raw = json.dumps({**doc, "output": param}, sort_keys=True, separators=(",", ":")).encode()
    with pytest.raises(graph_json.GraphInvalid, match="output must be a float32 node"):
        graph_json.loads(raw)
    loss_graph = lower(_export(LossModel(), *_data("cls", 4).values()), 8)
    assert json.loads(loss_graph.to_json()).keys() >= {"loss"}
    assert graph_json.loads(loss_graph.to_json()).returns == "loss"


def test_loss_named_in_spec_must_fit_the_graph_in_one_line() -> None:
    lg = lower(_classifier(), BATCH)
    spec, fetch = _spec(lg, None)  # a logits graph and no loss named
    with pytest.raises(SpecInvalid) as e:
        build_program(spec, fetch)
    assert str(e.value).count("\n") == 0 and "program.loss" in str(e.value)
    assert "returns logits" in str(e.value)
    loss_lg = lower(_export(LossModel(), *_data("cls", 4).values()), BATCH)
    for loss in ("cross_entropy", "mse", {"name": "cross_entropy", "label_smoothing": 0.1}):
        spec, fetch = _spec(loss_lg, loss)
        with pytest.raises(SpecInvalid, match=r"program\.loss: this graph returns its loss"):
            build_program(spec, fetch)
    spec, _ = _spec(lg, {"name": "mse", "label_smoothing": 0.1})
    assert [x.path for x in spec_errors(spec)] == ["program.loss.label_smoothing"]
    spec, _ = _spec(lg, {"name": "cross_entropy", "label_smoothing": 1.0})
    assert [x.path for x in spec_errors(spec)] == ["program.loss.label_smoothing"]


def test_logits_dataset_targets_are_checked() -> None:
    lg = lower(_classifier(), BATCH)
    spec, fetch = _spec(lg, {"name": "cross_entropy", "ignore_index": -1})
    program = build_program(spec, fetch)
    d = _data("cls")
    d["targets"][3] = -1  # ignored: fine
    check_dataset(program, data_mod.Dataset.from_tensors_bytes(stio.dumps(d)))
    d["targets"][5] = 4  # no class 4 among (B, 4) logits
    with pytest.raises(DatasetInvalid, match=r"targets: value 4 is not a class in \[0, 4\)"):
        check_dataset(program, data_mod.Dataset.from_tensors_bytes(stio.dumps(d)))
    d = _data("cls")
    d["targets"] = d["targets"].float()
    with pytest.raises(DatasetInvalid, match="targets: dtype float32, the model takes int64"):
        check_dataset(program, data_mod.Dataset.from_tensors_bytes(stio.dumps(d)))
    d = _data("cls")
    del d["targets"]
    with pytest.raises(DatasetInvalid, match="dataset has no tensor 'targets'"):
        check_dataset(program, data_mod.Dataset.from_tensors_bytes(stio.dumps(d)))


def test_forward_with_targets_returning_logits_is_refused() -> None:
    with pytest.raises(LoweringFailed, match="forward takes 'targets' but returns logits"):
        x = _data("cls", 4)["inputs"]
        lower(_export(LogitsWithTargets(), x, torch.ones(4)), 8)


def test_cli_check_says_which_kind_and_train_needs_loss(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ep = _classifier()
    pt2 = tmp_path / "cls.pt2"
    torch.export.save(ep, str(pt2))
    data = tmp_path / "d.safetensors"
    data.write_bytes(stio.dumps(_data("cls", 64)))
    assert main(["model", "check", str(pt2), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "returns: logits/predictions float32[4, 4]" in out and "must name" in out
    assert "fits (64 rows)" in out
    base = ["train", "--local", "--model", str(pt2), "--data", str(data), "--steps", "2"]
    base += ["--batch-size", "8", "--out", str(tmp_path / "run")]
    assert main(base) == 1
    assert "name the loss with --loss cross_entropy|mse" in capsys.readouterr().out
    assert main([*base, "--loss", "cross_entropy", "--label-smoothing", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "final_loss:" in out and "state_hash:" in out
    spec = json.loads((tmp_path / "run" / "spec.json").read_text())
    assert spec["program"]["loss"] == {"name": "cross_entropy", "label_smoothing": 0.1}
    loss_pt2 = tmp_path / "loss.pt2"
    torch.export.save(_export(LossModel(), *_data("cls", 4).values()), str(loss_pt2))
    assert main(["model", "check", str(loss_pt2)]) == 0
    assert "returns: the loss" in capsys.readouterr().out
    loss_run = [*base[:3], str(loss_pt2), *base[4:], "--loss", "mse"]
    assert main(loss_run) == 1
    assert "returns its loss: drop --loss" in capsys.readouterr().out


def test_job_submit_model_passes_the_loss_into_the_spec() -> None:
    from jobspec.factory import artifact, graph_spec
    from submitter.model import LoweredModel, ModelProblem, check_job, with_model

    lg = lower(_classifier(), 8)
    lowered = LoweredModel(lg.to_json(), lg.weights_bytes())
    base = graph_spec(artifact("0" * 64), artifact("0" * 64), batch_size=8)
    data = stio.dumps(_data("cls", 40))
    spec = with_model(base, lowered, "cross_entropy")
    assert spec["program"]["loss"] == "cross_entropy"
    check_job(spec, lowered, data)
    with pytest.raises(ModelProblem, match="returns logits"):
        check_job(with_model(base, lowered), lowered, data)  # loss "graph": refused


class TinyLM(nn.Module):
    """forward(inputs (B, T)) -> logits (B, V, T) (torch's class axis) or (B, T, V)."""

    def __init__(self, classes_last: bool) -> None:
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.head = nn.Linear(8, 11)
        self.classes_last = classes_last

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        logits = self.head(torch.tanh(self.emb(inputs)))  # (B, T, V)
        return logits if self.classes_last else logits.transpose(1, 2)


def test_tokens_stream_trains_a_logits_lm_with_classes_on_dim_1() -> None:
    tokens = torch.arange(300) * 7 % 11
    ds = data_mod.Dataset.from_tokens_bytes(stio.dumps({"tokens": tokens}))
    for classes_last in (False, True):
        torch.manual_seed(0)
        ep = _export(TinyLM(classes_last), tokens[:20].reshape(4, 5))
        lg = lower(ep, 8)
        spec, fetch = _spec(lg, "cross_entropy")
        spec["data"]["format"] = "tokens"
        program = build_program(spec, fetch)
        if classes_last:  # targets would be (B, V): refused before training
            with pytest.raises(DatasetInvalid, match=r"logits \(B, V, T\)"):
                check_dataset(program, ds)
            continue
        check_dataset(program, ds)
        _, losses = train(program, init_state(program), ds, 3)
        ref = torch_reference_losses(ep, program, ds)
        assert abs(losses[0] - ref[0]) <= 1e-4 * abs(ref[0])
