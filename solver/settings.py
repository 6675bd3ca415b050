"""Solver settings: one pydantic-settings object from ASSAY_* variables and flags."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class SolverSettings(BaseSettings):
    """Where the solver finds the chain, its key, the store, and where it keeps its state."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_")

    rpc_url: str = "http://127.0.0.1:8545"
    deployment: Path = Path("var/deployment.json")
    key_file: Path = Path("var/keys/solver.key")
    store: str = "embedded:var/ipfs"
    state_dir: Path = Path("var/solver")
    device: str = "auto"
    """"auto" (CUDA if present, else CPU), "cpu" or "cuda"."""
    poll_interval: float = 1.0
    max_stake_wei: int = 10**24
    """Never claim a job whose required stake exceeds this."""
    memory_limit_bytes: int = 8 << 30
    """Skip jobs whose training state is estimated not to fit in this much memory."""
    max_jobs: int = 0
    """Stop after this many jobs are settled (0: run until stopped)."""
