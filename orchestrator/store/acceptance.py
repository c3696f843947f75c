"""Acceptance tests: one row each, beside the batch experiment of the same id."""

from __future__ import annotations

import builtins
from typing import Any

from orchestrator.models import AcceptanceTest, now
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, load


def _acceptance(row: Any) -> AcceptanceTest:
    data = dict(row)
    data["metrics"] = load(data["metrics"])
    return AcceptanceTest(**data)


class AcceptanceRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, test_id: str) -> AcceptanceTest | None:
        row = await self.conn.one(
            "SELECT * FROM acceptance_tests WHERE app_id = ? AND id = ?", (app_id, test_id)
        )
        return None if row is None else _acceptance(row)

    async def list(self, app_id: str) -> builtins.list[AcceptanceTest]:
        rows = await self.conn.all(
            "SELECT * FROM acceptance_tests WHERE app_id = ? ORDER BY created_at DESC, id",
            (app_id,),
        )
        return [_acceptance(r) for r in rows]

    async def insert(self, t: AcceptanceTest) -> None:
        await self.conn.execute(
            "INSERT INTO acceptance_tests (app_id, id, name, description, control_instance_id,"
            " control_version_id, candidate_instance_id, candidate_version_id, metrics,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.app_id,
                t.id,
                t.name,
                t.description,
                t.control_instance_id,
                t.control_version_id,
                t.candidate_instance_id,
                t.candidate_version_id,
                dump(t.metrics),
                t.created_at,
                t.updated_at,
            ),
        )

    async def update(self, t: AcceptanceTest) -> None:
        t.updated_at = now()
        await self.conn.execute(
            "UPDATE acceptance_tests SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (t.name, t.description, t.updated_at, t.app_id, t.id),
        )
