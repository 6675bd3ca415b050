"""Files a role keeps in its state directory: atomic writes and its own secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_BYTES = 32


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a reader sees the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def own_secret(path: Path) -> bytes:
    """The role's random secret at `path`, created (mode 0600) on first use.

    Nobody else can predict what it seeds: a whistleblower's segment sampling, for one.
    """
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        text = ""
    if len(text) == 2 * SECRET_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if text:
        raise ValueError(f"{path} does not hold a {SECRET_BYTES}-byte hex secret")
    secret = secrets.token_bytes(SECRET_BYTES)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".new"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(path.with_name(path.name + ".new"), path)
    return secret
