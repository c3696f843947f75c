"""Executables (pushed packages by sha256) and which of them are still referenced."""

from __future__ import annotations

from orchestrator.models import EnvStatus, Executable
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, to_executable


class ExecutableRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, exe_id: str) -> Executable | None:
        row = await self.conn.one("SELECT * FROM executables WHERE id = ?", (exe_id,))
        return None if row is None else to_executable(row)

    async def insert_if_missing(self, exe: Executable, blob_path: str) -> bool:
        """Record a package once; identical bytes pushed again reuse the row."""
        changed = await self.conn.execute(
            "INSERT OR IGNORE INTO executables (id, size, blob_path, manifest, type, runtime,"
            " env_status, env_message, env_path, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                exe.id,
                exe.size,
                blob_path,
                dump(exe.manifest),
                exe.type,
                exe.runtime,
                exe.env_status.value,
                exe.env_message,
                exe.env_path,
                exe.created_at,
            ),
        )
        return changed > 0

    async def set_env(
        self, exe_id: str, status: EnvStatus, message: str = "", path: str | None = None
    ) -> None:
        await self.conn.execute(
            "UPDATE executables SET env_status = ?, env_message = ?, env_path = ? WHERE id = ?",
            (status.value, message, path, exe_id),
        )

    async def with_env_status(self, status: EnvStatus) -> list[Executable]:
        rows = await self.conn.all(
            "SELECT * FROM executables WHERE env_status = ?", (status.value,)
        )
        return [to_executable(r) for r in rows]

    async def ids(self) -> set[str]:
        """Every recorded package (start-up compares them with the folders on disk)."""
        return {r["id"] for r in await self.conn.all("SELECT id FROM executables")}

    async def unreferenced(self) -> list[tuple[str, str]]:
        """(id, blob_path) of executables no app, version or unfinished run points at."""
        rows = await self.conn.all(
            "SELECT id, blob_path FROM executables e WHERE"
            " NOT EXISTS (SELECT 1 FROM apps a WHERE a.executable_id = e.id) AND"
            " NOT EXISTS (SELECT 1 FROM versions v WHERE v.executable_id = e.id) AND"
            " NOT EXISTS (SELECT 1 FROM runs r WHERE r.executable_id = e.id"
            "             AND r.status IN ('queued', 'running'))"
        )
        return [(r["id"], r["blob_path"]) for r in rows]

    async def delete(self, exe_ids: list[str]) -> None:
        await self.conn.executemany("DELETE FROM executables WHERE id = ?", [(i,) for i in exe_ids])
