"""Shadow tests, and the link from each shadowed baseline run to its candidate runs."""

from __future__ import annotations

import builtins
from collections.abc import Iterable

from orchestrator.models import Run, now
from orchestrator.shadow_models import (
    SHADOW_TRANSITIONS,
    Comparison,
    ShadowLink,
    ShadowStatus,
    ShadowTest,
)
from orchestrator.store.db import Connection, Row
from orchestrator.store.rows import dump, load, to_run


def _test(row: Row) -> ShadowTest:
    data = dict(row)
    data["status"] = ShadowStatus(data["status"])
    data["comparisons"] = [
        Comparison(c["baseline_instance_id"], tuple(c["candidate_instance_ids"]))
        for c in load(data["comparisons"])
    ]
    return ShadowTest(**data)


def _comparisons(test: ShadowTest) -> str:
    return dump(
        [
            {
                "baseline_instance_id": c.baseline_instance_id,
                "candidate_instance_ids": list(c.candidate_instance_ids),
            }
            for c in test.comparisons
        ]
    )


def _link(row: Row) -> ShadowLink:
    data = dict(row)
    data.pop("app_id")
    return ShadowLink(**data)


class ShadowTestRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, test_id: str) -> ShadowTest | None:
        row = await self.conn.one(
            "SELECT * FROM shadow_tests WHERE app_id = ? AND id = ?", (app_id, test_id)
        )
        return None if row is None else _test(row)

    async def list(self, app_id: str) -> builtins.list[ShadowTest]:
        rows = await self.conn.all(
            "SELECT * FROM shadow_tests WHERE app_id = ? ORDER BY created_at, id", (app_id,)
        )
        return [_test(r) for r in rows]

    async def with_status(
        self, status: ShadowStatus, app_id: str | None = None
    ) -> builtins.list[ShadowTest]:
        """Tests in one status (of one app): the started ones a run may trigger, and what
        the clock watches after a restart."""
        sql, params = "SELECT * FROM shadow_tests WHERE status = ?", [status.value]
        if app_id is not None:
            sql, params = sql + " AND app_id = ?", [*params, app_id]
        return [_test(r) for r in await self.conn.all(sql + " ORDER BY created_at, id", params)]

    async def started_for(self, app_id: str, instance_id: str) -> builtins.list[ShadowTest]:
        """Started tests with ``instance_id`` as a baseline: what a run there triggers.
        Asked on every user run, so SQLite picks them out and only those are parsed."""
        rows = await self.conn.all(
            "SELECT * FROM shadow_tests WHERE status = 'started' AND app_id = ? AND EXISTS ("
            " SELECT 1 FROM json_each(comparisons)"
            " WHERE json_extract(value, '$.baseline_instance_id') = ?) ORDER BY created_at, id",
            (app_id, instance_id),
        )
        return [_test(r) for r in rows]

    async def using_instance(self, app_id: str, instance_id: str) -> builtins.list[ShadowTest]:
        """Drafts and started tests naming the instance as a baseline or a candidate."""
        rows = await self.conn.all(
            "SELECT * FROM shadow_tests WHERE app_id = ? AND status IN ('draft', 'started')"
            " AND EXISTS (SELECT 1 FROM json_each(comparisons) AS c"
            "  WHERE json_extract(c.value, '$.baseline_instance_id') = ?"
            "  OR EXISTS (SELECT 1 FROM json_each(c.value, '$.candidate_instance_ids') AS i"
            "   WHERE i.value = ?)) ORDER BY created_at, id",
            (app_id, instance_id, instance_id),
        )
        return [_test(r) for r in rows]

    async def insert(self, t: ShadowTest) -> None:
        await self.conn.execute(
            "INSERT INTO shadow_tests (app_id, id, name, description, status, comparisons,"
            " maximum_runs, shadowed_runs, start_time, end_time, created_at, updated_at,"
            " started_at, ended_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                t.app_id,
                t.id,
                t.name,
                t.description,
                t.status.value,
                _comparisons(t),
                t.maximum_runs,
                t.shadowed_runs,
                t.start_time,
                t.end_time,
                t.created_at,
                t.updated_at,
                t.started_at,
                t.ended_at,
            ),
        )

    async def relabel(self, t: ShadowTest) -> None:
        t.updated_at = now()
        await self.conn.execute(
            "UPDATE shadow_tests SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (t.name, t.description, t.updated_at, t.app_id, t.id),
        )

    async def transition(self, app_id: str, test_id: str, to: ShadowStatus) -> bool:
        """Move a test to ``to`` from a status the table allows; False if it was not in
        one (another move won, or it is gone). Sets ``started_at`` or ``ended_at``."""
        allowed = [s.value for s, targets in SHADOW_TRANSITIONS.items() if to in targets]
        stamp = now()
        column = "started_at" if to == ShadowStatus.STARTED else "ended_at"
        marks = ", ".join("?" * len(allowed))
        changed = await self.conn.execute(
            f"UPDATE shadow_tests SET status = ?, {column} = ?, updated_at = ?"
            f" WHERE app_id = ? AND id = ? AND status IN ({marks})",
            (to.value, stamp, stamp, app_id, test_id, *allowed),
        )
        return changed == 1

    async def claim_run(self, app_id: str, test_id: str) -> bool:
        """Count one more shadowed baseline run if the test is started and under its
        maximum; the run that reaches the maximum completes it (started -> completed),
        in the same statement, so concurrent runs never shadow one run too many."""
        stamp = now()
        changed = await self.conn.execute(
            "UPDATE shadow_tests SET shadowed_runs = shadowed_runs + 1, updated_at = ?,"
            " status = CASE WHEN shadowed_runs + 1 >= maximum_runs"
            "   THEN 'completed' ELSE status END,"
            " ended_at = CASE WHEN shadowed_runs + 1 >= maximum_runs THEN ? ELSE ended_at END"
            " WHERE app_id = ? AND id = ? AND status = 'started'"
            " AND shadowed_runs < maximum_runs",
            (stamp, stamp, app_id, test_id),
        )
        return changed == 1

    async def delete(self, app_id: str, test_id: str) -> None:
        """The test and its links; the runs are the caller's to delete."""
        await self.conn.execute(
            "DELETE FROM shadow_tests WHERE app_id = ? AND id = ?", (app_id, test_id)
        )

    async def insert_links(self, app_id: str, links: Iterable[ShadowLink]) -> None:
        await self.conn.executemany(
            "INSERT INTO shadow_runs (app_id, test_id, baseline_run_id, candidate_instance_id,"
            " candidate_run_id, error, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    app_id,
                    k.test_id,
                    k.baseline_run_id,
                    k.candidate_instance_id,
                    k.candidate_run_id,
                    k.error,
                    k.created_at,
                )
                for k in links
            ],
        )

    async def links(self, app_id: str, test_id: str) -> builtins.list[ShadowLink]:
        rows = await self.conn.all(
            "SELECT * FROM shadow_runs WHERE app_id = ? AND test_id = ?"
            " ORDER BY created_at, baseline_run_id, candidate_instance_id",
            (app_id, test_id),
        )
        return [_link(r) for r in rows]

    async def runs(self, app_id: str, test_id: str) -> builtins.list[Run]:
        """The test's runs that still exist, baseline and candidate, oldest first."""
        rows = await self.conn.all(
            "SELECT * FROM runs WHERE app_id = ? AND id IN ("
            " SELECT baseline_run_id FROM shadow_runs WHERE app_id = ? AND test_id = ?"
            " UNION SELECT candidate_run_id FROM shadow_runs WHERE app_id = ? AND test_id = ?"
            ") ORDER BY created_at, id",
            (app_id, app_id, test_id, app_id, test_id),
        )
        return [to_run(r) for r in rows]
