"""The one `Settings` object of an API, worker or CLI process, read from ASSAY_* variables.

Every value has a default that works for a local devnet (`var/` under the working
directory); a deployment overrides them with environment variables or an env file
(`deploy/services/assay.env.example`).  This module must never read a key file: it only
says where one is, and only the worker opens it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024


class Settings(BaseSettings):
    """Where the chain, the deployment, the artifact store, Redis and the database are."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_", env_file=None, extra="ignore")

    rpc_url: str = Field(
        default="http://127.0.0.1:8545", description="JSON-RPC endpoint of the chain"
    )
    deployment: Path = Field(
        default=Path("var/deployment.json"), description="deployment JSON file"
    )
    store: str = Field(
        default="embedded:var/ipfs", description="artifact store: embedded:DIR or URL"
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Celery broker and backend"
    )
    database_url: str = Field(
        default="sqlite:///var/assay.db", description="SQLAlchemy database URL"
    )
    relayer_key_file: Path | None = Field(
        default=None, description="hex private key of the relayer"
    )
    max_upload_bytes: int = Field(
        default=64 * MIB, gt=0, description="largest request body accepted"
    )
    max_spec_bytes: int = Field(
        default=256 * 1024, gt=0, description="largest canonical spec accepted"
    )
    receipt_timeout_s: float = Field(
        default=120.0, gt=0, description="wait for a receipt this long"
    )
    relay_retry_s: float = Field(default=2.0, gt=0, description="delay before a relay is retried")
    chain_cache_s: float = Field(
        default=2.0, ge=0, description="cache chain reads (nonces) this long"
    )
    rpc_timeout_s: float = Field(
        default=5.0, gt=0, description="bound on each chain request the API makes (then 503)"
    )
    health_timeout_s: float = Field(default=0.5, gt=0, description="bound on each /health probe")
    sweep_interval_s: float = Field(
        default=15.0, ge=0, description="look for stuck submissions this often (0: never)"
    )
    stuck_after_s: float = Field(
        default=60.0, gt=0, description="a submission untouched this long is driven on again"
    )
    api_url: str = Field(default="http://127.0.0.1:8000", description="where the CLI finds the API")
    task_queue: str = Field(default="assay", description="the Celery queue tasks are sent to")
