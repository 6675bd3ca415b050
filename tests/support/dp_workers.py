"""Worker drills for the data-parallel tests: a real `roles.dataparallel` worker with a
slow or a broken executor.

    python -m tests.support.dp_workers slow RANK SECONDS PACE RUN_DIR --device D --timeout T
    python -m tests.support.dp_workers diverge RANK RUN_DIR --device D --timeout T

``slow``: every rank sleeps PACE seconds per step inside its compute phase and rank RANK
SECONDS more (a straggler).  ``diverge``: rank RANK adds one ulp to the first value of
the first (by name) output that is computed after the exchange (a broken machine): the ranks' states
differ at the next checkpoint.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from repops import parallel
from roles import dataparallel


def _slow(rank: int, extra: float, pace: float) -> type[parallel.ShardedExecutor]:
    class Slow(parallel.ShardedExecutor):
        def run_local(self, feeds: Mapping[str, torch.Tensor]) -> list[torch.Tensor | None]:
            time.sleep(pace + (extra if self.rank == rank else 0.0))
            return super().run_local(feeds)

    return Slow


def _diverge(rank: int) -> type[parallel.ShardedExecutor]:
    class Diverge(parallel.ShardedExecutor):
        def run_shared(self, vals: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
            out = super().run_shared(vals)
            if self.rank == rank:
                shared = [
                    self.tape.outputs[n]
                    for n in sorted(self.tape.outputs)
                    if self.plan.owner[self.tape.outputs[n]] == parallel.SHARED
                ]
                nid = shared[0]
                v = out[nid]
                assert v is not None
                flat = v.reshape(-1).clone()
                flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf")))
                out[nid] = flat.reshape(v.shape)
            return out

    return Diverge


def main(argv: list[str]) -> int:
    mode = argv[0]
    if mode == "slow":
        ex = _slow(int(argv[1]), float(argv[2]), float(argv[3]))
        rest = argv[4:]
    elif mode == "diverge":
        ex = _diverge(int(argv[1]))
        rest = argv[2:]
    else:
        raise SystemExit(f"unknown drill {mode!r}")
    run_dir, device, timeout = rest[0], rest[rest.index("--device") + 1], rest[-1]
    try:
        return dataparallel.worker_main(Path(run_dir), device, float(timeout), executor=ex)
    except dataparallel.WorkersDiverged as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
