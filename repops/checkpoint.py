"""Checkpoint files: canonical safetensors of a training state, bound to its program.

The metadata carries the repops version, the program hash and the state hash; loading
checks all three, and that the tensors are exactly the program's state entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch

from repops import hashing, stio
from repops.errors import CheckpointInvalid
from repops.tape import DTYPES
from repops.version import REPOPS_VERSION

if TYPE_CHECKING:
    from repops.program import Program

State = dict[str, torch.Tensor]


def check_state(program: Program, state: Mapping[str, torch.Tensor]) -> None:
    """Raise CheckpointInvalid unless `state` has exactly the program's names/shapes/dtypes."""
    names = set(state)
    want = set(program.state_specs)
    if names != want:
        missing = sorted(want - names)[:3]
        extra = sorted(names - want)[:3]
        raise CheckpointInvalid(f"state names differ: missing {missing}, unexpected {extra}")
    for n, (shape, dt) in program.state_specs.items():
        t = state[n]
        if tuple(t.shape) != shape or t.dtype != DTYPES[dt]:
            raise CheckpointInvalid(
                f"{n}: expected {dt}{list(shape)}, got {t.dtype}{list(t.shape)}"
            )


def save_checkpoint(program: Program, state: Mapping[str, torch.Tensor]) -> bytes:
    """Canonical safetensors bytes of `state`; metadata binds version and program hash."""
    check_state(program, state)
    meta = {
        "repops_version": REPOPS_VERSION,
        "program_hash": program.program_hash.hex(),
        "state_hash": hashing.state_hash(state).hex(),
    }
    return stio.dumps(state, meta)


def load_checkpoint(program: Program, data: bytes, device: torch.device | str = "cpu") -> State:
    """Load and check a checkpoint; its stateHash equals the saved one exactly."""
    tensors, meta = stio.loads(data)
    if meta.get("repops_version") != REPOPS_VERSION:
        raise CheckpointInvalid(f"checkpoint version {meta.get('repops_version')!r}")
    if meta.get("program_hash") != program.program_hash.hex():
        raise CheckpointInvalid("checkpoint belongs to another program")
    check_state(program, tensors)
    if hashing.state_hash(tensors).hex() != meta.get("state_hash"):
        raise CheckpointInvalid("checkpoint tensors do not match its recorded state_hash")
    dev = torch.device(device)
    return {k: v.to(dev) for k, v in tensors.items()}
