"""``/v1/applications/{app}/secrets``: secrets collections, on the SDK's routes.

Create takes the values; nothing returns them (``GET`` masks each value). Updates are
the SDK's ``PATCH`` with ``operations`` (create, update, delete one secret each).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import secrets_wire
from orchestrator.api.deps import services
from orchestrator.api.fields import CHILD_ID_RULE, AppId, Description, Name
from orchestrator.api.fields import SecretsCollectionId as CollectionId
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.registry.secrets import SecretChange, make_secret, secret_type
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}/secrets", tags=["secrets"], responses=errors(401, 404)
)


class SecretBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(description="env or file")
    location: str = Field(
        description="env: the variable's name; file: a path relative to the run's working folder"
    )
    value: str


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    secrets: list[SecretBody]


class Operation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    op: str = Field(description="create, update or delete")
    type: str
    location: str
    value: str | None = None


class CollectionPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: Name = None
    description: Description = None
    operations: list[Operation] | None = None


@router.post("", status_code=201, responses=CREATE)
async def create_collection(
    app_id: AppId, body: CollectionCreate, svc: Services = Depends(services)
) -> dict[str, Any]:
    secrets = [make_secret(s.type, s.location, s.value) for s in body.secrets]
    made = await svc.secrets.create(app_id, body.id, body.name, body.description or "", secrets)
    return secrets_wire.summary(made)


@router.get("")
async def list_collections(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    """Always a page (the SDK reads ``items`` with or without pagination)."""
    items = [secrets_wire.summary(c) for c in await svc.secrets.list(app_id)]
    return {"items": items, "next_page_token": ""}


@router.get("/{collection_id}")
async def get_collection(
    app_id: AppId, collection_id: CollectionId, svc: Services = Depends(services)
) -> dict[str, Any]:
    collection, keys = await svc.secrets.get(app_id, collection_id)
    return secrets_wire.collection(collection, keys)


@router.patch("/{collection_id}", responses=CHANGE)
async def update_collection(
    app_id: AppId,
    collection_id: CollectionId,
    body: CollectionPatch,
    svc: Services = Depends(services),
) -> dict[str, Any]:
    changes = [
        SecretChange(op.op, secret_type(op.type), op.location, op.value)
        for op in body.operations or []
    ]
    done = await svc.secrets.update(app_id, collection_id, body.name, body.description, changes)
    return secrets_wire.summary(done)


@router.delete("/{collection_id}", status_code=204, responses=REMOVE)
async def delete_collection(
    app_id: AppId, collection_id: CollectionId, svc: Services = Depends(services)
) -> None:
    await svc.secrets.delete(app_id, collection_id)
