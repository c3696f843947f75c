"""``.../experiments/shadow``: shadow tests (the SDK's routes and shapes)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import shadow_wire as wire
from orchestrator.api.deps import services
from orchestrator.api.fields import (
    CHILD_ID_RULE,
    AppId,
    Description,
    ExperimentId,
    Integer,
    LabelBody,
    Name,
)
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, errors
from orchestrator.api.wire import live_test_metadata, page
from orchestrator.services import Services
from orchestrator.shadow_models import MAX_RUNS, Comparison, ShadowTest, StopIntent

router = APIRouter(
    prefix="/v1/applications/{app_id}/experiments/shadow",
    tags=["experiments"],
    responses=errors(401, 404),
)


class ComparisonBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    baseline_instance_id: str
    candidate_instance_ids: list[str]


class StartEventsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    time: str | None = Field(default=None, description="RFC 3339; no offset: local time")


class TerminationEventsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    maximum_runs: Integer = Field(..., json_schema_extra={"minimum": 1, "maximum": MAX_RUNS})
    time: str | None = Field(default=None, description="RFC 3339; no offset: local time")


class ShadowBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    comparisons: dict[str, list[str]] | list[ComparisonBody] = Field(
        ..., description="baseline instance ID -> candidate instance IDs (or a list of them)"
    )
    start_events: StartEventsBody | None = None
    termination_events: TerminationEventsBody


class StopBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    intent: StopIntent = StopIntent.COMPLETE


def _comparisons(given: dict[str, list[str]] | list[ComparisonBody]) -> list[Comparison]:
    if isinstance(given, dict):
        return [Comparison(b, tuple(c)) for b, c in given.items()]
    return [Comparison(c.baseline_instance_id, tuple(c.candidate_instance_ids)) for c in given]


@router.post("", status_code=201, responses=CREATE)
async def create_shadow_test(
    app_id: AppId, body: ShadowBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    """A draft; it starts with ``PUT .../start`` or at ``start_events.time``."""
    test = ShadowTest(
        id=body.id or "",
        app_id=app_id,
        name=body.name or "",
        description=body.description or "",
        comparisons=_comparisons(body.comparisons),
        maximum_runs=body.termination_events.maximum_runs,
        start_time=body.start_events.time if body.start_events else None,
        end_time=body.termination_events.time,
    )
    return wire.shadow_test(await svc.shadow_tests.create(test))


@router.get("", responses=errors(422))
async def list_shadow_tests(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    return page([wire.shadow_test(t) for t in await svc.shadow_tests.list(app_id)], pagereturn)


@router.get("/{test_id}")
async def get_shadow_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    test = await svc.shadow_tests.get(app_id, test_id)
    return wire.shadow_test(test, await svc.shadow_tests.links(app_id, test_id))


@router.get("/{test_id}/metadata")
async def shadow_test_metadata(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return live_test_metadata(await svc.shadow_tests.get(app_id, test_id))


@router.get("/{test_id}/runs")
async def shadow_test_runs(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """Baseline runs the test shadowed and the candidate runs they triggered."""
    return wire.runs(await svc.shadow_tests.view(app_id, test_id))


@router.patch("/{test_id}", responses=CHANGE)
async def update_shadow_test(
    app_id: AppId, test_id: ExperimentId, body: LabelBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    test = await svc.shadow_tests.update(app_id, test_id, body.name, body.description)
    return wire.shadow_test(test)


@router.put("/{test_id}/start", responses=errors(409, 507))
async def start_shadow_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> dict[str, Any]:
    """draft -> started: from now on, runs on its baseline instances are shadowed."""
    return wire.shadow_test(await svc.shadow_tests.start(app_id, test_id))


@router.put("/{test_id}/stop", responses=CHANGE)
async def stop_shadow_test(
    app_id: AppId, test_id: ExperimentId, body: StopBody, svc: Services = Depends(services)
) -> dict[str, Any]:
    """started -> completed (intent ``complete``) or canceled (``cancel``, which also
    cancels its candidate runs still queued or running)."""
    return wire.shadow_test(await svc.shadow_tests.stop(app_id, test_id, body.intent))


@router.delete("/{test_id}", status_code=204, responses=REMOVE)
async def delete_shadow_test(
    app_id: AppId, test_id: ExperimentId, svc: Services = Depends(services)
) -> None:
    """The test and its candidate runs; the baseline runs stay."""
    await svc.shadow_tests.delete(app_id, test_id)
