"""Traces: the per-step operator chain, operand bundles and single-op re-execution.

Operator chain of step t (DESIGN.md section 5), M = tape.num_ops:

    h_0     = sha256(stateHash_t ‖ batchHash_t)
    h_j     = sha256(h_{j-1} ‖ uint32_be(j) ‖ tensorHash(output of op j))   j = 1..M
    h_{M+1} = sha256(h_M ‖ stateHash_{t+1})

Link M+1 is "assemble the new state from the op outputs that form it and hash it".
Per-op hashes are computed only by `replay_step`, never during training.

An operand bundle for link j carries op j's input tensors (leaf constants excepted: they
come from the program) and what proves each is the agreed value: the output hashes of
ops 1..j-1 (which must reproduce the agreed h_{j-1}), the state manifest name ->
tensorHash (which gives stateHash_t) and the batch manifest (which gives batchHash_t).
Bytes: a canonical safetensors file (`repops.stio`) with tensors ``in.<position>`` and
metadata key ``bundle`` holding canonical JSON ``{"format","repops_version",
"program_hash","op_index","prefix","state_manifest","batch_manifest"}`` with hashes in
lowercase hex.

The end link M+1 carries no tensor at all, so that no bundle grows with the model: every
tensor of the new state is the output of some op of the step (or an input or constant
passed through), whose tensorHash the bundle already proves (the prefix of M output
hashes reproduces the agreed h_M; the manifests give the inputs; constants come from the
program).  The referee derives the new state's manifest name -> tensorHash from those
proven hashes (`new_state_manifest`) and hashes it: stateHash_{t+1} with no tensor data.
A bundle's size is therefore bounded by op j's operands plus 32 bytes per op and per
state tensor, whatever the model size.

`reexecute` is what the arbiter runs on untrusted bundles.  It must never trust a name,
shape, dtype or count from the bundle: everything is checked against the tape rebuilt
from the program, and any mismatch raises `BundleInvalid` saying what is inconsistent.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from repops import data as data_mod
from repops import hashing, merkle, stio
from repops.errors import BundleInvalid, CheckpointInvalid
from repops.ops import Op, execute
from repops.program import Program, State, batch_for, check_state
from repops.tape import DTYPES
from repops.version import REPOPS_VERSION

BUNDLE_FORMAT = "repops-bundle-v2"
"""v2: the end link M+1 carries no tensors (v1 carried the whole new state)."""
MAX_BUNDLE_BYTES = 1 << 31
"""The largest bundle a referee reads; a larger one is the solver's fault (it loses)."""


def chain_start(state_hash: bytes, batch_hash: bytes) -> bytes:
    """h_0 = sha256(stateHash_t ‖ batchHash_t)."""
    return hashlib.sha256(state_hash + batch_hash).digest()


def chain_link(prev: bytes, j: int, out_hash: bytes) -> bytes:
    """h_j = sha256(h_{j-1} ‖ uint32_be(j) ‖ tensorHash(output_j))."""
    return hashlib.sha256(prev + struct.pack(">I", j) + out_hash).digest()


def chain_final(prev: bytes, new_state_hash: bytes) -> bytes:
    """h_{M+1} = sha256(h_M ‖ stateHash_{t+1})."""
    return hashlib.sha256(prev + new_state_hash).digest()


def chain_after(state_hash: bytes, batch_hash: bytes, out_hashes: Sequence[bytes]) -> bytes:
    """h_j for j = len(out_hashes): the chain folded over ops 1..j's output hashes."""
    h = chain_start(state_hash, batch_hash)
    for j, out_hash in enumerate(out_hashes, start=1):
        h = chain_link(h, j, out_hash)
    return h


def trace_root(state_hashes: Sequence[bytes]) -> bytes:
    """traceRoot: the Merkle root over stateHash_0..stateHash_m."""
    return merkle.merkle_root(state_hashes)


@dataclass(frozen=True)
class StepTrace:
    """Everything a replay of one step produces."""

    state_hash: bytes
    batch_hash: bytes
    out_hashes: tuple[bytes, ...]  # tensorHash of ops 1..M
    new_state_hash: bytes
    chain: tuple[bytes, ...]  # h_0 .. h_{M+1}
    new_state: dict[str, torch.Tensor]


def _feeds(
    program: Program,
    state: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    device: torch.device,
) -> dict[str, torch.Tensor]:
    check_state(program, state)
    feeds = {k: v.to(device) for k, v in state.items()}
    feeds.update({k: v.to(device) for k, v in batch.items()})
    return feeds


def step_batch(program: Program, state: Mapping[str, torch.Tensor], ds: data_mod.Dataset) -> State:
    """The batch that the step starting at `state` consumes."""
    return batch_for(program, ds, int(state["meta.data_cursor"].item()))


def replay_step(
    program: Program,
    state: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    device: torch.device | str = "cpu",
) -> StepTrace:
    """Run one step hashing every op output: the chain h_0..h_{M+1}."""
    dev = torch.device(device)
    tape = program.tape
    sh = hashing.state_hash(state)
    bh = hashing.state_hash(batch)
    outs: list[bytes] = []

    def hook(j: int, node: int, value: torch.Tensor) -> None:
        outs.append(hashing.tensor_hash(value))

    vals = program.executor(dev).run(_feeds(program, state, batch, dev), hook=hook)
    new: dict[str, torch.Tensor] = {}
    for name, nid in tape.outputs.items():
        v = vals[nid]
        assert v is not None
        new[name] = v
    nsh = hashing.state_hash(new)
    chain = [chain_start(sh, bh)]
    for j, oh in enumerate(outs, start=1):
        chain.append(chain_link(chain[-1], j, oh))
    chain.append(chain_final(chain[-1], nsh))
    return StepTrace(sh, bh, tuple(outs), nsh, tuple(chain), new)


# ----------------------------------------------------------------------------------------
# Operand bundles
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperandBundle:
    """What proves and feeds link `op_index` (1..M+1) of one step."""

    program_hash: bytes
    op_index: int
    tensors: dict[str, torch.Tensor]
    prefix: tuple[bytes, ...]
    state_manifest: dict[str, bytes]
    batch_manifest: dict[str, bytes]

    def prev_hash(self) -> bytes:
        """The h_{j-1} this bundle's manifests and prefix reproduce (unchecked)."""
        return chain_after(
            hashing.state_hash_from_manifest(self.state_manifest),
            hashing.state_hash_from_manifest(self.batch_manifest),
            self.prefix,
        )

    def to_bytes(self) -> bytes:
        meta = {
            "format": BUNDLE_FORMAT,
            "repops_version": REPOPS_VERSION,
            "program_hash": self.program_hash.hex(),
            "op_index": self.op_index,
            "prefix": [h.hex() for h in self.prefix],
            "state_manifest": {k: v.hex() for k, v in self.state_manifest.items()},
            "batch_manifest": {k: v.hex() for k, v in self.batch_manifest.items()},
        }
        text = json.dumps(meta, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        return stio.dumps(self.tensors, {"bundle": text})

    @staticmethod
    def from_bytes(data: bytes) -> OperandBundle:
        if len(data) > MAX_BUNDLE_BYTES:
            raise BundleInvalid("bundle larger than 2 GiB")
        try:
            tensors, meta = stio.loads(data)
        except CheckpointInvalid as e:
            raise BundleInvalid(f"bundle file malformed: {e}") from None
        if set(meta) != {"bundle"}:
            raise BundleInvalid("bundle metadata must hold exactly the key 'bundle'")
        try:
            m = json.loads(meta["bundle"])
        except json.JSONDecodeError as e:
            raise BundleInvalid(f"bundle metadata is not JSON: {e}") from None
        keys = {
            "format",
            "repops_version",
            "program_hash",
            "op_index",
            "prefix",
            "state_manifest",
            "batch_manifest",
        }
        if not isinstance(m, dict) or set(m) != keys:
            raise BundleInvalid(f"bundle metadata must have exactly the keys {sorted(keys)}")
        if m["format"] != BUNDLE_FORMAT:
            raise BundleInvalid(f"bundle format {m['format']!r}, expected {BUNDLE_FORMAT}")
        if m["repops_version"] != REPOPS_VERSION:
            raise BundleInvalid(f"bundle for {m['repops_version']!r}, this is {REPOPS_VERSION}")
        j = m["op_index"]
        if not isinstance(j, int) or isinstance(j, bool) or j < 1:
            raise BundleInvalid("op_index must be a positive integer")
        if not isinstance(m["prefix"], list):
            raise BundleInvalid("prefix must be a list of hashes")
        prefix = tuple(_hex32(h, f"prefix[{i}]") for i, h in enumerate(m["prefix"]))
        manifests = []
        for key in ("state_manifest", "batch_manifest"):
            raw = m[key]
            if not isinstance(raw, dict):
                raise BundleInvalid(f"{key} must be an object")
            manifests.append({str(k): _hex32(v, f"{key}[{k!r}]") for k, v in raw.items()})
        return OperandBundle(
            program_hash=_hex32(m["program_hash"], "program_hash"),
            op_index=j,
            tensors=tensors,
            prefix=prefix,
            state_manifest=manifests[0],
            batch_manifest=manifests[1],
        )


def _hex32(v: object, what: str) -> bytes:
    if not isinstance(v, str) or len(v) != 64:
        raise BundleInvalid(f"{what} must be 64 lowercase hex digits")
    try:
        b = bytes.fromhex(v)
    except ValueError:
        raise BundleInvalid(f"{what} is not hex") from None
    if b.hex() != v:
        raise BundleInvalid(f"{what} must be lowercase hex")
    return b


def _operand_slots(program: Program, j: int) -> list[tuple[str, int]]:
    """(bundle tensor name, source node id) for link j, from the tape alone."""
    tape = program.tape
    if j == tape.num_ops + 1:
        return []  # the end link is proven by hashes alone (see new_state_manifest)
    node = tape.nodes[tape.chain[j - 1]]
    return [
        (f"in.{pos}", src)
        for pos, src in enumerate(node.inputs)
        if tape.nodes[src].op is not Op.CONST
    ]


def max_bundle_bytes(program: Program, j: int) -> int:
    """The largest bundle an honest solver can produce for link j (the referee's read limit).

    Op j's operand bytes plus generous room for the header: per tensor entry, per prefix
    hash, per manifest entry.  Bounded by the op and the program's size, not by the state.
    """
    tape = program.tape
    if not 1 <= j <= tape.num_ops + 1:
        raise BundleInvalid(f"op index {j} outside [1, {tape.num_ops + 1}]")
    total = 4096 + 96 * (j - 1)
    for _, src in _operand_slots(program, j):
        node = tape.nodes[src]
        numel = 1
        for d in node.shape:
            numel *= d
        total += 256 + numel * DTYPES[node.dtype].itemsize
    names = [*program.state_specs, *(f"batch.{k}" for k in program.batch_specs)]
    total += sum(128 + 2 * len(name.encode("utf-8")) for name in names)
    return min(total, MAX_BUNDLE_BYTES)


def extract_bundle(
    program: Program,
    state: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    j: int,
    device: torch.device | str = "cpu",
) -> OperandBundle:
    """Replay the step up to link j and package its operands and their proofs."""
    dev = torch.device(device)
    tape = program.tape
    m = tape.num_ops
    if not 1 <= j <= m + 1:
        raise BundleInvalid(f"op index {j} outside [1, {m + 1}]")
    outs: list[bytes] = []

    def hook(jj: int, node: int, value: torch.Tensor) -> None:
        if jj < j:
            outs.append(hashing.tensor_hash(value))

    stop = tape.chain[j - 1] if j <= m else None
    vals = program.executor(dev).run(_feeds(program, state, batch, dev), hook=hook, stop_after=stop)
    tensors: dict[str, torch.Tensor] = {}
    for name, src in _operand_slots(program, j):
        v = vals[src]
        assert v is not None
        tensors[name] = v.detach().to("cpu").contiguous()
    return OperandBundle(
        program_hash=program.program_hash,
        op_index=j,
        tensors=tensors,
        prefix=tuple(outs),
        state_manifest=hashing.manifest_of(state),
        batch_manifest=hashing.manifest_of(batch),
    )


def new_state_manifest(
    program: Program,
    out_hashes: Sequence[bytes],
    state_manifest: Mapping[str, bytes],
    batch_manifest: Mapping[str, bytes],
) -> dict[str, bytes]:
    """name -> tensorHash of the state after the step, from proven hashes alone.

    Each tensor of the new state is the output of op jj (its hash is out_hashes[jj - 1]),
    an input passed through (its manifest entry) or a constant (hashed from the program).
    """
    tape = program.tape
    if len(out_hashes) != tape.num_ops:
        raise BundleInvalid(f"{len(out_hashes)} output hashes, the step has {tape.num_ops}")
    chain_pos = {nid: jj for jj, nid in enumerate(tape.chain, start=1)}
    out: dict[str, bytes] = {}
    for name, nid in tape.outputs.items():
        node = tape.nodes[nid]
        if nid in chain_pos:
            out[name] = out_hashes[chain_pos[nid] - 1]
        elif node.op is Op.INPUT:
            manifest = batch_manifest if node.arg.startswith("batch.") else state_manifest
            out[name] = manifest[node.arg]
        elif node.op is Op.CONST:
            out[name] = hashing.tensor_hash(tape.consts[node.arg])
        else:  # pragma: no cover - every tape node is an op, an input or a constant
            raise BundleInvalid(f"state tensor {name!r} comes from no proven value")
    return out


@dataclass(frozen=True)
class Reexecution:
    """The arbiter's result for link j: h_j and the hash of what op j produced."""

    op_index: int
    h: bytes
    out_hash: bytes


def reexecute(
    program: Program,
    bundle: OperandBundle | bytes,
    agreed_prev: bytes,
    expected_batch_hash: bytes | None = None,
    expected_state_hash: bytes | None = None,
) -> Reexecution:
    """Check an untrusted bundle against the program and h_{j-1}; re-execute link j on CPU.

    Raises `BundleInvalid` naming the first inconsistency.
    """
    b = OperandBundle.from_bytes(bundle) if isinstance(bundle, bytes) else bundle
    tape = program.tape
    m = tape.num_ops
    j = b.op_index
    if b.program_hash != program.program_hash:
        raise BundleInvalid("bundle was made for another program")
    if not 1 <= j <= m + 1:
        raise BundleInvalid(f"op_index {j} outside [1, {m + 1}]")
    if len(agreed_prev) != 32:
        raise BundleInvalid("agreed h_{j-1} must be 32 bytes")
    # 1. The manifests reproduce stateHash_t and batchHash_t.
    if set(b.state_manifest) != set(program.state_specs):
        raise BundleInvalid("state manifest names differ from the program's state")
    batch_names = {f"batch.{k}" for k in program.batch_specs}
    if set(b.batch_manifest) != batch_names:
        raise BundleInvalid(f"batch manifest names must be {sorted(batch_names)}")
    sh = hashing.state_hash_from_manifest(b.state_manifest)
    bh = hashing.state_hash_from_manifest(b.batch_manifest)
    if expected_state_hash is not None and sh != expected_state_hash:
        raise BundleInvalid("state manifest does not reproduce the agreed stateHash_t")
    if expected_batch_hash is not None and bh != expected_batch_hash:
        raise BundleInvalid("batch manifest does not reproduce the expected batchHash_t")
    # 2. The prefix reproduces the agreed h_{j-1}.
    if len(b.prefix) != j - 1:
        raise BundleInvalid(f"prefix has {len(b.prefix)} hashes, link {j} needs {j - 1}")
    if chain_after(sh, bh, b.prefix) != agreed_prev:
        raise BundleInvalid(f"prefix and manifests do not reproduce the agreed h_{j - 1}")
    # 3. Every operand is present, well-shaped and proven.
    slots = _operand_slots(program, j)
    names = [n for n, _ in slots]
    if set(b.tensors) != set(names):
        extra = sorted(set(b.tensors) - set(names))[:3]
        missing = sorted(set(names) - set(b.tensors))[:3]
        raise BundleInvalid(f"operands differ from op {j}'s: missing {missing}, extra {extra}")
    chain_pos = {nid: jj for jj, nid in enumerate(tape.chain, start=1)}
    operands: dict[int, torch.Tensor] = {}
    for name, src in slots:
        t = b.tensors[name]
        node = tape.nodes[src]
        if tuple(t.shape) != node.shape or t.dtype != DTYPES[node.dtype]:
            raise BundleInvalid(
                f"{name}: expected {node.dtype}{list(node.shape)}, got {t.dtype}{list(t.shape)}"
            )
        if node.op is Op.INPUT:
            manifest = b.batch_manifest if node.arg.startswith("batch.") else b.state_manifest
            proven = manifest[node.arg]
            what = f"manifest entry {node.arg!r}"
        else:
            jj = chain_pos[src]
            proven = b.prefix[jj - 1]
            what = f"output hash of op {jj}"
        if hashing.tensor_hash(t) != proven:
            raise BundleInvalid(f"{name} does not match the {what}")
        operands[src] = t
    # 4. Re-execute on CPU (the end link: hash the new state from the proven hashes).
    cpu = torch.device("cpu")
    if j == m + 1:
        manifest = new_state_manifest(program, b.prefix, b.state_manifest, b.batch_manifest)
        nsh = hashing.state_hash_from_manifest(manifest)
        return Reexecution(j, chain_final(agreed_prev, nsh), nsh)
    nid = tape.chain[j - 1]
    node = tape.nodes[nid]
    ex = program.executor(cpu)
    args = [
        ex.consts[tape.nodes[src].arg] if tape.nodes[src].op is Op.CONST else operands[src]
        for src in node.inputs
    ]
    torch.set_flush_denormal(False)
    out = execute(node.op, node.arg, args)
    if tuple(out.shape) != node.shape or out.dtype != DTYPES[node.dtype]:
        raise BundleInvalid(f"op {j} produced {out.dtype}{list(out.shape)}")  # pragma: no cover
    oh = hashing.tensor_hash(out)
    return Reexecution(j, chain_link(agreed_prev, j, oh), oh)
