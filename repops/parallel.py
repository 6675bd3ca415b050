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
* the REDUCE nodes (W > 2 only; at W = 2 whole broadcasts move as many bytes with fewer
  collectives): SHARED float32 ADD nodes of two same-shape values and DIV nodes of one
  by a 0-dim constant, each of whose non-leaf inputs is owned by a worker or is itself a
  REDUCE node (the combine trees above the workers' own subtrees, and `micro_mean`'s
  DIV).  They are element-wise, so worker r computes them on chunk r only: of a value of
  n elements, the elements [r*n//W, (r+1)*n//W) of its row-major flattening;
* one step on worker r: (1) COMMON nodes, then the nodes r owns, in tape order; (2) the
  full exchange: for src = 0..W-1 in order, worker src broadcasts its full boundary -- the
  nodes it owns that a SHARED non-REDUCE node reads or that are outputs or the loss, in
  tape order -- as one byte buffer (each value's bytes, row-major, concatenated); (3) the
  scatter: every worker sends worker d chunk d of each of its nodes a REDUCE node reads
  (tape order, concatenated bytes); (4) the REDUCE nodes on chunk r, in tape order; (5) the
  gather: for src = 0..W-1 in order, worker src broadcasts chunk src of each REDUCE node
  that a non-REDUCE node reads or that is an output or the loss; every worker puts the W
  chunks of each such node together in rank order; (6) the other SHARED nodes in tape
  order.  Every worker ends with every output, so each holds the whole next state.

Communication per step and worker: (2) the others' full boundaries, (3) and (5) about
(W-1)/W of the partial gradients a worker sends and of the combined gradients -- the
volume of DDP's ring all-reduce, 2(W-1)/W x the gradient bytes, when each worker sends
one partial per parameter (its block of micro-batches is a subtree of the combine tree:
M/W = 1, or W a power of two and M = W * 2**k); more when a block is several subtrees.

Checkpoints, traces and operand bundles do not change: the tape is the same, and the
trace of a step is the single-process replay of that tape (`repops.trace`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

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
    boundary: tuple[tuple[int, ...], ...]  # per rank: nodes it broadcasts whole, tape order
    scatter: tuple[tuple[int, ...], ...]  # per rank: its nodes a REDUCE node reads
    reduce: tuple[int, ...]  # the REDUCE nodes, tape order
    gather: tuple[int, ...]  # REDUCE nodes needed whole (read outside REDUCE, outputs, loss)

    def chunk(self, tape: Tape, i: int, rank: int) -> tuple[int, int]:
        """[start, stop) elements of node i's row-major flattening that `rank` reduces."""
        n = math.prod(tape.nodes[i].shape)
        return rank * n // self.world, (rank + 1) * n // self.world

    def chunk_bytes(self, tape: Tape, ids: Sequence[int], rank: int) -> int:
        size = 0
        for i in ids:
            a, b = self.chunk(tape, i, rank)
            size += (b - a) * _itemsize(tape, i)
        return size

    def boundary_bytes(self, tape: Tape, rank: int) -> int:
        """Bytes of rank's full-boundary broadcast."""
        return sum(_nbytes(tape, i) for i in self.boundary[rank])

    def received_bytes(self, tape: Tape, rank: int) -> int:
        """Bytes `rank` receives per step: the others' full boundaries, chunk `rank` of
        their scattered nodes and their chunks of the gathered REDUCE nodes."""
        total = 0
        for r in range(self.world):
            if r != rank:
                total += self.boundary_bytes(tape, r)
                total += self.chunk_bytes(tape, self.scatter[r], rank)
                total += self.chunk_bytes(tape, self.gather, r)
        return total


def _itemsize(tape: Tape, i: int) -> int:
    return 8 if tape.nodes[i].dtype == "int64" else 4


def _nbytes(tape: Tape, i: int) -> int:
    return math.prod(tape.nodes[i].shape) * _itemsize(tape, i)


def plan(tape: Tape, world: int) -> Plan:
    """Split `tape` between `world` workers (raises TapeError if W does not divide M)."""
    micro = len(tape.micro_ranges) or 1
    if world < 1 or micro % world:
        raise TapeError(f"world size {world} does not divide the tape's {micro} micro-batches")
    per = micro // world
    n = len(tape.nodes)
    nodes = tape.nodes
    seg = [-1] * n
    for k, (a, b) in enumerate(tape.micro_ranges):
        for i in range(a, b):
            seg[i] = k
    owner = [LEAF] * n
    for i, node in enumerate(nodes):
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
    red: set[int] = set()
    if world > 2:  # at W = 2 whole broadcasts move the same bytes in fewer collectives
        for i, node in enumerate(nodes):
            if owner[i] != SHARED or node.dtype != "float32":
                continue
            x = node.inputs
            if node.op is Op.ADD:
                parts = x
            elif node.op is Op.DIV and nodes[x[1]].op is Op.CONST and nodes[x[1]].shape == ():
                parts = x[:1]
            else:
                continue
            if all((owner[k] >= 0 or k in red) and nodes[k].shape == node.shape for k in parts):
                red.add(i)
    ends = set(tape.outputs.values()) | {tape.loss}
    whole = set(ends)  # values needed whole by some non-REDUCE SHARED node (or kept)
    reads: set[int] = set()  # values a REDUCE node reads
    for i, node in enumerate(nodes):
        if i in red:
            reads.update(node.inputs)
        elif owner[i] == SHARED:
            whole.update(node.inputs)
    boundary = tuple(
        tuple(i for i in range(n) if owner[i] == r and i in whole) for r in range(world)
    )
    scatter = tuple(
        tuple(i for i in range(n) if owner[i] == r and i in reads) for r in range(world)
    )
    reduce_ids = tuple(sorted(red))
    gather = tuple(i for i in reduce_ids if i in whole)
    return Plan(world, tuple(owner), boundary, scatter, reduce_ids, gather)


class Comm(Protocol):
    """The collectives one step uses (`TorchComm`: torch.distributed; `simulate` moves the
    buffers in memory itself)."""

    def broadcast(self, src: int, buf: torch.Tensor) -> torch.Tensor:
        """Rank src's byte buffer on every rank (`buf`: src's own, else one to fill)."""
        ...

    def alltoall(self, sends: Sequence[torch.Tensor], sizes: Sequence[int]) -> list[torch.Tensor]:
        """sends[d] goes to rank d; returns what each rank s sent here (sizes[s] bytes)."""
        ...


def _bytes(v: torch.Tensor) -> torch.Tensor:
    return v.contiguous().reshape(-1).view(torch.uint8)


class ShardedExecutor:
    """Runs rank's share of a tape on one device; a `Comm` moves the values between."""

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
        red = set(self.plan.reduce)
        self.shared = tuple(i for i, o in enumerate(own) if o == SHARED and i not in red)
        order = [i for i, o in enumerate(own) if o == LEAF] + local + list(self.shared)
        # free a value after its last read in this worker's order (outputs, the loss and
        # whatever is sent are kept until the step ends)
        keep = set(tape.outputs.values()) | {tape.loss}
        for b in (*self.plan.boundary, *self.plan.scatter):
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

    # -- (1) ---------------------------------------------------------------------------
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

    # -- (2) the full boundaries -----------------------------------------------------------
    def pack(self, vals: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """This rank's full-boundary buffer (uint8 bytes)."""
        parts = []
        for i in self.plan.boundary[self.rank]:
            v = vals[i]
            assert v is not None
            parts.append(_bytes(v))
        return self._cat(parts)

    def _cat(self, parts: list[torch.Tensor]) -> torch.Tensor:
        if not parts:
            return torch.empty(0, dtype=torch.uint8, device=self.device)
        return torch.cat(parts)

    def _split(self, buf: torch.Tensor, sizes: Sequence[int], what: str) -> list[torch.Tensor]:
        if buf.numel() != sum(sizes):
            raise TapeError(f"{what}: {buf.numel()} bytes, expected {sum(sizes)}")
        out, off = [], 0
        for nb in sizes:
            out.append(buf[off : off + nb].clone())  # its own storage: aligned for the dtype
            off += nb
        return out

    def unpack(self, src: int, buf: torch.Tensor, vals: list[torch.Tensor | None]) -> None:
        """Store rank src's full-boundary values from its buffer."""
        ids = self.plan.boundary[src]
        pieces = self._split(buf, [_nbytes(self.tape, i) for i in ids], f"boundary of {src}")
        for i, piece in zip(ids, pieces, strict=True):
            n = self.tape.nodes[i]
            vals[i] = piece.view(DTYPES[n.dtype]).reshape(n.shape)

    # -- (3) the scatter, (4) the REDUCE nodes on this rank's chunk ------------------------
    def scatter_sends(self, vals: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
        """Per destination d: chunk d of each of this rank's scattered nodes (bytes)."""
        sends = []
        for d in range(self.plan.world):
            parts = []
            for i in self.plan.scatter[self.rank]:
                v = vals[i]
                assert v is not None
                a, b = self.plan.chunk(self.tape, i, d)
                parts.append(_bytes(v.reshape(-1)[a:b]))
            sends.append(self._cat(parts))
        return sends

    def scatter_sizes(self) -> list[int]:
        """Bytes this rank receives from each source in the scatter."""
        return [
            self.plan.chunk_bytes(self.tape, self.plan.scatter[s], self.rank)
            for s in range(self.plan.world)
        ]

    def run_reduce(self, got: Sequence[torch.Tensor]) -> dict[int, torch.Tensor]:
        """Phase 4 from the scatter's buffers (got[s] from rank s): chunk `rank` of every
        REDUCE node, by node id."""
        numerics.fp_guard()
        part: dict[int, torch.Tensor] = {}
        for s, buf in enumerate(got):
            ids = self.plan.scatter[s]
            sizes = [self.plan.chunk_bytes(self.tape, (i,), self.rank) for i in ids]
            for i, piece in zip(ids, self._split(buf, sizes, f"scatter of {s}"), strict=True):
                part[i] = piece.view(DTYPES[self.tape.nodes[i].dtype])
        nodes = self.tape.nodes
        for i in self.plan.reduce:
            n = nodes[i]
            ins = [
                self.consts[nodes[k].arg] if nodes[k].op is Op.CONST else part[k] for k in n.inputs
            ]
            part[i] = KERNELS[n.op](n.arg, ins)
        return part

    # -- (5) the gather, (6) the other SHARED nodes ----------------------------------------
    def gather_pack(self, part: Mapping[int, torch.Tensor]) -> torch.Tensor:
        return self._cat([_bytes(part[i]) for i in self.plan.gather])

    def gather_sizes(self, src: int) -> list[int]:
        return [self.plan.chunk_bytes(self.tape, (i,), src) for i in self.plan.gather]

    def gather_unpack(self, bufs: Sequence[torch.Tensor], vals: list[torch.Tensor | None]) -> None:
        """Put each gathered node together from the W ranks' chunks (rank order)."""
        chunks = [
            self._split(buf, self.gather_sizes(s), f"gather of {s}") for s, buf in enumerate(bufs)
        ]
        for k, i in enumerate(self.plan.gather):
            n = self.tape.nodes[i]
            whole = torch.cat([c[k] for c in chunks]).view(DTYPES[n.dtype])
            vals[i] = whole.reshape(n.shape)

    def run_shared(self, vals: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
        """Phase 6 (every gathered value in `vals`): the other SHARED nodes."""
        numerics.fp_guard()
        self._run(self.shared, vals)
        return vals

    def run(self, feeds: Mapping[str, torch.Tensor], comm: Comm) -> list[torch.Tensor | None]:
        """One step: the six phases of the module doc."""
        vals = self.run_local(feeds)
        if self.plan.world == 1:
            return self.run_shared(vals)
        self.communicate(vals, comm)
        return self.run_shared(vals)

    def communicate(self, vals: list[torch.Tensor | None], comm: Comm) -> None:
        """Phases 2-5: after them `vals` holds every value phase 6 reads."""
        world, tape = self.plan.world, self.tape
        mine = self.pack(vals)
        for src in range(world):
            size = self.plan.boundary_bytes(tape, src)
            buf = mine if src == self.rank else self._empty(size)
            got = comm.broadcast(src, buf)
            if src != self.rank:
                self.unpack(src, got, vals)
        if not self.plan.reduce:
            return
        recv = comm.alltoall(self.scatter_sends(vals), self.scatter_sizes())
        part = self.run_reduce(recv)
        out = self.gather_pack(part)
        bufs = []
        for src in range(world):
            size = sum(self.gather_sizes(src))
            bufs.append(comm.broadcast(src, out if src == self.rank else self._empty(size)))
        self.gather_unpack(bufs, vals)

    def probe(self, comm: Comm) -> None:
        """Phases 2, 3 and 5 alone, on zero buffers of the sizes a step sends (a benchmark
        of the communication)."""
        world, tape = self.plan.world, self.tape
        for src in range(world):
            comm.broadcast(src, self._empty(self.plan.boundary_bytes(tape, src)))
        if not self.plan.reduce:
            return
        sends = [
            self._empty(self.plan.chunk_bytes(tape, self.plan.scatter[self.rank], d))
            for d in range(world)
        ]
        comm.alltoall(sends, self.scatter_sizes())
        for src in range(world):
            comm.broadcast(src, self._empty(sum(self.gather_sizes(src))))

    def _empty(self, size: int) -> torch.Tensor:
        return torch.empty(size, dtype=torch.uint8, device=self.device)


def simulate(
    tape: Tape, feeds: Mapping[str, torch.Tensor], world: int, device: torch.device | None = None
) -> list[list[torch.Tensor | None]]:
    """Every rank's values after one step, the W workers run phase by phase in this
    process (the collectives done in memory): the plan's bits without a process group."""
    dev = device or torch.device("cpu")
    exs = [ShardedExecutor(tape, dev, world, r) for r in range(world)]
    vals = [ex.run_local(feeds) for ex in exs]
    if world > 1:
        full = [ex.pack(v) for ex, v in zip(exs, vals, strict=True)]
        for r, ex in enumerate(exs):
            for src in range(world):
                if src != r:
                    ex.unpack(src, full[src], vals[r])
        if exs[0].plan.reduce:
            sends = [ex.scatter_sends(v) for ex, v in zip(exs, vals, strict=True)]
            parts = [ex.run_reduce([sends[s][r] for s in range(world)]) for r, ex in enumerate(exs)]
            outs = [ex.gather_pack(p) for ex, p in zip(exs, parts, strict=True)]
            for ex, v in zip(exs, vals, strict=True):
                ex.gather_unpack(outs, v)
    for ex, v in zip(exs, vals, strict=True):
        ex.run_shared(v)
    return vals


class TorchComm:
    """The collectives over an initialised `torch.distributed` process group (gloo on CPU,
    NCCL on GPU): `broadcast`, and the scatter as one `all_to_all_single`."""

    def __init__(self, group: Any = None) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        # gloo has no all_to_all for CUDA tensors: stage them through host memory
        self.stage = "nccl" not in str(dist.get_backend(group))

    def broadcast(self, src: int, buf: torch.Tensor) -> torch.Tensor:
        if buf.numel():
            self.dist.broadcast(buf, src, group=self.group)
        return buf

    def alltoall(self, sends: Sequence[torch.Tensor], sizes: Sequence[int]) -> list[torch.Tensor]:
        dev = sends[self.rank].device
        if self.stage and dev.type != "cpu":
            back = self.alltoall([x.cpu() for x in sends], sizes)
            return [x.to(dev) for x in back]
        out = torch.empty(sum(sizes), dtype=torch.uint8, device=dev)
        if out.numel() or any(x.numel() for x in sends):
            self.dist.all_to_all_single(
                out,
                torch.cat(list(sends)),
                output_split_sizes=list(sizes),
                input_split_sizes=[x.numel() for x in sends],
                group=self.group,
            )
        parts, off = [], 0
        for n in sizes:
            parts.append(out[off : off + n])
            off += n
        return parts


def torch_comm(group: Any = None) -> TorchComm:
    """`TorchComm` on `group` (default: the default process group)."""
    return TorchComm(group)


def train_step(
    program: Program,
    state: Mapping[str, torch.Tensor],
    ds: data_mod.Dataset,
    ex: ShardedExecutor,
    comm: Comm,
) -> tuple[State, float]:
    """One step of `program` as rank ``ex.rank`` of W: (the whole new state, the loss),
    bit-identical to `repops.training.train_step`."""
    dev = ex.device
    cursor = int(state["meta.data_cursor"].item())
    feeds = {k: v.to(dev) for k, v in state.items()}
    feeds.update({k: v.to(dev) for k, v in batch_for(program, ds, cursor).items()})
    vals = ex.run(feeds, comm)
    new: State = {}
    for name, nid in program.tape.outputs.items():
        v = vals[nid]
        assert v is not None
        new[name] = v
    loss = vals[program.tape.loss]
    assert loss is not None
    return new, float(loss.item())
