"""`assay job submit --model MODEL.pt2 --weights W --data F` against the API stack.

The CLI lowers the export on the submitter's machine, checks the dataset against the
model's inputs before any upload or transaction, uploads graph.json and the weights to
POST /artifacts, and submits a spec naming both by sha256 and CID; the job is posted and
its spec builds from the store exactly as a solver builds it (roles.jobcontext).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import safetensors.torch
import torch

from chain.keys import write_key
from chain.types import JobId
from deploy.cli import main as assay_main
from market.jobcheck import safetensors_elements
from market.store import open_store
from repops import stio
from roles.jobcontext import build_job_program, load_spec
from tests.api.test_disputes_view import _account
from tests.fixtures.api import ApiStack, ServedApi
from tests.repops.test_lowering import DeepMLP, _data


def _files(tmp_path: Path) -> tuple[Path, Path, Path]:
    torch.manual_seed(0)
    model = DeepMLP()
    d = _data("mlp", 64)
    b = torch.export.Dim("batch")
    ep = torch.export.export(
        model, (d["inputs"][:4], d["targets"][:4]), dynamic_shapes=({0: b}, {0: b})
    )
    pt2, weights, data = tmp_path / "net.pt2", tmp_path / "w.safetensors", tmp_path / "d.st"
    torch.export.save(ep, str(pt2))
    with torch.no_grad():
        model.out.bias.fill_(0.25)  # a "pre-trained" state unlike the export's
    safetensors.torch.save_file({k: v.detach() for k, v in model.state_dict().items()}, weights)
    data.write_bytes(stio.dumps(d))
    return pt2, weights, data


def _submit(stack: ApiStack, api: ServedApi, tmp_path: Path, *extra: str) -> int:
    key = tmp_path / "submitter.key"
    write_key(key, _account("own-model-cli", stack))
    return assay_main(
        [
            *("job", "submit", *extra, "--steps", "8", "--batch-size", "8"),
            *("--checkpoint-interval", "2", "--lr", "0.01", "--key", str(key)),
            *("--reward", "1", "--stake", "1", "--bond", "1", "--wait", "--timeout", "120"),
            *("--api", api.url, "--rpc", stack.devnet.rpc_url),
        ]
    )


def test_cli_submits_an_exported_model_with_its_weights_as_a_job(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt2, weights, data = _files(tmp_path)
    code = _submit(
        stack, api_server, tmp_path, "--model", str(pt2), "--weights", str(weights),
        "--data", str(data),
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    job_id = JobId(int(out.split("posted job ")[1].split()[0]))
    with open_store(stack.settings.store) as store:
        spec = load_spec(store, stack.market.get_job(job_id))
        model = spec["program"]["model"]
        assert model["name"] == "graph" and spec["data"]["format"] == "tensors"
        graph = store.get_bytes(model["graph"]["cid"])
        stored_weights = store.get_bytes(model["weights"]["cid"])
        assert hashlib.sha256(graph).hexdigest() == model["graph"]["sha256"]
        assert hashlib.sha256(stored_weights).hexdigest() == model["weights"]["sha256"]
        # the fine-tuning state, not the export's
        assert safetensors.torch.load(stored_weights)["out.bias"].eq(0.25).all()
        assert safetensors_elements(stored_weights) == sum(
            p.numel() for p in DeepMLP().parameters()
        )
        program = build_job_program(store, spec)  # what every role builds
        assert program.batch_size == 8 and program.steps == 8
        assert json.loads(graph)["batch_size"] == 8


def test_cli_submits_a_micro_batched_job_lowered_at_the_micro_batch_size(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt2, _, data = _files(tmp_path)
    args = ("--model", str(pt2), "--data", str(data))
    assert _submit(stack, api_server, tmp_path, *args, "--micro-batches", "3") == 2
    assert "spec.data.micro_batches: 3 must divide batch_size 8" in capsys.readouterr().out
    assert _submit(stack, api_server, tmp_path, *args, "--micro-batches", "4") == 0
    out = capsys.readouterr().out
    job_id = JobId(int(out.split("posted job ")[1].split()[0]))
    with open_store(stack.settings.store) as store:
        spec = load_spec(store, stack.market.get_job(job_id))
        assert spec["data"]["micro_batches"] == 4 and spec["data"]["batch_size"] == 8
        program = build_job_program(store, spec)
        assert program.micro_batches == 4 and len(program.tape.micro_ranges) == 4
        assert (
            json.loads(store.get_bytes(spec["program"]["model"]["graph"]["cid"]))["batch_size"] == 2
        )


def test_cli_refuses_a_dataset_that_does_not_fit_before_anything_is_sent(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pt2, _, _ = _files(tmp_path)
    bad = tmp_path / "bad.st"
    bad.write_bytes(stio.dumps({"inputs": torch.zeros(16, 12)}))  # no targets
    account = _account("own-model-cli", stack)
    nonce = stack.market.order_nonce(account.address)
    code = _submit(stack, api_server, tmp_path, "--model", str(pt2), "--data", str(bad))
    out = capsys.readouterr().out
    assert code == 2
    assert out.count("error:") == 1 and "'targets'" in out, out
    assert "graph bafk" not in out  # nothing uploaded
    assert stack.market.order_nonce(account.address) == nonce
