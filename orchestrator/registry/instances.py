"""Instances: named pointers to versions, with options and limits. devint is virtual."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, replace
from datetime import datetime

from orchestrator.config import Settings
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.experiments.switchback_plan import end_of, utc_now
from orchestrator.ids import check_label, validate_child_id
from orchestrator.models import (
    DEFAULT_INSTANCE_ALIAS,
    DEVINT,
    RESERVED_INSTANCES,
    App,
    Instance,
    Limits,
    PointerMove,
    Queuing,
    Version,
)
from orchestrator.packaging.manifest import Manifest
from orchestrator.registry.lookup import require_app, require_instance, require_version
from orchestrator.registry.secrets import require_collection
from orchestrator.runs.options import check_instance_options, undeclared_options
from orchestrator.store import Repos, Store
from orchestrator.switchback_models import SwitchbackStatus, SwitchbackTest


@dataclass
class InstanceChanges:
    """What an update may change; ``None`` leaves a field as it is."""

    version_id: str | None = None
    name: str | None = None
    description: str | None = None
    options: dict[str, str] | None = None
    limits: Limits | None = None
    execution_class: str | None = None
    secrets_collection_id: str | None = None
    """``""`` clears it."""
    queuing: Queuing | None = None
    """Replaces the instance's queuing whole (``Queuing()`` clears it)."""


def devint_instance(app: App) -> Instance:
    """The reserved instance, synthesized: it follows the latest push, never a version."""
    return Instance(
        id=DEVINT,
        app_id=app.id,
        version_id="",
        name="devint",
        description="Reserved: always runs the most recently pushed executable.",
        created_at=app.created_at,
        updated_at=app.updated_at,
    )


def refuse_reserved(instance_id: str, verb: str) -> None:
    if instance_id in RESERVED_INSTANCES:
        raise Conflict(
            f"instance {instance_id!r} is reserved: it always follows the latest push and "
            f"cannot be {verb} by hand"
        )


def refuse_locked(instance: Instance, verb: str) -> None:
    if instance.locked:
        raise Conflict(
            f"instance {instance.id!r} is locked and cannot be {verb}; unlock it first: "
            f"orch app instance update -a {instance.app_id} --instance-id {instance.id} --unlock"
        )


async def check_options(
    w: Repos, instance_id: str, options: dict[str, str], version: Version
) -> None:
    """The instance's options against the version's app.yaml, by the rules its runs use
    (``runs/options.py``): a bad one is refused when set (400), not by every run after.
    devint has no options of its own, so a push never meets an instance's options: only
    versions do, and a version's app.yaml never changes."""
    exe = await w.executables.get(version.executable_id)
    if exe is None:  # pragma: no cover - versions keep their executable alive
        raise NotFound(f"executable {version.executable_id} is missing")
    try:
        check_instance_options(Manifest.from_dict(exe.manifest), options)
    except Invalid as e:
        raise Invalid(f"instance {instance_id!r} on version {version.id!r}: {e.message}") from None


def _routes_still(t: SwitchbackTest, at: datetime) -> bool:
    """A started test whose last unit ended is completed, though its row says so only once
    it is next read: it must not hold the instance back meanwhile."""
    return t.status == SwitchbackStatus.DRAFT or (t.plan is not None and end_of(t.plan) > at)


async def _users(w: Repos, app_id: str, instance_id: str) -> builtins.list[str]:
    """What would break without the instance: a live switchback test would end canceled,
    a live shadow test would shadow on nothing, an ensemble definition (whose groups never
    change) would fail every run. Ended tests and past runs keep their IDs as history."""
    at = utc_now()
    switchback = [
        f"switchback test {t.id} ({t.status.value})"
        for t in await w.switchback.using_instance(app_id, instance_id)
        if _routes_still(t, at)
    ]
    shadow = [
        f"shadow test {t.id} ({t.status.value})"
        for t in await w.shadow_tests.using_instance(app_id, instance_id)
    ]
    ensembles = [
        f"ensemble definition {d}" for d in await w.ensembles.using_instance(app_id, instance_id)
    ]
    return [*switchback, *shadow, *ensembles]


async def _refuse_used(w: Repos, app_id: str, instance_id: str) -> None:
    """As a version used by an instance: no --force skips it (that is for the defaults)."""
    users = await _users(w, app_id, instance_id)
    if users:
        raise Conflict(
            f"instance {instance_id!r} is used by {', '.join(users)}; stop or delete them first"
        )


def _applied(instance: Instance, changes: InstanceChanges) -> Instance:
    if changes.name is not None and not changes.name.strip():
        raise Invalid("instance name cannot be empty")
    check_label("instance", changes.name, changes.description)
    return replace(
        instance,
        version_id=changes.version_id or instance.version_id,
        name=changes.name if changes.name is not None else instance.name,
        description=instance.description if changes.description is None else changes.description,
        options=instance.options if changes.options is None else changes.options,
        limits=instance.limits if changes.limits is None else changes.limits,
        execution_class=(
            instance.execution_class
            if changes.execution_class is None
            else changes.execution_class or None
        ),
        secrets_collection_id=(
            instance.secrets_collection_id
            if changes.secrets_collection_id is None
            else changes.secrets_collection_id or None
        ),
        queuing=instance.queuing if changes.queuing is None else changes.queuing,
    )


def _differs(a: Instance, b: Instance) -> bool:
    fields = (
        "version_id",
        "name",
        "description",
        "options",
        "limits",
        "execution_class",
        "secrets_collection_id",
        "queuing",
    )
    return any(getattr(a, f) != getattr(b, f) for f in fields)


async def insert_instance(
    w: Repos, settings: Settings, instance: Instance, action: str = "create"
) -> Instance:
    validate_child_id(instance.id, "instance")
    if not instance.name:  # an unnamed instance is named by its ID, whoever makes it
        instance = replace(instance, name=instance.id)
    check_label("instance", instance.name, instance.description)
    refuse_reserved(instance.id, "created")
    if instance.id == DEFAULT_INSTANCE_ALIAS:  # runs would reach the app's default instead
        raise Conflict(
            f"instance ID {DEFAULT_INSTANCE_ALIAS!r} names the app's default instance in runs; "
            "choose another ID"
        )
    version = await require_version(w, instance.app_id, instance.version_id)
    await check_options(w, instance.id, instance.options, version)
    settings.limits_for_class(instance.execution_class)
    if instance.secrets_collection_id:
        await require_collection(w, instance.app_id, instance.secrets_collection_id)
    if await w.instances.get(instance.app_id, instance.id) is not None:
        raise Conflict(f"instance {instance.id!r} already exists in app {instance.app_id!r}")
    await w.instances.insert(instance)
    await w.history.record(
        PointerMove(instance.app_id, f"instance:{instance.id}", None, instance.version_id, action)
    )
    return instance


async def point_instance(
    w: Repos,
    app_id: str,
    instance_id: str,
    version_id: str,
    action: str,
    options: dict[str, str] | None = None,
) -> Instance:
    """Attach an existing instance to a version, recording the move (not a locked one).
    Its options (or ``options``, those it is about to get) must suit the version."""
    instance = await require_instance(w, app_id, instance_id)
    refuse_locked(instance, "moved to another version")
    version = await require_version(w, app_id, version_id)
    await check_options(w, instance_id, instance.options if options is None else options, version)
    await w.history.record(
        PointerMove(app_id, f"instance:{instance_id}", instance.version_id, version_id, action)
    )
    instance.version_id = version_id
    await w.instances.update(instance)
    return instance


class InstanceService:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings

    async def create(self, instance: Instance) -> Instance:
        async with self.store.write() as w:
            await require_app(w, instance.app_id)
            return await insert_instance(w, self.settings, instance)

    async def undeclared(self, instance: Instance) -> builtins.list[dict[str, str | None]]:
        """The instance's options its version's app.yaml does not declare, each with its
        note (``runs/options.py``): passed to its runs all the same."""
        if not instance.options or not instance.version_id:  # devint has no options
            return []
        repos = self.store.read
        version = await require_version(repos, instance.app_id, instance.version_id)
        exe = await repos.executables.get(version.executable_id)
        if exe is None:  # pragma: no cover - versions keep their executable alive
            return []
        found = undeclared_options(Manifest.from_dict(exe.manifest), instance.options)
        return [u.to_dict(f"version {version.id}") for u in found]

    async def get(self, app_id: str, instance_id: str) -> Instance:
        app = await require_app(self.store.read, app_id)
        if instance_id in RESERVED_INSTANCES:
            return devint_instance(app)
        return await require_instance(self.store.read, app_id, instance_id)

    async def list(self, app_id: str) -> builtins.list[Instance]:
        app = await require_app(self.store.read, app_id)
        return [devint_instance(app), *await self.store.read.instances.list(app_id)]

    async def update(
        self,
        app_id: str,
        instance_id: str,
        changes: InstanceChanges,
        locked: bool | None = None,
    ) -> Instance:
        """Apply the changes; a PUT that only echoes the instance back is always fine.

        The SDK updates by GET + PUT of the whole object, so "no effective
        change" must pass even on a locked instance (it is how the SDK unlocks).

        ``locked``: False unlocks the instance before the changes, True locks it after
        them, in the same write: a change refused leaves the lock as it was.
        """
        refuse_reserved(instance_id, "updated")
        async with self.store.write() as w:
            instance = await require_instance(w, app_id, instance_id)
            if locked is False and instance.locked:  # rolled back if a change is refused
                instance.locked = False
                await w.instances.update(instance)
            wanted = _applied(instance, changes)
            if wanted.execution_class is not None:
                self.settings.limits_for_class(wanted.execution_class)
            if _differs(instance, wanted):
                refuse_locked(instance, "changed")
            if wanted.secrets_collection_id:
                await require_collection(w, app_id, wanted.secrets_collection_id)
            if wanted.version_id != instance.version_id:
                await point_instance(
                    w, app_id, instance_id, wanted.version_id, "update", wanted.options
                )
            elif wanted.options != instance.options:  # unchanged ones pass: how the SDK unlocks
                version = await require_version(w, app_id, wanted.version_id)
                await check_options(w, instance_id, wanted.options, version)
            if locked:
                wanted.locked = True
            await w.instances.update(wanted)
        return wanted

    async def set_lock(self, app_id: str, instance_id: str, locked: bool) -> Instance:
        refuse_reserved(instance_id, "locked")
        async with self.store.write() as w:
            instance = await require_instance(w, app_id, instance_id)
            instance.locked = locked
            await w.instances.update(instance)
        return instance

    async def delete(self, app_id: str, instance_id: str, force: bool = False) -> None:
        refuse_reserved(instance_id, "deleted")
        async with self.store.write() as w:
            app = await require_app(w, app_id)
            instance = await require_instance(w, app_id, instance_id)
            refuse_locked(instance, "deleted")
            await _refuse_used(w, app_id, instance_id)
            defaults = [
                pointer
                for pointer, target in (
                    ("default_instance", app.default_instance_id),
                    ("default_experiment_instance", app.default_experiment_instance_id),
                )
                if target == instance_id
            ]
            if defaults:  # the same rule for both defaults: only with --force, recorded
                what = " and the ".join(p.replace("_", " ") for p in defaults)
                if not force:
                    raise Conflict(
                        f"instance {instance_id!r} is the {what} of app {app_id!r}; "
                        "pass --force to delete it and clear the default"
                    )
                for pointer in defaults:
                    move = PointerMove(app_id, pointer, instance_id, None, "delete")
                    await w.history.record(move)
                if app.default_instance_id == instance_id:
                    app.default_instance_id = None
                if app.default_experiment_instance_id == instance_id:
                    app.default_experiment_instance_id = None
                await w.apps.update(app)
            await w.history.record(
                PointerMove(app_id, f"instance:{instance_id}", instance.version_id, None, "delete")
            )
            await w.instances.delete(app_id, instance_id)
