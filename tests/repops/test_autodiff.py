"""Our reverse-mode autodiff against torch float64 autograd (reference only)."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from repops.models import common, gpt
from repops.tape import Executor, Graph, Tape, backward

Builder = Callable[[Graph, dict[str, int]], int]
Reference = Callable[[dict[str, torch.Tensor]], torch.Tensor]


def check(
    shapes: dict[str, tuple[int, ...]],
    build: Builder,
    ref: Reference,
    int_inputs: dict[str, torch.Tensor] | None = None,
    tol: float = 2e-4,
) -> None:
    g = Graph()
    gen = torch.Generator().manual_seed(0)
    vals = {n: torch.randn(s, generator=gen) for n, s in shapes.items()}
    ids = {n: g.input(n, s) for n, s in shapes.items()}
    for n, t in (int_inputs or {}).items():
        ids[n] = g.input(n, tuple(t.shape), "int64")
    loss = build(g, ids)
    grads = backward(g, loss, [ids[n] for n in shapes])
    outputs = {f"grad.{n}": grads[ids[n]] for n in shapes}
    tape = Tape.from_graph(g, outputs, loss)
    feeds = dict(vals) | dict(int_inputs or {})
    out = Executor(tape, torch.device("cpu")).run(feeds)
    ref_in = {n: v.double().requires_grad_(True) for n, v in vals.items()}
    ref_in.update({n: v for n, v in (int_inputs or {}).items()})
    want_loss = ref(ref_in)
    want_loss.backward()
    got_loss = out[loss]
    assert got_loss is not None
    assert abs(got_loss.item() - want_loss.item()) <= tol * (1 + abs(want_loss.item()))
    for n in shapes:
        got = out[outputs[f"grad.{n}"]]
        assert got is not None
        want = ref_in[n].grad
        assert want is not None
        scale = float(want.abs().max()) + 1e-30
        assert float((got.double() - want).abs().max()) <= tol * scale, n


def test_backward_elementwise_broadcast_and_transcendentals() -> None:
    def build(g: Graph, v: dict[str, int]) -> int:
        x = g.add(g.mul(v["a"], v["b"]), g.div(v["a"], g.add(g.exp(v["b"]), g.const(1.0))))
        y = g.sub(g.tanh(x), g.log(g.add(g.mul(x, x), g.const(1.0))))
        y = g.mul(g.sqrt(g.add(g.mul(y, y), g.const(0.5))), g.relu(g.neg(v["a"])))
        return g.reshape(g.sum(g.sum(y, 1), 0), ())

    def ref(t: dict[str, torch.Tensor]) -> torch.Tensor:
        a, b = t["a"], t["b"]
        x = a * b + a / (torch.exp(b) + 1)
        y = torch.tanh(x) - torch.log(x * x + 1)
        return (torch.sqrt(y * y + 0.5) * torch.relu(-a)).sum()

    check({"a": (5, 7), "b": (1, 7)}, build, ref)


def test_backward_matmul_batched_and_folded() -> None:
    def build(g: Graph, v: dict[str, int]) -> int:
        y = g.matmul(v["x"], v["w"])  # (2, 3, 4) @ (4, 5): folded rows
        z = g.matmul(y, g.transpose_last(y))  # batched
        return g.reshape(g.sum(g.sum(g.sum(z, 2), 1), 0), ())

    def ref(t: dict[str, torch.Tensor]) -> torch.Tensor:
        y = t["x"] @ t["w"]
        return (y @ y.transpose(-1, -2)).sum()

    check({"x": (2, 3, 4), "w": (4, 5)}, build, ref)


def test_backward_layer_norm_gelu_softmax_cross_entropy() -> None:
    tgt = torch.tensor([1, 0, 3, 2, 2, 1], dtype=torch.int64)

    def build(g: Graph, v: dict[str, int]) -> int:
        h = common.layer_norm(g, v["x"], v["g"], v["b"])
        h = common.gelu_tanh(g, h)
        p = common.softmax(g, h)
        return common.cross_entropy(g, g.mul(p, g.const(3.0)), v["t"])

    def ref(t: dict[str, torch.Tensor]) -> torch.Tensor:
        h = F.layer_norm(t["x"], (4,), t["g"], t["b"], 1e-5)
        h = F.gelu(h, approximate="tanh")
        return F.cross_entropy(h.softmax(-1) * 3.0, t["t"])

    check({"x": (6, 4), "g": (4,), "b": (4,)}, build, ref, {"t": tgt})


def test_backward_tiny_gpt_matches_autograd() -> None:
    cfg = gpt.Config(vocab=128, block=5, n_layer=1, n_head=2, n_embd=8)
    specs = gpt.param_specs(cfg)
    x = torch.tensor([[1, 5, 9, 3, 7], [2, 2, 8, 100, 0]], dtype=torch.int64)
    y = torch.roll(x, 1, 1)

    def build(g: Graph, v: dict[str, int]) -> int:
        return gpt.forward(g, cfg, {n: v[n] for n in specs}, {"x": v["bx"], "y": v["by"]})

    def ref(t: dict[str, torch.Tensor]) -> torch.Tensor:
        h = t["wte"][t["bx"]] + t["wpe"]
        a = F.layer_norm(h, (8,), t["h0.ln1.g"], t["h0.ln1.b"], 1e-5)
        q, k, v = (
            (a @ t[f"h0.attn.{n}"]).view(2, 5, 2, 4).transpose(1, 2) for n in ("wq", "wk", "wv")
        )
        att = (q @ k.transpose(-1, -2)) / math.sqrt(4)
        att = att.masked_fill(~torch.ones(5, 5, dtype=torch.bool).tril(), -math.inf)
        yy = (att.softmax(-1) @ v).transpose(1, 2).reshape(2, 5, 8)
        h = h + yy @ t["h0.attn.wo"]
        m = F.layer_norm(h, (8,), t["h0.ln2.g"], t["h0.ln2.b"], 1e-5)
        m = F.gelu(m @ t["h0.mlp.w1"] + t["h0.mlp.b1"], approximate="tanh")
        h = h + m @ t["h0.mlp.w2"] + t["h0.mlp.b2"]
        h = F.layer_norm(h, (8,), t["lnf.g"], t["lnf.b"], 1e-5)
        return F.cross_entropy((h @ t["head"]).reshape(10, 128), t["by"].reshape(10))

    check({n: s.shape for n, s in specs.items()}, build, ref, {"bx": x, "by": y}, tol=1e-3)


def test_backward_non_scalar_loss_raises() -> None:
    g = Graph()
    a = g.input("a", (2,))
    with pytest.raises(Exception, match="scalar"):
        backward(g, g.exp(a), [a])
