"""``.../experiments/inputsets``, ``.../experiments/batch`` and ``.../inputs``."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api import experiment_wire as wire
from orchestrator.api.deps import services
from orchestrator.api.fields import (
    CHILD_ID_RULE,
    NOT_BOOLEAN,
    PRIORITY,
    AppId,
    Description,
    ExperimentId,
    InputId,
    InputSetId,
    Integer,
    LabelBody,
    Name,
)
from orchestrator.api.instances import option_strings
from orchestrator.api.responses import CHANGE, CREATE, REMOVE, SUMMARY, errors
from orchestrator.api.scenario_wire import ScenarioBody, scenario_spec
from orchestrator.api.wire import page
from orchestrator.errors import Invalid
from orchestrator.experiments.batch import EXPERIMENT_PRIORITY, BatchRequest, PlannedRun
from orchestrator.experiments.queue_order import SEED_MAX
from orchestrator.experiments.verdict_html import acceptance_block, gate_block
from orchestrator.models import Experiment, ExperimentStatus, ExperimentType, InputSet
from orchestrator.services import Services

NO_BASELINE = (
    "the gate compares against a baseline: pass baseline=INSTANCE"
    " (with option sets INSTANCE:OPTION_SET)"
)

router = APIRouter(
    prefix="/v1/applications/{app_id}", tags=["experiments"], responses=errors(401, 404)
)


class InputRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str


class InputSetBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    input_ids: list[str] | None = None
    inputs: list[InputRef] | None = None
    run_ids: list[str] | None = None
    instance_id: str | None = None
    maximum_runs: Annotated[int, Field(ge=1), NOT_BOOLEAN] | None = None
    start_time: str | None = None
    end_time: str | None = None


class InputBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    upload_id: str | None = None
    run_id: str | None = None
    format: dict[str, Any] | None = None


class BatchRunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input_id: str
    instance_id: str | None = None
    version_id: str | None = None
    option_set: str | None = None
    repetition: Annotated[int, Field(ge=0), NOT_BOOLEAN] | None = None
    scenario_id: str | None = None
    input_set_id: str | None = None


class BatchBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: Annotated[str | None, Field(json_schema_extra=CHILD_ID_RULE)] = None
    name: Name = None
    description: Description = None
    input_set_id: str | None = None
    instance_ids: list[str] | None = None
    version_ids: list[str] | None = None
    option_sets: dict[str, dict[str, Any]] | None = None
    runs: list[BatchRunBody] | None = None
    repetitions: Integer = Field(1, json_schema_extra={"minimum": 1})
    baseline: str | None = None
    objective: str = Field("min", json_schema_extra={"enum": ["min", "max"]})
    priority: Integer = Field(EXPERIMENT_PRIORITY, json_schema_extra=PRIORITY)
    type: Literal["batch", "scenario"] = "batch"
    scenarios: list[ScenarioBody] | None = None
    seed: Integer | None = Field(
        None,
        json_schema_extra={"minimum": 0, "maximum": SEED_MAX},
        description="Of the shuffled queue order; drawn when not given, shown by GET.",
    )


async def _set(svc: Services, item: InputSet) -> dict[str, Any]:
    return wire.input_set(item, await svc.input_sets.members(item.app_id, item.id))


# --- managed inputs ---------------------------------------------------------------------------
@router.post("/inputs", status_code=201, responses=CREATE)
async def create_input(app_id: AppId, body: InputBody, svc: Services = Depends(services)) -> Any:
    fmt = ((body.format or {}).get("input") or {}).get("type") or "json"
    if body.upload_id:
        item = await svc.inputs.from_upload(
            app_id, body.upload_id, body.name, body.id, fmt, body.description or ""
        )
    elif body.run_id:
        item = await svc.inputs.from_run(
            app_id, body.run_id, body.name, body.id, body.description or ""
        )
    else:
        raise Invalid("an input is made from an upload_id or a run_id")
    return wire.managed_input(item)


@router.get("/inputs", responses=errors(422))
async def list_inputs(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [wire.managed_input(i) for i in await svc.inputs.list(app_id)]
    return page(items, pagereturn)


@router.get("/inputs/{input_id}")
async def get_input(app_id: AppId, input_id: InputId, svc: Services = Depends(services)) -> Any:
    return wire.managed_input(await svc.inputs.get(app_id, input_id))


@router.put("/inputs/{input_id}", responses=CHANGE)
async def update_input(
    app_id: AppId, input_id: InputId, body: LabelBody, svc: Services = Depends(services)
) -> Any:
    return wire.managed_input(
        await svc.inputs.update(app_id, input_id, body.name, body.description)
    )


@router.delete("/inputs/{input_id}", status_code=204, responses=REMOVE)
async def delete_input(app_id: AppId, input_id: InputId, svc: Services = Depends(services)) -> None:
    await svc.inputs.delete(app_id, input_id)


# --- input sets -------------------------------------------------------------------------------
@router.post("/experiments/inputsets", status_code=201, responses=CREATE)
async def create_input_set(
    app_id: AppId, body: InputSetBody, svc: Services = Depends(services)
) -> Any:
    ids = [*(body.input_ids or []), *(i.id for i in body.inputs or [])]
    item = await svc.input_sets.create(
        app_id,
        body.id,
        body.name,
        body.description or "",
        ids,
        body.run_ids,
        body.instance_id,
        body.maximum_runs,
        body.start_time,
        body.end_time,
    )
    return await _set(svc, item)


@router.get("/experiments/inputsets", responses=errors(422))
async def list_input_sets(
    app_id: AppId, pagereturn: bool = Query(False), svc: Services = Depends(services)
) -> Any:
    items = [await _set(svc, s) for s in await svc.input_sets.list(app_id)]
    return page(items, pagereturn)


@router.get("/experiments/inputsets/{set_id}")
async def get_input_set(
    app_id: AppId, set_id: InputSetId, svc: Services = Depends(services)
) -> Any:
    return await _set(svc, await svc.input_sets.get(app_id, set_id))


@router.put("/experiments/inputsets/{set_id}", responses=CHANGE)
async def update_input_set(
    app_id: AppId, set_id: InputSetId, body: InputSetBody, svc: Services = Depends(services)
) -> Any:
    item = await svc.input_sets.update(
        app_id, set_id, body.name, body.description, _new_members(body)
    )
    return await _set(svc, item)


def _new_members(body: InputSetBody) -> list[str] | None:
    """The inputs an update gives the set: exactly ``inputs`` when given, else exactly
    ``input_ids``, else None (they stay).

    ``inputs`` wins because the SDK's ``update_input_set`` PUTs the set as it read it
    (``input_ids`` included) with only ``inputs`` replaced: joining the two could only add.
    """
    if body.inputs is not None:
        return [i.id for i in body.inputs]
    return body.input_ids


@router.delete("/experiments/inputsets/{set_id}", status_code=204, responses=REMOVE)
async def delete_input_set(
    app_id: AppId, set_id: InputSetId, svc: Services = Depends(services)
) -> None:
    await svc.input_sets.delete(app_id, set_id)


# --- batch experiments ------------------------------------------------------------------------
@router.post("/experiments/batch", status_code=201, responses=CREATE)
async def start_batch(app_id: AppId, body: BatchBody, svc: Services = Depends(services)) -> Any:
    runs = [
        PlannedRun(
            r.input_id,
            r.instance_id,
            r.version_id,
            r.option_set,
            r.repetition or 0,
            r.scenario_id,
            r.input_set_id,
        )
        for r in body.runs or []
    ]
    exp, undeclared = await svc.experiments.start_noted(
        BatchRequest(
            app_id=app_id,
            experiment_id=body.id,
            name=body.name,
            input_set_id=body.input_set_id,
            description=body.description or "",
            instance_ids=body.instance_ids or [],
            version_ids=body.version_ids or [],
            option_sets={k: option_strings(v) or {} for k, v in (body.option_sets or {}).items()},
            repetitions=body.repetitions,
            runs=runs,
            baseline=body.baseline,
            objective=body.objective,
            priority=body.priority,
            type=ExperimentType(body.type),
            scenarios=[scenario_spec(s) for s in body.scenarios or []],
            seed=body.seed,
        )
    )
    answer = wire.experiment(exp, await svc.experiments.counts(app_id, exp.id))
    if undeclared:  # orch's own, as a run's answer has it: the SDK reads the experiment
        answer["undeclared_options"] = undeclared
    return answer


@router.get("/experiments/batch", responses=errors(422))
async def list_batches(
    app_id: AppId,
    pagereturn: bool = Query(False),
    type: ExperimentType | None = Query(
        None, description="Only experiments of this type (the SDK sends batch or scenario)."
    ),
    svc: Services = Depends(services),
) -> Any:
    items = [
        wire.experiment_metadata(e, await svc.experiments.counts(app_id, e.id))
        for e in await svc.experiments.list(app_id, type)
    ]
    return page(items, pagereturn)


@router.get("/experiments/batch/{exp_id}")
async def get_batch(
    app_id: AppId, exp_id: ExperimentId, svc: Services = Depends(services)
) -> Response:
    exp = await svc.experiments.get(app_id, exp_id)
    counts = await svc.experiments.counts(app_id, exp_id)
    return await _json(wire.experiment(exp, counts, await _grouped(svc, exp)))


@router.get("/experiments/batch/{exp_id}/metadata")
async def batch_metadata(
    app_id: AppId, exp_id: ExperimentId, svc: Services = Depends(services)
) -> Response:
    exp = await svc.experiments.get(app_id, exp_id)
    counts = await svc.experiments.counts(app_id, exp_id)
    return await _json(wire.experiment_metadata(exp, counts, await _grouped(svc, exp)))


async def _grouped(svc: Services, exp: Experiment) -> list[dict[str, Any]]:
    """The grouped summaries once the experiment has ended (none while it runs)."""
    if exp.status == ExperimentStatus.STARTED:
        return []
    return await svc.analysis.grouped(exp)


async def _json(data: dict[str, Any]) -> Response:
    """Encoded off the loop: an ended 10,000-run experiment's summaries are ~20 MB of JSON."""
    body = await anyio.to_thread.run_sync(lambda: json.dumps(data).encode())
    return Response(body, media_type="application/json")


@router.get("/experiments/batch/{exp_id}/runs")
async def batch_runs(app_id: AppId, exp_id: ExperimentId, svc: Services = Depends(services)) -> Any:
    exp = await svc.experiments.get(app_id, exp_id)
    runs = await svc.analysis.runs(exp)
    names = {i.id: i.name for i in await svc.inputs.list(app_id)}

    def render() -> bytes:  # 10,000 runs: built off the loop, like the read
        items = [
            wire.experiment_run(r, exp.input_set_id, names.get(r.input_id or "", "")) for r in runs
        ]
        return json.dumps({"runs": items}).encode()

    return Response(await anyio.to_thread.run_sync(render), media_type="application/json")


@router.patch("/experiments/batch/{exp_id}", responses=CHANGE)
async def update_batch(
    app_id: AppId, exp_id: ExperimentId, body: LabelBody, svc: Services = Depends(services)
) -> Any:
    exp = await svc.experiments.update(app_id, exp_id, body.name, body.description)
    return wire.experiment_metadata(exp, await svc.experiments.counts(app_id, exp_id))


@router.patch("/experiments/batch/{exp_id}/cancel", responses=REMOVE)
async def cancel_batch(
    app_id: AppId, exp_id: ExperimentId, svc: Services = Depends(services)
) -> Any:
    exp = await svc.experiments.cancel(app_id, exp_id)
    return wire.experiment_metadata(exp, await svc.experiments.counts(app_id, exp_id))


@router.delete("/experiments/batch/{exp_id}", status_code=204, responses=REMOVE)
async def delete_batch(
    app_id: AppId, exp_id: ExperimentId, svc: Services = Depends(services)
) -> None:
    await svc.experiments.delete(app_id, exp_id)


@router.get("/experiments/batch/{exp_id}/summary", responses=SUMMARY | errors(400, 422))
async def batch_summary(
    app_id: AppId,
    exp_id: ExperimentId,
    baseline: str | None = Query(None),
    objective: Literal["min", "max"] | None = Query(None),
    format: str = Query("json", pattern="^(json|csv)$"),
    svc: Services = Depends(services),
) -> Response:
    exp = await svc.experiments.get(app_id, exp_id)
    summary = await svc.analysis.summary(exp, baseline, objective)
    if format == "csv":
        return PlainTextResponse(summary.to_csv(), media_type="text/csv")
    return JSONResponse(summary.to_dict())


@router.get("/experiments/batch/{exp_id}/gate", responses=errors(400, 422))
async def batch_gate(
    app_id: AppId,
    exp_id: ExperimentId,
    expr: str = Query(..., description="e.g. 'result.value > baseline * 1.01'"),
    baseline: str | None = Query(None),
    svc: Services = Depends(services),
) -> Any:
    exp = await svc.experiments.get(app_id, exp_id)
    chosen = baseline or exp.baseline
    if not chosen:
        raise Invalid(NO_BASELINE)
    result = await svc.analysis.gate(exp, expr, chosen)
    return {
        "failed": result.failed,
        "checked": result.checked,
        "violations": result.violations,
        "description": result.describe(),
    }


@router.get(
    "/experiments/batch/{exp_id}/report", response_class=HTMLResponse, responses=errors(400, 422)
)
async def batch_report(
    app_id: AppId,
    exp_id: ExperimentId,
    baseline: str | None = Query(None),
    gate: str | None = Query(None, description="a --fail-if condition to show the verdict of"),
    svc: Services = Depends(services),
) -> HTMLResponse:
    exp = await svc.experiments.get(app_id, exp_id)
    verdict = await report_verdict(svc, exp, gate, baseline or exp.baseline)
    return HTMLResponse(await svc.analysis.report(exp, baseline, verdict))


async def report_verdict(
    svc: Services, exp: Experiment, gate: str | None, baseline: str | None
) -> str:
    """The report's verdict block: the gate's (when asked), the acceptance test's (if any)."""
    blocks = []
    if gate:
        if not baseline:
            raise Invalid(NO_BASELINE)
        blocks.append(gate_block(await svc.analysis.gate(exp, gate, baseline)))
    view = await svc.acceptance.find(exp.app_id, exp.id)
    if view is not None:
        blocks.append(acceptance_block(exp.id, view.status.value, view.results))
    return "\n".join(blocks)
