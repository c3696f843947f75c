"""``/v1/applications/{app}/runs``: create, read, wait, logs, cancel, delete, uploads."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import Scope

from orchestrator.api import run_wire
from orchestrator.api.deps import absolute_url, services
from orchestrator.api.fields import RUN_ID_RULE, AppId, Description, Name, RunId
from orchestrator.api.instances import Queuing, option_strings
from orchestrator.api.responses import (
    CREATE,
    INPUT_FILE,
    LOG_FILE,
    OUTPUT_FILE,
    REMOVE,
    errors,
)
from orchestrator.api.run_assets import OpenFileResponse
from orchestrator.api.run_files import (
    file_response,
    input_body,
    output_value,
    require_output,
    signed_url,
)
from orchestrator.api.tracked_wire import ExternalResult
from orchestrator.errors import Invalid
from orchestrator.models import Limits, Run, RunStatus
from orchestrator.runs.logs import open_log, read_live, read_log
from orchestrator.runs.service import RunRequest
from orchestrator.services import Services

router = APIRouter(
    prefix="/v1/applications/{app_id}/runs", tags=["runs"], responses=errors(401, 404)
)

MAX_WAIT = 300.0


class RunConfiguration(BaseModel):
    model_config = ConfigDict(extra="ignore")
    execution_class: str | None = None
    format: dict[str, Any] | None = None
    queuing: Queuing | None = None
    limits: dict[str, Any] | None = None
    secrets_collection_id: str | None = None
    run_type: dict[str, Any] | None = None


class Tracking(BaseModel):
    """The SDK's ``RunTrackingMetadata`` as a client sends it: ``clone_run`` names the run
    it cloned. ``input_id`` is not taken: orch records it from the run's own ``input_id``
    (what the SDK's clone reuses), so a client cannot claim a managed input it did not use."""

    model_config = ConfigDict(extra="ignore")
    cloned_run_id: Annotated[str | None, Field(json_schema_extra=RUN_ID_RULE)] = None


class RunBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Any = None
    upload_id: str | None = None
    input_id: str | None = None
    options: dict[str, Any] | None = None
    name: Name = None
    description: Description = None
    configuration: RunConfiguration = Field(default_factory=RunConfiguration)
    tracking: Tracking | None = None
    result: ExternalResult | None = Field(
        default=None, description="a tracked run: recorded as given, nothing executes"
    )
    batch_experiment_id: str | None = Field(
        default=None,
        description="a batch experiment of the app the run joins: one of its runs, as the"
        " runs it made itself",
    )


def _input_format(config: RunConfiguration) -> str | None:
    fmt = (config.format or {}).get("input") or {}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    return str(kind) if kind else None


def _ensemble_definition(config: RunConfiguration) -> str | None:
    """The SDK asks for an ensemble run with ``run_type: {type: ensemble, definition_id}``."""
    run_type = config.run_type or {}
    if run_type.get("type") != "ensemble":
        return None
    definition = run_type.get("definition_id")
    if not isinstance(definition, str) or not definition:
        raise Invalid("an ensemble run needs run_type.definition_id")
    return definition


@router.post("", status_code=201, responses=CREATE)
async def create_run(
    app_id: AppId,
    body: RunBody,
    instance_id: str | None = Query(None),
    svc: Services = Depends(services),
) -> Response:
    return JSONResponse(await submit(svc, app_id, body, instance_id), status_code=201)


async def submit(
    svc: Services, app_id: str, body: RunBody, instance_id: str | None
) -> dict[str, Any]:
    """A new run (or a tracked one) from a validated body: the 201's content. Shared with
    ``api/hot_path.py``, which answers the same request before FastAPI's stack."""
    given = [k for k in ("input", "upload_id", "input_id") if getattr(body, k) is not None]
    if len(given) > 1:
        raise Invalid(f"give exactly one of input, upload_id or input_id (got {', '.join(given)})")
    if not given and body.result is None:  # a tracked run records what it was given
        raise Invalid(
            "a run needs an input: give input (the JSON itself), upload_id (from "
            "POST .../runs/uploadurl) or input_id; an input file posted as the whole body "
            'goes inside {"input": ...}'
        )
    config = body.configuration
    queuing = config.queuing or Queuing()
    req = RunRequest(
        app_id=app_id,
        instance_id=instance_id or None,
        input=body.input,
        upload_id=body.upload_id,
        input_format=_input_format(config),
        options=option_strings(body.options) or {},
        name=body.name or "",
        description=body.description or "",
        priority=queuing.priority,  # None: the instance's (the run service resolves it)
        queuing_disabled=queuing.disabled,
        limits=Limits.from_dict(config.limits),
        execution_class=config.execution_class,
        secrets_collection_id=config.secrets_collection_id or None,
        ensemble_definition_id=_ensemble_definition(config),
        cloned_run_id=(body.tracking.cloned_run_id or None) if body.tracking else None,
    )
    if body.input_id is not None:
        kept = await svc.inputs.get(app_id, body.input_id)
        req.input_file, req.input_id = svc.inputs.path(kept), kept.id
        req.input_format = req.input_format or kept.format
    tracked = body.result.to_result() if body.result is not None else None
    if body.batch_experiment_id is not None:
        run = await svc.experiments.add_run(req, body.batch_experiment_id, tracked)
    elif tracked is not None:
        run = await svc.runs.track(req, tracked)
    else:
        run = await svc.runs.create(req)
        if undeclared := await svc.runs.undeclared(run):  # orch's own: the SDK reads the ID
            return {"run_id": run.id, "id": run.id, "undeclared_options": undeclared}
    return {"run_id": run.id, "id": run.id}


@router.get("", responses=errors(400, 422))
async def list_runs(
    app_id: AppId,
    status: RunStatus | None = Query(None),
    instance_id: str | None = Query(None),
    limit: int = Query(50, ge=1, le=1000),
    pagetoken: str | None = Query(
        None,
        description="next_page_token of the previous page",
        json_schema_extra={"pattern": r"^$|^[^|]*\|.+$"},  # empty: the first page
    ),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    before: tuple[str, str] | None = None
    if pagetoken:
        created, _, last_id = pagetoken.partition("|")
        if not last_id:
            raise Invalid("malformed pagetoken: pass the next_page_token of a previous page")
        before = (created, last_id)
    runs = await svc.runs.list(app_id, status, instance_id, limit, before)
    token = f"{runs[-1].created_at}|{runs[-1].id}" if len(runs) == limit else ""
    return {"runs": [run_wire.list_item(r) for r in runs], "next_page_token": token}


@router.post("/uploadurl", responses=errors(507))
async def upload_url(
    app_id: AppId, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    up = await svc.uploads.create(app_id, "input")
    return {
        "upload_id": up.id,
        "upload_url": absolute_url(request, f"uploads/{up.token}"),
        "expires_at": up.expires_at,
    }


async def information(svc: Services, run: Run, statistics: bool = True) -> dict[str, Any]:
    """``run_wire.information`` with what lives beside the run row (an ensemble run's
    definition; whether a text app's output is text): one read more for those runs only."""
    definition_id = await svc.ensemble_runs.definition_id(run)
    text_output = await svc.runs.output_is_text(run) if run.input_format == "text" else False
    return run_wire.information(run, statistics, definition_id, text_output)


@router.get("/{run_id}/metadata", responses=errors(422))
async def run_metadata(
    app_id: AppId,
    run_id: RunId,
    wait: float = Query(0, ge=0, le=MAX_WAIT),
    svc: Services = Depends(services),
) -> Response:
    """``?wait=S`` long-polls: the answer comes the moment the run finishes (or after S s)."""
    run = await svc.runs.wait(app_id, run_id, wait)
    return JSONResponse(await information(svc, run, statistics=False))


@router.get("/{run_id}", responses=errors(410, 422))
async def run_result(
    app_id: AppId,
    run_id: RunId,
    request: Request,
    format: str | None = Query(None),
    wait: float = Query(0, ge=0, le=MAX_WAIT),
    svc: Services = Depends(services),
) -> Response:
    body = await result(svc, app_id, run_id, wait, format == "url", request.scope)
    return JSONResponse(body)  # as is: FastAPI's encoder is slow on large outputs


async def result(
    svc: Services, app_id: str, run_id: str, wait: float, as_url: bool, scope: Scope
) -> dict[str, Any]:
    """A run's result once it ends or ``wait`` s pass; shared with ``api/hot_path.py``."""
    run = await svc.runs.wait(app_id, run_id, wait)
    body = await information(svc, run)
    if run.status.finished:
        output = await output_value(svc, scope, run, as_url)
        if output is not None:
            body["output"] = output
        if run.error:
            body["error_log"] = {"error": run.error}
    return body


@router.get("/{run_id}/output", responses=OUTPUT_FILE | errors(409, 410, 507))
async def run_output(
    app_id: AppId,
    run_id: RunId,
    request: Request,
    format: str | None = Query(None),
    svc: Services = Depends(services),
) -> Response:
    run = await svc.runs.get(app_id, run_id)
    if format == "url":
        require_output(svc, run)  # no URL to an output deleted with its folder: a 410 now
        return JSONResponse({"url": signed_url(svc, request, run, "output")})
    return await file_response(svc, run, "output")


@router.get("/{run_id}/input", responses=INPUT_FILE | errors(410, 507))
async def run_input(
    app_id: AppId,
    run_id: RunId,
    request: Request,
    format: str | None = Query(None),
    svc: Services = Depends(services),
) -> Response:
    run = await svc.runs.get(app_id, run_id)
    if format == "url":
        return JSONResponse({"url": signed_url(svc, request, run, "input")})
    return await input_body(svc, run)


@router.get("/{run_id}/logs", responses=errors(410))
async def run_logs(
    app_id: AppId, run_id: RunId, svc: Services = Depends(services)
) -> dict[str, Any]:
    run = await svc.runs.get(app_id, run_id)
    return {"log": read_log(svc.runs.log_file(run))}


@router.get("/{run_id}/logs/raw", responses=LOG_FILE | errors(410))
async def run_log_raw(app_id: AppId, run_id: RunId, svc: Services = Depends(services)) -> Response:
    """The whole log as text, streamed: ``/logs`` answers JSON and cuts a flood to its
    last 5 MiB, which ``orch app run logs > file`` must not (orch's own; the CLI reads it)."""
    run = await svc.runs.get(app_id, run_id)
    opened = await anyio.to_thread.run_sync(open_log, svc.runs.log_file(run))
    if opened is None:
        return Response(b"", media_type=LOG_MEDIA_TYPE)
    return OpenFileResponse(*opened, LOG_MEDIA_TYPE)


LOG_MEDIA_TYPE = "text/plain; charset=utf-8"


@router.get("/{run_id}/logs/live", responses=errors(400, 410))
async def run_logs_live(
    app_id: AppId, run_id: RunId, since: str | None = Query(None), svc: Services = Depends(services)
) -> dict[str, Any]:
    run = await svc.runs.get(app_id, run_id)
    if since and not (since.isascii() and since.isdigit()):
        raise Invalid(f"since must be the next_page_token of a previous call, got {since!r}")
    offset = int(since) if since else 0
    return read_live(svc.runs.log_file(run), offset, run.status)


@router.patch("/{run_id}/cancel", responses=REMOVE)
async def cancel_run(
    app_id: AppId, run_id: RunId, svc: Services = Depends(services)
) -> dict[str, Any]:
    return await information(svc, await svc.runs.cancel(app_id, run_id))


@router.delete("/{run_id}", status_code=204, responses=REMOVE)
async def delete_run(app_id: AppId, run_id: RunId, svc: Services = Depends(services)) -> None:
    await svc.runs.delete(app_id, run_id)
