"""``.../experiments/acceptance``: acceptance tests on batch experiments (the SDK's routes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import acceptance_wire as wire
from orchestrator.api.deps import services
from orchestrator.api.fields import CHILD_ID_RULE, AppId, Description, ExperimentId, LabelBody, Name
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.api.wire import page
from orchestrator.errors import Invalid
from orchestrator.experiments.acceptance import AcceptanceRequest
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}/experiments/acceptance",
    tags=["experiments"],
    responses=errors(401, 404),
)


class InstanceRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    instance_id: str


class AcceptanceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str, Field(json_schema_extra=CHILD_ID_RULE)]
    name: Name = None
    description: Description = None
    experiment_id: str | None = None
    control: InstanceRef
    candidate: InstanceRef
    metrics: list[dict[str, Any]] = Field(
        ..., description="Nextmv Metric objects: field, metric_type, params, statistic"
    )


@router.post("", status_code=201, responses=CREATE)
async def create_acceptance(
    app_id: AppId, body: AcceptanceBody, svc: Services = Depends(services)
) -> Any:
    if body.experiment_id not in (None, body.id):
        raise Invalid(
            f"experiment_id {body.experiment_id!r} must equal the acceptance test's id {body.id!r}"
        )
    view = await svc.acceptance.create(
        AcceptanceRequest(
            app_id=app_id,
            test_id=body.id,
            control_instance_id=body.control.instance_id,
            candidate_instance_id=body.candidate.instance_id,
            metrics=body.metrics,
            name=body.name,
            description=body.description or "",
        )
    )
    return wire.acceptance_test(view)


@router.get("", responses=errors(422))
async def list_acceptance(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [
        wire.acceptance_test(await svc.acceptance.view(t))
        for t in await svc.acceptance.list(app_id)
    ]
    return page(items, pagereturn)


@router.get("/{test_id}")
async def get_acceptance(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> Any:
    test = await svc.acceptance.get(app_id, test_id)
    return wire.acceptance_test(await svc.acceptance.view(test))


@router.patch("/{test_id}", responses=CHANGE)
async def update_acceptance(
    app_id: AppId, test_id: ExperimentId, body: LabelBody, svc: Services = Depends(services)
) -> Any:
    view = await svc.acceptance.update(app_id, test_id, body.name, body.description)
    return wire.acceptance_test(view)


@router.delete("/{test_id}", status_code=204, responses=REMOVE)
async def delete_acceptance(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> None:
    await svc.acceptance.delete(app_id, test_id)
