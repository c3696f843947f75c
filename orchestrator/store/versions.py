"""Versions (immutable executable snapshots) and instances (named pointers to versions)."""

from __future__ import annotations

import builtins

from orchestrator.models import Instance, Version, now
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, to_instance, to_version


class VersionRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, version_id: str) -> Version | None:
        row = await self.conn.one(
            "SELECT * FROM versions WHERE app_id = ? AND id = ?", (app_id, version_id)
        )
        return None if row is None else to_version(row)

    async def list(self, app_id: str) -> builtins.list[Version]:
        rows = await self.conn.all(
            "SELECT * FROM versions WHERE app_id = ? ORDER BY created_at", (app_id,)
        )
        return [to_version(r) for r in rows]

    async def insert(self, v: Version) -> None:
        await self.conn.execute(
            "INSERT INTO versions (app_id, id, name, description, executable_id, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (v.app_id, v.id, v.name, v.description, v.executable_id, v.created_at, v.updated_at),
        )

    async def update(self, v: Version) -> None:
        """Only name and description change: a version's executable never does."""
        v.updated_at = now()
        await self.conn.execute(
            "UPDATE versions SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (v.name, v.description, v.updated_at, v.app_id, v.id),
        )

    async def delete(self, app_id: str, version_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM versions WHERE app_id = ? AND id = ?", (app_id, version_id)
        )


class InstanceRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, instance_id: str) -> Instance | None:
        row = await self.conn.one(
            "SELECT * FROM instances WHERE app_id = ? AND id = ?", (app_id, instance_id)
        )
        return None if row is None else to_instance(row)

    async def list(self, app_id: str) -> builtins.list[Instance]:
        rows = await self.conn.all(
            "SELECT * FROM instances WHERE app_id = ? ORDER BY created_at", (app_id,)
        )
        return [to_instance(r) for r in rows]

    async def using_version(self, app_id: str, version_id: str) -> builtins.list[str]:
        rows = await self.conn.all(
            "SELECT id FROM instances WHERE app_id = ? AND version_id = ? ORDER BY id",
            (app_id, version_id),
        )
        return [r["id"] for r in rows]

    async def insert(self, i: Instance) -> None:
        await self.conn.execute(
            "INSERT INTO instances (app_id, id, version_id, name, description, options, limits,"
            " execution_class, locked, secrets_collection_id, queuing, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                i.app_id,
                i.id,
                i.version_id,
                i.name,
                i.description,
                dump(i.options),
                dump(i.limits.to_dict()),
                i.execution_class,
                int(i.locked),
                i.secrets_collection_id,
                dump(i.queuing.to_dict()),
                i.created_at,
                i.updated_at,
            ),
        )

    async def update(self, i: Instance) -> None:
        i.updated_at = now()
        await self.conn.execute(
            "UPDATE instances SET version_id = ?, name = ?, description = ?, options = ?,"
            " limits = ?, execution_class = ?, locked = ?, secrets_collection_id = ?,"
            " queuing = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (
                i.version_id,
                i.name,
                i.description,
                dump(i.options),
                dump(i.limits.to_dict()),
                i.execution_class,
                int(i.locked),
                i.secrets_collection_id,
                dump(i.queuing.to_dict()),
                i.updated_at,
                i.app_id,
                i.id,
            ),
        )

    async def delete(self, app_id: str, instance_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM instances WHERE app_id = ? AND id = ?", (app_id, instance_id)
        )
