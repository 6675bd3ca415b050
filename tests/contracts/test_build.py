"""The committed artifacts and chain/generated.py are exactly what the pinned compiler produces."""

from __future__ import annotations

import json

from contracts import build


def test_build_from_sources_matches_committed_outputs() -> None:
    result = build.build()
    assert build.stale_files(result) == []


def test_build_artifacts_carry_regeneration_header_and_pinned_compiler() -> None:
    for path in sorted(build.ARTIFACTS_DIR.glob("*.json")):
        data = json.loads(path.read_text())
        assert data["_generated"] == build.HEADER, path
        assert data["compiler"]["solc"] == build.SOLC_VERSION, path
    assert build.HEADER in build.GENERATED_PY.read_text()


def test_build_detects_an_edited_artifact(tmp_path, monkeypatch) -> None:
    result = build.build()
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
