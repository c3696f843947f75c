"""promote: a version attached to the default instance, in one transaction.

The version is created from the current executable, as the custom-apps page describes,
unless it exists: then that version is promoted as it is (no new one; a different name
or description for it is refused). It is attached to the named instance (created if
missing), else to the default instance, else to the instance ``production`` (created if
missing), which then becomes the default. A readable name, since people type it; an
existing ``production`` is the one meant, not a reason for a ``production-2``.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.errors import Conflict
from orchestrator.models import DEFAULT_INSTANCE_ALIAS, App, Instance, PointerMove, Version
from orchestrator.registry.instances import insert_instance, point_instance, refuse_reserved
from orchestrator.registry.lookup import require_app
from orchestrator.registry.versions import insert_version
from orchestrator.store import Repos, Store

FIRST_INSTANCE = "production"


@dataclass
class Promotion:
    app: App
    version: Version
    instance: Instance
    created_instance: bool
    created_version: bool = True
    moved_instance: bool = False
    """An existing instance now runs the version (it ran another before)."""


async def promote(
    store: Store,
    settings: Settings,
    app_id: str,
    version_id: str | None,
    name: str | None,
    description: str = "",
    instance_id: str | None = None,
) -> Promotion:
    async with store.write() as w:
        version, created_version = await _version(w, app_id, version_id, name, description)
        app = await require_app(w, app_id)
        named = instance_id if instance_id != DEFAULT_INSTANCE_ALIAS else None  # the alias
        target = named or app.default_instance_id or FIRST_INSTANCE
        refuse_reserved(target, "promoted to")
        instance, created, moved = await _attach(w, settings, app, version, target)
        if app.default_instance_id != instance.id:
            await w.history.record(
                PointerMove(
                    app_id, "default_instance", app.default_instance_id, instance.id, "promote"
                )
            )
            app.default_instance_id = instance.id
            await w.apps.update(app)
    return Promotion(app, version, instance, created, created_version, moved)


async def _version(
    w: Repos, app_id: str, version_id: str | None, name: str | None, description: str
) -> tuple[Version, bool]:
    """The version to promote and whether it is new: an existing one as it is."""
    existing = await w.versions.get(app_id, version_id) if version_id else None
    if existing is None:
        return await insert_version(w, app_id, version_id, name, description), True
    if (name and name != existing.name) or (description and description != existing.description):
        raise Conflict(
            f"version {existing.id!r} already exists in app {app_id!r}, named "
            f"{existing.name!r}: promote it without a name or description, or give a new "
            "version ID to snapshot the current executable"
        )
    return existing, False


async def _attach(
    w: Repos, settings: Settings, app: App, version: Version, target: str
) -> tuple[Instance, bool, bool]:
    """The instance now running the version; whether it was created; whether it moved."""
    existing = await w.instances.get(app.id, target)
    if existing is not None and existing.version_id == version.id:
        return existing, False, False  # already runs it: no move to record
    if existing is not None:
        return await point_instance(w, app.id, target, version.id, "promote"), False, True
    instance = Instance(
        id=target,
        app_id=app.id,
        version_id=version.id,
        name=f"{app.name} ({target})",
        description=f"Created by promote of version {version.id}",
    )
    return await insert_instance(w, settings, instance, action="promote"), True, False
