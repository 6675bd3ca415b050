"""Data-parallel training on real worker processes (torch.distributed, gloo on loopback).

The state after every checkpoint is the single-process state for W = 1, 2 and 4 workers
(zoo MLP through the launcher; an exported model through `assay train --local`); the
documented multi-machine command (`torchrun ... -m roles.dataparallel worker`) gives the
same hash; a worker killed mid-run is reported lost and the run resumes from the last
checkpoint bit for bit; a straggler shows in the status; a worker whose state differs is
caught at the next checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from deploy.cli import main
from jobspec.factory import mlp_spec
from repops import data as data_mod
from repops import hashing, stio
from repops.program import Program, build_program, load_checkpoint, train_checkpoints
from roles import dataparallel as dp
from tests.repops.test_lowering_cli import Wide

ROOT = Path(__file__).resolve().parents[2]
DIGITS_BYTES = data_mod.build_digits()
DIGITS = data_mod.Dataset.from_bytes(DIGITS_BYTES)
DRILL = (sys.executable, "-m", "tests.support.dp_workers")


def _spec(steps: int = 8, k: int = 2, micro: int = 4) -> dict[str, Any]:
    spec = mlp_spec(batch_size=16, steps=steps, checkpoint_interval=k)
    spec["data"]["micro_batches"] = micro
    return spec


def _single(spec: dict[str, Any]) -> tuple[Program, list[bytes]]:
    program = build_program(spec)
    return program, train_checkpoints(program, DIGITS)


def _ckpt_hashes(program: Program, run: Path) -> list[bytes]:
    paths = sorted(run.glob("ckpt-*.safetensors"))
    return [hashing.state_hash(load_checkpoint(program, p.read_bytes())) for p in paths]


def test_one_two_and_four_workers_write_the_single_process_checkpoints(tmp_path: Path) -> None:
    spec = _spec()
    program, want = _single(spec)
    for world in (1, 2, 4):
        run = tmp_path / f"w{world}"
        dp.prepare_run(run, spec, DIGITS_BYTES)
        res = dp.launch(run, world, threads=1)
        assert res.attempts == 1 and not res.events
        assert _ckpt_hashes(program, run) == want, world
        assert len(res.losses) == program.steps
        status = dp.read_status(run)
        assert status is not None and status.step == program.steps
        assert [r.rank for r in status.ranks] == list(range(world))


def test_a_world_size_that_does_not_divide_the_micro_batches_is_refused(tmp_path: Path) -> None:
    dp.prepare_run(tmp_path, _spec(micro=4), DIGITS_BYTES)
    with pytest.raises(dp.RunInvalid, match=r"world size 3 must divide data\.micro_batches 4"):
        dp.launch(tmp_path, 3)
    with pytest.raises(dp.RunInvalid, match=r"another job's spec\.json"):
        dp.prepare_run(tmp_path, _spec(micro=2), DIGITS_BYTES)


def _assay(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
    )


def test_assay_train_local_ends_with_one_state_hash_for_every_world_size(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    torch.manual_seed(1)
    b = torch.export.Dim("batch")
    ex = (torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    model = tmp_path / "wide.pt2"
    torch.export.save(torch.export.export(Wide(), ex, dynamic_shapes=({0: b}, {0: b})), model)
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(128, 6, generator=gen)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    data = tmp_path / "data.safetensors"
    data.write_bytes(stio.dumps({"inputs": x, "targets": y}))
    common = ["train", "--local", "--model", str(model), "--data", str(data), "--steps", "6"]
    common += ["--batch-size", "16", "--micro-batches", "4", "--checkpoint-interval", "2"]
    common += ["--threads", "1"]
    runs = {}
    for world in (None, 1, 2, 4):  # concurrently: most of each run is starting python
        extra = [] if world is None else ["--world-size", str(world)]
        runs[world] = _assay(*common, *extra, "--out", str(tmp_path / f"run-{world}"))
    hashes = {}
    for world, proc in runs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out
        lines = out.strip().splitlines()
        assert lines[-2].startswith("final_loss: ")
        assert re.fullmatch(r"state_hash: [0-9a-f]{64}", lines[-1])
        hashes[world] = lines[-1]
    assert len(set(hashes.values())) == 1, hashes
    assert (tmp_path / "run-2" / "ckpt-0003.safetensors").read_bytes() == (
        tmp_path / "run-None" / "ckpt-0003.safetensors"
    ).read_bytes()
    assert main([*common, "--world-size", "3", "--out", str(tmp_path / "bad")]) == 1
    err = " ".join(capsys.readouterr().out.split())
    assert "--world-size 3 must divide --micro-batches 4" in err


def test_the_documented_two_machine_torchrun_launch_gives_the_same_state_hash(
    tmp_path: Path,
) -> None:
    """README's two-machine commands, both machines on loopback: machine 1 is given a
    run directory that does not exist (rank 0 sends it everything)."""
    spec = _spec(steps=4)
    _program, want = _single(spec)
    run = tmp_path / "run"
    dp.prepare_run(run, spec, DIGITS_BYTES)
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    port = str(dp.free_port())
    procs = [
        subprocess.Popen(
            [
                *(str(torchrun), "--nnodes", "2", "--node-rank", str(node)),
                *("--nproc-per-node", "1", "--master-addr", "127.0.0.1", "--master-port", port),
                *("-m", "roles.dataparallel", "worker", str(where)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for node, where in ((0, run), (1, tmp_path / "not-here"))
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert f"state_hash: {want[-1].hex()}" in outs[0].splitlines()
    assert not (tmp_path / "not-here").exists()
    assert _ckpt_hashes(_program, run) == want


def test_a_killed_worker_is_reported_and_the_run_resumes_bit_identically(tmp_path: Path) -> None:
    spec = _spec(steps=16, k=2)
    program, want = _single(spec)
    dp.prepare_run(tmp_path, spec, DIGITS_BYTES)
    statuses: list[dp.Status] = []
    events: list[dp.Event] = []
    killed: list[int] = []

    def kill_rank_1_once(st: dp.Status) -> None:
        statuses.append(st)
        if not killed and st.step >= 5:
            pids = json.loads((tmp_path / "workers.json").read_text())["pids"]
            os.kill(pids[1], signal.SIGKILL)
            killed.append(st.step)

    # rank 1 is also 0.15 s slower per step than rank 0: a straggler
    drill = (*DRILL, "slow", "1", "0.15", "0.05")
    res = dp.launch(
        tmp_path,
        2,
        threads=1,
        worker_cmd=drill,
        on_status=kill_rank_1_once,
        on_event=events.append,
        timeout_s=30,
    )
    assert res.attempts == 2
    assert [e.kind for e in events] == ["lost", "restart"]
    assert events[0].ranks == (1,) and "rank 1 killed by SIGKILL" in events[0].text
    assert re.search(r"restarting 2 workers from step (4|6)", events[1].text), events[1].text
    assert any("r1" in s.line() and "LOST" in s.line() for s in statuses)
    assert any(s.ranks[1].state == "straggler" and "STRAGGLER" in s.line() for s in statuses)
    assert all(s.ranks[0].state == "ok" for s in statuses)
    assert _ckpt_hashes(program, tmp_path) == want
    assert hashing.state_hash(load_checkpoint(program, res.state)) == want[-1]
    assert len(res.losses) == program.steps


def test_a_worker_that_computes_other_bits_is_caught_at_the_checkpoint(tmp_path: Path) -> None:
    spec = _spec(steps=4, k=2)
    dp.prepare_run(tmp_path, spec, DIGITS_BYTES)
    events: list[dp.Event] = []
    with pytest.raises(dp.LaunchFailed, match="workers failed 1 times"):
        dp.launch(
            tmp_path,
            2,
            threads=1,
            worker_cmd=(*DRILL, "diverge", "1"),
            max_restarts=0,
            on_event=events.append,
            timeout_s=30,
        )
    assert events and events[0].kind == "lost"
    assert "at step 2 ranks [1] hold another state" in events[0].text
    assert not (tmp_path / "ckpt-0001.safetensors").exists()  # nothing diverged is written


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_run_directory_restarted_after_the_launcher_died_resumes(tmp_path: Path) -> None:
    """The launcher itself killed (SIGKILL): its workers die with it, and launching again
    on the same directory resumes from its last checkpoint."""
    spec = _spec(steps=12, k=2)
    program, want = _single(spec)
    dp.prepare_run(tmp_path, spec, DIGITS_BYTES)
    code = (
        "import sys; from pathlib import Path; from roles import dataparallel as dp; "
        f"dp.launch(Path({str(tmp_path)!r}), 2, threads=1, "
        f"worker_cmd={(*DRILL, 'slow', '0', '0', '0.1')!r})"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=ROOT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        st = dp.read_status(tmp_path)
        if st is not None and st.step >= 5:
            break
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    pids = json.loads((tmp_path / "workers.json").read_text())["pids"]
    deadline = time.monotonic() + 30  # the workers die with their launcher
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not any(_alive(p) for p in pids)
    done = dp.read_status(tmp_path)
    assert done is not None and 5 <= done.step < program.steps
    seen: list[int] = []
    res = dp.launch(tmp_path, 2, threads=1, on_status=lambda st: seen.append(st.step))
    assert res.attempts == 1
    assert min(seen) > 2  # it did not start over
    assert _ckpt_hashes(program, tmp_path) == want
    assert len(res.losses) == program.steps
