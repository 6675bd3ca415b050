"""The conformance gate: committed vectors match here, and a broken kernel is refused by
the self-test, by `assay doctor` and by every role before it acts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from repops import conformance, matmul, numerics, ops
from repops.ops import Op


@pytest.fixture(autouse=True)
def fresh_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conformance, "_passed", False)


def test_every_case_matches_the_committed_vectors() -> None:
    results = conformance.report()
    assert {r.op for r in results} >= {o.value for o in Op if not o.is_leaf}
    assert [r.name for r in results if not r.ok] == []
    conformance.require()


def _off_by_one_ulp(arg: Any, x: list[torch.Tensor]) -> torch.Tensor:
    y = numerics.exp(x[0])
    return torch.nextafter(y, torch.tensor(float("inf")))


def test_broken_exp_kernel_is_refused_naming_op_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ops.KERNELS, Op.EXP, _off_by_one_ulp)
    bad = [r.name for r in conformance.report() if not r.ok]
    assert bad == ["exp/native"]
    with pytest.raises(conformance.ConformanceError, match=r"op exp on path native"):
        conformance.require()


def test_matmul_with_another_chunk_length_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(matmul, "KC", 64)
    bad = [r for r in conformance.report() if not r.ok]
    assert bad and {r.op for r in bad} == {"matmul"}
    msg = conformance.refusal()
    assert msg is not None and "op matmul on path" in msg and "\n" not in msg


def test_vectors_of_another_version_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    doc = json.loads(conformance.VECTORS.read_text())
    doc["repops_version"] = "repops-0"
    path = tmp_path / "v.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setattr(conformance, "VECTORS", path)
    with pytest.raises(conformance.ConformanceError, match="repops-0"):
        conformance.require()


def _role_mains() -> list[tuple[str, Callable[[list[str]], int]]]:
    from arbiter.cli import main as arbiter_main
    from arbiter.whistleblower_cli import main as whistleblower_main
    from solver.cli import main as solver_main

    return [
        ("solver", solver_main),
        ("whistleblower", whistleblower_main),
        ("arbiter", arbiter_main),
    ]


@pytest.mark.parametrize("role", ["solver", "whistleblower", "arbiter"])
def test_roles_refuse_to_act_on_a_broken_kernel(
    role: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(ops.KERNELS, Op.EXP, _off_by_one_ulp)
    main = dict(_role_mains())[role]
    assert main(["run"]) == 2
    out = capsys.readouterr().out
    assert f"{role}:" in out and "op exp on path native" in out


def test_doctor_prints_the_report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from deploy.cli import main

    assert main(["doctor"]) == 0
    assert "this machine conforms" in capsys.readouterr().out
    monkeypatch.setitem(ops.KERNELS, Op.EXP, _off_by_one_ulp)
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  exp" in out and "must not train or judge" in out
