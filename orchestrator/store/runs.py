"""Runs: rows, guarded status transitions and the newest-first listing.

``insert``, ``insert_many``, ``transition``, ``transition_many`` and
``transition_of_experiment`` are the SQL behind the run-state service
(``runs/states.py``), its only caller: they check
the transition table in the statement itself, so a status can never move
along an edge the table does not have, whoever races whom.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Iterable
from typing import Any

from orchestrator.models import RUN_TIMESTAMP, RUN_TRANSITIONS, Run, RunStatus, now
from orchestrator.store.db import Connection
from orchestrator.store.rows import dump, failure_values, run_values, to_run

_UPDATABLE = frozenset(
    {
        "exit_code",
        "signal",
        "duration_ms",
        "cpu_seconds",
        "peak_memory_mb",
        "output_size",
        "statistics",
        "metrics",
        "placement",
        "failure",
    }
)
_CHUNK = 500
"""Ids per ``IN (...)`` list: far below SQLite's variable limit on every version."""
_RETURNING = " RETURNING id"
"""What a bulk statement answers: the runs it changed (SQLite 3.35+), read in the same
statement, where a ``SELECT`` first cost a second pass."""


def sources_of(to: RunStatus, expect: Iterable[RunStatus] | None = None) -> tuple[RunStatus, ...]:
    """The statuses a run may move to ``to`` from, narrowed to ``expect`` when given."""
    return _sources(to, None if expect is None else frozenset(expect))


@functools.cache
def _sources(to: RunStatus, expect: frozenset[RunStatus] | None) -> tuple[RunStatus, ...]:
    sources = [s for s, targets in RUN_TRANSITIONS.items() if s is not None and to in targets]
    return tuple(s for s in sources if expect is None or s in expect)


@functools.lru_cache(maxsize=64)
def _insert_sql(columns: tuple[str, ...]) -> str:
    """The text of an insert of ``columns`` (the same few sets, run after run)."""
    return f"INSERT INTO runs ({', '.join(columns)}) VALUES ({_marks(len(columns))})"


@functools.lru_cache(maxsize=256)
def _update_sql(columns: tuple[str, ...], where: str) -> str:
    return f"UPDATE runs SET {', '.join(f'{k} = ?' for k in columns)} WHERE {where}"


def _marks(count: int) -> str:
    return ", ".join("?" * count)


class RunRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def insert(self, run: Run) -> None:
        """A new row in ``run.status``, which the table must allow as a creation."""
        _check_creation(run.status)
        values = run_values(run)
        await self.conn.execute(_insert_sql(tuple(values)), values.values())

    async def insert_many(self, runs: builtins.list[Run]) -> None:
        """Many new rows, in chunks: converting 10,000 runs to rows at once would hold the
        event loop for ~0.2 s; between chunks it answers whatever waits."""
        for run in runs:
            _check_creation(run.status)
        for start in range(0, len(runs), _CHUNK):
            values = [run_values(r) for r in runs[start : start + _CHUNK]]
            await self.conn.executemany(_insert_sql(tuple(values[0])), [v.values() for v in values])

    async def get(self, run_id: str) -> Run | None:
        row = await self.conn.one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return None if row is None else to_run(row)

    async def status(self, run_id: str) -> tuple[str, RunStatus] | None:
        """(app id, status) of a run: what a long-poll checks before it waits, without
        building the whole run it would only read again once the run ends."""
        row = await self.conn.one("SELECT app_id, status FROM runs WHERE id = ?", (run_id,))
        return None if row is None else (row[0], RunStatus(row[1]))

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

    async def unfinished(
        self, app_id: str | None = None, experiment_id: str | None = None
    ) -> builtins.list[Run]:
        """Queued and running runs, oldest first: what recovery and the scheduler pick up."""
        where, params = ["status IN ('queued', 'running')"], list[str]()
        if app_id is not None:
            where, params = [*where, "app_id = ?"], [*params, app_id]
        if experiment_id is not None:
            where, params = [*where, "experiment_id = ?"], [*params, experiment_id]
        rows = await self.conn.all(
            f"SELECT * FROM runs WHERE {' AND '.join(where)} ORDER BY created_at, id", params
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
        sources = sources_of(to, expect)
        if not sources:
            return False
        values = self._fields(fields)
        values["status"] = to.value
        values[RUN_TIMESTAMP[to]] = now()
        where = f"id = ? AND status IN ({_marks(len(sources))})"
        changed = await self.conn.execute(
            _update_sql(tuple(values), where),
            [*values.values(), run_id, *(s.value for s in sources)],
        )
        return changed == 1

    async def transition_many(
        self, run_ids: Iterable[str], to: RunStatus, expect: Iterable[RunStatus], **fields: Any
    ) -> builtins.list[str]:
        """``transition`` for many runs; returns the ids that moved.

        One statement per ``_CHUNK`` ids, which answers the ids it changed: what moved is
        exactly what the guard let through, with no select before it.
        """
        sources = sources_of(to, expect)
        ids = list(run_ids)
        if not sources or not ids:
            return []
        values = self._fields(fields)
        values["status"] = to.value
        values[RUN_TIMESTAMP[to]] = now()
        moved: builtins.list[str] = []
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            where = f"id IN ({_marks(len(chunk))}) AND status IN ({_marks(len(sources))})"
            params = [*values.values(), *chunk, *(s.value for s in sources)]
            rows = await self.conn.all(_update_sql(tuple(values), where) + _RETURNING, params)
            moved.extend(r["id"] for r in rows)
        return moved

    async def transition_of_experiment(
        self,
        app_id: str,
        experiment_id: str,
        to: RunStatus,
        expect: Iterable[RunStatus],
        limit: int = _CHUNK,
    ) -> builtins.list[str]:
        """``transition`` for up to ``limit`` of an experiment's runs, found by the index
        on (experiment, status) in the statement itself; returns the ids that moved (fewer
        than ``limit``: none is left). A bulk cancel reads no run: reading 20,000 queued
        runs whole to cancel them took 4 of its 6 s."""
        sources = sources_of(to, expect)
        if not sources:
            return []
        values = {"status": to.value, RUN_TIMESTAMP[to]: now()}
        where = (
            "rowid IN (SELECT rowid FROM runs WHERE experiment_id = ? AND app_id = ?"
            f" AND status IN ({_marks(len(sources))}) LIMIT ?)"
        )
        params = [*values.values(), experiment_id, app_id, *(s.value for s in sources), limit]
        rows = await self.conn.all(_update_sql(tuple(values), where) + _RETURNING, params)
        return [r["id"] for r in rows]

    async def experiment_counts(self, app_id: str, experiment_id: str) -> dict[str, int]:
        rows = await self.conn.all(
            "SELECT status, count(*) AS n FROM runs WHERE experiment_id = ? AND app_id = ?"
            " GROUP BY status",
            (experiment_id, app_id),
        )
        return {r["status"]: r["n"] for r in rows}

    async def unfinished_of_experiment(self, app_id: str, experiment_id: str) -> int:
        """How many of an experiment's runs are queued or running (index-only)."""
        return int(
            await self.conn.scalar(
                "SELECT count(*) FROM runs WHERE experiment_id = ?"
                " AND status IN ('queued', 'running') AND app_id = ?",
                (experiment_id, app_id),
            )
        )

    async def ids_of_experiment(
        self, app_id: str, experiment_id: str, status: RunStatus | None = None
    ) -> builtins.list[str]:
        where, params = "experiment_id = ? AND app_id = ?", [experiment_id, app_id]
        if status is not None:
            where, params = where + " AND status = ?", [*params, status.value]
        rows = await self.conn.all(f"SELECT id FROM runs WHERE {where} ORDER BY id", params)
        return [r["id"] for r in rows]

    async def delete_experiment_runs(
        self, app_id: str, experiment_id: str, limit: int = _CHUNK
    ) -> builtins.list[str]:
        """Delete up to ``limit`` of an experiment's finished runs; returns their ids (fewer
        than ``limit``: none is left). In batches, so that deleting 39,000 runs is many
        short writes, not one that held the daemon for seconds; unfinished runs are kept
        (they have a process or a place in the queue, which a row must name)."""
        rows = await self.conn.all(
            "DELETE FROM runs WHERE rowid IN (SELECT rowid FROM runs WHERE experiment_id = ?"
            " AND app_id = ? AND status NOT IN ('queued', 'running') LIMIT ?)" + _RETURNING,
            (experiment_id, app_id, limit),
        )
        return [r["id"] for r in rows]

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
        values: dict[str, Any] = {}
        for key, value in fields.items():
            if key == "failure":
                values.update(failure_values(value))
            elif key in ("statistics", "metrics", "placement"):
                values[key] = None if value is None else dump(value)
            else:
                values[key] = value
        return values


def _check_creation(status: RunStatus) -> None:
    if status not in RUN_TRANSITIONS[None]:
        raise ValueError(f"a run cannot be created {status.value}")
