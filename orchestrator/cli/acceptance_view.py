"""How ``orch experiment acceptance`` shows a test: its record, then one row per metric.

Rendering only: the verdicts and statistics come from the daemon.
"""

from __future__ import annotations

from typing import Any

from orchestrator.cli.output import record, say, table
from orchestrator.client.types import AcceptanceTest
from orchestrator.experiments.criteria import Operator
from orchestrator.formatting import number

TEST_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("status", "status"),
    ("control", "control.instance_id"),
    ("candidate", "candidate.instance_id"),
    ("verdict", "verdict"),
    ("created", "created_at"),
]
TEST_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status"),
    ("control", "control.instance_id"),
    ("candidate", "candidate.instance_id"),
    ("verdict", "verdict"),
    ("created", "created_at"),
]
METRIC_COLUMNS = [
    ("metric", "field"),
    ("statistic", "statistic"),
    ("passes if candidate", "condition"),
    ("control", "control"),
    ("candidate", "candidate"),
    ("verdict", "verdict"),
]


def verdict(test: AcceptanceTest) -> str:
    """``passed``/``failed`` once the experiment has ended, else its status."""
    results = test.get("results")
    if results is None:
        return "pending" if test["status"] == "started" else "-"
    return "passed" if results["passed"] else "failed"


def condition(metric: dict[str, Any]) -> str:
    """``<= control + 5%``: what the candidate's statistic must satisfy."""
    params = metric.get("params") or {}
    tolerance = params.get("tolerance") or {}
    op = str(params.get("operator", ""))
    value = float(tolerance.get("value") or 0)
    text = f"{Operator(op).symbol if op in set(Operator) else op} control"
    if value:
        sign = "±" if op in ("eq", "ne") else ("-" if op in ("gt", "ge") else "+")
        amount = f"{value * 100:g}%" if tolerance.get("type") == "relative" else f"{value:g}"
        text += f" {sign} {amount}"
    return text


def metric_rows(test: AcceptanceTest) -> list[dict[str, Any]]:
    results: dict[str, Any] = dict(test.get("results") or {})
    found: dict[str, dict[str, Any]] = {}
    for result in results.get("metric_results") or []:
        found[_key(result["metric"])] = result
    rows = []
    for metric in test.get("metrics") or []:
        result = found.get(_key(metric))
        comparison = (result or {}).get("comparison") or {}
        rows.append(
            {
                "field": metric.get("field"),
                "statistic": metric.get("statistic"),
                "condition": condition(metric),
                "control": number(comparison.get("control")),
                "candidate": number(comparison.get("candidate")),
                "verdict": _metric_verdict(test, result),
            }
        )
    return rows


def _key(metric: dict[str, Any]) -> str:
    params = metric.get("params") or {}
    tolerance = params.get("tolerance") or {}
    return "|".join(
        str(x)
        for x in (
            metric.get("field"),
            metric.get("statistic"),
            params.get("operator"),
            tolerance.get("type"),
            float(tolerance.get("value") or 0),
        )
    )


def _metric_verdict(test: AcceptanceTest, result: dict[str, Any] | None) -> str:
    if result is not None:
        return "PASS" if result["passed"] else "FAIL"
    return "pending" if test.get("results") is None else "FAIL (no value)"


def acceptance_test(test: AcceptanceTest) -> None:
    record(test | {"verdict": verdict(test)}, TEST_FIELDS)
    table(metric_rows(test), METRIC_COLUMNS, title="Metrics")
    error = dict(test.get("results") or {}).get("error")
    if error:
        say(f"note: {error}")


def acceptance_tests(tests: list[AcceptanceTest]) -> None:
    table([t | {"verdict": verdict(t)} for t in tests], TEST_COLUMNS)
