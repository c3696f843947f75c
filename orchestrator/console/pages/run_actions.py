"""Making and stopping runs from the console: the new-run form, cancel, re-run, downloads.

The new-run form shows the options each instance's app.yaml declares, next to the box
they are typed in. Pasted text is stored with ``\n`` line endings, as the file it was
copied from has them (a browser sends a textarea's lines ending ``\r\n``); an uploaded
file is stored byte for byte. A cancel is asked to be confirmed in the page first
(``ask_first``), as the app page asks before a delete.

Every input (pasted, uploaded, or the input of the run being re-run) goes through
an upload slot, the same path as the API's large inputs: the daemon's size cap and
JSON check apply, and a run never shares another run's input file (deleting the
first run cannot take the second one's input with it).
"""

from __future__ import annotations

import contextlib
import io
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from orchestrator.api.head import FileResponse
from orchestrator.api.run_files import file_response, input_raw
from orchestrator.console.guard import read_form
from orchestrator.console.pages.base import (
    app_url,
    field,
    fields,
    pages_router,
    see_other,
    state,
)
from orchestrator.console.render import page
from orchestrator.errors import Invalid, NotFound, OrchError
from orchestrator.models import Run
from orchestrator.packaging.manifest import Manifest, OptionSpec
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.options import as_text
from orchestrator.runs.service import RunRequest
from orchestrator.services import Services

router = pages_router()

CHUNK = 1024 * 1024


def parse_options(text: str) -> dict[str, str]:
    """``name=value`` per line (blank lines and ``#`` comments skipped)."""
    options: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise Invalid(f"options line {number}: write name=value, got {line!r}")
        options[name.strip()] = value.strip()
    return options


async def _new_run_page(
    request: Request, app_id: str, status: int = 200, error: str = "", form: Any = None
) -> Response:
    svc = state(request).services
    app = await svc.apps.get(app_id)
    if form is None:
        values = {"instance": app.default_instance_id or "devint", "options": "", "name": ""}
        values["input_text"] = ""
        values["ensemble"] = request.query_params.get("ensemble", "")
    else:
        values = fields(form, ("instance", "options", "name", "input_text", "ensemble"))
    instances = await svc.instances.list(app_id)
    address = app_url(app_id, "runs", "new")
    if values["ensemble"]:
        address += "?" + urlencode({"ensemble": values["ensemble"]})
    manifests = await _manifests(svc, app_id, [i.id for i in instances])
    labels = {i.id: f"{i.id} ({i.version_id or 'latest push'})" for i in instances}
    return page(
        request,
        "new_run.html",
        status=status,
        address=address if error else "",
        app=app,
        instances=instances,
        formats={i: m.content_format for i, m in manifests.items()},
        option_hints=option_hints(manifests, labels, values["instance"]),
        folder_formats=DIRECTORY_FORMATS,
        ensembles=await svc.ensemble_definitions.list(app_id),
        error=error,
        form=values,
    )


async def _manifests(svc: Services, app_id: str, instance_ids: list[str]) -> dict[str, Manifest]:
    """Instance → the app.yaml its runs run by: the input they take (a folder format gets
    no text box to paste into) and the options it declares. An instance that cannot run
    (nothing pushed yet) is left out: its run says why."""
    manifests = {}
    for instance_id in instance_ids:
        with contextlib.suppress(OrchError):
            manifests[instance_id] = await svc.runs.manifest(app_id, instance_id)
    return manifests


@dataclass(frozen=True)
class OptionsHint:
    """The options one app.yaml declares, and the instances whose runs it governs: shown
    per app.yaml, labelled, as no script is needed to follow the instance picked."""

    instances: list[str]
    options: list[dict[str, str]]
    strict: bool


def option_hints(
    manifests: dict[str, Manifest], labels: dict[str, str], chosen: str
) -> list[OptionsHint]:
    """One hint per distinct set of declared options, the chosen instance's first. The
    default as the model gets it (``as_text``: ``2``, ``true``), not as YAML wrote it."""
    hints: dict[tuple[object, ...], OptionsHint] = {}
    order = sorted(manifests, key=lambda instance_id: instance_id != chosen)
    for instance_id in order:
        manifest = manifests[instance_id]
        options = [_declared(spec) for spec in manifest.options]
        key = (manifest.strict_options, *(tuple(o.items()) for o in options))
        hint = hints.setdefault(key, OptionsHint([], options, manifest.strict_options))
        hint.instances.append(labels.get(instance_id, instance_id))
    return list(hints.values())


def _declared(spec: OptionSpec) -> dict[str, str]:
    default = "" if spec.default is None else as_text(spec.default)
    return {
        "name": spec.name,
        "type": spec.option_type,
        "default": default,
        "required": "required" if spec.required else "",
        "description": spec.description,
    }


@router.get("/apps/{app_id}/runs/new")
async def new_run_form(request: Request, app_id: str) -> Response:
    return await _new_run_page(request, app_id)


@router.post("/apps/{app_id}/runs")
async def create_run(request: Request, app_id: str) -> Response:
    svc = state(request).services
    form = await read_form(request)
    try:
        ensemble = field(form, "ensemble") or None  # runs its groups' instances instead
        req = RunRequest(
            app_id=app_id,
            instance_id=None if ensemble else field(form, "instance") or None,
            options=parse_options(field(form, "options")),
            name=field(form, "name"),
            ensemble_definition_id=ensemble,
        )
        req.upload_id = await _upload_input(svc, app_id, form)
        run = await svc.runs.create(req)
    except OrchError as exc:
        if isinstance(exc, NotFound) and "app" in exc.message and "instance" not in exc.message:
            raise
        return await _new_run_page(request, app_id, exc.status, exc.message, form)
    return see_other(app_url(app_id, "runs", run.id))


async def _upload_input(svc: Services, app_id: str, form: Any) -> str:
    chosen = form.get("input_file")
    if isinstance(chosen, UploadFile) and chosen.filename:
        return await _upload(svc, app_id, _file_chunks(chosen))
    text = form.get("input_text")
    if isinstance(text, str) and text.strip():
        return await _upload(svc, app_id, _bytes_chunks(as_pasted(text).encode()))
    raise Invalid("give the run an input: paste it, or choose a file")


def as_pasted(text: str) -> str:
    """A textarea's text with the line endings it was pasted with: a browser sends every
    line ending of a textarea as ``\r\n`` (the HTML form rules), whatever the copied file
    had, so a text model read ``12\r`` and the input hashed differently from the CLI's
    run of the same file. An uploaded file is not passed here: it is kept byte for byte."""
    return text.replace("\r\n", "\n")


async def _upload(svc: Services, app_id: str, body: AsyncIterator[bytes]) -> str:
    slot = await svc.uploads.create(app_id, "input")
    await svc.uploads.receive(slot.token, body)
    return slot.id


async def _file_chunks(upload: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await upload.read(CHUNK):
        yield chunk


async def _bytes_chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), CHUNK):
        yield data[start : start + CHUNK]


async def _path_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as fh:
        while chunk := await anyio.to_thread.run_sync(fh.read, CHUNK):
            yield chunk


CANCEL_QUESTION = "cancel"
"""The query that shows a page's cancel question (``?cancel=1#confirm``)."""


def asking_cancel(request: Request) -> bool:
    """Whether the page shows its cancel question (a post without ``confirm=yes`` led it here)."""
    return request.query_params.get(CANCEL_QUESTION) == "1"


async def ask_first(request: Request, page_url: str) -> Response | None:
    """A cancel is confirmed in the page first, as a delete on the app page is: a post
    without ``confirm=yes`` (the first click, or a script's bare post) cancels nothing
    and is led to the page asking the question, whose button posts ``confirm=yes``.
    None once confirmed. One click used to cancel an experiment's every run."""
    if field(await read_form(request), "confirm") == "yes":
        return None
    return see_other(f"{page_url}?{CANCEL_QUESTION}=1#confirm")


@router.post("/apps/{app_id}/runs/{run_id}/cancel")
async def cancel_run(request: Request, app_id: str, run_id: str) -> Response:
    here = app_url(app_id, "runs", run_id)
    if question := await ask_first(request, here):
        return question
    await state(request).services.runs.cancel(app_id, run_id)
    return see_other(here)


@router.post("/apps/{app_id}/runs/{run_id}/rerun")
async def rerun(request: Request, app_id: str, run_id: str) -> Response:
    """The same input and run options on the instance picked in the form, or (an ensemble
    run's form) the ensemble definition it names."""
    svc = state(request).services
    form = await read_form(request)
    source = await svc.runs.get(app_id, run_id)
    if source.input_path is None:
        raise Invalid(f"run {run_id!r} has no input to run again")
    ensemble = field(form, "ensemble") or None
    req = RunRequest(
        app_id=app_id,
        instance_id=None if ensemble else field(form, "instance") or None,
        options=_asked(source),
        name=source.name,
        input_format=source.input_format,
        ensemble_definition_id=ensemble,
    )
    req.upload_id = await _upload(svc, app_id, await _input_body(source))
    run = await svc.runs.create(req)
    return see_other(app_url(app_id, "runs", run.id))


def _asked(run: Run) -> dict[str, str]:
    """The options the run was asked for, as given ("2", not the "2.0" the model got);
    a run recorded before orch kept them: those the run itself set, as applied."""
    if run.request_options is not None:
        return dict(run.request_options)
    return {k: v for k, v in run.options.items() if run.option_sources.get(k) == "run"}


async def _input_body(run: Run) -> AsyncIterator[bytes]:
    path = Path(run.input_path or "")
    if not path.is_dir():
        return _path_chunks(path)
    return _bytes_chunks(await anyio.to_thread.run_sync(_tar_bytes, path))


def _tar_bytes(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                tar.add(item, arcname=str(item.relative_to(folder)))
    return buffer.getvalue()


@router.get("/apps/{app_id}/runs/{run_id}/input")
async def download_input(request: Request, app_id: str, run_id: str) -> Response:
    svc = state(request).services
    run = await svc.runs.get(app_id, run_id)
    response = await input_raw(svc, run)
    response.headers["Content-Disposition"] = f'attachment; filename="{saved_as(run, "input")}"'
    return response


@router.get("/apps/{app_id}/runs/{run_id}/output")
async def download_output(request: Request, app_id: str, run_id: str) -> Response:
    svc = state(request).services
    run = await svc.runs.get(app_id, run_id)
    response = await file_response(svc, run, "output")
    response.headers["Content-Disposition"] = f'attachment; filename="{saved_as(run, "output")}"'
    return response


def saved_as(run: Run, kind: str) -> str:
    """The file name a download is saved under, with the extension its format has, so the
    file opens in the right program: ``run-x-output.json``, ``run-x-input.tar.gz``."""
    if run.input_format in DIRECTORY_FORMATS:
        return f"{run.id}-{kind}.tar.gz"
    return f"{run.id}-{kind}.json" if run.input_format == "json" else f"{run.id}-{kind}"


@router.get("/apps/{app_id}/runs/{run_id}/log")
async def download_log(request: Request, app_id: str, run_id: str) -> Response:
    svc = state(request).services
    run = await svc.runs.get(app_id, run_id)
    path = svc.runs.log_path(run)
    if not path.exists():
        raise NotFound(f"run {run_id!r} has no log")
    return FileResponse(path, media_type="text/plain; charset=utf-8", filename=f"{run_id}.log")
