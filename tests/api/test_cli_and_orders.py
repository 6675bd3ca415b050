"""The `assay` CLI (job submit/status/watch, deploy) against the served API and anvil, and
the off-chain EIP-712 digest against the contract's own `orderDigest`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chain.devnet import start_devnet
from deploy.cli import main as assay_main
from deploy.cli import runtime_matches
from frontend_api.chainview import job_terms
from frontend_api.orders import OrderTerms, digest, job_order_typed_data
from submitter.client import prepare_spec
from tests.fixtures.api import DATASET, ApiStack, ServedApi, base_spec, digits_file


def _key_file(tmp_path: Path, stack: ApiStack, index: int) -> Path:
    path = tmp_path / f"key{index}"
    path.write_text("0x" + bytes(stack.account(index).key).hex())
    path.chmod(0o600)
    return path


def test_order_digest_matches_contract_order_digest(stack: ApiStack) -> None:
    account = stack.account(2)
    sealed = prepare_spec(base_spec(), DATASET)
    nonce = stack.market.order_nonce(account.address)
    order = OrderTerms(
        spec_hash=sealed.hash,
        spec_cid=sealed.cid,
        reward=7,
        solver_stake=3,
        challenger_bond=1,
        claim_deadline=2_000_000_000,
        submit_window=60,
        challenge_window=60,
        steps_per_checkpoint=5,
        checkpoint_count=5,
        submitter=account.address,
        nonce=nonce,
        deadline=2_000_000_000,
    )
    ours = digest(job_order_typed_data(stack.deployment.chain_id, stack.market.address, order))
    fn = stack.market._c.functions.orderDigest(
        job_terms(order).as_tuple(), account.address, order.deadline
    )
    assert ours == bytes(fn.call())
    theirs = stack.market.job_order_typed_data(
        job_terms(order), account.address, nonce, order.deadline
    )
    assert ours == digest(theirs)


def test_cli_job_submit_wait_then_status(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(base_spec()))
    data = tmp_path / "data.bin"
    data.write_bytes(digits_file(salt=5))
    key = _key_file(tmp_path, stack, 5)
    before = stack.job_count()
    code = assay_main(
        [
            "job",
            "--api",
            api_server.url,
            "submit",
            str(spec),
            "--data",
            str(data),
            "--key",
            str(key),
            "--reward",
            "1.5",
            "--stake",
            "1",
            "--bond",
            "0.5",
            "--wait",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert stack.job_count() == before + 1
    assert "posted" in out
    stack.indexer().sync_once()
    job_id = stack.job_count()
    assert assay_main(["job", "--api", api_server.url, "--json", "status", str(job_id)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["job_id"] == job_id and shown["reward"] == str(15 * 10**17)


def test_cli_job_submit_bad_spec_exits_2_naming_field(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = base_spec()
    bad["steps"] = 0
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(bad))
    key = _key_file(tmp_path, stack, 5)
    before = stack.job_count()
    code = assay_main(
        [
            "job",
            "--api",
            api_server.url,
            "submit",
            str(spec),
            "--data-cid",
            "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            "--key",
            str(key),
            "--reward",
            "1",
            "--stake",
            "1",
            "--bond",
            "1",
        ]
    )
    assert code == 2
    assert "steps" in capsys.readouterr().out
    assert stack.job_count() == before


def test_cli_job_watch_returns_when_job_ends(
    stack: ApiStack, api_server: ServedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    body = stack.signed(stack.account(6))
    sub = stack.api.submit(body, DATASET)
    job_id = stack.wait_state(sub["id"])["job_id"]
    stack.market.as_account(stack.account(6)).cancel(job_id)
    stack.indexer().sync_once()
    assert (
        assay_main(
            [
                "job",
                "--api",
                api_server.url,
                "watch",
                str(job_id),
                "--interval",
                "0.1",
                "--timeout",
                "10",
            ]
        )
        == 0
    )
    assert "Cancelled" in capsys.readouterr().out


def test_assay_deploy_verifies_and_writes_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    node = start_devnet(accounts=1)
    try:
        key = tmp_path / "deployer.key"
        key.write_text("0x" + bytes(node.accounts[0].key).hex())
        key.chmod(0o600)
        out = tmp_path / "deployment.json"
        wrong = assay_main(
            [
                "deploy",
                "--rpc",
                node.rpc_url,
                "--key",
                str(key),
                "--chain-id",
                "1",
                "--yes",
                "--out",
                str(out),
            ]
        )
        assert wrong == 2 and not out.exists()
        assert "not 1" in capsys.readouterr().out
        code = assay_main(
            [
                "deploy",
                "--rpc",
                node.rpc_url,
                "--key",
                str(key),
                "--chain-id",
                "31337",
                "--yes",
                "--out",
                str(out),
            ]
        )
        text = capsys.readouterr().out
        assert code == 0, text
        deployment = json.loads(out.read_text())
        assert {"WorkToken", "JobMarket", "DisputeGame", "ArbiterReferee"} <= set(
            deployment["addresses"]
        )
        assert text.count("verified") == 4
        again = assay_main(
            ["deploy", "--rpc", node.rpc_url, "--key", str(key), "--yes", "--out", str(out)]
        )
        assert again == 2  # refuses to overwrite without --force
    finally:
        node.stop()


def test_runtime_matches_allows_only_immutable_slots() -> None:
    push32_zero = bytes([0x7F]) + bytes(32)
    code = bytes([0x60, 0x01]) + push32_zero + bytes([0x00])
    filled = bytes([0x60, 0x01]) + bytes([0x7F]) + b"\x11" * 32 + bytes([0x00])
    assert runtime_matches(code, filled)
    assert not runtime_matches(code, bytes([0x60, 0x02]) + filled[2:])
    assert not runtime_matches(code, filled + b"\x00")
