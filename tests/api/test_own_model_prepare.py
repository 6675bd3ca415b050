"""`submitter.model` without the API: a lowered directory is the same job as its .pt2,
and what does not fit is one line naming the field, before anything leaves the machine."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from jobspec.factory import artifact, graph_spec
from repops import stio
from repops.lowering.export import lower
from submitter.model import (
    GRAPH_FILE,
    WEIGHTS_FILE,
    ModelProblem,
    check_job,
    lower_model,
    with_model,
)
from tests.repops.test_lowering import TinyDecoder, _export

pytestmark = pytest.mark.slow  # ~28 s of exports and lowerings on 2 shared cores


def _pt2(tmp_path: Path) -> Path:
    path = tmp_path / "net.pt2"
    torch.export.save(_export("mlp"), str(path))
    return path


def test_lowered_dir_is_the_same_job_as_its_export(tmp_path: Path) -> None:
    pt2 = _pt2(tmp_path)
    lg = lower(_export("mlp"), 8)
    (tmp_path / GRAPH_FILE).write_bytes(lg.to_json())
    (tmp_path / WEIGHTS_FILE).write_bytes(lg.weights_bytes())
    from_dir = lower_model(None, tmp_path, None, 8)
    assert from_dir == lower_model(pt2, None, None, 8)
    spec = with_model(graph_spec(artifact("0" * 64), artifact("0" * 64), batch_size=8), from_dir)
    data = stio.dumps({"inputs": torch.randn(20, 12), "targets": torch.zeros(20).long()})
    check_job(spec, from_dir, data)
    # a directory is lowered at one batch size: another one is refused by name
    spec16 = with_model(graph_spec(artifact("0" * 64), artifact("0" * 64), batch_size=16), from_dir)
    with pytest.raises(ModelProblem, match=r"data\.batch_size"):
        check_job(spec16, from_dir, data)


def test_what_does_not_fit_is_one_line(tmp_path: Path) -> None:
    pt2 = _pt2(tmp_path)
    lowered = lower_model(pt2, None, None, 8)
    spec = with_model(graph_spec(artifact("0" * 64), artifact("0" * 64), batch_size=8), lowered)
    wide = stio.dumps({"inputs": torch.randn(20, 13), "targets": torch.zeros(20).long()})
    with pytest.raises(ModelProblem, match="inputs") as caught:
        check_job(spec, lowered, wide)
    assert "\n" not in str(caught.value)
    tokens = with_model(
        graph_spec(artifact("0" * 64), artifact("0" * 64), batch_size=8, data_format="tokens"),
        lowered,
    )
    with pytest.raises(ModelProblem, match="tokens"):
        check_job(tokens, lowered, stio.dumps({"tokens": torch.arange(100)}))
    (tmp_path / "w.safetensors").write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(ModelProblem, match=r"w\.safetensors"):
        lower_model(pt2, None, tmp_path / "w.safetensors", 8)
    with pytest.raises(ModelProblem, match=r"not a torch\.export program"):
        lower_model(tmp_path / "w.safetensors", None, None, 8)
    assert TinyDecoder  # the tokens rule itself is tested with a decoder in test_lowering
