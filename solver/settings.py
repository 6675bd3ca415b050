"""Solver settings: one pydantic-settings object from ASSAY_* variables and flags."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from roles.startup import RoleSettings


class SolverSettings(RoleSettings):
    """Where the solver finds the chain, its key, the store, and where it keeps its state."""

    key_file: Path = Path("var/keys/solver.key")
    state_dir: Path = Path("var/solver")
    device: str = "auto"
    """"auto" (CUDA if present, else CPU), "cpu" or "cuda"."""
    max_stake_wei: int = 10**24
    """Never claim a job whose required stake exceeds this."""
    memory_limit_bytes: int = 8 << 30
    """Skip jobs whose training state is estimated not to fit in this much memory."""
    max_jobs: int = 0
    """Stop after this many jobs are settled (0: run until stopped)."""
    world_size: int = Field(default=1, ge=1)
    """Train each job on this many local data-parallel workers (`roles.dataparallel`);
    a job whose data.micro_batches it does not divide is trained in one process."""
