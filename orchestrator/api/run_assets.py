"""A run's assets: list, one asset with its download URL, and its content.

The SDK's ``download_asset_content`` asks ``GET .../runs/{run}/assets/{asset}`` for a
``download_url`` and a ``type``, then fetches the URL: JSON for json assets, bytes for
others. The URL is signed and expiring like the output's (``run_files``): it works
without the key, as Nextmv's presigned URLs do, and with it (the SDK sends it).

One asset is looked up by its position, not by listing the others; a file asset's bytes
are streamed from the descriptor ``assets.open_file`` opened, never held whole.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

from orchestrator.api.auth import sign, verify
from orchestrator.api.deps import absolute_url, services
from orchestrator.api.fields import AppId, RunId
from orchestrator.api.head import was_head
from orchestrator.api.responses import errors
from orchestrator.api.run_files import URL_TTL_SECONDS
from orchestrator.runs.assets import open_file
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}/runs/{run_id}/assets",
    tags=["runs"],
    responses=errors(401, 404),
)
downloads = APIRouter(tags=["downloads"])

AssetId = Annotated[str, Path(description="An asset's id, as the asset list gives it")]
_BYTES = {"schema": {"type": "string", "format": "binary"}}
ASSET_CONTENT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The asset's content: JSON for json assets, bytes for others.",
        "content": {"application/json": {"schema": {}}, "application/octet-stream": _BYTES},
    }
}


def _path(app_id: str, run_id: str, asset_id: str) -> str:
    return f"downloads/{app_id}/runs/{run_id}/assets/{asset_id}"


@router.get("")
async def list_assets(
    app_id: AppId, run_id: RunId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """The assets a model reported (``assets`` in its JSON output, or its assets file)."""
    run = await svc.runs.get(app_id, run_id)
    return {"items": [a.wire() for a in await svc.runs.asset_list(run)]}


@router.get("/{asset_id}")
async def asset_metadata(
    app_id: AppId,
    run_id: RunId,
    asset_id: AssetId,
    request: Request,
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """One asset, with ``download_url`` (signed, expiring) and ``type`` (json or binary)."""
    run = await svc.runs.get(app_id, run_id)
    asset = await svc.runs.asset(run, asset_id)
    path = _path(app_id, run_id, asset_id)
    url = absolute_url(request, f"{path}?{sign(request.app.state.api_key, path, URL_TTL_SECONDS)}")
    return asset.wire() | {
        "run_id": run.id,
        "download_url": url,
        "type": "json" if asset.is_json else "binary",
    }


@downloads.get(
    "/downloads/{app_id}/runs/{run_id}/assets/{asset_id}",
    responses=ASSET_CONTENT | errors(401, 404, 422),
)
async def asset_content(
    app_id: AppId,
    run_id: RunId,
    asset_id: AssetId,
    request: Request,
    expires: int = Query(...),
    sig: str = Query(...),
    svc: Services = Depends(services),
) -> Response:
    """Signed, expiring, key-less: the asset's bytes."""
    verify(request.app.state.api_key, _path(app_id, run_id, asset_id), expires, sig)
    run = await svc.runs.get(app_id, run_id)
    asset = await svc.runs.asset(run, asset_id)
    if asset.file is None:  # held in the reported document, which the parse limit bounds
        media = "application/json" if asset.is_json else "application/octet-stream"
        return Response(asset.body(), media_type=media)
    fd, size = await anyio.to_thread.run_sync(open_file, asset)
    return OpenFileResponse(fd, size, "application/octet-stream")


class OpenFileResponse(Response):
    """The first ``size`` bytes of an open file, streamed from its descriptor (closed
    when the response ends, however it ends): what was opened and checked is what is
    sent (``FileResponse`` opens its path again). A file that shrank meanwhile ends
    short of ``Content-Length``; one that grew is cut at it."""

    chunk_size = 256 * 1024

    def __init__(self, fd: int, size: int, media_type: str) -> None:
        self.fd, self.size = fd, size
        super().__init__(media_type=media_type)
        self.headers["content-length"] = str(size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await send(start | {"headers": self.raw_headers})
            left = 0 if was_head(scope) else self.size
            while left > 0:
                chunk = await anyio.to_thread.run_sync(os.read, self.fd, min(left, self.chunk_size))
                if not chunk:
                    break
                left -= len(chunk)
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            os.close(self.fd)
