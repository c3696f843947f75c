"""Apps, their current executable pointer, and the audit trail of pointer moves."""

from __future__ import annotations

import builtins

from orchestrator.models import App, PointerMove, now
from orchestrator.store.db import Connection
from orchestrator.store.rows import to_app, to_move


class AppRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str) -> App | None:
        row = await self.conn.one("SELECT * FROM apps WHERE id = ?", (app_id,))
        return None if row is None else to_app(row)

    async def list(self) -> builtins.list[App]:
        return [to_app(r) for r in await self.conn.all("SELECT * FROM apps ORDER BY created_at")]

    async def insert(self, app: App) -> None:
        await self.conn.execute(
            "INSERT INTO apps (id, name, description, default_instance_id, executable_id,"
            " default_experiment_instance_id, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                app.id,
                app.name,
                app.description,
                app.default_instance_id,
                app.executable_id,
                app.default_experiment_instance_id,
                app.created_at,
                app.updated_at,
            ),
        )

    async def update(self, app: App) -> None:
        app.updated_at = now()
        await self.conn.execute(
            "UPDATE apps SET name = ?, description = ?, default_instance_id = ?,"
            " executable_id = ?, default_experiment_instance_id = ?, updated_at = ? WHERE id = ?",
            (
                app.name,
                app.description,
                app.default_instance_id,
                app.executable_id,
                app.default_experiment_instance_id,
                app.updated_at,
                app.id,
            ),
        )

    async def delete(self, app_id: str) -> None:
        await self.conn.execute("DELETE FROM apps WHERE id = ?", (app_id,))


class HistoryRepo:
    """Every change of what devint, an instance or the default instance points to."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def record(self, move: PointerMove) -> None:
        if move.from_target == move.to_target and move.action != "push":
            return  # not a move; a re-push of identical content is still worth a line
        await self.conn.execute(
            "INSERT INTO pointer_moves (app_id, pointer, from_target, to_target, action, at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (move.app_id, move.pointer, move.from_target, move.to_target, move.action, move.at),
        )

    async def list(self, app_id: str, limit: int = 1000) -> builtins.list[PointerMove]:
        rows = await self.conn.all(
            "SELECT * FROM pointer_moves WHERE app_id = ? ORDER BY id DESC LIMIT ?",
            (app_id, limit),
        )
        return [to_move(r) for r in rows]
