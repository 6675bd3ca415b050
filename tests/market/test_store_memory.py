"""Bounded memory: a file bigger than the process may allocate goes in and out of each backend.

The work runs in a child process (`memory_child`) whose data segment is capped
with RLIMIT_DATA; it also reports its peak RSS, which must stay far below the
file size.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from market.ipfsd import IpfsDaemon
from tests.market.helpers import write_pseudo_random

MiB = 1024 * 1024
REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_child(backend: str, location: str, path: Path, limit: int) -> dict[str, object]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.market.memory_child",
            backend,
            location,
            str(path),
            str(limit),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report: dict[str, object] = json.loads(result.stdout)
    return report


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while piece := handle.read(MiB):
            digest.update(piece)
    return digest.hexdigest()


def _check_both_backends(
    ipfs_daemon: IpfsDaemon, tmp_path: Path, size: int, limit: int, rss_bound: int
) -> None:
    path = write_pseudo_random(tmp_path / "big.bin", size, seed=42)
    expected_sha = _sha256_file(path)
    reports = {
        "embedded": _run_child("embedded", str(tmp_path / "embedded"), path, limit),
        "kubo": _run_child("kubo", ipfs_daemon.api_url, path, limit),
    }
    for name, report in reports.items():
        assert report["size"] == size, name
        assert report["sha256"] == expected_sha, name
        assert isinstance(report["peak_rss"], int)
        assert report["peak_rss"] < rss_bound, (name, report)
    assert reports["embedded"]["cid"] == reports["kubo"]["cid"]


def test_store_160MB_file_under_128MiB_limit_round_trips_in_both_backends(
    ipfs_daemon: IpfsDaemon, tmp_path: Path
) -> None:
    _check_both_backends(ipfs_daemon, tmp_path, 160 * MiB, 128 * MiB, rss_bound=100 * MiB)


@pytest.mark.slow
def test_store_512MB_file_under_256MiB_limit_round_trips_in_both_backends(
    ipfs_daemon: IpfsDaemon, tmp_path: Path
) -> None:
    _check_both_backends(ipfs_daemon, tmp_path, 512 * MiB, 256 * MiB, rss_bound=100 * MiB)


def test_memory_child_over_limit_allocation_fails() -> None:
    # The cap must really bite, or the tests above prove nothing.
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_DATA, (128 << 20, 128 << 20));"
        "b = bytearray(160 << 20)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, check=False)
    assert result.returncode != 0
    assert b"MemoryError" in result.stderr
