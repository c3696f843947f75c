"""Switchback tests, and which unit and arm served each run they routed.

A test's runs are ordinary rows of ``runs`` (``experiment_id`` = the test's id);
``switchback_runs`` adds the unit and the arm beside each, and goes with the run.
Status changes are conditional updates: of two callers moving the same test, one wins.
"""

from __future__ import annotations

import builtins

from orchestrator.models import Run
from orchestrator.store.db import Connection, Row
from orchestrator.store.rows import dump, load, to_run
from orchestrator.switchback_models import Arm, Plan, ServedRun, SwitchbackStatus, SwitchbackTest

_COLUMNS = (
    "app_id, id, name, description, baseline_instance_id, candidate_instance_id,"
    " unit_minutes, units, status, scheduled_start, plan, created_at, updated_at,"
    " started_at, ended_at"
)


def _test(row: Row) -> SwitchbackTest:
    data = dict(row)
    plan = load(data.pop("plan"))
    data["status"] = SwitchbackStatus(data["status"])
    return SwitchbackTest(**data, plan=None if plan is None else Plan.from_dict(plan))


class SwitchbackRepo:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    async def get(self, app_id: str, test_id: str) -> SwitchbackTest | None:
        row = await self.conn.one(
            "SELECT * FROM switchback_tests WHERE app_id = ? AND id = ?", (app_id, test_id)
        )
        return None if row is None else _test(row)

    async def list(self, app_id: str) -> builtins.list[SwitchbackTest]:
        rows = await self.conn.all(
            "SELECT * FROM switchback_tests WHERE app_id = ? ORDER BY created_at DESC, id",
            (app_id,),
        )
        return [_test(r) for r in rows]

    async def live(self) -> builtins.list[SwitchbackTest]:
        """Tests that route runs now or will (drafts with a scheduled start), every app."""
        rows = await self.conn.all(
            "SELECT * FROM switchback_tests WHERE status = 'started'"
            " OR (status = 'draft' AND scheduled_start IS NOT NULL)"
        )
        return [_test(r) for r in rows]

    async def using_instance(self, app_id: str, instance_id: str) -> builtins.list[SwitchbackTest]:
        """Drafts and started tests with the instance as baseline or candidate, as their rows
        say: a started one whose last unit has elapsed is completed once it is next read."""
        rows = await self.conn.all(
            "SELECT * FROM switchback_tests WHERE app_id = ? AND status IN ('draft', 'started')"
            " AND ? IN (baseline_instance_id, candidate_instance_id) ORDER BY created_at, id",
            (app_id, instance_id),
        )
        return [_test(r) for r in rows]

    async def insert(self, t: SwitchbackTest) -> None:
        marks = ", ".join("?" for _ in _COLUMNS.split(","))
        await self.conn.execute(
            f"INSERT INTO switchback_tests ({_COLUMNS}) VALUES ({marks})",
            (
                t.app_id,
                t.id,
                t.name,
                t.description,
                t.baseline_instance_id,
                t.candidate_instance_id,
                t.unit_minutes,
                t.units,
                t.status.value,
                t.scheduled_start,
                None if t.plan is None else dump(t.plan.to_dict()),
                t.created_at,
                t.updated_at,
                t.started_at,
                t.ended_at,
            ),
        )

    async def relabel(self, t: SwitchbackTest) -> None:
        await self.conn.execute(
            "UPDATE switchback_tests SET name = ?, description = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ?",
            (t.name, t.description, t.updated_at, t.app_id, t.id),
        )

    async def start(self, t: SwitchbackTest) -> bool:
        """Draft → started with its plan; False when it was no longer a draft."""
        assert t.plan is not None
        moved = await self.conn.execute(
            "UPDATE switchback_tests SET status = 'started', plan = ?, started_at = ?,"
            " updated_at = ? WHERE app_id = ? AND id = ? AND status = 'draft'",
            (dump(t.plan.to_dict()), t.started_at, t.updated_at, t.app_id, t.id),
        )
        return moved == 1

    async def end(self, t: SwitchbackTest) -> bool:
        """Started → ``t.status`` (completed or canceled); False when it was not started."""
        moved = await self.conn.execute(
            "UPDATE switchback_tests SET status = ?, ended_at = ?, updated_at = ?"
            " WHERE app_id = ? AND id = ? AND status = 'started'",
            (t.status.value, t.ended_at, t.updated_at, t.app_id, t.id),
        )
        return moved == 1

    async def delete(self, app_id: str, test_id: str) -> builtins.list[str]:
        """The test and its runs; the ids of the runs deleted (their folders go too)."""
        rows = await self.conn.all(
            "SELECT id FROM runs WHERE experiment_id = ? AND app_id = ?", (test_id, app_id)
        )
        await self.conn.execute(
            "DELETE FROM runs WHERE experiment_id = ? AND app_id = ?", (test_id, app_id)
        )
        await self.conn.execute(
            "DELETE FROM switchback_tests WHERE app_id = ? AND id = ?", (app_id, test_id)
        )
        return [r["id"] for r in rows]

    async def record_run(self, served: ServedRun) -> None:
        await self.conn.execute(
            "INSERT INTO switchback_runs (run_id, app_id, test_id, unit_index, arm)"
            " VALUES (?, ?, ?, ?, ?)",
            (served.run_id, served.app_id, served.test_id, served.unit_index, served.arm.value),
        )

    async def runs(self, app_id: str, test_id: str) -> builtins.list[Run]:
        """The test's runs, oldest first."""
        rows = await self.conn.all(
            "SELECT * FROM runs WHERE experiment_id = ? AND app_id = ? ORDER BY created_at, id",
            (test_id, app_id),
        )
        return [to_run(r) for r in rows]

    async def served(self, app_id: str, test_id: str) -> dict[str, ServedRun]:
        """Run id → the unit and arm that served it."""
        rows = await self.conn.all(
            "SELECT * FROM switchback_runs WHERE app_id = ? AND test_id = ?", (app_id, test_id)
        )
        return {
            r["run_id"]: ServedRun(r["run_id"], app_id, test_id, r["unit_index"], Arm(r["arm"]))
            for r in rows
        }
