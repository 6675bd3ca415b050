"""Bring your own model: torch.export programs lowered to repops graphs and trained.

Every architecture here is a plain nn.Module written in this file (none is in the zoo).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import math
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from torch import nn

from deploy.model_cli import local_spec, torch_reference_losses
from repops import data as data_mod
from repops import hashing, stio
from repops.errors import DatasetInvalid, SpecInvalid
from repops.lowering import graph_json
from repops.lowering.export import LoweringFailed, inspect_batch, lower
from repops.lowering.registry import RULES
from repops.program import build_program, check_dataset, init_state, local_artifacts, train
from tests.repops.conftest import threads

STEPS = 30
BATCH = 16


class DeepMLP(nn.Module):
    """3 linear layers, tanh-GELU, layer norm, tanh; cross-entropy over 5 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(12, 32)
        self.norm = nn.LayerNorm(32)
        self.mid = nn.Linear(32, 24)
        self.out = nn.Linear(24, 5)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.norm(F.gelu(self.inp(inputs), approximate="tanh"))  # (B, 32)
        h = torch.tanh(self.mid(h))  # (B, 24)
        return F.cross_entropy(self.out(h), targets)


class TokenMixer(nn.Module):
    """Embedding, one parameter-free softmax token mixing (bmm), mean pooling, MLP head."""

    def __init__(self, vocab: int = 20, dim: int = 16, classes: int = 3) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, classes))
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.emb(inputs)  # (B, T, C)
        att = torch.softmax(torch.bmm(h, h.transpose(1, 2)) * self.scale, dim=-1)  # (B, T, T)
        h = torch.bmm(att, h) + h  # (B, T, C)
        pooled = h.mean(dim=1)  # (B, C)
        return F.cross_entropy(self.head(pooled), targets)


class Regressor(nn.Module):
    """(B, 2, 4) inputs flattened, exp/log/sqrt features, mse loss; exported static."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(8, 16)
        self.l2 = nn.Linear(16, 1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(inputs, 1)
        h = torch.relu(self.l1(x))
        h = h + torch.log(torch.exp(-h) + 1.0) - torch.sqrt(h * h + 1.0) / 4
        return F.mse_loss(self.l2(h).squeeze(-1), targets)


def _data(kind: str, n: int = 256) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    if kind == "mlp":
        x = torch.randn(n, 12, generator=gen)
        y = ((x[:, 0] > 0).long() + (x[:, 1] > 0.5).long() * 2 + (x[:, 2] > 1).long()).clamp(0, 4)
        return {"inputs": x, "targets": y}
    if kind == "tokens":
        x = torch.randint(0, 20, (n, 6), generator=gen)
        y = (x[:, 0] % 3).long()
        return {"inputs": x, "targets": y}
    x = torch.randn(n, 2, 4, generator=gen)
    return {"inputs": x, "targets": torch.tanh(x[:, 0, 0] - x[:, 1, 3])}


def _export(kind: str, dynamic: bool = True) -> torch.export.ExportedProgram:
    torch.manual_seed(0)
    model: nn.Module = {"mlp": DeepMLP, "tokens": TokenMixer, "reg": Regressor}[kind]()
    d = _data(kind, 4 if dynamic else BATCH)
    args = (d["inputs"], d["targets"])
    if not dynamic:
        return torch.export.export(model, args)
    b = torch.export.Dim("batch")
    return torch.export.export(model, args, dynamic_shapes=({0: b}, {0: b}))


def _program(lg: graph_json.LoweredGraph, steps: int = STEPS, lr: float = 0.01) -> Any:
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = local_spec(
        g_sha,
        w_sha,
        steps,
        lg.batch_size,
        seed=3,
        lr=lr,
        weight_decay=0.01,
        warmup_steps=0,
        checkpoint_interval=steps,
    )
    return build_program(spec, fetch)


@pytest.mark.parametrize(
    ("kind", "dynamic"), [("mlp", True), ("tokens", True), ("reg", False)], ids=str
)
def test_exported_model_trains_reproducibly_and_like_torch(kind: str, dynamic: bool) -> None:
    ep = _export(kind, dynamic)
    lg = lower(ep, BATCH if dynamic else None)
    ds = data_mod.Dataset.from_tensors_bytes(stio.dumps(_data(kind)))
    if not dynamic:  # a static export trains only at its example size
        assert lg.batch_size == BATCH
    program = _program(lg)
    check_dataset(program, ds)
    runs = []
    for n in (1, 2):
        with threads(n):
            state, losses = train(program, init_state(program), ds, STEPS)
        runs.append((hashing.state_hash(state), losses))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    losses = runs[0][1]
    assert sum(losses[-5:]) < sum(losses[:5])  # it learns (batch losses are noisy)
    ref = torch_reference_losses(ep, program, ds)
    assert abs(losses[0] - ref[0]) <= 1e-4 * abs(ref[0])  # same initial weights and batch
    assert abs(losses[-1] - ref[-1]) <= 0.02 * abs(ref[-1])


def test_canonical_graph_json_round_trips_and_refuses_any_other_spelling() -> None:
    lg = lower(_export("tokens"), 8)
    raw = lg.to_json()
    again = graph_json.loads(raw)
    assert again.to_json() == raw
    assert again.index_bounds() == {"inputs": 20, "targets": 3}
    with pytest.raises(graph_json.GraphInvalid, match="not canonical"):
        graph_json.loads(raw.replace(b'"nodes":[', b'"nodes": [', 1))
    doc = json.loads(raw)
    mm = next(i for i, n in enumerate(doc["nodes"]) if n["op"] == "matmul")
    doc["nodes"][mm]["shape"][-1] += 1
    with pytest.raises(graph_json.GraphInvalid, match="does not type-check"):
        graph_json.loads(graph_json._canonical(doc))
    doc = json.loads(raw)
    doc["nodes"][-1]["shape"] = [1 << 20, 1 << 20]
    with pytest.raises(graph_json.GraphInvalid, match="elements exceed"):
        graph_json.loads(graph_json._canonical(doc))
    doc = json.loads(raw)
    doc["nodes"][-1]["op"] = "adamw_param"
    with pytest.raises(graph_json.GraphInvalid, match="not a forward op"):
        graph_json.loads(graph_json._canonical(doc))


def test_graph_json_rejects_malformed_input_in_one_line() -> None:
    cases = [
        b"",
        b"{",
        b"[1, 2]",
        b'{"format": "repops-graph-v1"}',
        b'{"a": 1, "a": 2}',
        b"\xff\xfe",
        b'{"x": NaN}',
    ]
    for raw in cases:
        with pytest.raises(graph_json.GraphInvalid) as exc:
            graph_json.loads(raw)
        assert "\n" not in str(exc.value)


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "pwned"))


def test_malicious_pickle_and_pt2_files_are_refused_without_running_anything(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "marker"
    evil = pickle.dumps(_Boom(marker))
    buf = io.BytesIO()
    torch.save({"x": _Boom(marker)}, buf)  # a zip archive holding a pickle
    pt2 = io.BytesIO()
    torch.export.save(_export("mlp"), pt2)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("graph.json", "{}")
    lg = lower(_export("mlp"), BATCH)
    for blob in (evil, buf.getvalue(), pt2.getvalue(), zipped.getvalue()):
        for load in (graph_json.loads, lambda b: graph_json.load_weights(lg, b)):
            with pytest.raises(graph_json.GraphInvalid) as exc:
                load(blob)
            assert "\n" not in str(exc.value)
        # the same bytes given to a solver through the spec
        sha = hashlib.sha256(blob).hexdigest()
        spec = local_spec(sha, sha, 2, BATCH, 0, 0.01, 0.0, 0, 2)
        with pytest.raises(SpecInvalid, match=r"program\.model"):
            build_program(spec, lambda _p, _r, blob=blob: blob)
    assert not marker.exists()


def test_unsupported_ops_are_all_reported_with_their_source_line() -> None:
    class Unsup(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(4, 3)
            self.register_buffer("w", torch.ones(3))

        def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            h = torch.cumsum(self.l(inputs), dim=-1)
            return F.cross_entropy(h, targets, weight=self.w)  # class weights: no exact rule

    ep = torch.export.export(Unsup(), (torch.randn(2, 4), torch.tensor([0, 1])))
    with pytest.raises(LoweringFailed) as exc:
        lower(ep)
    problems = exc.value.problems
    src, first = inspect.getsourcelines(Unsup.forward)
    sig_line = first + next(i for i, s in enumerate(src) if "cumsum" in s)
    ce_line = first + next(i for i, s in enumerate(src) if "F.cross_entropy" in s)
    assert "aten.cumsum.default" not in RULES
    assert any("aten.cumsum.default" in p and f"test_lowering.py:{sig_line}" in p for p in problems)
    assert any(
        "aten.cross_entropy_loss.default" in p and f"test_lowering.py:{ce_line}" in p
        for p in problems
    )
    assert any("class weights" in p for p in problems)


def test_unsupported_arguments_name_the_module() -> None:
    class Smooth(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(5, 3, padding_idx=0)

        def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(self.emb(inputs), targets, weight=torch.ones(3))

    ep = torch.export.export(Smooth(), (torch.tensor([1, 2]), torch.tensor([0, 1])))
    with pytest.raises(LoweringFailed) as exc:
        lower(ep)
    text = str(exc.value)
    assert "padding_idx" in text and "module emb (Embedding)" in text


def test_every_input_must_be_batched() -> None:
    class Masked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.l = nn.Linear(3, 3)

        def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            return (self.l(inputs) @ mask).sum()

    ep = torch.export.export(Masked(), (torch.randn(4, 3), torch.randn(3, 3)))
    with pytest.raises(LoweringFailed, match="'mask' of shape \\[3, 3\\]: dimension 0"):
        lower(ep)


def test_static_export_trains_only_at_its_example_size() -> None:
    ep = _export("reg", dynamic=False)
    assert not inspect_batch(ep).dynamic
    with pytest.raises(LoweringFailed, match="static shapes"):
        lower(ep, 8)
    dyn = _export("reg", dynamic=True)
    assert inspect_batch(dyn).dynamic
    assert lower(dyn, 8).batch[("inputs")][0] == (8, 2, 4)


def test_spec_hash_binds_graph_and_weights_and_checks_fetched_bytes() -> None:
    lg = lower(_export("mlp"), BATCH)
    base = _program(lg, steps=2)
    lg.weights = {k: v + 1.0 for k, v in lg.weights.items()}
    other = _program(lg, steps=2)
    assert base.program_hash != other.program_hash
    gj = lg.to_json()
    sha = hashlib.sha256(gj).hexdigest()
    spec = local_spec(sha, sha, 2, BATCH, 0, 0.01, 0.0, 0, 2)
    with pytest.raises(SpecInvalid, match=r"program.model.weights.sha256"):
        build_program(spec, lambda p, _r: gj if p.endswith("graph") else b"x")
    with pytest.raises(SpecInvalid, match="no artifact resolver"):
        build_program(spec)
    # a cid names where the bytes live: it does not change the program
    spec_cid = local_spec(sha, sha, 2, BATCH, 0, 0.01, 0.0, 0, 2)
    spec_cid["program"]["model"]["graph"]["cid"] = "bafy-somewhere"
    spec_wrong_b = local_spec(sha, sha, 2, 3, 0, 0.01, 0.0, 0, 2)
    blobs = {"graph": gj, "weights": lg.weights_bytes()}
    w_sha = hashlib.sha256(blobs["weights"]).hexdigest()
    for s in (spec, spec_cid, spec_wrong_b):
        s["program"]["model"]["weights"]["sha256"] = w_sha
    a = build_program(spec, lambda p, _r: blobs[p.rsplit(".", 1)[1]])
    b = build_program(spec_cid, lambda p, _r: blobs[p.rsplit(".", 1)[1]])
    assert a.program_hash == b.program_hash
    with pytest.raises(SpecInvalid, match=r"data\.batch_size"):
        build_program(spec_wrong_b, lambda p, _r: blobs[p.rsplit(".", 1)[1]])


def test_tensors_dataset_is_checked_against_the_inputs_in_one_line() -> None:
    program = _program(lower(_export("tokens"), 8), steps=2)
    good = _data("tokens", 32)
    check_dataset(program, data_mod.Dataset.from_tensors_bytes(stio.dumps(good)))
    bad_cases = {
        "values in": {"inputs": good["inputs"] + 20, "targets": good["targets"]},
        "rows of shape": {"inputs": good["inputs"][:, :4], "targets": good["targets"]},
        "no tensor 'targets'": {"inputs": good["inputs"]},
        "not a model input": {**good, "extra": good["targets"]},
        "the model takes int64": {"inputs": good["inputs"].float(), "targets": good["targets"]},
    }
    for needle, tensors in bad_cases.items():
        ds = data_mod.Dataset.from_tensors_bytes(stio.dumps(tensors))
        with pytest.raises(DatasetInvalid, match=needle) as exc:
            check_dataset(program, ds)
        assert "\n" not in str(exc.value)
    with pytest.raises(DatasetInvalid, match="one row count"):
        data_mod.Dataset.from_tensors_bytes(
            stio.dumps({"inputs": good["inputs"], "targets": good["targets"][:5]})
        )
    with pytest.raises(DatasetInvalid, match="float32 or an integer"):
        data_mod.Dataset.from_tensors_bytes(stio.dumps({"inputs": good["inputs"].double()}))


def test_tensors_batches_are_seeded_rows() -> None:
    d = _data("mlp", 64)
    ds = data_mod.Dataset.from_tensors_bytes(safetensors.torch.save(d))  # any writer's file
    b0 = data_mod.batch(ds, 1, 0, 8)
    assert torch.equal(b0["inputs"], data_mod.batch(ds, 1, 0, 8)["inputs"])
    assert not torch.equal(b0["inputs"], data_mod.batch(ds, 1, 1, 8)["inputs"])
    assert not torch.equal(b0["inputs"], data_mod.batch(ds, 2, 0, 8)["inputs"])
    # rows stay paired: each batch row is one dataset row
    for x, y in zip(b0["inputs"], b0["targets"], strict=True):
        i = int((d["inputs"] == x).all(1).nonzero()[0])
        assert int(d["targets"][i]) == int(y)


class KitchenSink(nn.Module):
    """Exercises every core rule's shape handling; only the value of the loss matters."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4) * 0.3)
        self.b = nn.Parameter(torch.randn(4) * 0.1)
        self.ln = nn.LayerNorm([2, 3])
        self.register_buffer("shift", torch.linspace(-1, 1, 4))

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = inputs.view(inputs.shape[0], 2, 3)  # (B, 2, 3)
        x = self.ln(x).permute(0, 2, 1).transpose(1, 2).contiguous()  # (B, 2, 3)
        x = torch.flatten(x, 1)  # (B, 6)
        h = torch.addmm(self.b, x, self.w) + self.shift  # (B, 4)
        h = 1.0 - torch.relu(h) / 2 + torch.mm(x, self.w).t().t() * 0.5
        s = torch.softmax(h.unsqueeze(1).expand(-1, 3, -1), dim=1).squeeze(1)  # (B, 3, 4)
        m = torch.matmul(s, self.w.t())  # (B, 3, 4) @ (4, 6)
        r = m.sum(dim=(1, 2), keepdim=True).mean() + m.mean(dim=-1).sum() / 10
        e = torch.exp(-torch.sqrt(h * h + 1)) + torch.log(h * h + 2) - torch.tanh(-h)
        lm = F.mse_loss(e, torch.zeros_like(e), reduction="sum") / e.numel()
        spread = x.var(dim=-1).mean() + h.std() + torch.var(m, dim=(0, 2), correction=0).sum()
        return r / 100 + lm + F.cross_entropy(h, targets, reduction="sum") / 64 + spread


def test_lowered_forward_computes_the_exported_loss() -> None:
    from repops.tape import Executor, Tape

    torch.manual_seed(3)
    x, y = torch.randn(5, 6), torch.tensor([0, 3, 1, 2, 3])
    b = torch.export.Dim("batch")
    ep = torch.export.export(KitchenSink(), (x, y), dynamic_shapes=({0: b}, {0: b}))
    try:
        lg = lower(ep, 5)
    except LoweringFailed as e:  # pragma: no cover - shows every problem at once
        pytest.fail(str(e))
    tape = Tape.from_graph(lg.graph, {}, lg.loss)
    feeds = {f"param.{k}": v for k, v in lg.weights.items()}
    feeds |= {"batch.inputs": x, "batch.targets": y}
    got = Executor(tape, torch.device("cpu")).run(feeds)[lg.loss]
    assert got is not None
    want = ep.module()(x, y)
    assert abs(float(got) - float(want)) <= 1e-5 * abs(float(want)), (float(got), float(want))


class TinyDecoder(nn.Module):
    """Token + position embeddings, one causal attention head (additive mask buffer),
    layer norm, tied output head; next-token cross-entropy over all positions."""

    def __init__(self, vocab: int = 24, block: int = 8, dim: int = 16) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(block, dim) * 0.1)
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, dim, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        mask = torch.triu(torch.full((block, block), -1e9), diagonal=1)
        self.register_buffer("mask", mask)
        self.dim = dim

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = self.tok(inputs) + self.pos  # (B, T, C)
        q, k, v = self.q(h), self.k(h), self.v(h)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(self.dim) + self.mask, dim=-1)
        h = self.norm(h + att @ v)  # (B, T, C)
        logits = h @ self.tok.weight.t()  # (B, T, V), tied
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def test_tokens_stream_trains_a_decoder_in_windows_like_torch() -> None:
    torch.manual_seed(4)
    b = torch.export.Dim("batch")
    ex = (torch.randint(0, 24, (2, 8)), torch.randint(0, 24, (2, 8)))
    ep = torch.export.export(TinyDecoder(), ex, dynamic_shapes=({0: b}, {0: b}))
    lg = lower(ep, 8)
    assert graph_json.token_block(lg) == 8
    stream = (torch.arange(600) * 7 % 24).to(torch.uint16)  # a learnable periodic text
    ds = data_mod.Dataset.from_tokens_bytes(stio.dumps({"tokens": stream}))
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = local_spec(g_sha, w_sha, 20, 8, 3, 0.02, 0.0, 0, 20, "tokens")
    program = build_program(spec, fetch)
    check_dataset(program, ds)
    w = data_mod.batch(ds, 3, 0, 8, 8)
    assert torch.equal(w["inputs"][:, 1:], w["targets"][:, :-1])
    _, losses = train(program, init_state(program), ds, 20)
    assert sum(losses[-3:]) < sum(losses[:3])
    ref = torch_reference_losses(ep, program, ds)
    assert abs(losses[-1] - ref[-1]) <= 0.02 * abs(ref[-1])
    too_big = data_mod.Dataset.from_tokens_bytes(stio.dumps({"tokens": stream.int() + 30}))
    with pytest.raises(DatasetInvalid, match=r"the model indexes \[0, 24\)"):
        check_dataset(program, too_big)
