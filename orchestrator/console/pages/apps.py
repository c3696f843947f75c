"""``/apps`` and ``/apps/<app>``: the apps, one app's registry, its edit and promote forms."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import Response

from orchestrator.console.guard import read_form
from orchestrator.console.pages.base import (
    app_url,
    fields,
    pages_router,
    see_other,
    state,
)
from orchestrator.console.render import page
from orchestrator.errors import OrchError
from orchestrator.models import App
from orchestrator.registry.activity import app_activity, last_push_at
from orchestrator.registry.promote import promote
from orchestrator.store.overview import RunQuery

router = pages_router()


@router.get("/apps")
async def apps_page(request: Request) -> Response:
    return await _apps(request)


async def _apps(
    request: Request, status: int = 200, error: str = "", form: dict[str, str] | None = None
) -> Response:
    activity = await app_activity(state(request).services.store)
    return page(
        request,
        "apps.html",
        status=status,
        address="/apps" if error else "",
        activity=activity,
        error=error,
        form=form or {"id": "", "name": "", "description": ""},
    )


@router.post("/apps")
async def create_app(request: Request) -> Response:
    values = fields(await read_form(request), ("id", "name", "description"))
    try:
        app = await state(request).services.apps.create(
            values["id"], values["name"], values["description"]
        )
    except OrchError as exc:
        return await _apps(request, status=exc.status, error=exc.message, form=values)
    return see_other(app_url(app.id))


@router.get("/apps/{app_id}")
async def app_page(request: Request, app_id: str) -> Response:
    return await _app(request, app_id, notice=_notice(request))


def _notice(request: Request) -> str:
    if request.query_params.get("saved"):
        return "Saved."
    if promoted := request.query_params.get("promoted"):
        return f"Promoted: version {promoted} is live on the default instance."
    return ""


EDIT_FIELDS = ("name", "description", "default_instance")
PROMOTE_FIELDS = ("version_id", "name", "description", "instance_id")


async def _app(
    request: Request,
    app_id: str,
    status: int = 200,
    notice: str = "",
    error: str = "",
    edit: dict[str, str] | None = None,
    promoting: dict[str, str] | None = None,
) -> Response:
    """The app page; ``edit`` or ``promoting``: what was sent in that form, refused (with
    ``error``), shown again instead of the stored values and the empty form."""
    console = state(request)
    svc = console.services
    app = await svc.apps.get(app_id)
    stored = {"name": app.name, "description": app.description}
    stored["default_instance"] = app.default_instance_id or ""
    # a person's own runs: an experiment's hundreds would crowd them out (its page lists them)
    recent = await console.search.page(RunQuery(app_id=app_id, experiment_runs=False), limit=10)
    return page(
        request,
        "app.html",
        status=status,
        address=app_url(app_id) if error else "",
        app=app,
        instances=await svc.instances.list(app_id),
        versions=await svc.versions.list(app_id),
        ensembles=await svc.ensemble_definitions.list(app_id),
        executable=await _executable(request, app),
        history=(await svc.apps.history(app_id))[:50],
        last_push=await last_push_at(svc.store, app_id),
        runs=recent.runs,
        notice=notice,
        error=error,
        edit=edit or stored,
        promoting=promoting or dict.fromkeys(PROMOTE_FIELDS, ""),
        promote_refused=promoting is not None,  # said at the form, far down the page
    )


async def _executable(request: Request, app: App) -> Any:
    svc = state(request).services
    return None if app.executable_id is None else await svc.push.executable(app.executable_id)


@router.get("/apps/{app_id}/executable")
async def executable_partial(request: Request, app_id: str) -> Response:
    """The environment panel alone: the app page polls it while an environment builds."""
    svc = state(request).services
    app = await svc.apps.get(app_id)
    return page(
        request,
        "_executable.html",
        app=app,
        executable=await _executable(request, app),
        last_push=await last_push_at(svc.store, app_id),
    )


@router.post("/apps/{app_id}")
async def edit_app(request: Request, app_id: str) -> Response:
    values = fields(await read_form(request), EDIT_FIELDS)
    # a browser sends a textarea's line breaks as CRLF: store them as they were typed
    values["description"] = values["description"].replace("\r\n", "\n")
    try:
        await state(request).services.apps.update(
            app_id,
            name=values["name"],
            description=values["description"],
            default_instance_id=values["default_instance"] or None,
        )
    except OrchError as exc:
        if exc.status == 404:
            raise
        return await _app(request, app_id, status=exc.status, error=exc.message, edit=values)
    return see_other(app_url(app_id) + "?saved=1")


@router.post("/apps/{app_id}/promote")
async def promote_app(request: Request, app_id: str) -> Response:
    values = fields(await read_form(request), PROMOTE_FIELDS)
    svc = state(request).services
    try:
        done = await promote(
            svc.store,
            svc.settings,
            app_id,
            values["version_id"] or None,
            values["name"] or None,
            values["description"],
            values["instance_id"] or None,
        )
    except OrchError as exc:
        if exc.status == 404 and "app" in exc.message:
            raise
        return await _app(request, app_id, status=exc.status, error=exc.message, promoting=values)
    return see_other(app_url(app_id) + f"?promoted={done.version.id}")
