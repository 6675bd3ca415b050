"""Data-parallel execution of one tape on W workers, with the single-process bits.

A program with ``data.micro_batches`` = M > 1 has a tape whose step is M micro-batches
(`repops.program._build_tape`): node ranges ``tape.micro_ranges[i]`` hold micro-batch i's
forward and backward, and the nodes after them combine the M partial results by a fixed
tree (`repops.program.micro_mean`) and run the optimizer.  Every op's bits depend only on
its inputs (`repops.ops`), so any worker that runs a node on the same inputs gets the
same bits; W workers (W divides M) therefore reproduce the single-process step exactly by
splitting the tape's nodes between them:

* worker r owns micro-batches [r*M/W, (r+1)*M/W) (contiguous blocks);
* ``owner(node)`` is: a leaf (INPUT, CONST) -- every worker has it; a node of micro-batch
  i -- the owner of i; any other node whose non-leaf inputs are all COMMON, or that has
  none -- COMMON (every worker runs it, e.g. the learning-rate schedule); whose non-leaf
  inputs are COMMON or owned by the one worker r -- r (e.g. the tree's subtree over r's
  own micro-batches); else SHARED.  A node of micro-batch i may read only leaves, COMMON
  nodes and nodes of micro-batch i (checked by `plan`);
* one step on worker r: (1) COMMON nodes, then the nodes r owns, in tape order; (2) the
  exchange: for src = 0..W-1 in order, worker src's boundary -- the nodes it owns that a
  SHARED node reads or that are outputs or the loss, in tape order -- is broadcast as one
  byte buffer (each value's bytes, row-major, concatenated); (3) the SHARED nodes in tape
  order.  Every worker ends with every output, so each holds the whole next state.

Communication per step and worker: the bytes of the other workers' boundaries.  When each
worker's block is a subtree of the combine tree (W a power of two dividing M a power of
two, or M/W = ceil-half splits) a boundary is one partial gradient per parameter, so each
worker receives (W-1) x the gradient bytes; DDP's ring all-reduce moves 2(W-1)/W x them.

Checkpoints, traces and operand bundles do not change: the tape is the same, and the
trace of a step is the single-process replay of that tape (`repops.trace`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from repops import data as data_mod
from repops import numerics
from repops.checkpoint import State
from repops.errors import TapeError
from repops.ops import KERNELS, Op
from repops.tape import DTYPES, Tape
from repops.training import batch_for

if TYPE_CHECKING:
    from repops.program import Program

LEAF = -2
COMMON = -1
SHARED = -3


@dataclass(frozen=True)
class Plan:
    """How W workers split one tape (see the module doc); the same on every worker."""

    world: int
    owner: tuple[int, ...]  # per node: LEAF, COMMON, SHARED or the owning rank
    boundary: tuple[tuple[int, ...], ...]  # per rank: node ids it broadcasts, tape order

    def boundary_bytes(self, tape: Tape, rank: int) -> int:
        """Bytes of rank's boundary buffer."""
        return sum(_nbytes(tape, i) for i in self.boundary[rank])

    def received_bytes(self, tape: Tape, rank: int) -> int:
        """Bytes rank receives per step (every other rank's boundary)."""
        return sum(self.boundary_bytes(tape, r) for r in range(self.world) if r != rank)


def _nbytes(tape: Tape, i: int) -> int:
    n = tape.nodes[i]
    return math.prod(n.shape) * (8 if n.dtype == "int64" else 4)


def plan(tape: Tape, world: int) -> Plan:
    """Split `tape` between `world` workers (raises TapeError if W does not divide M)."""
    micro = len(tape.micro_ranges) or 1
    if world < 1 or micro % world:
        raise TapeError(f"world size {world} does not divide the tape's {micro} micro-batches")
    per = micro // world
    n = len(tape.nodes)
    seg = [-1] * n
    for k, (a, b) in enumerate(tape.micro_ranges):
        for i in range(a, b):
            seg[i] = k
    owner = [LEAF] * n
    for i, node in enumerate(tape.nodes):
        if node.op.is_leaf:
            continue
        ins = [owner[k] for k in node.inputs]
        if seg[i] >= 0:
            for k in node.inputs:
                if owner[k] not in (LEAF, COMMON) and seg[k] != seg[i]:
                    raise TapeError(f"node {i} of micro-batch {seg[i]} reads node {k}")
            owner[i] = seg[i] // per
            continue
        ranks = {o for o in ins if o not in (LEAF, COMMON)}
        if not ranks:
            owner[i] = COMMON
        elif len(ranks) == 1 and SHARED not in ranks:
            owner[i] = ranks.pop()
        else:
            owner[i] = SHARED
    wanted = set(tape.outputs.values()) | {tape.loss}
    for i, node in enumerate(tape.nodes):
        if owner[i] == SHARED:
            wanted.update(node.inputs)
    boundary = tuple(
        tuple(i for i in range(n) if owner[i] == r and i in wanted) for r in range(world)
    )
    return Plan(world, tuple(owner), boundary)


# pack(values) -> bytes buffer; the exchange broadcasts rank src's buffer to all ranks
Exchange = Callable[[int, torch.Tensor], torch.Tensor]  # (src, my buffer or empty) -> src's


class ShardedExecutor:
    """Runs rank's share of a tape on one device; `exchange` moves the boundaries."""

    def __init__(self, tape: Tape, device: torch.device, world: int, rank: int) -> None:
        if not 0 <= rank < world:
            raise TapeError(f"rank {rank} is not in [0, {world})")
        self.tape = tape
        self.device = device
        self.rank = rank
        self.plan = plan(tape, world)
        self.consts = [c.to(device) for c in tape.consts]
        own = self.plan.owner
        local = [i for i, o in enumerate(own) if o == COMMON] + [
            i for i, o in enumerate(own) if o == rank
        ]
        self.local = tuple(local)
        self.shared = tuple(i for i, o in enumerate(own) if o == SHARED)
        order = [i for i, o in enumerate(own) if o == LEAF] + local + list(self.shared)
        # free a value after its last read in this worker's order (outputs, the loss and
        # boundaries are kept until the step ends)
        keep = set(tape.outputs.values()) | {tape.loss}
        for b in self.plan.boundary:
            keep.update(b)
        pos = {i: p for p, i in enumerate(order)}
        last: dict[int, int] = {}
        for i in order:
            for k in tape.nodes[i].inputs:
                last[k] = max(last.get(k, -1), pos[i])
        self._frees: dict[int, list[int]] = {}
        for k, p in last.items():
            if k not in keep:
                self._frees.setdefault(order[p], []).append(k)

    def _run(self, ids: Sequence[int], vals: list[torch.Tensor | None]) -> None:
        nodes = self.tape.nodes
        for i in ids:
            n = nodes[i]
            kernel = KERNELS[n.op]
            vals[i] = kernel(n.arg, [vals[k] for k in n.inputs])  # type: ignore[misc]
            for k in self._frees.get(i, ()):
                vals[k] = None

    def run_local(self, feeds: Mapping[str, torch.Tensor]) -> list[torch.Tensor | None]:
        """Phase 1: leaves, COMMON nodes and this rank's nodes."""
        numerics.fp_guard()
        vals: list[torch.Tensor | None] = [None] * len(self.tape.nodes)
        for i, n in enumerate(self.tape.nodes):
            if n.op is Op.INPUT:
                vals[i] = feeds[n.arg]
            elif n.op is Op.CONST:
                vals[i] = self.consts[n.arg]
        self._run(self.local, vals)
        return vals

    def pack(self, vals: Sequence[torch.Tensor | None], rank: int | None = None) -> torch.Tensor:
        """The boundary buffer of `rank` (default: this one) as uint8 bytes."""
        ids = self.plan.boundary[self.rank if rank is None else rank]
        parts = []
        for i in ids:
            v = vals[i]
            assert v is not None
            parts.append(v.contiguous().reshape(-1).view(torch.uint8))
        if not parts:
            return torch.empty(0, dtype=torch.uint8, device=self.device)
        return torch.cat(parts)

    def unpack(self, src: int, buf: torch.Tensor, vals: list[torch.Tensor | None]) -> None:
        """Store rank src's boundary values from its buffer."""
        off = 0
        for i in self.plan.boundary[src]:
            n = self.tape.nodes[i]
            nb = _nbytes(self.tape, i)
            piece = buf[off : off + nb].clone()  # its own storage: aligned for the dtype
            vals[i] = piece.view(DTYPES[n.dtype]).reshape(n.shape)
            off += nb
        if off != buf.numel():
            raise TapeError(f"boundary of rank {src}: {buf.numel()} bytes, expected {off}")

    def run_shared(self, vals: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Phase 3 (after every boundary is in `vals`): the SHARED nodes."""
        numerics.fp_guard()
        self._run(self.shared, vals)
        return vals

    def run(
        self, feeds: Mapping[str, torch.Tensor], exchange: Exchange
    ) -> list[torch.Tensor | None]:
        """One step: phase 1, the exchange in rank order, phase 3."""
        vals = self.run_local(feeds)
        if self.plan.world == 1:
            return self.run_shared(vals)
        mine = self.pack(vals)
        for src in range(self.plan.world):
            size = self.plan.boundary_bytes(self.tape, src)
            buf = (
                mine
                if src == self.rank
                else torch.empty(size, dtype=torch.uint8, device=self.device)
            )
            got = exchange(src, buf)
            if src != self.rank:
                self.unpack(src, got, vals)
        return self.run_shared(vals)


def simulate(
    tape: Tape, feeds: Mapping[str, torch.Tensor], world: int, device: torch.device | None = None
) -> list[list[torch.Tensor | None]]:
    """Every rank's values after one step, the W workers run one after the other in this
    process (the exchange done in memory): the plan's bits without a process group."""
    dev = device or torch.device("cpu")
    exs = [ShardedExecutor(tape, dev, world, r) for r in range(world)]
    vals = [ex.run_local(feeds) for ex in exs]
    bufs = [ex.pack(v) for ex, v in zip(exs, vals, strict=True)]
    for r, ex in enumerate(exs):
        for src in range(world):
            if src != r:
                ex.unpack(src, bufs[src], vals[r])
        ex.run_shared(vals[r])
    return vals


def torch_exchange(group: object | None = None) -> Exchange:
    """The exchange over an initialised `torch.distributed` process group: a broadcast of
    rank src's buffer (gloo on CPU, NCCL on GPU)."""
    import torch.distributed as dist

    def exchange(src: int, buf: torch.Tensor) -> torch.Tensor:
        if buf.numel():
            dist.broadcast(buf, src, group=group)  # type: ignore[arg-type]
        return buf

    return exchange


def train_step(
    program: Program,
    state: Mapping[str, torch.Tensor],
    ds: data_mod.Dataset,
    ex: ShardedExecutor,
    exchange: Exchange,
) -> tuple[State, float]:
    """One step of `program` as rank ``ex.rank`` of W: (the whole new state, the loss),
    bit-identical to `repops.training.train_step`."""
    dev = ex.device
    cursor = int(state["meta.data_cursor"].item())
    feeds = {k: v.to(dev) for k, v in state.items()}
    feeds.update({k: v.to(dev) for k, v in batch_for(program, ds, cursor).items()})
    vals = ex.run(feeds, exchange)
    new: State = {}
    for name, nid in program.tape.outputs.items():
        v = vals[nid]
        assert v is not None
        new[name] = v
    loss = vals[program.tape.loss]
    assert loss is not None
    return new, float(loss.item())
