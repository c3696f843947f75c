"""Push over HTTP, as the SDK does it: upload URL → PUT the tar.gz → PUT requirements.

The upload URL is outside ``/v1`` and carries a single-use, expiring token,
because the SDK sends no bearer key there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict

from orchestrator.api import wire
from orchestrator.api.deps import absolute_url, services
from orchestrator.services import Services

router = APIRouter(prefix="/v1/applications/{app_id}", tags=["push"])
uploads = APIRouter(tags=["uploads"])


class BinaryUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    requirements: dict[str, Any] | None = None


@router.get("/binary")
async def binary_upload_url(
    app_id: str, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    up = await svc.uploads.create(app_id, "binary")
    return {"upload_url": absolute_url(request, f"uploads/{up.token}"), "expires_at": up.expires_at}


@router.put("/binary")
async def binary_commit(
    app_id: str, body: BinaryUpdate | None = None, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Ingest the uploaded package; devint now runs it.

    The requirements the SDK sends are derived from the same ``app.yaml`` we
    read from the package, so the package is the source of truth.
    """
    up = await svc.uploads.take_binary(app_id)
    exe = await svc.push.ingest(app_id, Path(up.path), action="push")
    return {"executable": wire.executable(exe)}


@router.get("/executable")
async def current_executable(app_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    return wire.executable(await svc.push.current(app_id))


@uploads.put("/uploads/{token}", status_code=200)
async def receive_upload(
    token: str, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    up = await svc.uploads.receive(token, request.stream())
    return {"upload_id": up.id, "size": up.size}
