"""Reads across apps for the console: runs by filter with keyset paging, per-app activity.

Every query here walks an index in the order it returns rows (migration 4), so the
first page of 50 costs the same with 100,000 runs as with 100.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass

from orchestrator.models import Run, RunStatus
from orchestrator.store.db import Connection
from orchestrator.store.rows import to_run


@dataclass(frozen=True)
class RunQuery:
    """Which runs to list; every field narrows, ``None`` (and ``True``) does not."""

    app_id: str | None = None
    instance_id: str | None = None
    status: RunStatus | None = None
    created_after: str | None = None
    created_before: str | None = None
    experiment_id: str | None = None
    experiment_runs: bool = True
    """False: only a person's own runs (``OWN_RUNS``): those an experiment made are left out."""


OWN_RUNS = "(experiment_id IS NULL OR experiment_type = 'switchback')"
"""A person's own runs: made outside any experiment, or made on a switchback test's
baseline and routed by it (the test makes no run; it only picks the instance that serves
one, and links it). Runs an experiment made itself (a batch's, a scenario or acceptance
test's, a shadow test's candidate copies) carry their experiment's other types."""


class OverviewRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def runs(
        self, query: RunQuery, before: tuple[str, str] | None = None, limit: int = 50
    ) -> builtins.list[Run]:
        """Newest first; ``before`` = (created_at, id) of the last row seen."""
        where, params = _conditions(query)
        if before is not None:
            where.append("(created_at, id) < (?, ?)")
            params.extend(before)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = await self.conn.all(
            sql + " ORDER BY created_at DESC, id DESC LIMIT ?", [*params, limit]
        )
        return [to_run(r) for r in rows]

    async def matches(self, query: RunQuery, run_id: str) -> bool:
        """Whether one run passes ``query`` (a live page deciding to show a changed run)."""
        where, params = _conditions(query)
        sql = "SELECT 1 FROM runs WHERE id = ?"
        if where:
            sql += " AND " + " AND ".join(where)
        return await self.conn.one(sql, [run_id, *params]) is not None

    async def status_counts(self) -> dict[str, dict[str, int]]:
        """{app_id: {status: count}}, read from the (app, status, ...) index alone."""
        rows = await self.conn.all(
            "SELECT app_id, status, count(*) AS n FROM runs GROUP BY app_id, status"
        )
        counts: dict[str, dict[str, int]] = {}
        for r in rows:
            counts.setdefault(r["app_id"], {})[r["status"]] = r["n"]
        return counts

    async def last_run_at(self, app_id: str) -> str | None:
        value = await self.conn.scalar(
            "SELECT created_at FROM runs WHERE app_id = ? ORDER BY created_at DESC, id DESC"
            " LIMIT 1",
            (app_id,),
        )
        return None if value is None else str(value)

    async def last_push_at(self, app_id: str) -> str | None:
        value = await self.conn.scalar(
            "SELECT at FROM pointer_moves WHERE app_id = ? AND pointer = 'devint'"
            " ORDER BY id DESC LIMIT 1",
            (app_id,),
        )
        return None if value is None else str(value)


def _conditions(query: RunQuery) -> tuple[builtins.list[str], builtins.list[str]]:
    where: builtins.list[str] = []
    params: builtins.list[str] = []
    for column, value in (
        ("app_id", query.app_id),
        ("instance_id", query.instance_id),
        ("status", query.status.value if query.status else None),
        ("experiment_id", query.experiment_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if not query.experiment_runs:
        where.append(OWN_RUNS)
    if query.created_after is not None:
        where.append("created_at >= ?")
        params.append(query.created_after)
    if query.created_before is not None:
        where.append("created_at <= ?")
        params.append(query.created_before)
    return where, params
