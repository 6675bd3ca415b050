"""Runs the Solidity fuzz tests (contracts/test) with forge from npm and the solcjs wrapper."""

from __future__ import annotations

import subprocess

from chain.devnet import node_modules
from contracts.build import CONTRACTS_DIR


def test_forge_fuzz_suite_passes() -> None:
    forge = node_modules() / ".bin" / "forge"
    result = subprocess.run(
        [str(forge), "test", "--root", str(CONTRACTS_DIR)],
        cwd=CONTRACTS_DIR,  # forge resolves foundry.toml's `solc` path from the working dir
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert " 0 failed" in out, out
    assert "[PASS] testFuzz_everyLeafProofVerifies" in out, out
