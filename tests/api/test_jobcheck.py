"""A dataset that does not fit the model, and a challenge window too short to re-execute the
job, are refused before any transaction, naming the field and why (market.jobcheck)."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from jobspec.factory import gpt_spec
from market.jobcheck import (
    REFERENCE_RATE,
    WINDOW_FIXED_S,
    check_dataset_fits,
    min_challenge_window,
    reexecution_seconds,
)
from repops import data as data_mod
from repops.errors import RepopsError
from repops.program import batch_for, build_program
from submitter.client import MarketTerms
from tests.api.test_api_jobs import _post
from tests.fixtures.api import TERMS, ApiStack, base_spec, digits_file, safetensors_file

GPT_SPEC: dict[str, Any] = gpt_spec(
    lr=0.01, beta2=0.999, weight_decay=0.0, data_seed=1, steps=20, checkpoint_interval=5, seed=0
)


def chars_file(train: int, top: int = 127) -> bytes:
    tokens = bytes(i * 31 % (top + 1) for i in range(train + 8))
    return safetensors_file(
        {"train": ([train], tokens[:train]), "val": ([8], tokens[train:])},
        {"format": "repops-chars-v1"},
    )


# ----------------------------------------------------------- pure checks (no stack)


def test_check_dataset_fits_accepts_real_and_small_valid_files() -> None:
    assert check_dataset_fits(base_spec(), data_mod.build_digits()) == []
    assert check_dataset_fits(base_spec(), digits_file()) == []
    assert check_dataset_fits(GPT_SPEC, chars_file(100)) == []


BAD: dict[str, tuple[dict[str, Any], bytes, str, str]] = {
    "arbitrary bytes": (base_spec(), b"assay test dataset\n" * 64, "dataset", "not a dataset"),
    "truncated file": (base_spec(), digits_file()[:-1], "dataset", "do not fit"),
    "chars for an mlp": (base_spec(), chars_file(100), "data.dataset", "repops-digits-v1"),
    "digits for a gpt": (GPT_SPEC, digits_file(), "data.dataset", "repops-chars-v1"),
    "label past classes": (
        base_spec(),
        digits_file(label_max=11),
        "program.model.config.classes",
        "label 11",
    ),
    "empty train split": (base_spec(), digits_file(train_rows=0), "dataset", "empty"),
    "corpus shorter than a window": (
        GPT_SPEC,
        chars_file(17),
        "program.model.config.block",
        "17 tokens",
    ),
    "token past the vocabulary": (
        GPT_SPEC,
        safetensors_file(
            {"train": ([40], bytes([200]) * 40), "val": ([4], b"abcd")},
            {"format": "repops-chars-v1"},
        ),
        "program.model.config.vocab",
        "token 200",
    ),
    "wrong tensors": (
        base_spec(),
        safetensors_file({"train": ([4], b"abcd")}, {"format": "repops-digits-v1"}),
        "dataset",
        "exactly the tensors",
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_check_dataset_fits_names_the_field_and_why(kind: str) -> None:
    spec, data, field, says = BAD[kind]
    errors = check_dataset_fits(spec, data)
    assert errors, kind
    assert errors[0].path == field and says in errors[0].reason, errors


@pytest.mark.parametrize("kind", sorted(BAD))
def test_what_the_market_refuses_repops_cannot_train_either(kind: str) -> None:
    """Cross-check with the engine: every refused file fails to load or to give a batch."""
    spec, data, _, _ = BAD[kind]
    program = build_program(spec)
    with pytest.raises(RepopsError):
        batch_for(program, data_mod.Dataset.from_bytes(data), 0)


def test_min_challenge_window_grows_with_the_job() -> None:
    small = base_spec()
    longer = {**base_spec(), "steps": 200, "checkpoint_interval": 5}
    wide = copy.deepcopy(base_spec())
    wide["program"]["model"]["config"]["hidden"] = [4096, 4096]
    assert WINDOW_FIXED_S < min_challenge_window(small) < min_challenge_window(longer)
    assert min_challenge_window(small) < min_challenge_window(wide)
    slower = dataclasses.replace(REFERENCE_RATE, flops_per_s=REFERENCE_RATE.flops_per_s / 100)
    assert reexecution_seconds(wide, slower) > 50 * reexecution_seconds(wide)
    # The demo's and the test suites' MLP jobs stay within their 40-60 s windows.
    assert min_challenge_window(small) <= 40


# ---------------------------------------------------------- through POST /jobs


def test_post_jobs_dataset_not_fitting_the_model_is_422_before_any_tx(stack: ApiStack) -> None:
    data = chars_file(100)
    body = stack.signed(stack.account(7), dataset=data)
    count = stack.job_count()
    response = _post(stack, body, dataset=data)
    assert response.status_code == 422, response.text
    problem = response.json()["errors"][0]
    assert problem["field"] == "spec.data.dataset" and "repops-digits-v1" in problem["reason"]
    assert stack.job_count() == count


def test_post_jobs_arbitrary_bytes_are_not_a_dataset(stack: ApiStack) -> None:
    data = b"assay test dataset\n" * 64
    body = stack.signed(stack.account(7), dataset=data)
    response = _post(stack, body, dataset=data)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "dataset"


def test_post_jobs_challenge_window_too_short_to_reexecute_is_422(stack: ApiStack) -> None:
    spec = {**base_spec(), "steps": 400, "checkpoint_interval": 5}
    least = min_challenge_window(spec)
    terms = MarketTerms(
        reward=TERMS.reward,
        solver_stake=TERMS.solver_stake,
        challenger_bond=TERMS.challenger_bond,
        challenge_window_s=least - 1,
    )
    body = stack.signed(stack.account(7), spec=spec, terms=terms)
    count = stack.job_count()
    response = _post(stack, body)
    assert response.status_code == 422, response.text
    problem = response.json()["errors"][0]
    assert problem["field"] == "order.challenge_window"
    assert f"at least {least} s" in problem["reason"]
    assert stack.job_count() == count


def _graph_spec(fmt: str = "tensors") -> dict[str, Any]:
    from jobspec.factory import artifact, graph_spec

    return graph_spec(artifact("ab" * 32), artifact("cd" * 32), data_format=fmt)


def test_graph_datasets_are_checked_for_structure_by_the_market() -> None:
    import torch

    from market.jobcheck import check_dataset_fits as fits
    from repops import stio

    good = stio.dumps({"inputs": torch.zeros(5, 3), "targets": torch.zeros(5, dtype=torch.int64)})
    assert fits(_graph_spec(), good) == []
    ragged = stio.dumps({"inputs": torch.zeros(5, 3), "targets": torch.zeros(4)})
    assert [e.path for e in fits(_graph_spec(), ragged)] == ["dataset"]
    doubles = stio.dumps({"inputs": torch.zeros(5, 3, dtype=torch.float64)})
    assert "F64" in fits(_graph_spec(), doubles)[0].reason
    stream = stio.dumps({"tokens": torch.arange(50, dtype=torch.int32)})
    assert fits(_graph_spec("tokens"), stream) == []
    assert fits(_graph_spec("tokens"), good)[0].path == "dataset"
    assert fits(_graph_spec("tokens"), stio.dumps({"tokens": torch.zeros(2, 3).long()}))


def test_graph_challenge_window_needs_the_weights_size() -> None:
    import torch

    from market.jobcheck import safetensors_elements
    from repops import stio

    with pytest.raises(ValueError, match="graph"):
        min_challenge_window(_graph_spec())
    weights = stio.dumps({"a": torch.zeros(300, 400), "b": torch.zeros(400)})
    params = safetensors_elements(weights)
    assert params == 300 * 400 + 400
    small = min_challenge_window(_graph_spec(), graph_params=10)
    assert min_challenge_window(_graph_spec(), graph_params=params * 1000) > small
