"""A user's own model through the whole market on anvil + the real js-ipfs store.

The model is a plain nn.Module written in the lowering tests (`DeepMLP`: linear, tanh-GELU,
layer norm, tanh, cross-entropy), exported with torch.export, lowered to a canonical repops
graph, and fine-tuned from a safetensors state that plain torch pre-trained.  Graph,
weights and a ``tensors`` dataset are artifacts in the store; the spec binds their sha256.

- An honest solver trains it and is paid (Finalized).
- A solver that lies in one op of the graph (its output one ulp off, or one more for
  an integer, everything after it computed from the lie) is caught by the
  whistleblower, bisected to that op, and the referee re-executes that op from the
  solver's own bundle: Slashed.  The lie is placed in each architecture where it matters:
  DeepMLP's second matmul; in the example models of `repops.lowering.examples` (not in
  the zoo) the CNN's first im2col gather (TAKE), a batch-norm running-variance update
  (a state node, no matmul) and its int64 ``num_batches_tracked`` count (the bundle
  holds the buffer), the encoder's attention softmax, the RoPE decoder's first sin and
  its first rotation (CAT), and the dropout MLP's mask (int64 operands: the job's rng
  seed and the step counter).
- A job whose graph artifact is garbage (its sha256 matches, its bytes do not parse) is
  never claimed: the solver does not stake on a job it cannot build.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import safetensors.torch
import torch

from arbiter.referee import decide
from arbiter.repops_oracle import RepopsOracle
from chain.generated import GameStatus, JobStatus, Level, SolverSlashed
from chain.types import JobId
from jobspec.factory import artifact, graph_spec
from market.store import ArtifactStore
from repops import data as data_mod
from repops import hashing, stio
from repops.lowering import examples, graph_json
from repops.lowering.export import lower
from repops.ops import Op
from repops.program import Program, State, batch_for, step_of
from repops.trace import OperandBundle, StepTrace, chain_final, chain_link, chain_start
from roles.realtrace import HonestStepper
from solver.journal import Phase
from solver.node import SolverNode
from tests.e2e.ledger import Ledger, market_events
from tests.e2e.support import post_spec, referee, run_market, solver_node, whistleblower
from tests.fixtures.dispute import REWARD, STAKE, DisputeEnv
from tests.repops.test_lowering import DeepMLP, _data

BATCH = 8
STEPS = 8
K = 2
LIE_STEP = 5  # in segment 2 (steps 4..6): leaf 3 is the first wrong one


@cache
def _lowered(arch: str = "mlp") -> tuple[bytes, bytes, bytes]:
    """(graph JSON, weights, dataset file) of an exported model: DeepMLP fine-tuned from
    a state pre-trained in torch, or example `arch` of `repops.lowering.examples` from
    its export-time state."""
    if arch != "mlp":
        lg = lower(examples.export(arch), batch_size=BATCH)
        return lg.to_json(), lg.weights_bytes(), stio.dumps(examples.dataset_tensors(arch))
    torch.manual_seed(0)
    model = DeepMLP()
    d = _data("mlp", 64)
    b = torch.export.Dim("batch")
    ep = torch.export.export(
        model, (d["inputs"][:4], d["targets"][:4]), dynamic_shapes=({0: b}, {0: b})
    )
    # "pre-training" in plain torch; its state dict is the fine-tuning start
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    for i in range(3):
        opt.zero_grad()
        model(d["inputs"][i * 16 : i * 16 + 16], d["targets"][i * 16 : i * 16 + 16]).backward()
        opt.step()
    pretrained = safetensors.torch.save({k: v.detach() for k, v in model.state_dict().items()})
    lg = lower(ep, batch_size=BATCH)
    lg.weights = graph_json.load_weights(lg, pretrained)
    return lg.to_json(), lg.weights_bytes(), stio.dumps(d)


def _publish(
    env: DisputeEnv, store: ArtifactStore, graph: bytes | None = None, arch: str = "mlp"
) -> JobId:
    gj, wj, ds = _lowered(arch)
    gj = gj if graph is None else graph
    refs = [artifact(hashlib.sha256(b).hexdigest(), str(store.add_bytes(b))) for b in (gj, wj)]
    fmt = "tensors" if arch == "mlp" else examples.EXAMPLES[arch].data_format
    spec = graph_spec(*refs, data_format=fmt, batch_size=BATCH, steps=STEPS, checkpoint_interval=K)
    spec["data"]["cid"] = str(store.add_bytes(ds))
    return post_spec(env, store, spec)


def _settled(node: SolverNode, job_id: JobId) -> bool:
    entry = node.journal.load(job_id)
    return entry is not None and entry.phase == Phase.SETTLED


LiePick = Callable[[Program], int]  # the chain index (1-based) of the op that lies


def nth_op(op: Op, n: int) -> LiePick:
    """The `n`-th (0-based) op of kind `op` in the step's chain."""

    def pick(program: Program) -> int:
        t = program.tape
        return [j for j, nid in enumerate(t.chain, 1) if t.nodes[nid].op is op][n]

    return pick


def state_update(name: str) -> LiePick:
    """The op whose output is state entry `name`'s next value (e.g. a buffer update)."""

    def pick(program: Program) -> int:
        t = program.tape
        return t.chain.index(t.outputs[name]) + 1

    return pick


SECOND_MATMUL = nth_op(Op.MATMUL, 1)  # DeepMLP's: a fresh output tensor


def _off_by_one(value: torch.Tensor) -> None:
    """Every element one ulp up (float) or one more (integer), in place.

    Not one element: RoPE's sin at position 0 is 0, and one ulp up (a denormal), or one
    ulp on DeepMLP's largest matmul output, vanishes in the rounding of the ops after it,
    so the step's state would be honest and no checkpoint would differ (a lie that
    changes nothing is not a fault anyone can prove)."""
    if value.dtype.is_floating_point:
        value.copy_(torch.nextafter(value, torch.full_like(value, float("inf"))))
    else:
        value.add_(1)


@dataclass(frozen=True)
class OneOpLiar(HonestStepper):
    """At step `at_step`, the output of the op `lie_at` picks is off by one (ulp); every
    later op is computed from the lie, so the step's chain and its next state are
    consistent with it (the solver defends the lie), and every op before it is honest."""

    at_step: int = LIE_STEP
    lie_at: LiePick = SECOND_MATMUL

    def _run(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        batch = batch_for(program, dataset, int(state["meta.data_cursor"].item()))
        lie = self.lie_at(program)
        outs: list[bytes] = []

        def hook(j: int, node: int, value: torch.Tensor) -> None:
            if j == lie:
                _off_by_one(value)
            outs.append(hashing.tensor_hash(value))

        feeds = {k: v.to(self.device) for k, v in state.items()}
        feeds.update({k: v.to(self.device) for k, v in batch.items()})
        vals = program.executor(self.device).run(feeds, hook=hook)
        new: State = {}
        for name, nid in program.tape.outputs.items():
            v = vals[nid]
            assert v is not None
            new[name] = v
        chain = [chain_start(hashing.state_hash(state), hashing.state_hash(batch))]
        for j, oh in enumerate(outs, start=1):
            chain.append(chain_link(chain[-1], j, oh))
        nsh = hashing.state_hash(new)
        chain.append(chain_final(chain[-1], nsh))
        return StepTrace(chain[0], hashing.state_hash(batch), tuple(outs), nsh, tuple(chain), new)

    def step(
        self, program: Program, state: State, dataset: data_mod.Dataset
    ) -> tuple[State, float]:
        if step_of(state) != self.at_step:
            return super().step(program, state, dataset)
        return self._run(program, state, dataset).new_state, 0.0

    def replay(self, program: Program, state: State, dataset: data_mod.Dataset) -> StepTrace:
        if step_of(state) != self.at_step:
            return super().replay(program, state, dataset)
        trace = self._run(program, state, dataset)
        # StepTrace.state_hash is the state's hash, not h_0
        return StepTrace(
            hashing.state_hash(state),
            trace.batch_hash,
            trace.out_hashes,
            trace.new_state_hash,
            trace.chain,
            trace.new_state,
        )


def test_exported_model_fine_tuning_job_is_paid_and_finalized(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, ledger: Ledger, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = _publish(env, ipfs_store)
    node = solver_node(env, ipfs_store, tmp_path)
    wb = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    (report,) = wb.findings
    assert (report.job_id, report.checked, report.mismatch) == (job_id, (0, 1, 2, 3), None)
    assert env.game.game_count() == 0
    assert env.market.get_job(job_id).status == JobStatus.Finalized
    assert ledger.delta(env.solver(0).address) == REWARD
    assert ledger.delta(env.submitter.address) == -REWARD


F32, I64 = torch.float32, torch.int64
# (architecture, the lying op, its kind, the dtypes of the operands its bundle carries)
LIES = [
    pytest.param("mlp", SECOND_MATMUL, Op.MATMUL, (F32, F32), id="mlp-matmul"),
    pytest.param(
        "cnn",
        state_update("buffer.bn1.running_var"),
        Op.ADD,
        (F32, F32),
        id="cnn-bn-running-var",
    ),
    # conv2d's im2col: a TAKE of the batch input by a CONST int64 index (the bundle
    # carries the batch input, checked against the batch manifest; the CONST is the tape's)
    pytest.param("cnn", nth_op(Op.TAKE, 0), Op.TAKE, (F32,), id="cnn-im2col-take"),
    # num_batches_tracked + 1: the bundle's one operand is the int64 buffer itself
    pytest.param(
        "cnn", state_update("buffer.bn2.num_batches_tracked"), Op.ADD, (I64,), id="cnn-bn-count"
    ),
    pytest.param("encoder", nth_op(Op.SOFTMAX, 0), Op.SOFTMAX, (F32,), id="encoder-softmax"),
    pytest.param("rope", nth_op(Op.SIN, 0), Op.SIN, (F32,), id="rope-sin"),
    # the rotated q: cat([x1 cos - x2 sin, x1 sin + x2 cos])
    pytest.param("rope", nth_op(Op.CAT, 0), Op.CAT, (F32, F32), id="rope-rotation-cat"),
    # the mask of (rng.seed, meta.step): the seed is a CONST of the tape, the step is state
    pytest.param("dropout", nth_op(Op.DROPOUT_MASK, 0), Op.DROPOUT_MASK, (I64,), id="dropout-mask"),
]


@pytest.mark.parametrize(("arch", "lie_at", "op", "operands"), LIES)
def test_one_op_lie_inside_exported_graph_is_caught_and_slashed(
    arch: str,
    lie_at: LiePick,
    op: Op,
    operands: tuple[torch.dtype, ...],
    dispute_env: DisputeEnv,
    ipfs_store: ArtifactStore,
    ledger: Ledger,
    tmp_path: Path,
) -> None:
    env = dispute_env
    job_id = _publish(env, ipfs_store, arch=arch)
    node = solver_node(env, ipfs_store, tmp_path, stepper=OneOpLiar(lie_at=lie_at))
    wb = whistleblower(env, ipfs_store)
    ref = referee(env, ipfs_store)

    run_market(env, [node.tick, wb.tick], ref, done=lambda: _settled(node, job_id))

    (finding,) = wb.findings
    assert finding.mismatch == LIE_STEP // K + 1
    assert env.game.game_count() == 1
    game = env.game.get_game(1)
    assert game.status == GameStatus.ChallengerWon
    assert (game.level, game.base) == (Level.OP, LIE_STEP)
    program = node._context(job_id).program
    lie = lie_at(program)
    assert program.tape.nodes[program.tape.chain[lie - 1]].op is op
    assert (game.lo, game.hi) == (lie, lie + 1)  # bisected to exactly the lying op
    # the ruling is the re-execution of that op from the solver's bundle, which
    # contradicts the solver's claimed link
    bundle = OperandBundle.from_bytes(ipfs_store.get_bytes(game.bundle_cid))
    assert bundle.op_index == lie
    assert tuple(v.dtype for _, v in sorted(bundle.tensors.items())) == operands
    if operands == (I64,):  # a step count: LIE_STEP steps (0..LIE_STEP-1) are done
        (count,) = bundle.tensors.values()
        assert int(count) == LIE_STEP
    ruling = decide(game, RepopsOracle(ipfs_store, env.market))
    assert (ruling.solver_won, ruling.reason) == (False, "re-execution contradicts the solver")
    assert env.market.get_job(job_id).status == JobStatus.Slashed
    (slashed,) = market_events(env, SolverSlashed)
    assert slashed.solver == env.solver(0).address
    assert ledger.delta(env.solver(0).address) == -STAKE


def test_garbage_graph_artifact_is_never_claimed(
    dispute_env: DisputeEnv, ipfs_store: ArtifactStore, tmp_path: Path
) -> None:
    env = dispute_env
    job_id = _publish(env, ipfs_store, graph=b'{"format": "not a graph"}')
    node = solver_node(env, ipfs_store, tmp_path)
    before = env.token.balance_of(env.solver(0).address)
    for _ in range(3):
        node.tick()
    assert env.market.get_job(job_id).status == JobStatus.Open
    assert node.journal.load(job_id) is None
    assert env.token.balance_of(env.solver(0).address) == before  # nothing staked
