"""How ``orch experiment switchback`` shows tests: a record, the plan unit by unit, the runs.

Rendering only: the plan and where each run went come from the daemon.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.cli.output import record, say, table
from orchestrator.client.types import SwitchbackArm, SwitchbackRun, SwitchbackTest

TEST_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("baseline", "comparison.baseline_instance_id"),
    ("candidate", "comparison.candidate_instance_id"),
    ("units", "plan.number_of_units"),
    ("unit minutes", "plan.unit_duration_minutes"),
    ("plan start", "plan.start"),
    ("seed", "plan.seed"),
    ("started", "started_at"),
    ("completed", "completed_at"),
]
TEST_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("baseline", "comparison.baseline_instance_id"),
    ("candidate", "comparison.candidate_instance_id"),
    ("units", "plan.number_of_units"),
    ("unit minutes", "plan.unit_duration_minutes"),
    ("started", "started_at"),
    ("completed", "completed_at"),
]
UNIT_COLUMNS = [
    ("unit", "index"),
    ("arm", "arm"),
    ("instance", "instance_id"),
    ("from", "from"),
    ("to", "to"),
    ("", "now"),
]
ARM_METRICS = ("result.value", "run.duration", "wall_time")
ARM_COLUMNS = [
    ("arm", "arm"),
    ("instance", "target"),
    ("runs", "runs"),
    ("succeeded", "succeeded"),
    ("failed", "failed"),
    ("canceled", "canceled"),
    ("result.value", "result_value"),
    ("run.duration (s)", "run_duration"),
    ("wall time (s)", "wall_time"),
]
RUN_COLUMNS = [
    ("run", "id"),
    ("unit", "switchback.unit_index"),
    ("arm", "switchback.arm"),
    ("instance", "application_instance_id"),
    ("status", "status_v2"),
    ("created", "created_at"),
]


def tests(items: list[SwitchbackTest]) -> None:
    if not items:
        say("no switchback tests yet: orch experiment switchback create ...")
        return
    table(items, TEST_COLUMNS)


def test(t: SwitchbackTest, runs: list[SwitchbackRun], arms: list[SwitchbackArm]) -> None:
    record(t, TEST_FIELDS)
    plan(t)
    if not runs:
        say("no runs routed yet")
        return
    table(runs, RUN_COLUMNS, title="runs")
    table([arm_row(a) for a in arms], ARM_COLUMNS, title="arms (means over succeeded runs)")


def arm_row(arm: SwitchbackArm) -> dict[str, Any]:
    """An arm's counts and the means of the metrics every model reports."""
    means = {name: d.get("mean") for name, d in arm["metrics"].items()}
    return dict(arm) | {name.replace(".", "_"): means.get(name) for name in ARM_METRICS}


def plan(t: SwitchbackTest) -> None:
    """The units with their times (local) and the one running now marked."""
    units = t["plan"].get("units")
    start = t["plan"]["start"]
    if not units or not start:
        say("the plan is drawn when the test starts")
        return
    table(unit_rows(start, units, datetime.now(UTC)), UNIT_COLUMNS, title="plan")


def unit_rows(start: str, units: list[Any], now: datetime) -> list[dict[str, Any]]:
    begin = datetime.fromisoformat(start.replace("Z", "+00:00"))
    rows = []
    for unit in units:
        length = timedelta(minutes=unit["duration_minutes"])
        frm, to = begin + unit["index"] * length, begin + (unit["index"] + 1) * length
        rows.append(
            dict(unit)
            | {"from": _local(frm), "to": _local(to), "now": "◀ now" if frm <= now < to else " "}
        )
    return rows


def _local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
