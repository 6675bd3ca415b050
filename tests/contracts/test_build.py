"""The committed artifacts and chain/generated.py are exactly what the pinned compiler produces."""

from __future__ import annotations

import copy
import json
from enum import IntEnum
from typing import Any

import pytest

from chain import generated
from contracts import build


@pytest.fixture(scope="module")
def solc_output() -> dict[str, Any]:
    """One compilation of our sources for the tests that read solc's output."""
    return build.compile_sources()


def test_build_from_sources_matches_committed_outputs(solc_output: dict[str, Any]) -> None:
    result = build.build(solc_output)
    assert build.stale_files(result) == []


def test_build_artifacts_carry_regeneration_header_and_pinned_compiler() -> None:
    for path in sorted(build.ARTIFACTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["_generated"] == build.HEADER, path
        assert data["compiler"]["solc"] == build.SOLC_VERSION, path
    assert build.HEADER in build.GENERATED_PY.read_text()


def test_build_detects_an_edited_artifact(tmp_path, monkeypatch, solc_output) -> None:
    result = build.build(solc_output)
    artifacts = tmp_path / "contracts" / "artifacts"
    artifacts.mkdir(parents=True)
    (tmp_path / "chain").mkdir()
    for rel, text in result.files.items():
        (tmp_path / rel).write_text(text)
    monkeypatch.setattr(build, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(build, "ARTIFACTS_DIR", artifacts)
    assert build.stale_files(result) == []
    market = artifacts / "JobMarket.json"
    market.write_text(market.read_text().replace('"optimizerRuns": 200', '"optimizerRuns": 201'))
    (artifacts / "Stray.json").write_text("{}")
    assert build.stale_files(result) == [
        "contracts/artifacts/JobMarket.json",
        "contracts/artifacts/Stray.json",
    ]


def test_solc_wrapper_reports_the_pinned_version() -> None:
    import solcx

    assert str(solcx.wrapper.get_solc_version(build.SOLC_WRAPPER)) == build.SOLC_VERSION


def _abi_errors(output: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every custom error in our compiled ABIs, by name."""
    found: dict[str, dict[str, Any]] = {}
    for _, _, data in build._iter_our_contracts(output):
        for entry in data["abi"]:
            if entry["type"] == "error":
                found[entry["name"]] = entry
    return found


def test_every_custom_error_of_our_sources_has_dev_and_a_param_per_argument(
    solc_output: dict[str, Any],
) -> None:
    assert build.undocumented_errors(solc_output) == []
    # What was checked: every error our three subsystems declare, as the ABIs carry them.
    ours = build._our_error_names(solc_output)
    assert {"WrongStatus", "WrongGameStatus", "WrongRulingPhase", "ZeroAddress"} <= ours
    assert ours <= set(_abi_errors(solc_output))
    for name in ours:
        assert generated.ERRORS_BY_SELECTOR[getattr(generated, name).selector].__name__ == name


def test_undocumented_errors_names_a_missing_param_and_a_missing_dev(
    solc_output: dict[str, Any],
) -> None:
    output = copy.deepcopy(solc_output)
    market = output["contracts"]["contracts/src/market/JobMarket.sol"]["JobMarket"]
    doc = market["devdoc"]["errors"]["WrongStatus(uint256,uint8,uint8)"][0]
    del doc["params"]["actual"]
    del market["devdoc"]["errors"]["ZeroReward()"][0]["details"]
    assert build.undocumented_errors(output) == [
        "JobMarket: WrongStatus(uint256,uint8,uint8) has no @param actual",
        "JobMarket: ZeroReward() has no @dev",
    ]
    with pytest.raises(build.BuildError, match="has no @param actual"):
        build.build(output)


def test_generated_errors_type_every_enum_argument_the_abi_declares(
    solc_output: dict[str, Any],
) -> None:
    typed = 0
    for name, entry in _abi_errors(solc_output).items():
        cls = getattr(generated, name)
        for i, arg in enumerate(entry["inputs"]):
            internal = arg["internalType"]
            if internal.startswith("enum "):
                enum = getattr(generated, internal.split()[-1].split(".")[-1])
                assert issubclass(enum, IntEnum)
                assert cls.enum_types[i] is enum, (name, arg["name"])
                typed += 1
            elif cls.enum_types:
                assert cls.enum_types[i] is None, (name, arg["name"])
    # JobMarket: WrongStatus x2, NotExpired; DisputeGame: WrongGameStatus, WrongLevel and
    # WrongKind x2 each, NotYourTurn, NotParty, ClockExpired, ClockNotExpired; ArbiterReferee:
    # WrongRulingPhase x2.
    assert typed == 15


def test_error_built_from_raw_values_holds_enum_members() -> None:
    err = generated.WrongStatus((7, 3, 1))
    assert err.values == (7, generated.JobStatus.Submitted, generated.JobStatus.Open)
    assert type(err.args_by_name["actual"]) is generated.JobStatus
    assert str(err) == "WrongStatus(jobId=7, expected=Submitted, actual=Open)"
