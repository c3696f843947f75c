"""The one answer to "which executable does this run use".

Order: an explicit instance (``devint``/``latest`` mean the latest push;
``default`` means the app's default instance) → the app's default instance →
devint. A run may also name a version directly (experiments do), which runs
that version's executable with no instance configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.errors import Invalid, NotFound
from orchestrator.models import (
    DEFAULT_INSTANCE_ALIAS,
    DEVINT,
    RESERVED_INSTANCES,
    Executable,
    Limits,
    Queuing,
)
from orchestrator.registry.lookup import (
    require_app,
    require_current_executable,
    require_instance,
    require_version,
)
from orchestrator.store import Repos


@dataclass(frozen=True)
class Target:
    instance_id: str  # "devint", a real instance, or "" for a bare version
    version_id: str | None
    executable: Executable
    options: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    execution_class: str | None = None
    secrets_collection_id: str | None = None
    queuing: Queuing = field(default_factory=Queuing)


async def resolve(
    repos: Repos, app_id: str, instance_id: str | None = None, version_id: str | None = None
) -> Target:
    app = await require_app(repos, app_id)
    if instance_id and version_id:
        raise Invalid("give an instance or a version to run against, not both")
    if version_id:
        version = await require_version(repos, app_id, version_id)
        return Target("", version.id, await _executable(repos, version.executable_id))
    wanted = instance_id or DEFAULT_INSTANCE_ALIAS
    if wanted == DEFAULT_INSTANCE_ALIAS:
        wanted = app.default_instance_id or DEVINT
    if wanted in RESERVED_INSTANCES:
        return Target(DEVINT, None, await require_current_executable(repos, app))
    instance = await require_instance(repos, app_id, wanted)
    version = await require_version(repos, app_id, instance.version_id)
    return Target(
        instance.id,
        version.id,
        await _executable(repos, version.executable_id),
        dict(instance.options),
        instance.limits,
        instance.execution_class,
        instance.secrets_collection_id,
        instance.queuing,
    )


async def _executable(repos: Repos, exe_id: str) -> Executable:
    exe = await repos.executables.get(exe_id)
    if exe is None:  # pragma: no cover - versions keep their executable alive
        raise NotFound(f"executable {exe_id} is missing")
    return exe
