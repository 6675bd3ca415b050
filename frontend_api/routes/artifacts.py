"""/artifacts/{cid}: download a file of the artifact store (checkpoints, manifests, bundles).

Bytes are streamed as the store verifies them block by block, so what arrives matches
the CID; the dashboard links every checkpoint here, and `assay job result` fetches the
final one through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from frontend_api.deps import StoreDep
from frontend_api.errors import InvalidRequest, NotFound, Problem, Unavailable
from market.store import StoreError, normalize_cid
from market.store.errors import ArtifactNotFound, InvalidCid, StoreUnreachable

from .common import PROBLEMS

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.get(
    "/{cid}",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, **PROBLEMS},
    summary="Download a stored file by CID",
)
def get_artifact(
    cid: Annotated[str, Path(min_length=1, max_length=128)], store: StoreDep
) -> StreamingResponse:
    try:
        canonical = normalize_cid(cid)
        pieces = store.stream(canonical)
        first = next(pieces, b"")
    except InvalidCid as exc:
        raise InvalidRequest(f"cid: {exc}", [Problem("cid", str(exc))]) from None
    except ArtifactNotFound:
        raise NotFound(f"no artifact {cid} in the store") from None
    except StoreUnreachable as exc:
        raise Unavailable(f"artifact store unavailable: {exc}") from None
    except StoreError as exc:
        raise Unavailable(f"artifact store: {exc}") from None

    def body() -> Iterator[bytes]:
        yield first
        yield from pieces

    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{canonical}"'},
    )
