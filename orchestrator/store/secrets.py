"""Secrets collections and their secrets (values included: the database file is 0600).

Values are read by one call only, ``values``, which the run path uses to deliver a
collection to a model; everything the API shows is read without them (``keys``).
"""

from __future__ import annotations

import builtins

from orchestrator.models import Secret, SecretsCollection, SecretType, now
from orchestrator.store.db import Connection, Row


def _collection(row: Row) -> SecretsCollection:
    return SecretsCollection(**dict(row))


class SecretsRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, collection_id: str) -> SecretsCollection | None:
        row = await self.conn.one(
            "SELECT * FROM secrets_collections WHERE app_id = ? AND id = ?",
            (app_id, collection_id),
        )
        return None if row is None else _collection(row)

    async def list(self, app_id: str) -> builtins.list[SecretsCollection]:
        rows = await self.conn.all(
            "SELECT * FROM secrets_collections WHERE app_id = ? ORDER BY created_at, id",
            (app_id,),
        )
        return [_collection(r) for r in rows]

    async def insert(self, collection: SecretsCollection) -> None:
        await self.conn.execute(
            "INSERT INTO secrets_collections (app_id, id, name, description, created_at,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                collection.app_id,
                collection.id,
                collection.name,
                collection.description,
                collection.created_at,
                collection.updated_at,
            ),
        )

    async def update(self, collection: SecretsCollection) -> None:
        collection.updated_at = now()
        await self.conn.execute(
            "UPDATE secrets_collections SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (
                collection.name,
                collection.description,
                collection.updated_at,
                collection.app_id,
                collection.id,
            ),
        )

    async def delete(self, app_id: str, collection_id: str) -> None:
        """The collection and its secrets (the foreign key cascades)."""
        await self.conn.execute(
            "DELETE FROM secrets_collections WHERE app_id = ? AND id = ?", (app_id, collection_id)
        )

    async def keys(self, app_id: str, collection_id: str) -> builtins.list[tuple[SecretType, str]]:
        """The (type, location) of each secret, never its value."""
        rows = await self.conn.all(
            "SELECT type, location FROM secrets WHERE app_id = ? AND collection_id = ?"
            " ORDER BY type, location",
            (app_id, collection_id),
        )
        return [(SecretType(r["type"]), r["location"]) for r in rows]

    async def values(self, app_id: str, collection_id: str) -> builtins.list[Secret]:
        """The secrets with their values: for delivery to a run, nothing else."""
        rows = await self.conn.all(
            "SELECT type, location, value FROM secrets WHERE app_id = ? AND collection_id = ?"
            " ORDER BY type, location",
            (app_id, collection_id),
        )
        return [Secret(SecretType(r["type"]), r["location"], r["value"]) for r in rows]

    async def put(self, app_id: str, collection_id: str, secret: Secret) -> None:
        """Create or replace one secret (by its type and location)."""
        await self.conn.execute(
            "INSERT INTO secrets (app_id, collection_id, type, location, value)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (app_id, collection_id, type, location)"
            " DO UPDATE SET value = excluded.value",
            (app_id, collection_id, secret.type.value, secret.location, secret.value),
        )

    async def remove(
        self, app_id: str, collection_id: str, secret_type: SecretType, location: str
    ) -> None:
        await self.conn.execute(
            "DELETE FROM secrets WHERE app_id = ? AND collection_id = ? AND type = ?"
            " AND location = ?",
            (app_id, collection_id, secret_type.value, location),
        )

    async def used_by(self, app_id: str, collection_id: str) -> builtins.list[str]:
        """The instances that name the collection (it cannot go while they do)."""
        rows = await self.conn.all(
            "SELECT id FROM instances WHERE app_id = ? AND secrets_collection_id = ? ORDER BY id",
            (app_id, collection_id),
        )
        return [r["id"] for r in rows]
