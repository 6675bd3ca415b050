"""The Solidity fuzz tests of DissectionLib and ClockLib (contracts/test/*.t.sol), run by forge.

tests/contracts/test_forge.py runs the whole forge suite; this module pins that the two
dispute libraries' fuzz tests exist and pass, so deleting or renaming one fails here.
"""

from __future__ import annotations

import subprocess

from chain.devnet import node_modules
from contracts.build import CONTRACTS_DIR

EXPECTED = (
    "testFuzz_partsIsMinOfArityAndWidth",
    "testFuzz_boundariesStartAtLoEndAtHiAndStrictlyIncrease",
    "testFuzz_partsAreBalanced",
    "testFuzz_narrowIntervalSplitsIntoUnitParts",
    "test_fullRangeWithMaxArityDoesNotOverflow",
    "testFuzz_chargeLeavesRemainingMinusElapsedOrExpires",
    "testFuzz_expiresExactlyOneSecondAfterTheBudget",
    "testFuzz_chargingInTwoPiecesEqualsChargingOnce",
    "testFuzz_zeroElapsedCostsNothing",
)


def test_lib_fuzz_dissection_and_clock_libraries_pass() -> None:
    forge = node_modules() / ".bin" / "forge"
    result = subprocess.run(
        [
            str(forge),
            "test",
            "--root",
            str(CONTRACTS_DIR),
            "--match-contract",
            "^(DissectionLibTest|ClockLibTest)$",
        ],
        cwd=CONTRACTS_DIR,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"{len(EXPECTED)} tests passed, 0 failed" in out, out
    for name in EXPECTED:
        assert f"[PASS] {name}(" in out, f"{name} missing or failing:\n{out}"
