"""How ``orch experiment shadow`` shows tests: a record, a table, the runs in pairs.

Rendering only: the state and the runs come from the daemon.
"""

from __future__ import annotations

from orchestrator.cli.output import record, say, table
from orchestrator.client.types import ShadowRun, ShadowTest

TEST_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("comparisons", "comparisons"),
    ("starts", "start_events.time"),
    ("ends", "termination_events.time"),
    ("maximum runs", "termination_events.maximum_runs"),
    ("shadowed runs", "shadowed_runs"),
    ("created", "created_at"),
    ("started", "started_at"),
    ("completed", "completed_at"),
]
TEST_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("comparisons", "comparisons"),
    ("shadowed", "shadowed_runs"),
    ("max", "termination_events.maximum_runs"),
    ("created", "created_at"),
]
RUN_COLUMNS = [
    ("run", "id"),
    ("role", "shadow_role"),
    ("instance", "application_instance_id"),
    ("baseline run", "baseline_run_id"),
    ("status", "status_v2"),
    ("value", "result_value"),
    ("duration ms", "duration"),
    ("created", "created_at"),
]


def comparisons(test: ShadowTest) -> str:
    """``base -> cand1, cand2; ...``: who shadows whom, on one line."""
    return "; ".join(
        f"{c['baseline_instance_id']} -> {', '.join(c['candidate_instance_ids'])}"
        for c in test["comparisons"]
    )


def _flat(test: ShadowTest) -> dict[str, object]:
    return {**test, "comparisons": comparisons(test)}


def shadow_test(test: ShadowTest) -> None:
    record(_flat(test), TEST_FIELDS)
    for e in test.get("candidate_errors") or []:
        where = f"run {e['baseline_run_id']}: no candidate on {e['candidate_instance_id']}"
        say(f"{where}: {e['error']}")


def shadow_tests(tests: list[ShadowTest]) -> None:
    table([_flat(t) for t in tests], TEST_COLUMNS)


def shadow_runs(runs: list[ShadowRun]) -> None:
    """Each baseline run followed by its candidates."""
    candidates: dict[str, list[ShadowRun]] = {}
    for run in runs:
        if run["shadow_role"] == "candidate":
            candidates.setdefault(run.get("baseline_run_id", ""), []).append(run)
    ordered = [
        row
        for run in runs
        if run["shadow_role"] == "baseline"
        for row in [run, *candidates.get(run["id"], [])]
    ]
    table(ordered, RUN_COLUMNS, title="runs")
