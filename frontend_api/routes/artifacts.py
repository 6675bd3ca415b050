"""/artifacts: upload a job's model artifacts; /artifacts/{cid}: download a stored file.

POST /artifacts takes a raw body (a user's own model: its lowered ``graph.json`` or its
``weights.safetensors``) and writes it to the store *unpinned*: nothing is kept for good
until a job submission names it in its spec with the right sha256, when the pin task pins
it with the spec and the dataset.

Downloads (checkpoints, manifests, bundles) are streamed as the store verifies them block
by block, so what arrives matches the CID; the dashboard links every checkpoint here, and
`assay job result` fetches the final one through it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from frontend_api.deps import SettingsDep, StoreDep
from frontend_api.errors import InvalidRequest, NotFound, PayloadTooLarge, Problem, Unavailable
from market.store import StoreError, normalize_cid
from market.store.errors import ArtifactNotFound, InvalidCid, StoreUnreachable

from .common import PROBLEMS

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.post(
    "",
    status_code=201,
    responses={**PROBLEMS},
    summary="Upload a model artifact (stored unpinned until a job names it)",
)
async def post_artifact(
    request: Request, store: StoreDep, settings: SettingsDep
) -> dict[str, str | int]:
    limit = settings.max_upload_bytes
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"artifact: larger than the limit of {limit} bytes")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        raise InvalidRequest("artifact: empty body", [Problem("body", "empty")])
    try:
        cid = await run_in_threadpool(store.add_bytes, data, pin=False)
    except StoreError as exc:
        raise Unavailable(f"artifact store: {exc}") from None
    return {"cid": str(cid), "sha256": hashlib.sha256(data).hexdigest(), "size": size}


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
