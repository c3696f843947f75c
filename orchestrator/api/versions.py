"""``/v1/applications/{app}/versions``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import wire
from orchestrator.api.deps import services
from orchestrator.api.fields import CHILD_ID_RULE, AppId, Description, Name, VersionId
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.models import Version
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}/versions", tags=["versions"], responses=errors(401, 404)
)


class VersionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None


class VersionUpdate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Name = None
    description: Description = None


async def _out(svc: Services, v: Version) -> dict[str, Any]:
    return wire.version(v, await svc.push.executable(v.executable_id))


@router.post("", status_code=201, responses=CREATE)
async def create_version(
    app_id: AppId, body: VersionCreate, svc: Services = Depends(services)
) -> dict[str, Any]:
    v = await svc.versions.create(app_id, body.id, body.name, body.description or "")
    return await _out(svc, v)


@router.get("", responses=errors(422))
async def list_versions(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [await _out(svc, v) for v in await svc.versions.list(app_id)]
    return wire.page(items, pagereturn)


@router.get("/{version_id}")
async def get_version(
    app_id: AppId, version_id: VersionId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return await _out(svc, await svc.versions.get(app_id, version_id))


@router.put("/{version_id}", responses=CHANGE)
async def update_version(
    app_id: AppId, version_id: VersionId, body: VersionUpdate, svc: Services = Depends(services)
) -> dict[str, Any]:
    v = await svc.versions.update(app_id, version_id, body.name, body.description)
    return await _out(svc, v)


@router.delete("/{version_id}", status_code=204, responses=REMOVE)
async def delete_version(
    app_id: AppId, version_id: VersionId, svc: Services = Depends(services)
) -> None:
    await svc.versions.delete(app_id, version_id)
