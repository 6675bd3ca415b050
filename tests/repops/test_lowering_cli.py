"""`assay model check` and `assay train --local` on a model nobody on the project wrote,
run as a user runs them (a subprocess)."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deploy.cli import main
from deploy.model_cli import local_spec
from repops import data as data_mod
from repops import hashing, stio
from repops.lowering.export import lower
from repops.program import build_program, init_state, local_artifacts, train
from tests.repops.conftest import threads

ROOT = Path(__file__).resolve().parents[2]


class Wide(nn.Module):
    """Two linear layers around a layer norm and a tanh, cross-entropy over 3 classes."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 20)
        self.ln = nn.LayerNorm(20)
        self.b = nn.Linear(20, 3)

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.b(torch.tanh(self.ln(self.a(inputs)))), targets)


class NotYet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(6, 3)
        self.register_buffer("w", torch.ones(3))

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.cumsum(self.a(inputs), -1), targets, weight=self.w)


def _assay(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "deploy.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("byom")
    torch.manual_seed(1)
    b = torch.export.Dim("batch")
    ex = (torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    torch.export.save(
        torch.export.export(Wide(), ex, dynamic_shapes=({0: b}, {0: b})), d / "wide.pt2"
    )
    torch.export.save(torch.export.export(NotYet(), ex), d / "notyet.pt2")
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(128, 6, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    (d / "data.safetensors").write_bytes(stio.dumps({"inputs": x, "targets": y}))
    (d / "bad.safetensors").write_bytes(stio.dumps({"inputs": x[:, :5], "targets": y + 2}))
    return {
        "wide": d / "wide.pt2",
        "notyet": d / "notyet.pt2",
        "data": d / "data.safetensors",
        "bad": d / "bad.safetensors",
        "dir": d,
    }


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """The same command in-process (cheaper than a subprocess), whitespace normalised."""
    code = main(list(args))
    return code, " ".join(capsys.readouterr().out.split())


def test_model_check_prints_the_summary_and_refuses_data_that_does_not_fit(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _main(capsys, "model", "check", str(files["wide"]), "--data", str(files["bad"]))
    assert code == 1, out
    assert "parameters: 243 in 6 tensors" in out  # 6*20+20 + 20+20 + 20*3+3
    assert re.search(r"ops: \d+ batch: dynamic", out)
    assert "layer_norm" in out and "matmul" in out
    assert "inputs: rows of shape [5], the model takes [6]" in out
    assert "targets: values in [2, 4], the model indexes [0, 3)" in out


def test_model_check_lists_every_op_that_does_not_lower(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _main(capsys, "model", "check", str(files["notyet"]))
    assert code == 1
    assert "aten.cumsum.default at test_lowering_cli.py:" in out
    assert "class weights" in out


def test_train_local_matches_the_solver_program_and_prints_the_reference(
    files: dict[str, Path],
) -> None:
    out = files["dir"] / "run"
    r = _assay(
        "train",
        "--local",
        "--model",
        str(files["wide"]),
        "--data",
        str(files["data"]),
        "--steps",
        "12",
        "--batch-size",
        "8",
        "--seed",
        "4",
        "--lr",
        "0.01",
        "--threads",
        "1",
        "--checkpoint-interval",
        "4",
        "--reference",
        "torch",
        "--out",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-2].startswith("final_loss: ") and lines[-1].startswith("state_hash: ")
    final = float(lines[-2].split()[-1])
    ref = float(re.search(r"torch fp32\) final_loss: (\S+)", r.stdout).group(1))  # type: ignore[union-attr]
    assert abs(final - ref) <= 0.02 * abs(ref)
    assert sorted(p.name for p in out.glob("ckpt-*.safetensors")) == [
        f"ckpt-{i:04d}.safetensors" for i in range(4)
    ]
    # the same job, built and trained in-process as a solver builds it (2 threads)
    ep = torch.export.load(str(files["wide"]))
    lg = lower(ep, 8)
    assert (out / "graph.json").read_bytes() == lg.to_json()
    g_sha, w_sha, fetch = local_artifacts(lg)
    spec = local_spec(g_sha, w_sha, 12, 8, 4, 0.01, 0.0, 0, 4)
    program = build_program(spec, fetch)
    ds = data_mod.Dataset.from_tensors_bytes(files["data"].read_bytes())
    with threads(2):
        state, losses = train(program, init_state(program), ds, 12)
    assert lines[-1] == f"state_hash: {hashing.state_hash(state).hex()}"
    assert final == losses[-1]


def test_model_lower_writes_what_check_and_train_load_without_the_pt2(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    low = files["dir"] / "lowered"
    tuned = {k: v * 0.5 for k, v in torch.export.load(str(files["wide"])).state_dict.items()}
    (files["dir"] / "tuned.safetensors").write_bytes(stio.dumps(tuned))
    (files["dir"] / "wrong.safetensors").write_bytes(stio.dumps({"a.weight": torch.ones(2)}))
    code, out = _main(
        capsys,
        "model",
        "lower",
        str(files["wide"]),
        "--out",
        str(low),
        "--weights",
        str(files["dir"] / "wrong.safetensors"),
    )
    assert code == 1 and "weights names differ" in out
    code, out = _main(
        capsys,
        "model",
        "lower",
        str(files["wide"]),
        "--out",
        str(low),
        "--weights",
        str(files["dir"] / "tuned.safetensors"),
    )
    assert code == 0, out
    assert stio.loads((low / "weights.safetensors").read_bytes())[0].keys() == tuned.keys()
    for k, v in stio.loads((low / "weights.safetensors").read_bytes())[0].items():
        assert torch.equal(v, tuned[k])
    sha = hashlib.sha256((low / "graph.json").read_bytes()).hexdigest()
    assert f"sha256 {sha}" in out
    code, out = _main(capsys, "model", "check", str(low), "--data", str(files["data"]))
    assert code == 0, out
    assert "fits (128 rows)" in out
    code, out = _main(capsys, "model", "check", str(low), "--batch-size", "8")
    assert code == 1 and "lowered at batch size 4" in out
    # a pickle where the graph should be: one line, exit 1, nothing loaded
    (low / "graph.json").write_bytes(b"\x80\x04\x95" + b"\x00" * 20)
    code, out = _main(capsys, "model", "check", str(low))
    assert code == 1 and "pickle" in out


def test_train_local_takes_the_recipe_flags_into_the_spec_and_the_reference(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    out = files["dir"] / "recipe"
    args = ["train", "--local", "--model", str(files["wide"]), "--data", str(files["data"])]
    args += ["--steps", "12", "--batch-size", "8", "--seed", "4", "--lr", "0.05"]
    args += ["--optimizer", "sgd", "--momentum", "0.8", "--schedule", "cosine"]
    args += ["--warmup-steps", "2", "--min-lr-ratio", "0.1", "--clip-grad-norm", "0.3"]
    args += ["--reference", "torch", "--out", str(out)]
    code, text = _main(capsys, *args)
    assert code == 0, text
    prog = json.loads((out / "spec.json").read_text())["program"]
    assert prog["optimizer"]["name"] == "sgd" and prog["optimizer"]["momentum"] == 0.8
    assert prog["lr_schedule"] == {"name": "cosine", "warmup_steps": 2, "min_lr_ratio": 0.1}
    assert prog["clip_grad_norm"] == 0.3
    final = float(re.findall(r"final_loss: (\S+)", text)[-1])
    ref = float(re.search(r"torch fp32\) final_loss: (\S+)", text).group(1))  # type: ignore[union-attr]
    assert abs(final - ref) <= 0.02 * abs(ref), (final, ref)
