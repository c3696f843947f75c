"""Runs: rows, guarded status transitions and the newest-first listing."""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from typing import Any

from orchestrator.models import RUN_TIMESTAMP, RUN_TRANSITIONS, Run, RunStatus, now
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, run_values, to_run

_UPDATABLE = frozenset(
    {
        "error",
        "exit_code",
        "signal",
        "duration_ms",
        "cpu_seconds",
        "peak_memory_mb",
        "output_size",
        "statistics",
        "pid",
        "pgid",
        "cgroup",
    }
)


class RunRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(self, run: Run) -> None:
        values = run_values(run)
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        await self.conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", values.values())

    async def get(self, run_id: str) -> Run | None:
        row = await self.conn.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return None if row is None else to_run(row)

    async def list(
        self,
        app_id: str,
        *,
        status: RunStatus | None = None,
        instance_id: str | None = None,
        experiment_id: str | None = None,
        before: tuple[str, str] | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        limit: int = 50,
    ) -> builtins.list[Run]:
        """Newest first; ``before`` = (created_at, id) of the last row seen (keyset paging)."""
        where, params = ["app_id = ?"], [app_id]
        if status is not None:
            where.append("status = ?")
            params.append(status.value)
        if instance_id is not None:
            where.append("instance_id = ?")
            params.append(instance_id)
        if experiment_id is not None:
            where.append("experiment_id = ?")
            params.append(experiment_id)
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(before)
        if created_after is not None:
            where.append("created_at >= ?")
            params.append(created_after)
        if created_before is not None:
            where.append("created_at <= ?")
            params.append(created_before)
        rows = await self.conn.all(
            f"SELECT * FROM runs WHERE {' AND '.join(where)}"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            [*params, limit],
        )
        return [to_run(r) for r in rows]

    async def ids(self) -> set[str]:
        """Every run's id (recovery compares them with the run folders)."""
        return {r["id"] for r in await self.conn.all("SELECT id FROM runs")}

    async def unfinished(self) -> builtins.list[Run]:
        """Queued and running runs, oldest first: what recovery and the scheduler pick up."""
        rows = await self.conn.all(
            "SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY created_at, id"
        )
        return [to_run(r) for r in rows]

    async def transition(
        self,
        run_id: str,
        to: RunStatus,
        expect: Iterable[RunStatus] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a run to ``to`` if the table of transitions allows it from its current status.

        The ``WHERE status IN (...)`` guard makes the check and the write one
        atomic step, so a cancel racing a finish cannot both win. Returns
        whether the run moved.
        """
        sources = [s for s, targets in RUN_TRANSITIONS.items() if to in targets]
        if expect is not None:
            sources = [s for s in sources if s in set(expect)]
        if not sources:
            return False
        values = self._fields(fields)
        values["status"] = to.value
        values[RUN_TIMESTAMP[to]] = now()
        assignments = ", ".join(f"{k} = ?" for k in values)
        marks = ", ".join("?" for _ in sources)
        changed = await self.conn.execute(
            f"UPDATE runs SET {assignments} WHERE id = ? AND status IN ({marks})",
            [*values.values(), run_id, *(s.value for s in sources)],
        )
        return changed == 1

    async def update(self, run_id: str, **fields: Any) -> None:
        """Record facts about a run (pid, cgroup...) without touching its status."""
        values = self._fields(fields)
        assignments = ", ".join(f"{k} = ?" for k in values)
        await self.conn.execute(
            f"UPDATE runs SET {assignments} WHERE id = ?", [*values.values(), run_id]
        )

    async def insert_many(self, runs: builtins.list[Run]) -> None:
        if not runs:
            return
        values = [run_values(r) for r in runs]
        cols = ", ".join(values[0])
        marks = ", ".join("?" for _ in values[0])
        await self.conn.executemany(
            f"INSERT INTO runs ({cols}) VALUES ({marks})", [v.values() for v in values]
        )

    async def experiment_counts(self, app_id: str, experiment_id: str) -> dict[str, int]:
        rows = await self.conn.all(
            "SELECT status, count(*) AS n FROM runs WHERE app_id = ? AND experiment_id = ?"
            " GROUP BY status",
            (app_id, experiment_id),
        )
        return {r["status"]: r["n"] for r in rows}

    async def cancel_queued(self, app_id: str, experiment_id: str) -> builtins.list[str]:
        """Cancel an experiment's queued runs at once; returns their ids."""
        rows = await self.conn.all(
            "SELECT id FROM runs WHERE app_id = ? AND experiment_id = ? AND status = 'queued'",
            (app_id, experiment_id),
        )
        for r in rows:
            await self.transition(r["id"], RunStatus.CANCELED, [RunStatus.QUEUED], error="canceled")
        return [r["id"] for r in rows]

    async def running_of_experiment(self, app_id: str, experiment_id: str) -> builtins.list[str]:
        rows = await self.conn.all(
            "SELECT id FROM runs WHERE app_id = ? AND experiment_id = ? AND status = 'running'",
            (app_id, experiment_id),
        )
        return [r["id"] for r in rows]

    async def delete_experiment_runs(self, app_id: str, experiment_id: str) -> builtins.list[str]:
        ids = [
            r["id"]
            for r in await self.conn.all(
                "SELECT id FROM runs WHERE app_id = ? AND experiment_id = ?",
                (app_id, experiment_id),
            )
        ]
        await self.conn.execute(
            "DELETE FROM runs WHERE app_id = ? AND experiment_id = ?", (app_id, experiment_id)
        )
        return ids

    async def ids_for_app(self, app_id: str) -> builtins.list[str]:
        return [
            r["id"] for r in await self.conn.all("SELECT id FROM runs WHERE app_id = ?", (app_id,))
        ]

    async def delete(self, run_id: str) -> None:
        await self.conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    @staticmethod
    def _fields(fields: dict[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"run fields not updatable: {sorted(unknown)}")
        return {k: dump(v) if k == "statistics" and v is not None else v for k, v in fields.items()}
