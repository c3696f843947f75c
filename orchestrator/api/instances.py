"""``/v1/applications/{app}/instances`` and ``promote``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator import models
from orchestrator.api import wire
from orchestrator.api.deps import services
from orchestrator.api.fields import (
    CHILD_ID_RULE,
    PRIORITY,
    AppId,
    Description,
    InstanceId,
    Integer,
    Name,
)
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.errors import Invalid
from orchestrator.ids import new_id
from orchestrator.models import Instance, Limits
from orchestrator.registry.instances import InstanceChanges
from orchestrator.registry.promote import promote
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}", tags=["instances"], responses=errors(401, 404)
)


class Queuing(BaseModel):
    """The SDK's ``RunQueuing``: a run's own, or an instance's for its runs."""

    model_config = ConfigDict(extra="ignore")
    priority: Integer | None = Field(
        default=None, description="1 runs first; default 6", json_schema_extra=PRIORITY
    )
    disabled: bool | None = None

    def values(self) -> models.Queuing:
        """As the domain keeps it (which checks the priority: a 400 naming the rule)."""
        return models.Queuing(self.priority, self.disabled)


class InstanceConfiguration(BaseModel):
    model_config = ConfigDict(extra="ignore")
    execution_class: str | None = None
    options: dict[str, Any] | None = None
    limits: dict[str, Any] | None = None
    secrets_collection_id: str | None = None
    queuing: Queuing | None = Field(
        default=None, description="priority and disabled for its runs that set none"
    )


class InstanceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    version_id: str | None = None
    description: Description = None
    configuration: InstanceConfiguration | None = None


class InstanceCreate(InstanceBody):
    version_id: str  # an instance points at a version


class LockBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    locked: bool


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version_id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    instance_id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None


def option_strings(options: dict[str, Any] | None) -> dict[str, str] | None:
    """Option values travel as strings, as the SDK sends them."""
    if options is None:
        return None
    if not isinstance(options, dict):
        raise Invalid("options must be an object of name → value")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in options.items()}


@router.post("/instances", status_code=201, responses=CREATE)
async def create_instance(
    app_id: AppId, body: InstanceCreate, svc: Services = Depends(services)
) -> dict[str, Any]:
    if not body.version_id:
        raise Invalid("version_id is required: an instance points at a version")
    config = body.configuration or InstanceConfiguration()
    instance_id = body.id or new_id("instance")
    instance = Instance(
        id=instance_id,
        app_id=app_id,
        version_id=body.version_id,
        name=body.name or "",
        description=body.description or "",
        options=option_strings(config.options) or {},
        limits=Limits.from_dict(config.limits),
        execution_class=config.execution_class,
        secrets_collection_id=config.secrets_collection_id or None,
        queuing=config.queuing.values() if config.queuing else models.Queuing(),
    )
    return await _answer(svc, await svc.instances.create(instance))


async def _answer(svc: Services, instance: Instance) -> dict[str, Any]:
    """The instance, with orch's own ``undeclared_options`` when its version's app.yaml
    does not declare some of its options (the SDK reads the instance's fields only)."""
    answer = wire.instance(instance)
    if undeclared := await svc.instances.undeclared(instance):
        answer["undeclared_options"] = undeclared
    return answer


@router.get("/instances", responses=errors(422))
async def list_instances(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [wire.instance(i) for i in await svc.instances.list(app_id)]
    return wire.page(items, pagereturn)


@router.get("/instances/{instance_id}")
async def get_instance(
    app_id: AppId, instance_id: InstanceId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return wire.instance(await svc.instances.get(app_id, instance_id))


@router.put("/instances/{instance_id}", responses=CHANGE)
async def update_instance(
    app_id: AppId,
    instance_id: InstanceId,
    body: InstanceBody,
    locked: bool | None = Query(
        None,
        description="orch's own: false unlocks the instance before the changes, true locks "
        "it after them, in the same write (a refused change leaves the lock as it was). "
        "The body's locked is ignored: PUT /instances/{id}/lock sets it alone.",
    ),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    config = body.configuration
    changes = InstanceChanges(
        version_id=body.version_id,
        name=body.name,
        description=body.description,
        options=option_strings(config.options) if config else None,
        limits=Limits.from_dict(config.limits) if config and config.limits is not None else None,
        execution_class=config.execution_class if config else None,
        secrets_collection_id=config.secrets_collection_id if config else None,
        queuing=config.queuing.values() if config and config.queuing else None,
    )
    return await _answer(svc, await svc.instances.update(app_id, instance_id, changes, locked))


@router.put("/instances/{instance_id}/lock", responses=CHANGE)
async def lock_instance(
    app_id: AppId, instance_id: InstanceId, body: LockBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    """A locked instance refuses changes and deletion (the SDK's ``locked=``)."""
    return wire.instance(await svc.instances.set_lock(app_id, instance_id, body.locked))


@router.delete("/instances/{instance_id}", status_code=204, responses=REMOVE | errors(422))
async def delete_instance(
    app_id: AppId,
    instance_id: InstanceId,
    force: bool = Query(False),
    svc: Services = Depends(services),
) -> None:
    await svc.instances.delete(app_id, instance_id, force=force)


@router.post("/promote", responses=CREATE)
async def promote_app(
    app_id: AppId, body: PromoteBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    done = await promote(
        svc.store,
        svc.settings,
        app_id,
        body.version_id,
        body.name,
        body.description or "",
        body.instance_id,
    )
    answer = {
        "application": wire.application(done.app),
        "version": wire.version(
            done.version, await svc.push.executable(done.version.executable_id)
        ),
        "instance": wire.instance(done.instance),
        "created_instance": done.created_instance,
        "created_version": done.created_version,  # False: an existing version, promoted
        "moved_instance": done.moved_instance,
    }
    if undeclared := await svc.instances.undeclared(done.instance):
        answer["undeclared_options"] = undeclared
    return answer
