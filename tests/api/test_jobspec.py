"""The one job-spec validator (`jobspec.schema`, as the market and repops both use it):
good specs pass, each bad edit is refused naming the field it broke; the market adds CID
syntax, canonical bytes, hash and CID."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from jobspec.factory import artifact, graph_spec, mlp_spec, schedule, sgd
from market.jobspec import (
    SpecInvalid,
    canonical_bytes,
    parse_spec,
    seal,
    spec_errors,
    with_data_cid,
)
from market.store import compute_cid
from repops.program import build_program, canonical_json
from repops.program import spec_errors as repops_errors
from tests.fixtures.api import base_spec

GPT = {
    "repops_version": "repops-2",
    "program": {
        "model": {
            "name": "gpt",
            "config": {"vocab": 128, "block": 16, "n_layer": 1, "n_head": 2, "n_embd": 16},
        },
        "optimizer": {"name": "adamw", "lr": 0.001, "beta1": 0.9, "beta2": 0.99, "eps": 1e-8},
        "lr_schedule": {"name": "linear", "warmup_steps": 2},
    },
    "data": {"dataset": "stdlib_chars", "batch_size": 4, "seed": 7},
    "steps": 8,
    "checkpoint_interval": 4,
    "seed": 3,
}


Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        node[last] = value

    edit.path = path  # type: ignore[attr-defined]
    return edit


def _del(path: str) -> Edit:
    def edit(spec: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        del node[last]

    edit.path = path  # type: ignore[attr-defined]
    return edit


CID = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
GRAPH = graph_spec(artifact("ab" * 32, CID), artifact("cd" * 32, CID))


def _graph(edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    spec = copy.deepcopy(GRAPH)
    edit(spec)
    return spec


GOOD: list[dict[str, Any]] = [
    base_spec(),
    GPT,
    GRAPH,
    _graph(_del("program.loss")),
    # a graph that returns logits: the spec names its loss (fit to the graph: repops)
    _graph(_set("program.loss", "cross_entropy")),
    _graph(_set("program.loss", "mse")),
    _graph(_set("program.loss", {"name": "cross_entropy", "label_smoothing": 0.1})),
    _graph(_set("program.loss", {"name": "cross_entropy", "ignore_index": 0})),
    _graph(_set("program.loss", {"name": "mse"})),
    _graph(_set("data.format", "tokens")),
    _graph(_set("data.dataset", "tensors")),
    _graph(_set("program.model.weights", artifact("ef" * 32))),
    {**base_spec(), "data": {"format": "repops-digits-v1", "batch_size": 4, "seed": 1}},
    {**base_spec(), "note": "extra keys are kept and ignored"},
    {**base_spec(), "steps": 16777215, "checkpoint_interval": 16777215},
    # issue 13 item 4: SGD, cosine, clipping
    mlp_spec(optimizer=sgd(0.1, momentum=0.9, weight_decay=0.01)),
    mlp_spec(optimizer={"name": "sgd", "lr": 0.1}),
    mlp_spec(optimizer=sgd(0.1, momentum=0.0)),
    mlp_spec(lr_schedule=schedule(2, name="cosine", min_lr_ratio=0.1)),
    mlp_spec(lr_schedule={"name": "cosine"}),
    mlp_spec(lr_schedule=schedule(0, name="cosine", min_lr_ratio=1.0)),
    mlp_spec(clip_grad_norm=1.0),
    mlp_spec(clip_grad_norm=5),
    mlp_spec(optimizer=sgd(0.1), clip_grad_norm=0.5, lr_schedule=schedule(1, name="cosine")),
    {**base_spec(), "program": {**base_spec()["program"], "optimizer": {"lr": 0.01}}},
]

BAD_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "version": _set("repops_version", "repops-1"),
    "unknown model": _set("program.model.name", "cnn"),
    "mlp pixels": _set("program.model.config.in_features", 32),
    "mlp classes": _set("program.model.config.classes", 3),
    "mlp hidden type": _set("program.model.config.hidden", [0]),
    "mlp hidden many": _set("program.model.config.hidden", [4] * 9),
    "mlp unknown field": _set("program.model.config.dropout", 1),
    "config missing": _del("program.model.config"),
    "loss": _set("program.loss", "mse"),
    "optimizer name": _set("program.optimizer.name", "rmsprop"),
    "optimizer not object": _set("program.optimizer", "sgd"),
    "sgd lr missing": _set("program.optimizer", {"name": "sgd", "momentum": 0.9}),
    "sgd nesterov": _set("program.optimizer", {**sgd(0.1), "nesterov": True}),
    "sgd dampening": _set("program.optimizer", {**sgd(0.1), "dampening": 0.1}),
    "sgd momentum one": _set("program.optimizer", sgd(0.1, momentum=1.0)),
    "sgd momentum string": _set("program.optimizer", {**sgd(0.1), "momentum": "0.9"}),
    "sgd decay negative": _set("program.optimizer", sgd(0.1, weight_decay=-0.1)),
    "cosine warmup too long": _set("program.lr_schedule", schedule(20, name="cosine")),
    "cosine warmup float": _set("program.lr_schedule", {"name": "cosine", "warmup_steps": 2.0}),
    "cosine ratio above one": _set(
        "program.lr_schedule", schedule(2, name="cosine", min_lr_ratio=1.5)
    ),
    "cosine ratio bool": _set("program.lr_schedule", {"name": "cosine", "min_lr_ratio": True}),
    "clip zero": _set("program.clip_grad_norm", 0.0),
    "clip null": _set("program.clip_grad_norm", None),
    "clip bool": _set("program.clip_grad_norm", True),
    "clip string": _set("program.clip_grad_norm", "1.0"),
    "clip huge": _set("program.clip_grad_norm", 1e7),
    "lr missing": _del("program.optimizer.lr"),
    "lr too big": _set("program.optimizer.lr", 11.0),
    "lr bool": _set("program.optimizer.lr", True),
    "lr string": _set("program.optimizer.lr", "0.1"),
    "eps zero": _set("program.optimizer.eps", 0.0),
    "schedule name": _set("program.lr_schedule", {"name": "step"}),
    "schedule type": _set("program.lr_schedule", "constant"),
    "warmup too long": _set("program.lr_schedule", {"name": "linear", "warmup_steps": 20}),
    "steps zero": _set("steps", 0),
    "steps float": _set("steps", 20.0),
    "steps too many": _set("steps", 1 << 24),
    "not divisible": _set("checkpoint_interval", 3),
    "seed negative": _set("seed", -1),
    "data missing": _del("data"),
    "dataset unknown": _set("data.dataset", "mnist"),
    "format wrong": _set("data.format", "repops-chars-v1"),
    "model cannot train on data": _set("data.dataset", "stdlib_chars"),
    "batch zero": _set("data.batch_size", 0),
    "data seed missing": _del("data.seed"),
    "program not object": _set("program", []),
}


GRAPH_BAD_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "graph loss other": _set("program.loss", "hinge"),
    "graph loss object other": _set("program.loss", {"name": "hinge"}),
    "graph loss smoothing one": _set(
        "program.loss", {"name": "cross_entropy", "label_smoothing": 1.0}
    ),
    "graph loss smoothing string": _set(
        "program.loss", {"name": "cross_entropy", "label_smoothing": "0.1"}
    ),
    "graph loss ignore float": _set("program.loss", {"name": "cross_entropy", "ignore_index": 1.0}),
    "graph loss mse option": _set("program.loss", {"name": "mse", "ignore_index": 0}),
    "graph loss unknown option": _set("program.loss", {"name": "cross_entropy", "weight": 1}),
    "graph config given": _set("program.model.config", {}),
    "graph ref missing": _del("program.model.graph"),
    "graph ref not object": _set("program.model.weights", "ab" * 32),
    "graph sha short": _set("program.model.graph.sha256", "ab"),
    "graph sha upper": _set("program.model.graph.sha256", "AB" * 32),
    "graph sha missing": _del("program.model.weights.sha256"),
    "graph cid not string": _set("program.model.graph.cid", 7),
    "graph ref unknown field": _set("program.model.graph.size", 12),
    "graph on digits": _set("data.dataset", "digits"),
    "graph format unknown": _set(
        "data", {"dataset": "tensors", "format": "npz", "batch_size": 8, "seed": 1}
    ),
    "graph format and dataset disagree": _set("data.dataset", "tokens"),
    "graph no dataset nor format": _del("data.format"),
}


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _assert_refused_at(spec: dict[str, Any], edit: Edit, name: str) -> None:
    errs = spec_errors(spec)
    assert errs, f"accepted {name}"
    want = EXPECTED_PATH.get(name, edit.path)  # type: ignore[attr-defined]
    assert any(_related(e.path, want) for e in errs), (name, want, errs)
    assert all(e.reason for e in errs)


# cases whose error names another field than the one edited (the one a user should fix)
EXPECTED_PATH: dict[str, str] = {
    "graph format and dataset disagree": "data.format",
    "graph no dataset nor format": "data.dataset",
}


def test_jobspec_zoo_models_cannot_train_on_tensors_nor_return_their_loss() -> None:
    for edit in (_set("data.dataset", "tensors"), _set("program.loss", "graph")):
        spec = base_spec()
        edit(spec)
        _assert_refused_at(spec, edit, "zoo")


@pytest.mark.parametrize("name", sorted(GRAPH_BAD_EDITS))
def test_jobspec_bad_graph_specs_are_refused_at_the_edited_field(name: str) -> None:
    _assert_refused_at(_graph(GRAPH_BAD_EDITS[name]), GRAPH_BAD_EDITS[name], name)


def test_jobspec_graph_cids_are_checked_and_listed() -> None:
    assert [e.path for e in spec_errors(_graph(_set("program.model.graph.cid", "x")))] == [
        "program.model.graph.cid"
    ]
    sealed = seal(GRAPH)
    assert sealed.artifact_cids == {"program.model.graph": CID, "program.model.weights": CID}
    assert seal(base_spec()).artifact_cids == {}


@pytest.mark.parametrize("spec", GOOD, ids=range(len(GOOD)))
def test_jobspec_good_specs_pass(spec: dict[str, Any]) -> None:
    assert spec_errors(spec) == []
    assert repops_errors(spec) == []  # the engine's second step (zoo modules) agrees


@pytest.mark.parametrize("name", sorted(BAD_EDITS))
def test_jobspec_bad_specs_are_refused_at_the_edited_field(name: str) -> None:
    spec = base_spec()
    BAD_EDITS[name](spec)
    _assert_refused_at(spec, BAD_EDITS[name], name)
    with pytest.raises(SpecInvalid):  # the engine refuses it with the same validator
        build_program(spec)


def test_jobspec_gpt_n_embd_not_divisible_by_heads_is_refused() -> None:
    spec = copy.deepcopy(GPT)
    spec["program"]["model"]["config"]["n_head"] = 3
    assert [e.path for e in spec_errors(spec)] == ["program.model.config.n_embd"]


def test_jobspec_non_object_is_refused_at_root() -> None:
    assert [e.path for e in spec_errors([1, 2])] == ["$"]


def test_jobspec_errors_say_why() -> None:
    spec = base_spec()
    spec["program"]["model"]["name"] = "cnn"
    (error,) = spec_errors(spec)
    assert error.path == "program.model.name"
    assert "'cnn'" in error.reason and "mlp" in error.reason
    with pytest.raises(SpecInvalid, match=r"program\.model\.name"):
        parse_spec(spec)


def test_jobspec_canonical_bytes_match_repops_and_hash_and_cid() -> None:
    spec = with_data_cid(GPT, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku")
    sealed = seal(spec)
    assert sealed.data == canonical_json(spec)
    assert sealed.data == json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()
    assert sealed.hash == hashlib.sha256(sealed.data).digest()
    assert sealed.cid == compute_cid(sealed.data).cid
    assert sealed.checkpoint_count == 3 and sealed.steps_per_checkpoint == 4


def test_jobspec_bad_data_cid_is_refused() -> None:
    spec = with_data_cid(base_spec(), "not-a-cid")
    assert [e.path for e in spec_errors(spec)] == ["data.cid"]


def test_jobspec_nan_cannot_be_canonicalized() -> None:
    with pytest.raises(SpecInvalid):
        canonical_bytes({"x": float("nan")})


def test_shipped_example_specs_are_valid_for_this_repops_version() -> None:
    # The README's quick start submits these files as they are.
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "deploy" / "examples").glob("*.json"))
    assert examples
    for path in examples:
        raw = json.loads(path.read_text())
        assert spec_errors(raw) == [], path.name
