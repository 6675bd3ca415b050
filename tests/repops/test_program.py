"""Job spec validation, deterministic tape construction and initial state."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from jobspec import schema
from repops import REPOPS_VERSION, SpecInvalid
from repops.errors import TapeError
from repops.hashing import state_hash
from repops.program import (
    DATASETS,
    MAX_STEPS,
    build_program,
    init_state,
    spec_errors,
    validate_spec,
)


def paths(spec: dict[str, Any]) -> set[str]:
    return {e.path for e in spec_errors(spec)}


def test_validate_spec_good_specs_have_no_errors(
    mlp_spec: dict[str, Any], gpt_spec: dict[str, Any]
) -> None:
    assert spec_errors(mlp_spec) == []
    assert spec_errors(gpt_spec) == []
    validate_spec(mlp_spec)
    assert REPOPS_VERSION == "repops-2"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda s: s["program"]["model"].update(name="resnet"), "program.model.name"),
        (lambda s: s.update(steps=7), "checkpoint_interval"),
        (lambda s: s.update(repops_version="repops-0"), "repops_version"),
        (
            lambda s: s["program"]["model"]["config"].update(in_features=63),
            "program.model.config.in_features",
        ),
        (
            lambda s: s["program"]["model"]["config"].update(hidden="64"),
            "program.model.config.hidden",
        ),
        (lambda s: s["program"]["optimizer"].update(lr=-1.0), "program.optimizer.lr"),
        (lambda s: s["program"]["lr_schedule"].update(name="step"), "program.lr_schedule.name"),
        (
            lambda s: s["data"].update(dataset="stdlib_chars", format="repops-chars-v1"),
            "data.dataset",
        ),
        (lambda s: s["data"].update(batch_size=0), "data.batch_size"),
        (lambda s: s.pop("data"), "data"),
        (lambda s: s.update(seed=-1), "seed"),
    ],
)
def test_spec_errors_bad_field_named(mutate: Any, path: str, mlp_spec: dict[str, Any]) -> None:
    mutate(mlp_spec)
    assert path in paths(mlp_spec)
    with pytest.raises(SpecInvalid, match=path.replace(".", r"\.")):
        build_program(mlp_spec)


def test_spec_errors_gpt_heads_must_divide_embedding(gpt_spec: dict[str, Any]) -> None:
    gpt_spec["program"]["model"]["config"]["n_head"] = 3
    assert "program.model.config.n_embd" in paths(gpt_spec)


def test_spec_dataset_named_by_format_alone(mlp_spec: dict[str, Any]) -> None:
    del mlp_spec["data"]["dataset"]
    assert spec_errors(mlp_spec) == []
    mlp_spec["data"]["format"] = "repops-images-v9"
    assert paths(mlp_spec) == {"data.format"}


def test_spec_errors_not_an_object() -> None:
    assert paths([1, 2]) == {"$"}  # type: ignore[arg-type]


def test_build_program_twice_same_tape_fingerprint(gpt_spec: dict[str, Any]) -> None:
    a = build_program(gpt_spec)
    b = build_program(gpt_spec)
    assert a.tape.fingerprint() == b.tape.fingerprint()
    assert a.program_hash == b.program_hash
    gpt_spec["program"]["optimizer"]["lr"] = 0.002
    assert build_program(gpt_spec).program_hash != a.program_hash
    gpt_spec["data"]["cid"] = "bafy-anything"
    gpt_spec["program"]["optimizer"]["lr"] = 0.003
    assert build_program(gpt_spec).program_hash == a.program_hash


def test_init_state_deterministic_and_seeded(mlp_spec: dict[str, Any]) -> None:
    prog = build_program(mlp_spec)
    a, b = init_state(prog), init_state(prog)
    assert state_hash(a) == state_hash(b)
    w = a["param.l0.weight"]
    assert float(w.abs().max()) <= 1 / 8 and float(w.std()) > 0.05
    assert a["meta.step"].dtype == torch.int64 and int(a["meta.step"]) == 0
    mlp_spec["seed"] = 4
    assert state_hash(init_state(build_program(mlp_spec))) != state_hash(a)


def test_shared_schema_constants_are_the_engines() -> None:
    # jobspec.schema cannot import repops: these pin its copies of the engine's constants
    assert schema.REPOPS_VERSION == REPOPS_VERSION
    assert schema.DATASET_FORMATS == DATASETS
    assert schema.MAX_STEPS == MAX_STEPS
    from repops.models import MODELS

    for name, mod in MODELS.items():
        assert schema.MODEL_FORMATS[name] == mod.DATASET_FORMATS


def test_engine_spec_invalid_is_the_shared_one(mlp_spec: dict[str, Any]) -> None:
    mlp_spec["steps"] = 0
    with pytest.raises(schema.SpecInvalid) as info:
        build_program(mlp_spec)
    assert isinstance(info.value, SpecInvalid)
    assert [e.path for e in info.value.errors] == ["steps"]
    assert "greater than or equal to 1" in str(info.value)


@pytest.mark.parametrize("device", ["mps", "meta", "xpu"])
def test_executor_refuses_devices_without_repops_kernels(
    device: str, mlp_spec: dict[str, Any]
) -> None:
    prog = build_program(mlp_spec)
    with pytest.raises(TapeError, match=f"cpu or cuda only, not {device}"):
        prog.executor(torch.device(device))
    assert prog.executor(torch.device("cpu")).device == torch.device("cpu")
