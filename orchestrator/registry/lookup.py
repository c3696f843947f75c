"""Fetch-or-404 helpers shared by the registry services."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.ids import check_label
from orchestrator.models import RESERVED_INSTANCES, App, Executable, Instance, Version
from orchestrator.store import Repos


async def require_app(repos: Repos, app_id: str) -> App:
    app = await repos.apps.get(app_id)
    if app is None:
        raise NotFound(f"app {app_id!r} not found")
    return app


async def require_version(repos: Repos, app_id: str, version_id: str) -> Version:
    version = await repos.versions.get(app_id, version_id)
    if version is None:
        raise NotFound(f"version {version_id!r} not found in app {app_id!r}")
    return version


async def require_instance(repos: Repos, app_id: str, instance_id: str) -> Instance:
    instance = await repos.instances.get(app_id, instance_id)
    if instance is None:
        raise NotFound(f"instance {instance_id!r} not found in app {app_id!r}")
    return instance


async def require_instances(repos: Repos, app_id: str, instance_ids: Iterable[str]) -> None:
    """Each instance exists (devint always does). Tests check this again inside the write
    that stores them: deleting an instance refuses while a test names it, so a delete that
    slipped in after the first check must be caught here, or the test names it for good."""
    for instance_id in dict.fromkeys(instance_ids):
        if instance_id not in RESERVED_INSTANCES:
            await require_instance(repos, app_id, instance_id)


async def require_current_executable(repos: Repos, app: App) -> Executable:
    """The app's latest push; versions and devint runs need one to exist."""
    if app.executable_id is None:
        raise Conflict(f"app {app.id!r} has no executable yet: push one first (orch app push)")
    exe = await repos.executables.get(app.executable_id)
    if exe is None:  # pragma: no cover - guarded by foreign keys
        raise NotFound(f"executable {app.executable_id} of app {app.id!r} is missing")
    return exe


class Named(Protocol):
    name: str
    description: str


def rename(item: Named, name: str | None, description: str | None, kind: str) -> None:
    """Apply a new name and/or description; ``None`` keeps a field, a blank name is refused."""
    check_label(kind, name, description)
    if name is not None:
        if not name.strip():
            raise Invalid(f"{kind} name cannot be empty")
        item.name = name
    if description is not None:
        item.description = description
