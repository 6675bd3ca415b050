"""The solver's data-parallel plumbing that needs no chain: which jobs go to W workers,
and the workers a killed solver left running in a run directory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from solver.journal import Journal
from solver.trainer import Trainer, _stop_stale_workers


def _sleeper(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", *args])


def test_stale_workers_naming_the_run_dir_are_stopped_and_no_other_process(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "jobs" / "1" / "dataparallel"
    run_dir.mkdir(parents=True)
    stale = _sleeper(str(run_dir), "--device", "cpu")
    other = _sleeper(str(tmp_path / "elsewhere"))
    try:
        time.sleep(0.2)
        info = {"attempt": 0, "port": 1, "pids": [stale.pid, other.pid]}
        (run_dir / "workers.json").write_text(json.dumps(info))
        _stop_stale_workers(run_dir)
        assert stale.wait(5) != 0  # terminated
        assert other.poll() is None  # not named the run dir: left alone
    finally:
        for p in (stale, other):
            p.kill()
            p.wait()


def test_no_workers_file_or_a_garbled_one_stops_nothing(tmp_path: Path) -> None:
    _stop_stale_workers(tmp_path)
    (tmp_path / "workers.json").write_text("{not json")
    _stop_stale_workers(tmp_path)


def _ctx(micro: int) -> Any:
    return SimpleNamespace(program=SimpleNamespace(micro_batches=micro))


def test_world_for_trains_on_w_workers_only_when_w_divides_the_micro_batches(
    tmp_path: Path,
) -> None:
    journal = Journal(tmp_path)
    cpu = torch.device("cpu")
    store: Any = None
    assert Trainer(journal, store, cpu).world_for(_ctx(4)) == (1, None)
    two = Trainer(journal, store, cpu, world_size=2)
    assert two.world_for(_ctx(4)) == (2, None)
    assert two.world_for(_ctx(3)) == (
        1,
        "--world-size 2 does not divide data.micro_batches 3",
    )
