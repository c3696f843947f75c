"""Push over HTTP, as the SDK does it: upload URL → PUT the tar.gz → PUT requirements.

The upload URL is outside ``/v1`` and carries a single-use, expiring token,
because the SDK sends no bearer key there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import wire
from orchestrator.api.deps import absolute_url, services
from orchestrator.api.fields import AppId
from orchestrator.api.responses import CHANGE, errors
from orchestrator.services import Services
from orchestrator.uploads import package_at_fault

router = APIRouter(prefix="/v1/applications/{app_id}", tags=["push"], responses=errors(401, 404))
uploads = APIRouter(tags=["uploads"])


class BinaryUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    requirements: dict[str, Any] | None = None
    upload_id: str | None = Field(
        default=None,
        description="the upload to commit (GET .../binary names it); without it, the app's "
        "newest received package, as the SDK expects",
    )


@router.get("/binary", responses=errors(507))
async def binary_upload_url(
    app_id: AppId, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    up = await svc.uploads.create(app_id, "binary")
    return {
        "upload_url": absolute_url(request, f"uploads/{up.token}"),
        "upload_id": up.id,
        "expires_at": up.expires_at,
    }


@router.put("/binary", responses=CHANGE)
async def binary_commit(
    app_id: AppId, body: BinaryUpdate | None = None, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Ingest the uploaded package; devint now runs it.

    The requirements the SDK sends are derived from the same ``app.yaml`` we
    read from the package, so the package is the source of truth. The upload is consumed
    once pushed, or refused for the package itself; refused for anything else (507 on a
    full disk) it is kept, and the same commit works again (``UploadService.claim_binary``).
    """
    up, package = await svc.uploads.claim_binary(app_id, body.upload_id if body else None)
    try:
        done = await svc.push.ingest_moving(app_id, package, action="push")
    except BaseException as exc:
        if package_at_fault(exc):
            await svc.uploads.committed(up, package)  # refused for itself: it goes, as before
            raise
        svc.uploads.released(up, package)  # a full disk, the app deleted: a retry works
        kept = svc.uploads.failed_commit(up, exc)
        if kept is None:
            raise
        raise kept from exc
    await svc.uploads.committed(up, package)
    answer: dict[str, Any] = {"executable": wire.executable(done.executable)}
    if done.unchanged:  # orch's own: devint ran it already (the SDK reads no answer)
        answer["unchanged"] = True
    return answer


@router.get("/executable", responses=errors(409))
async def current_executable(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    return wire.executable(await svc.push.current(app_id))


@uploads.put(
    "/uploads/{token}",
    status_code=200,
    responses=errors(401, 404, 409, 413, 507),
    openapi_extra={"requestBody": {"content": {"application/octet-stream": {"schema": {}}}}},
)
async def receive_upload(
    token: str, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    """The body, streamed to disk: a package (push) or a run input. The token is the
    secret (the SDK sends no key here): single use, it expires."""
    length = request.headers.get("content-length", "")
    announced = int(length) if length.isdigit() else None
    up = await svc.uploads.receive(token, request.stream(), announced)
    return {"upload_id": up.id, "size": up.size}
