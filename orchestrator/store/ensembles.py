"""Ensemble definitions, and what each ensemble run records beside its run row."""

from __future__ import annotations

import builtins
from typing import Any

from orchestrator.ensemble_models import EnsembleDefinition, EnsembleRun
from orchestrator.models import Run, now
from orchestrator.store.db import Connection, Row
from orchestrator.store.rows import dump, load, to_run


def _definition(row: Row) -> EnsembleDefinition:
    data = dict(row)
    return EnsembleDefinition.from_dict(
        data
        | {"application_id": data["app_id"]}
        | {"run_groups": load(data["run_groups"]), "rules": load(data["rules"])}
    )


class EnsembleRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, definition_id: str) -> EnsembleDefinition | None:
        row = await self.conn.one(
            "SELECT * FROM ensemble_definitions WHERE app_id = ? AND id = ?",
            (app_id, definition_id),
        )
        return None if row is None else _definition(row)

    async def list(self, app_id: str) -> builtins.list[EnsembleDefinition]:
        rows = await self.conn.all(
            "SELECT * FROM ensemble_definitions WHERE app_id = ? ORDER BY created_at, id",
            (app_id,),
        )
        return [_definition(r) for r in rows]

    async def using_instance(self, app_id: str, instance_id: str) -> builtins.list[str]:
        """IDs of the definitions with a run group on the instance (by the ID it was given)."""
        rows = await self.conn.all(
            "SELECT id FROM ensemble_definitions WHERE app_id = ? AND EXISTS ("
            " SELECT 1 FROM json_each(run_groups)"
            " WHERE json_extract(value, '$.instance_id') = ?) ORDER BY created_at, id",
            (app_id, instance_id),
        )
        return [r["id"] for r in rows]

    async def insert(self, d: EnsembleDefinition) -> None:
        await self.conn.execute(
            "INSERT INTO ensemble_definitions (app_id, id, name, description, run_groups,"
            " rules, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                d.app_id,
                d.id,
                d.name,
                d.description,
                dump([g.to_dict() for g in d.run_groups]),
                dump([r.to_dict() for r in d.rules]),
                d.created_at,
                d.updated_at,
            ),
        )

    async def update(self, d: EnsembleDefinition) -> None:
        d.updated_at = now()
        await self.conn.execute(
            "UPDATE ensemble_definitions SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (d.name, d.description, d.updated_at, d.app_id, d.id),
        )

    async def delete(self, app_id: str, definition_id: str) -> None:
        await self.conn.execute(
            "DELETE FROM ensemble_definitions WHERE app_id = ? AND id = ?",
            (app_id, definition_id),
        )

    async def insert_run(self, e: EnsembleRun) -> None:
        await self.conn.execute(
            "INSERT INTO ensemble_runs (run_id, app_id, definition) VALUES (?, ?, ?)",
            (e.run_id, e.app_id, dump(e.definition.to_dict())),
        )

    async def get_run(self, run_id: str) -> EnsembleRun | None:
        row = await self.conn.one("SELECT * FROM ensemble_runs WHERE run_id = ?", (run_id,))
        if row is None:
            return None
        return EnsembleRun(
            run_id=row["run_id"],
            app_id=row["app_id"],
            definition=EnsembleDefinition.from_dict(load(row["definition"])),
            winner_run_id=row["winner_run_id"],
            evaluation=load(row["evaluation"]),
        )

    async def record_verdict(
        self, run_id: str, winner_run_id: str | None, evaluation: builtins.list[dict[str, Any]]
    ) -> None:
        await self.conn.execute(
            "UPDATE ensemble_runs SET winner_run_id = ?, evaluation = ? WHERE run_id = ?",
            (winner_run_id, dump(evaluation), run_id),
        )

    async def children(self, parent_run_id: str) -> builtins.list[Run]:
        """An ensemble run's child runs, in the order they were planned."""
        rows = await self.conn.all(
            "SELECT * FROM runs WHERE parent_run_id = ? ORDER BY created_at, id",
            (parent_run_id,),
        )
        return [to_run(r) for r in rows]

    async def unfinished_parents(self) -> builtins.list[Run]:
        rows = await self.conn.all(
            "SELECT runs.* FROM runs JOIN ensemble_runs ON ensemble_runs.run_id = runs.id"
            " WHERE runs.status IN ('queued', 'running')"
        )
        return [to_run(r) for r in rows]

    async def orphans(self) -> builtins.list[Run]:
        """Unfinished children whose ensemble run has ended (after a restart)."""
        rows = await self.conn.all(
            "SELECT c.* FROM runs c JOIN runs p ON p.id = c.parent_run_id"
            " WHERE c.status IN ('queued', 'running')"
            " AND p.status NOT IN ('queued', 'running')"
        )
        return [to_run(r) for r in rows]
