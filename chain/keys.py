"""Load the signing key a role runs with, from a file that never leaves the machine.

A key file holds one hex private key (with or without 0x), nothing else.  Errors a user
can cause (missing file, wrong format, world-readable file) are one-line KeyFileError.
"""

from __future__ import annotations

import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chain.errors import ChainError


class KeyFileError(ChainError):
    """The key file is missing, unreadable or not a hex private key."""


def load_key(path: Path, *, allow_group_readable: bool = False) -> LocalAccount:
    """The account whose private key `path` holds."""
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise KeyFileError(f"cannot read key file {path}: {exc.strerror}") from exc
    if mode & stat.S_IROTH or (mode & stat.S_IRGRP and not allow_group_readable):
        raise KeyFileError(f"key file {path} is readable by others: chmod 600 {path}")
    hex_key = text.removeprefix("0x")
    if len(hex_key) != 64:
        raise KeyFileError(f"key file {path} must hold one 32-byte hex private key")
    try:
        account: LocalAccount = Account.from_key(bytes.fromhex(hex_key))
    except ValueError as exc:
        raise KeyFileError(f"key file {path} is not a valid private key") from exc
    return account


def write_key(path: Path, account: LocalAccount) -> None:
    """Write `account`'s key to `path`, readable by its owner only (devnet and tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text("0x" + bytes(account.key).hex() + "\n")
