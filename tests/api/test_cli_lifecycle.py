"""The `assay` CLI over a job's whole life, against the API stack (real anvil, Redis, API).

Flags go anywhere on the line; each error is one line; cancel, withdraw and revoke send
the submitter's own transactions; `job result` downloads the final checkpoint and checks
its state hash against the chain's, and refuses a file that does not match; `dispute show`
prints the bisection; `dataset build|pack` write files the trainer loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from chain.keys import write_key
from chain.types import Cid, Hash32, JobId, Wei
from deploy.cli import main as assay_main
from market.store import open_store
from repops import data as data_mod
from repops import hashing, stio
from repops.artifact import commit_file
from repops.merkle import merkle_root
from tests.fixtures.api import (
    DATASET,
    ONE,
    ApiStack,
    ServedApi,
    base_spec,
    play_synthetic_dispute,
)


def _key(tmp_path: Path, stack: ApiStack, index: int) -> Path:
    path = tmp_path / f"account{index}.key"
    write_key(path, stack.account(index))
    return path


def _flags(stack: ApiStack, api_server: ServedApi) -> list[str]:
    return ["--api", api_server.url, "--rpc", stack.devnet.rpc_url]


def test_cli_global_flags_work_after_the_subcommand(
    stack: ApiStack, api_server: ServedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    played = play_synthetic_dispute(stack, "cli-flags")
    code = assay_main(["job", "status", str(played.job_id), "--json", "--api", api_server.url])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == played.job_id
    code = assay_main(["--json", "--api", api_server.url, "job", "status", str(played.job_id)])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["status"] == "Slashed"


def test_cli_error_is_printed_once(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({**base_spec(), "steps": 0}))
    code = assay_main(
        [
            *(
                "job",
                "submit",
                str(spec),
                "--data-cid",
                "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku",
            ),
            *("--key", str(_key(tmp_path, stack, 5)), "--reward", "1", "--stake", "1"),
            *("--bond", "1", "--api", api_server.url),
        ]
    )
    out = capsys.readouterr().out
    assert code == 2
    assert out.count("error:") == 1
    assert "steps" in out
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    assert len(lines) == len(set(lines)), out


def test_cli_cancel_then_withdraw_refunds_the_reward(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    account = stack.account(7)
    sub = stack.api.submit(stack.signed(account), DATASET)
    job_id = stack.wait_state(sub["id"])["job_id"]
    key = str(_key(tmp_path, stack, 7))
    before = stack.token.balance_of(account.address)
    assert assay_main(["job", "cancel", str(job_id), "--key", key, *_flags(stack, api_server)]) == 0
    assert stack.market.status_of(JobId(job_id)).name == "Cancelled"
    assert assay_main(["job", "withdraw", "--key", key, *_flags(stack, api_server)]) == 0
    out = capsys.readouterr().out
    assert "cancelled job" in out and "withdrew 10.0000 WORK" in out
    assert stack.token.balance_of(account.address) == before + 10 * ONE
    assert assay_main(["job", "cancel", str(job_id), "--key", key, *_flags(stack, api_server)]) == 2
    assert capsys.readouterr().out.count("error:") == 1


def test_cli_revoke_bumps_the_order_nonce(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path
) -> None:
    account = stack.account(8)
    before = stack.market.order_nonce(account.address)
    key = str(_key(tmp_path, stack, 8))
    assert assay_main(["job", "revoke", "--key", key, *_flags(stack, api_server)]) == 0
    assert stack.market.order_nonce(account.address) > before


def _post_result(stack: ApiStack, final_hash: bytes, checkpoint: bytes) -> int:
    """A job claimed and submitted with a one-checkpoint manifest (no training)."""
    from tests.api.test_disputes_view import _account

    submitter = _account(f"result-sub-{final_hash.hex()[:6]}", stack)
    solver = _account(f"result-solver-{final_hash.hex()[:6]}", stack)
    for who in (submitter, solver):
        stack.token.as_account(who).approve(stack.market.address, 1_000 * ONE)
    with open_store(stack.settings.store) as store:
        cid = store.add_bytes(checkpoint)
        manifest = {
            "checkpoints": [
                {"index": 0, "step": 0, "cid": cid, "state_hash": "00" * 32},
                {"index": 1, "step": 1, "cid": cid, "state_hash": final_hash.hex()},
            ],
            "losses": [1.0],
        }
        manifest_cid = store.add_bytes(json.dumps(manifest).encode())
    from chain.contracts import JobTerms

    terms = JobTerms(
        spec_hash=Hash32(b"\x02" * 32),
        spec_cid=Cid("bafkreisyntheticspec"),
        reward=Wei(ONE),
        solver_stake=Wei(ONE),
        challenger_bond=Wei(ONE),
        claim_deadline=stack.devnet.timestamp() + 3_600,
        submit_window=3_600,
        challenge_window=3_600,
        steps_per_checkpoint=1,
        checkpoint_count=2,
    )
    job_id, _ = stack.market.as_account(submitter).post_job(terms)
    stack.market.as_account(solver).claim(job_id)
    files_root = merkle_root([commit_file(checkpoint).root] * 2)
    stack.market.as_account(solver).submit_result(
        job_id, Hash32(final_hash), 2, manifest_cid, Hash32(final_hash), Hash32(files_root)
    )
    stack.indexer().sync_once()
    return int(job_id)


def test_cli_result_downloads_and_verifies_the_final_state_hash(
    stack: ApiStack, api_server: ServedApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "step": torch.tensor([5])}
    checkpoint = stio.dumps(state, {"repops_version": "repops-1"})
    good = _post_result(stack, hashing.state_hash(state), checkpoint)
    out_dir = tmp_path / "model"
    code = assay_main(
        ["job", "result", str(good), "--out", str(out_dir), *_flags(stack, api_server)]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified" in out
    assert (out_dir / f"job{good}-final.safetensors").read_bytes() == checkpoint

    lying = _post_result(stack, b"\x07" * 32, checkpoint)  # chain commits to another state
    code = assay_main(
        ["job", "result", str(lying), "--out", str(out_dir), *_flags(stack, api_server)]
    )
    out = capsys.readouterr().out
    assert code == 2 and "differs from the chain's finalStateHash" in out


def test_cli_dispute_show_prints_the_bisection(
    stack: ApiStack, api_server: ServedApi, capsys: pytest.CaptureFixture[str]
) -> None:
    played = play_synthetic_dispute(stack, "cli-show")
    assert assay_main(["dispute", "show", str(played.game_id), "--api", api_server.url]) == 0
    out = capsys.readouterr().out
    assert "ChallengerWon" in out
    assert "opened at CHECKPOINT level" in out
    assert "entered OP level" in out
    assert "disputed step 13, operator 9" in out
    assert out.count("solver dissected") >= 3
    ruling = httpx.get(f"{api_server.url}/disputes/{played.game_id}").json()["ruling"]
    assert "ruling: Settled, solver lost (committee of 1)" in out
    assert all(v["arbiter"] in out and v["computed_hash"] in out for v in ruling["votes"])


def test_dataset_build_and_pack_write_loadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = tmp_path / "digits.safetensors"
    assert assay_main(["dataset", "build", "digits", "--out", str(built)]) == 0
    assert data_mod.Dataset.from_bytes(built.read_bytes()).format == "repops-digits-v1"
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.integers(0, 17, size=(50, 64)))
    np.save(tmp_path / "y.npy", rng.integers(0, 10, size=50))
    packed = tmp_path / "mine.safetensors"
    code = assay_main(
        [
            "dataset",
            "pack",
            "digits",
            "--x",
            str(tmp_path / "x.npy"),
            "--y",
            str(tmp_path / "y.npy"),
            "--out",
            str(packed),
        ]
    )
    assert code == 0
    ds = data_mod.Dataset.from_bytes(packed.read_bytes())
    assert ds.tensors["train_x"].shape[0] + ds.tensors["test_x"].shape[0] == 50
    (tmp_path / "t.txt").write_text("hello assay, a small corpus of ascii text\n" * 10)
    chars = tmp_path / "chars.safetensors"
    assert (
        assay_main(
            ["dataset", "pack", "chars", "--text", str(tmp_path / "t.txt"), "--out", str(chars)]
        )
        == 0
    )
    assert data_mod.Dataset.from_bytes(chars.read_bytes()).format == "repops-chars-v1"
    capsys.readouterr()
    np.save(tmp_path / "bad.npy", np.full((5, 64), 99))
    np.save(tmp_path / "y5.npy", np.zeros(5, dtype=np.int64))
    code = assay_main(
        [
            "dataset",
            "pack",
            "digits",
            "--x",
            str(tmp_path / "bad.npy"),
            "--y",
            str(tmp_path / "y5.npy"),
            "--out",
            str(tmp_path / "no"),
        ]
    )
    assert code == 2 and "0..16" in capsys.readouterr().out
    assert not (tmp_path / "no").exists()
