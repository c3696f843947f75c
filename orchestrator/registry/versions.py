"""Versions: immutable snapshots of the app's current executable."""

from __future__ import annotations

import builtins

from orchestrator.errors import Conflict
from orchestrator.ids import check_label, new_id, validate_child_id
from orchestrator.models import Version
from orchestrator.registry.lookup import (
    rename,
    require_app,
    require_current_executable,
    require_version,
)
from orchestrator.store import Repos, Store


async def insert_version(
    w: Repos, app_id: str, version_id: str | None, name: str | None, description: str = ""
) -> Version:
    """Snapshot the app's current executable as a new version (inside a caller's transaction)."""
    version_id = version_id or new_id("version")
    validate_child_id(version_id, "version")
    check_label("version", name, description)
    app = await require_app(w, app_id)
    exe = await require_current_executable(w, app)
    if await w.versions.get(app_id, version_id) is not None:
        raise Conflict(f"version {version_id!r} already exists in app {app_id!r}")
    version = Version(
        id=version_id,
        app_id=app_id,
        name=name or version_id,
        description=description or "",
        executable_id=exe.id,
    )
    await w.versions.insert(version)
    return version


class VersionService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self, app_id: str, version_id: str | None, name: str | None, description: str = ""
    ) -> Version:
        async with self.store.write() as w:
            return await insert_version(w, app_id, version_id, name, description)

    async def get(self, app_id: str, version_id: str) -> Version:
        await require_app(self.store.read, app_id)
        return await require_version(self.store.read, app_id, version_id)

    async def list(self, app_id: str) -> builtins.list[Version]:
        await require_app(self.store.read, app_id)
        return await self.store.read.versions.list(app_id)

    async def update(
        self, app_id: str, version_id: str, name: str | None, description: str | None
    ) -> Version:
        async with self.store.write() as w:
            version = await require_version(w, app_id, version_id)
            rename(version, name, description, "version")
            await w.versions.update(version)
        return version

    async def delete(self, app_id: str, version_id: str) -> None:
        async with self.store.write() as w:
            await require_version(w, app_id, version_id)
            users = await w.instances.using_version(app_id, version_id)
            if users:
                raise Conflict(
                    f"version {version_id!r} is used by instance(s) {', '.join(users)}; "
                    "point them at another version or delete them first"
                )
            await w.versions.delete(app_id, version_id)
