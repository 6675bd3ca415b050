"""What several routers share: path and query types, error answers, small converters."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Path
from web3 import Web3

from frontend_api.schemas import ProblemOut

MAX_DB_INT: Final = 2**63 - 1
ADDRESS_PATTERN: Final = r"^0x[0-9a-fA-F]{40}$"

PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    404: {"model": ProblemOut, "description": "not found"},
    422: {"model": ProblemOut, "description": "invalid request; `errors` names each field"},
    503: {"model": ProblemOut, "description": "a backend is unavailable"},
}

JobIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="job id (from 1)")]
GameIdPath = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="dispute game id (from 1)")]
AddressPath = Annotated[str, Path(pattern=ADDRESS_PATTERN)]


def checksum(address: str) -> str:
    return str(Web3.to_checksum_address(address.lower()))
