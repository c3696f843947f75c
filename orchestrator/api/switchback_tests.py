"""``/v1/applications/{app}/experiments/switchback``: switchback tests and their runs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict

from orchestrator.api import switchback_wire as wire
from orchestrator.api.deps import services
from orchestrator.api.fields import (
    AppId,
    Description,
    ExperimentId,
    Integer,
    LabelBody,
    Name,
    Number,
)
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.api.wire import live_test_metadata
from orchestrator.services import Services
from orchestrator.switchback_models import SwitchbackTest

router = APIRouter(
    prefix="/v1/applications/{app_id}/experiments/switchback",
    tags=["switchback tests"],
    responses=errors(401, 404),
)


class ComparisonBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    baseline_instance_id: str
    candidate_instance_id: str


class RandomPlanBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    unit_duration_minutes: Number
    units: Integer
    start: str | None = None


class TestBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    name: Name = None
    description: Description = None
    comparison: ComparisonBody
    generate_random_plan: RandomPlanBody


class StopBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    intent: str


@router.post("", status_code=201, responses=CREATE)
async def create_test(
    app_id: AppId, body: TestBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    """A draft: it starts with ``PUT .../start``, or by itself at ``start`` when given."""
    plan = body.generate_random_plan
    test = SwitchbackTest(
        id=body.id or "",
        app_id=app_id,
        baseline_instance_id=body.comparison.baseline_instance_id,
        candidate_instance_id=body.comparison.candidate_instance_id,
        unit_minutes=plan.unit_duration_minutes,
        units=plan.units,
        name=body.name or "",
        description=body.description or "",
        scheduled_start=plan.start,
    )
    return wire.switchback_test(await svc.switchback_tests.create(test))


@router.get("")
async def list_tests(app_id: AppId, svc: Services = Depends(services)) -> dict[str, Any]:
    """Always a page (``items``): the SDK reads one with and without pagination."""
    items = [wire.switchback_test(t) for t in await svc.switchback_tests.list(app_id)]
    return {"items": items, "next_page_token": ""}


@router.get("/{test_id}")
async def get_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return wire.switchback_test(await svc.switchback_tests.get(app_id, test_id))


@router.get("/{test_id}/metadata")
async def test_metadata(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return live_test_metadata(await svc.switchback_tests.get(app_id, test_id))


@router.get("/{test_id}/runs")
async def test_runs(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """The runs it routed, oldest first, each with the unit and arm that served it."""
    return {"runs": [wire.routed_run(r) for r in await svc.switchback_tests.runs(app_id, test_id)]}


@router.get("/{test_id}/summary")
async def test_summary(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Baseline against candidate: each arm's runs summed up as a batch experiment's."""
    return wire.summary(await svc.switchback_tests.summary(app_id, test_id))


@router.patch("/{test_id}", responses=CHANGE)
async def update_test(
    app_id: AppId, test_id: ExperimentId, body: LabelBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    test = await svc.switchback_tests.update(app_id, test_id, body.name, body.description)
    return wire.switchback_test(test)


@router.put("/{test_id}/start", responses=errors(409, 507))
async def start_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Draw the plan (its seed is recorded) and route runs from now on."""
    return wire.switchback_test(await svc.switchback_tests.start(app_id, test_id))


@router.put("/{test_id}/stop", responses=CHANGE)
async def stop_test(
    app_id: AppId, test_id: ExperimentId, body: StopBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Intent ``complete`` ends it completed, ``cancel`` canceled; its runs go on."""
    return wire.switchback_test(await svc.switchback_tests.stop(app_id, test_id, body.intent))


@router.delete("/{test_id}", status_code=204, responses=REMOVE)
async def delete_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> None:
    """The test with its runs (409 while it runs, or while one of its runs does)."""
    await svc.switchback_tests.delete(app_id, test_id)
