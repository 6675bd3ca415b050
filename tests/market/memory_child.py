"""Child process for the bounded-memory tests: add a file and read it back under a hard limit.

Run as ``python -m tests.market.memory_child BACKEND LOCATION FILE LIMIT_BYTES``.
It caps its own data segment (RLIMIT_DATA: heap, anonymous mappings, thread
stacks) at LIMIT_BYTES before importing the store, adds FILE, streams it back,
and prints one JSON line: the CID, the sha256 of what came back, the peak RSS and
the timings.  Any MemoryError or store error exits non-zero with its message.
"""

from __future__ import annotations

import hashlib
import json
import resource
import sys
import time


def _peak_rss() -> int:
    """This process image's peak RSS in bytes.

    VmHWM, not ru_maxrss: Linux carries ru_maxrss across fork and execve, so a
    child of a big pytest process would report its parent's footprint.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    backend, location, path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

    from market.store import EmbeddedStore, KuboStore

    store = EmbeddedStore(location) if backend == "embedded" else KuboStore(location)
    with store:
        started = time.perf_counter()
        cid = store.add_file(path)
        added = time.perf_counter()
        digest = hashlib.sha256()
        size = 0
        for piece in store.stream(cid):
            digest.update(piece)
            size += len(piece)
        read = time.perf_counter()
    report_peak = _peak_rss()
    report = {
        "cid": cid,
        "sha256": digest.hexdigest(),
        "size": size,
        "peak_rss": report_peak,
        "add_s": added - started,
        "get_s": read - added,
    }
    sys.stdout.write(json.dumps(report) + "\n")


if __name__ == "__main__":
    main()
