"""A run's assets: list, one asset with its download URL, and its content.

The SDK's ``download_asset_content`` asks ``GET .../runs/{run}/assets/{asset}`` for a
``download_url`` and a ``type``, then fetches the URL: JSON for json assets, bytes for
others. The URL is signed and expiring like the output's (``run_files``): it works
without the key, as Nextmv's presigned URLs do, and with it (the SDK sends it).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from orchestrator.api.auth import sign, verify
from orchestrator.api.deps import absolute_url, services
from orchestrator.api.fields import AppId, RunId
from orchestrator.api.responses import errors
from orchestrator.api.run_files import URL_TTL_SECONDS
from orchestrator.runs.assets import find
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
    asset = find(await svc.runs.asset_list(run), run, asset_id)
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
    asset = find(await svc.runs.asset_list(run), run, asset_id)
    media = "application/json" if asset.is_json else "application/octet-stream"
    return Response(asset.body(), media_type=media)
