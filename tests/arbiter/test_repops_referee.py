"""The real referee: re-executing one link of a real repops trace from public data.

A real job (MLP on digits) is trained for a few steps; games are reduced by hand to each
kind of single link (initial state, h_0, an operator, the end link, a link past the
solver's tape) and `RepopsOracle` + `decide` must rule for the honest side, reject a
bundle that is missing or does not match the agreed chain, and never blame the solver for
the referee's own store trouble.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from arbiter.referee import ArbiterError, BundleRejected, decide
from arbiter.repops_oracle import RepopsOracle
from chain.dispute import GameRecord
from chain.generated import GameKind, GameStatus, Level, Party
from chain.types import Address, Cid, Hash32, JobId
from market.store import ArtifactStore, EmbeddedStore, StoreError, compute_cid, open_store
from market.store.cid import DAG_PB, BlockRef
from market.store.unixfs import encode_pbnode
from repops import data as data_mod
from repops import hashing, stio
from repops.artifact import commit_file
from repops.program import Program, State, build_program, init_state, save_checkpoint
from repops.trace import OperandBundle, StepTrace, chain_final, max_bundle_bytes
from roles.realtrace import HonestStepper
from tests.e2e.support import MLP_SPEC, digits_bytes, publish_job
from tests.fixtures.dispute import DisputeEnv

STEP = 3  # the disputed step t


@dataclasses.dataclass
class Job:
    env: DisputeEnv
    store: ArtifactStore
    job_id: JobId
    program: Program
    dataset: data_mod.Dataset
    state_t: State
    trace: StepTrace


@pytest.fixture
def job(dispute_env: DisputeEnv, tmp_path: Path) -> Job:
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    job_id = publish_job(dispute_env, store)
    spec: dict[str, Any] = dict(MLP_SPEC)
    program = build_program(spec)
    dataset = data_mod.Dataset.from_bytes(digits_bytes())
    stepper = HonestStepper()
    state = init_state(program)
    for _ in range(STEP):
        state, _ = stepper.step(program, state, dataset)
    return Job(
        dispute_env, store, job_id, program, dataset, state, stepper.replay(program, state, dataset)
    )


def game(
    job: Job,
    level: Level,
    lo: int,
    hash_lo: bytes,
    hash_hi: bytes,
    bundle: str = "",
    kind: GameKind = GameKind.Trace,
) -> GameRecord:
    """A game awaiting a ruling on [lo, lo + 1], as the contract would hold it."""
    zero = Hash32(bytes(32))
    return GameRecord(
        game_id=1,
        job_id=job.job_id,
        kind=kind,
        solver=Address("0x" + "11" * 20),
        challenger=Address("0x" + "22" * 20),
        status=GameStatus.AwaitingRuling,
        level=level,
        turn=Party.Solver,
        arity=4,
        base=STEP if level == Level.OP else 0,
        lo=lo,
        hi=lo + 1,
        op_count=job.program.tape.num_ops,
        solver_clock=0,
        challenger_clock=0,
        turn_started_at=0,
        rounds=0,
        hash_lo=Hash32(hash_lo),
        hash_hi=Hash32(hash_hi),
        last_op_hash=zero,
        round_hash=zero,
        bundle_cid=Cid(bundle),
    )


def pin_bundle(job: Job, link: int) -> str:
    return str(
        job.store.add_bytes(HonestStepper().bundle(job.program, job.state_t, job.dataset, link))
    )


def oracle(job: Job) -> RepopsOracle:
    return RepopsOracle(job.store, job.env.market)


def test_referee_initial_state_honest_leaf_solver_wins(job: Job) -> None:
    leaf0 = hashing.state_hash(init_state(job.program))
    ruling = decide(game(job, Level.CHECKPOINT, 0, job.program.program_hash, leaf0), oracle(job))
    assert ruling.solver_won and ruling.computed == leaf0


def test_referee_initial_state_forged_leaf_challenger_wins(job: Job) -> None:
    ruling = decide(game(job, Level.CHECKPOINT, 0, bytes(32), b"\x01" * 32), oracle(job))
    assert not ruling.solver_won
    assert ruling.computed == hashing.state_hash(init_state(job.program))


def test_referee_batch_link_needs_no_bundle_and_rules_both_ways(job: Job) -> None:
    h0 = job.trace.chain[0]
    assert decide(game(job, Level.OP, 0, job.trace.state_hash, h0), oracle(job)).solver_won
    wrong = decide(game(job, Level.OP, 0, job.trace.state_hash, b"\x02" * 32), oracle(job))
    assert not wrong.solver_won and wrong.computed == h0


@pytest.mark.parametrize("link", [1, 7, "last_op"])
def test_referee_operator_link_reexecuted_from_bundle(job: Job, link: int | str) -> None:
    j = job.program.tape.num_ops if link == "last_op" else int(link)
    cid = pin_bundle(job, j)
    honest = game(job, Level.OP, j, job.trace.chain[j - 1], job.trace.chain[j], cid)
    assert decide(honest, oracle(job)).solver_won
    lying = dataclasses.replace(honest, hash_hi=Hash32(b"\x03" * 32))
    ruling = decide(lying, oracle(job))
    assert not ruling.solver_won and ruling.computed == job.trace.chain[j]


def test_referee_end_link_catches_a_corrupted_state(job: Job) -> None:
    m = job.program.tape.num_ops
    cid = pin_bundle(job, m + 1)
    honest_end = job.trace.chain[m + 1]
    assert decide(
        game(job, Level.OP, m + 1, job.trace.chain[m], honest_end, cid), oracle(job)
    ).solver_won
    corrupted = {k: v.clone() for k, v in job.trace.new_state.items()}
    name = sorted(k for k in corrupted if k.startswith("param."))[0]
    corrupted[name].view(-1)[0] = torch.nextafter(corrupted[name].view(-1)[0], torch.tensor(1.0))
    forged_end = chain_final(job.trace.chain[m], hashing.state_hash(corrupted))
    ruling = decide(game(job, Level.OP, m + 1, job.trace.chain[m], forged_end, cid), oracle(job))
    assert not ruling.solver_won and ruling.computed == honest_end


def test_referee_bundle_with_a_tampered_input_rejected(job: Job) -> None:
    j = 5
    bundle = OperandBundle.from_bytes(
        HonestStepper().bundle(job.program, job.state_t, job.dataset, j)
    )
    name = sorted(bundle.tensors)[0]
    tensors = dict(bundle.tensors)
    tampered = tensors[name].clone()
    tampered.view(-1)[0] += 1
    tensors[name] = tampered
    cid = job.store.add_bytes(dataclasses.replace(bundle, tensors=tensors).to_bytes())
    g = game(job, Level.OP, j, job.trace.chain[j - 1], job.trace.chain[j], str(cid))
    with pytest.raises(BundleRejected):
        oracle(job).value_after(g)
    assert not decide(g, oracle(job)).solver_won


def test_referee_bundle_for_another_link_rejected(job: Job) -> None:
    cid = pin_bundle(job, 4)
    g = game(job, Level.OP, 5, job.trace.chain[4], job.trace.chain[5], cid)
    ruling = decide(g, oracle(job))
    assert not ruling.solver_won and "link 4" in ruling.reason


def test_referee_bundle_not_matching_the_agreed_prefix_rejected(job: Job) -> None:
    j = 6
    cid = pin_bundle(job, j)
    g = game(job, Level.OP, j, b"\x04" * 32, job.trace.chain[j], cid)  # a different h_{j-1}
    with pytest.raises(BundleRejected, match="agreed"):
        oracle(job).value_after(g)


def test_referee_missing_bundle_rules_against_the_solver(job: Job) -> None:
    never_pinned = str(compute_cid(b"a bundle nobody published").cid)
    g = game(job, Level.OP, 5, job.trace.chain[4], job.trace.chain[5], never_pinned)
    ruling = decide(g, oracle(job))
    assert not ruling.solver_won and "unavailable" in ruling.reason


def test_referee_malformed_bundle_rules_against_the_solver(job: Job) -> None:
    garbage = str(job.store.add_bytes(b"not a safetensors bundle"))
    g = game(job, Level.OP, 5, job.trace.chain[4], job.trace.chain[5], garbage)
    ruling = decide(g, oracle(job))
    assert not ruling.solver_won and "malformed" in ruling.reason


def test_referee_link_past_the_tape_rules_against_the_solver(job: Job) -> None:
    m = job.program.tape.num_ops
    g = game(job, Level.OP, m + 2, b"\x05" * 32, b"\x06" * 32)
    ruling = decide(g, oracle(job))
    assert not ruling.solver_won and "does not exist" in ruling.reason


def test_referee_store_unreachable_is_the_referees_problem(job: Job) -> None:
    dead = RepopsOracle(open_store("http://127.0.0.1:9"), job.env.market)
    g = game(job, Level.OP, 5, job.trace.chain[4], job.trace.chain[5], pin_bundle(job, 5))
    with pytest.raises(ArbiterError):
        dead.value_after(g)


# ---- every bundle failure the solver causes rules against it ------------------------------


def _op_game(job: Job, j: int, cid: str) -> GameRecord:
    return game(job, Level.OP, j, job.trace.chain[j - 1], job.trace.chain[j], cid)


def _forged(job: Job, j: int, **changes: Any) -> str:
    """The honest bundle for link j with some fields replaced, pinned."""
    honest = OperandBundle.from_bytes(
        HonestStepper().bundle(job.program, job.state_t, job.dataset, j)
    )
    return str(job.store.add_bytes(dataclasses.replace(honest, **changes).to_bytes()))


def _directory(job: Job) -> str:
    block = encode_pbnode([], b"\x08\x01")  # a UnixFS directory with no entries
    ref = BlockRef.for_block(DAG_PB, block)
    assert isinstance(job.store, EmbeddedStore)
    path = job.store.block_path(ref.cid)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(block)
    return ref.cid


def _with_tensors(job: Job, j: int, edit: Any) -> str:
    honest = OperandBundle.from_bytes(
        HonestStepper().bundle(job.program, job.state_t, job.dataset, j)
    )
    tensors = dict(honest.tensors)
    edit(tensors)
    return _forged(job, j, tensors=tensors)


FAILURES: dict[str, Any] = {
    "unparseable CID": (lambda job: "not-a-cid", "invalid CID"),
    "no CID posted": (lambda job: "", "no bundle was posted"),
    "oversize": (
        lambda job: str(job.store.add_bytes(bytes(max_bundle_bytes(job.program, 5) + 1))),
        "oversize",
    ),
    "directory": (_directory, "not a file"),
    "not a bundle": (lambda job: str(job.store.add_bytes(b"\x00" * 64)), "malformed"),
    "missing tensor": (lambda job: _with_tensors(job, 5, lambda t: t.clear()), "missing"),
    "extra tensor": (
        lambda job: _with_tensors(job, 5, lambda t: t.update({"in.9": torch.zeros(2)})),
        "extra",
    ),
    "wrong shape": (
        lambda job: _with_tensors(
            job, 5, lambda t: t.update({k: v.reshape(-1)[:1] for k, v in t.items()})
        ),
        "expected",
    ),
    "wrong op": (lambda job: _forged(job, 5, op_index=6), "link 6"),
    "another program": (lambda job: _forged(job, 5, program_hash=b"\x07" * 32), "another"),
    "wrong prefix hashes": (
        lambda job: _forged(job, 5, prefix=(b"\x08" * 32, *job.trace.out_hashes[1:4])),
        "agreed",
    ),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_referee_every_solver_bundle_failure_rules_against_it(job: Job, kind: str) -> None:
    make, says = FAILURES[kind]
    g = _op_game(job, 5, make(job))
    with pytest.raises(BundleRejected, match=says):
        oracle(job).value_after(g)
    ruling = decide(g, oracle(job))
    assert not ruling.solver_won and ruling.computed == bytes(32)


def test_referee_store_misbehaving_is_never_a_ruling(job: Job) -> None:
    class Broken(EmbeddedStore):
        def stream(self, cid: str) -> Iterator[bytes]:
            raise StoreError("daemon answered with garbage")

    assert isinstance(job.store, EmbeddedStore)
    broken = RepopsOracle(Broken(job.store.root), job.env.market)
    with pytest.raises(ArbiterError, match="garbage"):
        broken.value_after(_op_game(job, 5, pin_bundle(job, 5)))


def test_referee_end_link_bundle_is_bounded_by_the_op_not_the_state(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    """A model whose state is larger than any bundle the referee reads: the end link is
    still ruled, honestly and against a forged state, from a bundle without tensors."""
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    spec: dict[str, Any] = copy.deepcopy(MLP_SPEC)
    spec["program"]["model"]["config"]["hidden"] = [256, 256]
    job_id = publish_job(dispute_env, store, hidden=[256, 256])
    program = build_program(spec)
    dataset = data_mod.Dataset.from_bytes(digits_bytes())
    state = init_state(program)
    trace = HonestStepper().replay(program, state, dataset)
    state_bytes = sum(t.numel() * t.element_size() for t in trace.new_state.values())
    m = program.tape.num_ops
    limit = max_bundle_bytes(program, m + 1)
    assert limit < state_bytes // 4  # the whole new state could never be posted
    raw = HonestStepper().bundle(program, state, dataset, m + 1)
    assert len(raw) <= limit
    cid = str(store.add_bytes(raw))
    big = Job(dispute_env, store, job_id, program, dataset, state, trace)
    honest = game(big, Level.OP, m + 1, trace.chain[m], trace.chain[m + 1], cid)
    assert decide(honest, RepopsOracle(store, dispute_env.market)).solver_won
    lying = dataclasses.replace(honest, hash_hi=Hash32(b"\x09" * 32))
    ruling = decide(lying, RepopsOracle(store, dispute_env.market))
    assert not ruling.solver_won and ruling.computed == trace.chain[m + 1]


def test_referee_step_without_a_batch_rules_against_the_solver(
    dispute_env: DisputeEnv, tmp_path: Path
) -> None:
    """A dataset the model cannot read: no honest h_0 exists, so the solver's is false."""
    store = open_store(f"embedded:{tmp_path / 'ipfs'}")
    tokens = torch.arange(300, dtype=torch.uint8) % 128
    chars = stio.dumps({"train": tokens, "val": tokens[:40]}, {"format": "repops-chars-v1"})
    job_id = publish_job(dispute_env, store, dataset_bytes=chars)
    program = build_program(dict(MLP_SPEC))
    state = init_state(program)
    trace = HonestStepper().replay(program, state, data_mod.Dataset.from_bytes(digits_bytes()))
    j = Job(dispute_env, store, job_id, program, data_mod.Dataset.from_bytes(chars), state, trace)
    g = game(j, Level.OP, 0, trace.state_hash, trace.chain[0])
    ruling = decide(g, RepopsOracle(store, dispute_env.market))
    assert not ruling.solver_won and "does not exist" in ruling.reason


# ---- file games: the revealed checkpoint file must load to the revealed state hash --------


def _file_game(job: Job, data: bytes | None, state_hash: bytes, root: bytes | None = None) -> bool:
    cid = str(job.store.add_bytes(data)) if data is not None else str(compute_cid(b"absent"))
    file_root = root if root is not None else commit_file(data or b"").root
    g = game(job, Level.CHECKPOINT, 0, file_root, state_hash, cid, kind=GameKind.File)
    return decide(g, oracle(job)).solver_won


def test_referee_file_game_honest_checkpoint_loads_and_the_solver_wins(job: Job) -> None:
    data = save_checkpoint(job.program, job.state_t)
    assert _file_game(job, data, hashing.state_hash(job.state_t))


@pytest.mark.parametrize("defect", ["other-state", "not-committed", "unloadable", "absent"])
def test_referee_file_game_bad_file_rules_against_the_solver(job: Job, defect: str) -> None:
    good = save_checkpoint(job.program, job.state_t)
    committed = hashing.state_hash(job.state_t)
    if defect == "other-state":  # a real checkpoint, but of another state
        assert not _file_game(job, save_checkpoint(job.program, init_state(job.program)), committed)
    elif defect == "not-committed":  # the right file, but not the one the root commits to
        assert not _file_game(job, good, committed, root=commit_file(good + b"x").root)
    elif defect == "unloadable":  # committed bytes that are no checkpoint
        assert not _file_game(job, b"\x00" * 100 + good[100:], committed)
    else:
        assert not _file_game(job, None, committed)


def test_referee_file_game_store_unreachable_is_the_referees_problem(job: Job) -> None:
    dead = RepopsOracle(open_store("http://127.0.0.1:9"), job.env.market)
    data = save_checkpoint(job.program, job.state_t)
    cid = str(compute_cid(data))
    g = game(job, Level.CHECKPOINT, 0, commit_file(data).root, bytes(32), cid, GameKind.File)
    with pytest.raises(ArbiterError):
        dead.value_after(g)
