"""Fetch-or-404 helpers shared by the registry services."""

from __future__ import annotations

from typing import Protocol

from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.ids import check_label
from orchestrator.models import App, Executable, Instance, Version
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
