"""The app page's registry forms: a new version, a new instance, and deleting either.

Each change goes through the domain service the API's route calls, so the console can
neither do more nor less than ``orch app version|instance create|delete``; a refusal
shows the app page again with the service's own message at its form and what was typed.
A delete is asked to be confirmed in the page first (the CLI's ``--confirm``): the row's
"Delete…" link opens the app page with the question, whose button posts ``confirm=yes``.
"""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import Response

from orchestrator.console.guard import read_form
from orchestrator.console.pages.apps import (
    INSTANCE_FIELDS,
    VERSION_FIELDS,
    Deleting,
    Refusal,
    confirm_url,
    show_app,
)
from orchestrator.console.pages.base import app_url, field, fields, pages_router, see_other, state
from orchestrator.console.pages.run_actions import parse_options
from orchestrator.errors import OrchError
from orchestrator.models import Instance

router = pages_router()


def _done(app_id: str, what: str, item_id: str) -> Response:
    """Back to the app page, which says what was done (``?version-created=v2``)."""
    return see_other(app_url(app_id) + "?" + urlencode({what: item_id}))


@router.post("/apps/{app_id}/versions")
async def create_version(request: Request, app_id: str) -> Response:
    """A snapshot of devint's current executable, as ``orch app version create``."""
    values = fields(await read_form(request), VERSION_FIELDS)
    try:
        version = await state(request).services.versions.create(
            app_id, values["id"] or None, values["name"] or None, values["description"]
        )
    except OrchError as exc:
        return await show_app(request, app_id, refusal=Refusal("version", values, exc))
    return _done(app_id, "version-created", version.id)


@router.post("/apps/{app_id}/instances")
async def create_instance(request: Request, app_id: str) -> Response:
    """An instance on an existing version, with options (``name=value`` lines, as the
    new-run form takes them), as ``orch app instance create``."""
    values = fields(await read_form(request), INSTANCE_FIELDS)
    values["options"] = values["options"].replace("\r\n", "\n")  # kept as typed if refused
    try:
        instance = Instance(
            id=values["id"],
            app_id=app_id,
            version_id=values["version_id"],
            name=values["name"],
            options=parse_options(values["options"]),
        )
        await state(request).services.instances.create(instance)
    except OrchError as exc:
        return await show_app(request, app_id, refusal=Refusal("instance", values, exc))
    return _done(app_id, "instance-created", instance.id)


@router.post("/apps/{app_id}/versions/{version_id}/delete")
async def delete_version(request: Request, app_id: str, version_id: str) -> Response:
    return await _delete(request, app_id, Deleting("version", version_id))


@router.post("/apps/{app_id}/instances/{instance_id}/delete")
async def delete_instance(request: Request, app_id: str, instance_id: str) -> Response:
    return await _delete(request, app_id, Deleting("instance", instance_id))


async def _delete(request: Request, app_id: str, target: Deleting) -> Response:
    """Deletes once confirmed (``confirm=yes``, the question's button); a post without it
    is led to the question. The service refuses what the API refuses (a locked instance,
    a version an instance runs...), said in the page as it says it."""
    if field(await read_form(request), "confirm") != "yes":
        return see_other(confirm_url(app_id, target))
    svc = state(request).services
    try:
        if target.kind == "version":
            await svc.versions.delete(app_id, target.id)
        else:
            await svc.instances.delete(app_id, target.id)
    except OrchError as exc:
        return await show_app(request, app_id, refusal=Refusal("delete", {}, exc), deleting=target)
    return _done(app_id, f"{target.kind}-deleted", target.id)
