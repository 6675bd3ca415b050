"""/solvers: what each solver claimed, finalized, lost and earned, from the index."""

from __future__ import annotations

from fastapi import APIRouter

from frontend_api.deps import AppState, SessionDep, StateDep
from frontend_api.schemas import SolverListOut, SolverOut
from market import queries

from .common import PROBLEMS, AddressPath, checksum

router = APIRouter(prefix="/solvers", tags=["solvers"])


def _with_chain(state: AppState, out: SolverOut) -> SolverOut:
    """Add balance and credit from the chain; left None when the chain does not answer."""
    try:
        gateway = state.gateway()
        balance = gateway.balance_of(out.address)
        credit = gateway.credit_of(out.address)
    except Exception:  # the index still answers without the chain
        return out
    return out.model_copy(update={"balance": balance, "credit": credit})


@router.get("", response_model=SolverListOut, summary="Every solver that ever claimed a job")
def list_solvers(session: SessionDep, state: StateDep) -> SolverListOut:
    return SolverListOut(
        items=[
            _with_chain(state, SolverOut.model_validate(queries.solver_stats(session, who)))
            for who in queries.known_solvers(session)
        ]
    )


@router.get("/{address}", response_model=SolverOut, responses=PROBLEMS)
def get_solver(address: AddressPath, session: SessionDep, state: StateDep) -> SolverOut:
    stats = queries.solver_stats(session, checksum(address))
    return _with_chain(state, SolverOut.model_validate(stats))
