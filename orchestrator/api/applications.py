"""``/v1/applications``: apps, their default instance and their pointer history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import wire
from orchestrator.api.deps import services
from orchestrator.api.fields import APP_ID_RULE, AppId, Description, Name, RequiredName
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.models import RESERVED_INSTANCES
from orchestrator.services import Services

router = APIRouter(prefix="/v1/applications", tags=["applications"], responses=errors(401))


class AppCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(json_schema_extra=APP_ID_RULE)]
    name: RequiredName
    description: Description = None
    default_instance: str | None = Field(default=None, alias="default_instance")
    default_experiment_instance: str | None = None


class AppUpdate(BaseModel):
    """The SDK GETs the app and PUTs the whole object back; read-only keys are ignored."""

    model_config = ConfigDict(extra="ignore")
    name: Name = None
    description: Description = None
    default_instance: str | None = None
    default_instance_id: str | None = None
    default_experiment_instance: str | None = None


def _default(value: str | None) -> str | None:
    # devint/latest as "default" is what having no default already means.
    return None if value in RESERVED_INSTANCES else value


@router.post("", status_code=201, responses=CREATE | errors(404))
async def create_app(body: AppCreate, svc: Services = Depends(services)) -> dict[str, Any]:
    app = await svc.apps.create(
        body.id,
        body.name,
        body.description or "",
        body.default_experiment_instance,
        _default(body.default_instance),
    )
    return wire.application(app)


@router.get("", responses=errors(422))
async def list_apps(pagereturn: bool = Query(False), svc: Services = Depends(services)) -> Any:
    return wire.page([wire.application(a) for a in await svc.apps.list()], pagereturn)


@router.get("/{app_id}", responses=errors(404))
async def get_app(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    return wire.application(await svc.apps.get(app_id))


@router.put("/{app_id}", responses=CHANGE | errors(404))
async def update_app(
    app_id: AppId, body: AppUpdate, svc: Services = Depends(services)
) -> dict[str, Any]:
    fields = body.model_fields_set
    kwargs: dict[str, Any] = {"name": body.name, "description": body.description}
    if "default_instance" in fields or "default_instance_id" in fields:
        raw = body.default_instance if "default_instance" in fields else body.default_instance_id
        kwargs["default_instance_id"] = _default(raw)
    if "default_experiment_instance" in fields:  # the SDK echoes it back on every update
        kwargs["default_experiment_instance_id"] = body.default_experiment_instance
    return wire.application(await svc.apps.update(app_id, **kwargs))


@router.delete("/{app_id}", status_code=204, responses=REMOVE | errors(404))
async def delete_app(app_id: AppId, svc: Services = Depends(services)) -> None:
    await svc.apps.delete(app_id)


@router.get("/{app_id}/history", responses=errors(404))
async def app_history(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    return {"items": [wire.pointer_move(m) for m in await svc.apps.history(app_id)]}
