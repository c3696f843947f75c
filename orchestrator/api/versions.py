"""``/v1/applications/{app}/versions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict

from orchestrator.api import wire
from orchestrator.api.deps import services
from orchestrator.models import Version
from orchestrator.services import Services

router = APIRouter(prefix="/v1/applications/{app_id}/versions", tags=["versions"])


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    name: str | None = None
    description: str | None = None


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    description: str | None = None


async def _out(svc: Services, v: Version) -> dict[str, Any]:
    return wire.version(v, await svc.push.executable(v.executable_id))


@router.post("", status_code=201)
async def create_version(
    app_id: str, body: VersionCreate, svc: Services = Depends(services)
) -> dict[str, Any]:
    v = await svc.versions.create(app_id, body.id, body.name, body.description or "")
    return await _out(svc, v)


@router.get("")
async def list_versions(
    app_id: str, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [await _out(svc, v) for v in await svc.versions.list(app_id)]
    return wire.page(items, pagereturn)


@router.get("/{version_id}")
async def get_version(
    app_id: str, version_id: str, svc: Services = Depends(services)
) -> dict[str, Any]:
    return await _out(svc, await svc.versions.get(app_id, version_id))


@router.put("/{version_id}")
async def update_version(
    app_id: str, version_id: str, body: VersionUpdate, svc: Services = Depends(services)
) -> dict[str, Any]:
    v = await svc.versions.update(app_id, version_id, body.name, body.description)
    return await _out(svc, v)


@router.delete("/{version_id}", status_code=204)
async def delete_version(app_id: str, version_id: str, svc: Services = Depends(services)) -> None:
    await svc.versions.delete(app_id, version_id)
