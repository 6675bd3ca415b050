"""/solvers: what each solver claimed, finalized, lost and earned, from the index."""

from __future__ import annotations

from fastapi import APIRouter

from frontend_api.deps import SessionDep
from frontend_api.schemas import SolverListOut, SolverOut
from market import queries

from .common import PROBLEMS, AddressPath, checksum

router = APIRouter(prefix="/solvers", tags=["solvers"])


@router.get("", response_model=SolverListOut, summary="Every solver that ever claimed a job")
def list_solvers(session: SessionDep) -> SolverListOut:
    return SolverListOut(
        items=[
            SolverOut.model_validate(queries.solver_stats(session, who))
            for who in queries.known_solvers(session)
        ]
    )


@router.get("/{address}", response_model=SolverOut, responses=PROBLEMS)
def get_solver(address: AddressPath, session: SessionDep) -> SolverOut:
    return SolverOut.model_validate(queries.solver_stats(session, checksum(address)))
