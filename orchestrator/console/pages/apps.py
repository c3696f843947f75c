"""``/apps`` and ``/apps/<app>``: the apps, one app's registry, its edit and promote forms.

The app page's other forms (a new version or instance, a delete) are in ``app_forms``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

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
    return await show_app(
        request,
        app_id,
        notice=_notice(request),
        notes=await _option_notes(request, app_id),
        deleting=_deleting(request),
    )


NOTICES = {
    "version-created": "Version {} created: a snapshot of the current executable.",
    "instance-created": "Instance {} created.",
    "version-deleted": "Version {} deleted.",
    "instance-deleted": "Instance {} deleted.",
}
"""What a change made from the app page says after its redirect (``?version-created=v2``)."""


def _notice(request: Request) -> str:
    if request.query_params.get("saved"):
        return "Saved."
    if promoted := request.query_params.get("promoted"):
        return f"Promoted: version {promoted} is live on the default instance."
    for key, text in NOTICES.items():
        if done := request.query_params.get(key):
            return text.format(done)
    return ""


async def _option_notes(request: Request, app_id: str) -> list[str]:
    """After an instance is made: the notes the API's answer and the CLI give on its options
    its version's app.yaml does not declare (passed to its runs all the same), asked of
    the service again rather than carried in the address."""
    made = request.query_params.get("instance-created")
    if not made:
        return []
    svc = state(request).services
    try:
        instance = await svc.instances.get(app_id, made)
    except OrchError:  # deleted since: nothing to note
        return []
    return [str(u["note"]) for u in await svc.instances.undeclared(instance)]


EDIT_FIELDS = ("name", "description", "default_instance")
PROMOTE_FIELDS = ("version_id", "name", "description", "instance_id")
VERSION_FIELDS = ("id", "name", "description")
INSTANCE_FIELDS = ("id", "version_id", "name", "options")
FORMS = {
    "edit": EDIT_FIELDS,
    "promote": PROMOTE_FIELDS,
    "version": VERSION_FIELDS,
    "instance": INSTANCE_FIELDS,
}
"""The app page's forms and their fields: a refused one is shown again as it was sent."""

DELETABLE = ("version", "instance")


@dataclass(frozen=True)
class Deleting:
    """A delete the page asks to confirm (``?delete-version=v1``), or one refused."""

    kind: str  # "version" or "instance"
    id: str


@dataclass(frozen=True)
class Refusal:
    """A form of the app page the daemon refused: which one (``FORMS``, or "delete"),
    what was typed in it, and the domain's error, shown at that form."""

    form: str
    sent: dict[str, str]
    error: OrchError


def _deleting(request: Request) -> Deleting | None:
    for kind in DELETABLE:
        if chosen := request.query_params.get(f"delete-{kind}"):
            return Deleting(kind, chosen)
    return None


def confirm_url(app_id: str, deleting: Deleting) -> str:
    """The app page asking to confirm the delete (the CLI's ``--confirm``, asked in the
    page: a second click, no script needed)."""
    return app_url(app_id) + f"?delete-{deleting.kind}={quote(deleting.id, safe='')}#confirm"


async def show_app(
    request: Request,
    app_id: str,
    notice: str = "",
    notes: list[str] | None = None,
    refusal: Refusal | None = None,
    deleting: Deleting | None = None,
) -> Response:
    """The app page; with a ``refusal``, what was sent in that form is shown again, with
    the error, instead of the stored values and the empty form."""
    console = state(request)
    svc = console.services
    app = await svc.apps.get(app_id)
    stored = {"name": app.name, "description": app.description}
    stored["default_instance"] = app.default_instance_id or ""
    typed = {form: dict.fromkeys(names, "") for form, names in FORMS.items()}
    typed["edit"] = stored
    if refusal is not None and refusal.form in typed:
        typed[refusal.form] = refusal.sent
    # a person's own runs: an experiment's hundreds would crowd them out (its page lists them)
    recent = await console.search.page(RunQuery(app_id=app_id, experiment_runs=False), limit=10)
    return page(
        request,
        "app.html",
        status=200 if refusal is None else refusal.error.status,
        address=app_url(app_id) if refusal else "",
        app=app,
        instances=await svc.instances.list(app_id),
        versions=await svc.versions.list(app_id),
        ensembles=await svc.ensemble_definitions.list(app_id),
        executable=await _executable(request, app),
        history=(await svc.apps.history(app_id))[:50],
        last_push=await last_push_at(svc.store, app_id),
        runs=recent.runs,
        notice=notice,
        notes=notes or [],
        error=refusal.error.message if refusal else "",
        refused=refusal.form if refusal else "",  # each form says its error where it is
        edit=typed["edit"],
        promoting=typed["promote"],
        making_version=typed["version"],
        making_instance=typed["instance"],
        deleting=deleting,
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
        return await show_app(request, app_id, refusal=Refusal("edit", values, exc))
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
        return await show_app(request, app_id, refusal=Refusal("promote", values, exc))
    return see_other(app_url(app_id) + f"?promoted={done.version.id}")
