"""Example user models (plain nn.Modules, none in the zoo) with their data and export.

One place for the architectures that the bring-your-own-model tests
(tests/repops/test_byom_archs.py) train and that ``python -m bench.repops`` times:

- ``cnn``: conv2d + BatchNorm2d (running statistics are state) + max/avg pooling + CE;
- ``encoder``: token embedding, layer norm, multi-head self-attention (SDPA), erf GELU
  MLP, mean pooling, CE over classes;
- ``rope``: a decoder LM with rotary position embeddings (arange, sin, cos), causal
  SDPA, RMS-free pre-norm (layer norm), next-token CE on the ``tokens`` format;
- ``dropout``: an MLP with dropout (masks from the job seed and step).

Each model is small so that 30 steps run in seconds on a loaded CPU.  This module imports
torch and runs only on the submitter's (or a tester's) machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from repops import data as data_mod
from repops import stio


class BNConvNet(nn.Module):
    """conv3x3 -> BatchNorm2d -> ReLU -> maxpool2 -> conv3x3 -> BN -> ReLU -> avgpool2 -> linear."""

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.c2 = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6 * 2 * 2, classes)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.bn1(self.c1(inputs))), 2)  # (B, 4, 4, 4)
        h = F.avg_pool2d(F.relu(self.bn2(self.c2(h))), 2)  # (B, 6, 2, 2)
        return F.cross_entropy(self.head(h.flatten(1)), targets)


class Encoder(nn.Module):
    """Embedding + learned positions, one pre-norm block (2-head attention, erf-GELU MLP),
    final layer norm, mean pooling, linear classifier."""

    def __init__(self, vocab: int = 16, block: int = 6, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Parameter(torch.randn(block, dim) * 0.1)
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 2 * dim)
        self.fc2 = nn.Linear(2 * dim, dim)
        self.lnf = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)
        self.heads = heads

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, t = inputs.shape
        h = self.tok(inputs) + self.pos  # (B, T, C)
        q, k, v = self.qkv(self.ln1(h)).split(h.shape[-1], dim=-1)
        hd = h.shape[-1] // self.heads
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        att = F.scaled_dot_product_attention(q, k, v)  # (B, H, T, hd)
        h = h + self.proj(att.transpose(1, 2).reshape(b, t, -1))
        h = h + self.fc2(F.gelu(self.fc(self.ln2(h))))  # erf GELU
        return F.cross_entropy(self.head(self.lnf(h).mean(dim=1)), targets)


class RoPEDecoder(nn.Module):
    """Token embedding, one causal attention block with rotary embeddings (the angles
    from arange, sin and cos in forward), layer norms, tied head; next-token CE."""

    def __init__(self, vocab: int = 24, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.SiLU(), nn.Linear(2 * dim, dim))
        self.lnf = nn.LayerNorm(dim)
        self.heads = heads

    @staticmethod
    def rope(x: torch.Tensor) -> torch.Tensor:
        """Rotate pairs (x[..., :d/2], x[..., d/2:]) by angle pos * 10000**(-2i/d)."""
        t, d = x.shape[-2], x.shape[-1]
        half = d // 2
        freq = 1.0 / (10000.0 ** (torch.arange(0, half, dtype=torch.float32) / half))
        ang = torch.arange(t, dtype=torch.float32)[:, None] * freq[None, :]  # (T, d/2)
        cos, sin = torch.cos(ang), torch.sin(ang)
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        b, t = inputs.shape
        h = self.tok(inputs)  # (B, T, C)
        q, k, v = self.qkv(self.ln1(h)).split(h.shape[-1], dim=-1)
        hd = h.shape[-1] // self.heads
        q, k, v = (z.reshape(b, t, self.heads, hd).transpose(1, 2) for z in (q, k, v))
        q, k = self.rope(q), self.rope(k)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        h = h + self.proj(att.transpose(1, 2).reshape(b, t, -1))
        h = h + self.mlp(self.ln2(h))
        logits = self.lnf(h) @ self.tok.weight.t()  # (B, T, V), tied
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


class DropoutMLP(nn.Module):
    """linear -> ReLU -> dropout(0.2) -> linear; CE."""

    def __init__(self) -> None:
        super().__init__()
        self.l1 = nn.Linear(8, 32)
        self.drop = nn.Dropout(0.2)
        self.l2 = nn.Linear(32, 3)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.l2(self.drop(F.relu(self.l1(inputs)))), targets)


@dataclass(frozen=True)
class Example:
    """A model and how it trains: data format, batch size, LR, and its example inputs."""

    name: str
    module: type[nn.Module]
    data_format: str  # "tensors" | "tokens"
    batch_size: int
    lr: float


EXAMPLES: dict[str, Example] = {
    "cnn": Example("cnn", BNConvNet, "tensors", 16, 0.01),
    "encoder": Example("encoder", Encoder, "tensors", 16, 0.01),
    "rope": Example("rope", RoPEDecoder, "tokens", 8, 0.01),
    "dropout": Example("dropout", DropoutMLP, "tensors", 16, 0.01),
}
ROPE_BLOCK = 8


def dataset_tensors(name: str, n: int = 256) -> dict[str, torch.Tensor]:
    """A small learnable dataset for example `name` (seeded torch RNG)."""
    gen = torch.Generator().manual_seed(11)
    if name == "cnn":
        x = torch.randn(n, 1, 8, 8, generator=gen)
        y = (x[:, 0, :4].mean((1, 2)) > 0).long() + (x[:, 0, 4:, 4:].mean((1, 2)) > 0.2).long()
        return {"inputs": x, "targets": y}
    if name == "encoder":
        x = torch.randint(0, 16, (n, 6), generator=gen)
        return {"inputs": x, "targets": (x[:, 0] + x[:, 5]) % 3}
    if name == "rope":  # a periodic token stream with a little noise
        s = torch.arange(1200) * 5 % 24
        noise = torch.randint(0, 24, (1200,), generator=gen)
        keep = torch.rand(1200, generator=gen) > 0.1
        return {"tokens": torch.where(keep, s, noise).to(torch.uint16)}
    if name == "dropout":
        x = torch.randn(n, 8, generator=gen)
        return {"inputs": x, "targets": (x[:, 0] > 0).long() + (x[:, 1] > 0).long()}
    raise KeyError(f"no example {name!r} (known: {', '.join(EXAMPLES)})")


def dataset(name: str) -> data_mod.Dataset:
    """The example's dataset as Assay reads a user's file (safetensors bytes)."""
    return data_mod.Dataset.of_format(EXAMPLES[name].data_format, stio.dumps(dataset_tensors(name)))


def export(name: str, seed: int = 0) -> torch.export.ExportedProgram:
    """`torch.export.export` of example `name` with a dynamic batch dimension."""
    ex = EXAMPLES[name]
    torch.manual_seed(seed)
    model = ex.module()
    if ex.data_format == "tokens":
        args = (torch.randint(0, 24, (2, ROPE_BLOCK)), torch.randint(0, 24, (2, ROPE_BLOCK)))
    else:
        d = dataset_tensors(name, 4)
        args = (d["inputs"], d["targets"])
    b = torch.export.Dim("batch")
    return torch.export.export(model, args, dynamic_shapes=({0: b}, {0: b}))
