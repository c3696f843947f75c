"""Run inputs and outputs over HTTP: inline when small, signed URLs when large.

Files are streamed from disk (``FileResponse``), never read whole into the
daemon. Folder formats (multi-file, csv-archive) travel as tar.gz, built on
first request and kept next to the run.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path as FilePath
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.types import Scope

from orchestrator import trees
from orchestrator.api.auth import sign, verify
from orchestrator.api.deps import absolute_url, services
from orchestrator.api.fields import AppId, RunId
from orchestrator.api.head import FileResponse
from orchestrator.api.responses import INPUT_FILE, errors
from orchestrator.errors import Conflict, NotFound
from orchestrator.models import Run, RunStatus
from orchestrator.runs.files import require
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.service import TEXT_FORMAT
from orchestrator.runs.workspace import (
    SMALL_OUTPUT,
    Workspace,
    confined,
    output_dir_name,
    sized_json,
)
from orchestrator.services import Services

downloads = APIRouter(tags=["downloads"])

URL_TTL_SECONDS = 3600


def signed_url(svc: Services, request: Request, run: Run, kind: str) -> str:
    path = f"downloads/{run.app_id}/runs/{run.id}/{kind}"
    return absolute_url(request, f"{path}?{sign(request.app.state.api_key, path, URL_TTL_SECONDS)}")


async def output_value(
    svc: Services, scope: Scope, run: Run, as_url: bool
) -> dict[str, Any] | None:
    """What ``output`` holds in a run result: the JSON object, ``{"url": ...}``, or nothing.

    A URL when asked for, for folder formats, and above the inline limit. A
    small output that is not a JSON object is a URL only when the run
    succeeded (text output is still output); a failed run's stray stdout is
    no result, and the SDK expects ``None`` there. The request is read (for the
    daemon's own address) only for a URL: most results carry the object.

    An output that went with its run's folder (deleted by hand) is a 410 here, rather
    than a URL that would answer it (``runs/files``); ``/metadata`` still reads the run.
    """

    def url() -> dict[str, Any]:
        require_output(svc, run)
        return {"url": signed_url(svc, Request(scope), run, "output")}

    if as_url or run.input_format in DIRECTORY_FORMATS:
        return url()
    if run.output_size == 0:
        return None
    if run.output_size > svc.settings.inline_output_bytes:
        return url() if run.status == RunStatus.SUCCEEDED else None
    path, most = svc.runs.output_path(run), svc.settings.inline_output_bytes
    if run.output_size < SMALL_OUTPUT:  # parsing it costs less than a hop to a thread
        _, value = sized_json(path, most)
    else:
        _, value = await anyio.to_thread.run_sync(sized_json, path, most)
    if isinstance(value, dict):
        return value
    if run.status == RunStatus.SUCCEEDED:
        return url()
    return None


async def file_response(svc: Services, run: Run, kind: str) -> Response:
    if not run.status.finished and kind == "output":
        raise Conflict(f"run {run.id!r} is {run.status.value}: its output is not ready")
    if kind == "input":
        return await input_raw(svc, run)
    ws = require_output(svc, run)
    if run.input_format in DIRECTORY_FORMATS:
        if not os.path.isdir(ws.root):  # never had one (an experiment's run never started)
            raise NotFound(f"run {run.id!r} has no output")
        archive = await anyio.to_thread.run_sync(
            _tar_once,
            FilePath(ws.work, output_dir_name(run.input_format)),
            FilePath(ws.root, "output.tar.gz"),
            FilePath(ws.work),
        )
        return FileResponse(archive, media_type="application/gzip", filename=f"{run.id}.tar.gz")
    if not FilePath(ws.stdout).exists():
        raise NotFound(f"run {run.id!r} has no output")
    return FileResponse(ws.stdout, media_type="application/json")


def require_output(svc: Services, run: Run) -> Workspace:
    """The run's workspace, once its output (file or folder) is known not to have gone
    with a folder deleted by hand: ``RunFilesGone`` (410) if it has (``runs/files``)."""
    ws = Workspace.of(svc.settings.home.run_path(run.id))
    if run.input_format in DIRECTORY_FORMATS:
        require(run, ws.root, os.path.join(ws.work, output_dir_name(run.input_format)), "output")
    else:
        require(run, ws.root, ws.stdout, "output")
    return ws


async def input_raw(svc: Services, run: Run) -> Response:
    if run.input_path is None:
        raise NotFound(f"run {run.id!r} has no input")
    require(run, svc.settings.home.run_path(run.id), run.input_path, "input")
    path = FilePath(run.input_path)
    if path.is_dir():
        archive = await anyio.to_thread.run_sync(
            _tar_once, path, svc.settings.home.run_dir(run.id) / "input.tar.gz"
        )
        return FileResponse(archive, media_type="application/gzip")
    return FileResponse(path, media_type="application/octet-stream")


async def input_body(svc: Services, run: Run) -> Response:
    """``GET .../input``: the SDK calls ``.json()`` on it, so text comes back as a JSON string."""
    if run.input_format == "text" and run.input_path and run.input_size <= 5 * 1024 * 1024:
        require(run, svc.settings.home.run_path(run.id), run.input_path, "input")
        text = FilePath(run.input_path).read_text(errors="replace")
        return JSONResponse(text)
    response = await input_raw(svc, run)
    if run.input_format == "json":
        response.media_type = "application/json"
    return response


def _tar_once(folder: FilePath, archive: FilePath, within: FilePath | None = None) -> FilePath:
    """Regular files only, at any depth (``trees``); with ``within`` (a model's outputs),
    only if the folder really lies there: a model may have left links to anything
    (``confined``)."""
    if not archive.exists():
        with _writing(archive) as tar:
            if folder.exists() and (within is None or confined(folder, within)):
                for found, name, info in trees.regular_files(folder):
                    _add(tar, found, name, info)
    return archive


@contextlib.contextmanager
def _writing(archive: FilePath) -> Iterator[tarfile.TarFile]:
    """A tar.gz written beside ``archive``, then renamed into place: a request that
    finds it finds it whole. The gzip header names the tar as ``gunzip -N`` would
    restore it (``output.tar``), not the temporary file."""
    tmp = archive.with_suffix(".tmp")
    with (
        tmp.open("wb") as raw,
        gzip.GzipFile(archive.name.removesuffix(".gz"), "wb", fileobj=raw) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        yield tar
    tmp.rename(archive)


def _add(tar: tarfile.TarFile, folder: trees.Folder, name: str, info: os.stat_result) -> None:
    """One file, opened beside its folder (its path may be longer than PATH_MAX)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder.fd)
    except OSError:
        return
    with os.fdopen(fd, "rb") as fh:
        member = tarfile.TarInfo(f"{folder.path}/{name}" if folder.path else name)
        member.size, member.mtime = info.st_size, int(info.st_mtime)
        member.mode = stat.S_IMODE(info.st_mode)
        tar.addfile(member, fh)


@downloads.get(
    "/downloads/{app_id}/runs/{run_id}/{kind}",
    responses=INPUT_FILE | errors(401, 404, 409, 410, 422, 507),
)
async def download(
    app_id: AppId,
    run_id: RunId,
    kind: Annotated[
        str, Path(description="input or output", json_schema_extra={"enum": ["input", "output"]})
    ],
    request: Request,
    expires: int = Query(...),
    sig: str = Query(...),
    raw: bool = Query(
        False, description="A text input's bytes as they are (orch's CLI), not a tar.gz."
    ),
    svc: Services = Depends(services),
) -> Response:
    """Signed, expiring, key-less: the SDK fetches these URLs without its bearer key."""
    verify(request.app.state.api_key, f"downloads/{app_id}/runs/{run_id}/{kind}", expires, sig)
    if kind not in ("input", "output"):
        raise NotFound(f"nothing called {kind!r} to download")
    run = await svc.runs.get(app_id, run_id)
    if kind == "output" and await svc.runs.output_is_text(run):
        ws = require_output(svc, run)
        return await text_archive(run, "output", ws.stdout, FilePath(ws.root))
    text_input = None if raw or kind != "input" else _text_input_file(run)
    if text_input is not None:
        require(run, svc.settings.home.run_path(run.id), text_input, "input")
        return await text_archive(run, "input", text_input, svc.settings.home.run_dir(run.id))
    return await file_response(svc, run, kind)


def _text_input_file(run: Run) -> str | None:
    """The path of a text run's input when it is one file (a folder is a tar.gz anyway)."""
    path = run.input_path
    if run.input_format != TEXT_FORMAT or not path or os.path.isdir(path):
        return None
    return path


async def text_archive(run: Run, kind: str, path: str, folder: FilePath) -> Response:
    """A text input or output at its URL, as the SDK reads every one that is not
    ``json``: a tar.gz, here of one file named ``input`` or ``output`` (as in the SDK's
    own local runs). ``GET .../output`` keeps the bytes as they are, for orch's CLI, and
    so does this URL with ``raw=true``, which the CLI asks for an input."""
    archive = await anyio.to_thread.run_sync(
        _tar_file_once, path, FilePath(folder, f"{kind}.tar.gz"), kind
    )
    if archive is None:
        raise NotFound(f"run {run.id!r} has no {kind}")
    return FileResponse(archive, media_type="application/gzip", filename=f"{run.id}.tar.gz")


def _tar_file_once(path: str, archive: FilePath, name: str) -> FilePath | None:
    """The regular file at ``path`` alone in ``archive`` under ``name``, made on the first
    request (a finished run's output does not change); None without one. Opened as
    ``_add`` opens a model's files: no link followed, no FIFO waited on."""
    if archive.exists():
        return archive
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        with _writing(archive) as tar:
            member = tarfile.TarInfo(name)
            member.size, member.mtime = info.st_size, int(info.st_mtime)
            member.mode = stat.S_IMODE(info.st_mode)
            tar.addfile(member, fh)
    return archive
