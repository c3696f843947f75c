"""``/v1/applications/{app}/ensembles`` (definitions) and ``.../runs/{run}/ensemble``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import ensemble_wire
from orchestrator.api.deps import services
from orchestrator.api.fields import (
    NOT_BOOLEAN,
    AppId,
    Description,
    ExperimentId,
    Integer,
    LabelBody,
    Name,
    Number,
    RunId,
)
from orchestrator.api.instances import option_strings
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.ensemble_models import EnsembleDefinition, EvaluationRule, RunGroup
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}", tags=["ensembles"], responses=errors(401, 404)
)


class RunGroupBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    instance_id: str
    options: dict[str, Any] | None = None
    repetitions: Annotated[int, Field(ge=1, le=100), NOT_BOOLEAN] | None = None


class ToleranceBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: Number = 0.0
    type: str = "absolute"


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    statistics_path: str
    objective: str
    tolerance: ToleranceBody = Field(default_factory=ToleranceBody)
    index: Integer = 0


class DefinitionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    name: Name = None
    description: Description = None
    run_groups: list[RunGroupBody]
    rules: list[RuleBody]


@router.post("/ensembles", status_code=201, responses=CREATE)
async def create_definition(
    app_id: AppId, body: DefinitionBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    definition = EnsembleDefinition(
        id=body.id or "",
        app_id=app_id,
        name=body.name or "",
        description=body.description or "",
        run_groups=[
            RunGroup(g.id, g.instance_id, option_strings(g.options) or {}, g.repetitions or 1)
            for g in body.run_groups
        ],
        rules=[
            EvaluationRule(
                r.id, r.statistics_path, r.objective, r.tolerance.value, r.tolerance.type, r.index
            )
            for r in body.rules
        ],
    )
    return (await svc.ensemble_definitions.create(definition)).to_dict()


@router.get("/ensembles")
async def list_definitions(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    """Always a page (``items``): the SDK reads one with and without pagination."""
    items = [d.to_dict() for d in await svc.ensemble_definitions.list(app_id)]
    return {"items": items, "next_page_token": ""}


@router.get("/ensembles/{definition_id}")
async def get_definition(
    app_id: AppId, definition_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return (await svc.ensemble_definitions.get(app_id, definition_id)).to_dict()


@router.patch("/ensembles/{definition_id}", responses=CHANGE)
async def update_definition(
    app_id: AppId, definition_id: ExperimentId, body: LabelBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    d = await svc.ensemble_definitions.update(app_id, definition_id, body.name, body.description)
    return d.to_dict()


@router.delete("/ensembles/{definition_id}", status_code=204, responses=REMOVE)
async def delete_definition(
    app_id: AppId, definition_id: ExperimentId, svc: Services = Depends(services)
) -> None:
    await svc.ensemble_definitions.delete(app_id, definition_id)


@router.get("/runs/{run_id}/ensemble")
async def ensemble_result(
    app_id: AppId, run_id: RunId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """The definition an ensemble run used, the child it returned, and every child."""
    return ensemble_wire.ensemble_result(await svc.ensemble_runs.view(app_id, run_id))
