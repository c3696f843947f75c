"""promote: version from the current executable, attached to the default instance.

Exactly as the custom-apps page describes, in one transaction: the version
is created; it is attached to the named instance (created if missing), else to
the default instance, else to a new one named ``production`` (``production-2``...
if taken), which then becomes the default. A readable name, since people type it.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.models import DEFAULT_INSTANCE_ALIAS, App, Instance, PointerMove, Version
from orchestrator.registry.instances import insert_instance, point_instance, refuse_reserved
from orchestrator.registry.lookup import require_app
from orchestrator.registry.versions import insert_version
from orchestrator.store import Repos, Store


@dataclass
class Promotion:
    app: App
    version: Version
    instance: Instance
    created_instance: bool


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
        version = await insert_version(w, app_id, version_id, name, description)
        app = await require_app(w, app_id)
        named = instance_id if instance_id != DEFAULT_INSTANCE_ALIAS else None  # the alias
        target = named or app.default_instance_id
        if target is not None:
            refuse_reserved(target, "promoted to")
        instance, created = await _attach(w, settings, app, version, target)
        if app.default_instance_id != instance.id:
            await w.history.record(
                PointerMove(
                    app_id, "default_instance", app.default_instance_id, instance.id, "promote"
                )
            )
            app.default_instance_id = instance.id
            await w.apps.update(app)
    return Promotion(app, version, instance, created)


async def _attach(
    w: Repos, settings: Settings, app: App, version: Version, target: str | None
) -> tuple[Instance, bool]:
    if target is not None and await w.instances.get(app.id, target) is not None:
        return await point_instance(w, app.id, target, version.id, "promote"), False
    instance_id = target or await _free_name(w, app.id)
    instance = Instance(
        id=instance_id,
        app_id=app.id,
        version_id=version.id,
        name=f"{app.name} ({instance_id})",
        description=f"Created by promote of version {version.id}",
    )
    return await insert_instance(w, settings, instance, action="promote"), True


FIRST_INSTANCE = "production"


async def _free_name(w: Repos, app_id: str) -> str:
    """``production``, or the first ``production-N`` no instance of the app has."""
    taken = {i.id for i in await w.instances.list(app_id)}
    n = 1
    while (name := FIRST_INSTANCE if n == 1 else f"{FIRST_INSTANCE}-{n}") in taken:
        n += 1
    return name
