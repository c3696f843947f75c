"""Ensemble definitions and ensemble runs as people read them: records, tables, one line.

Shared by ``orch ensemble`` and by ``orch app run`` (an ensemble run's metadata, and
the line naming its winner after ``--wait`` or ``result``).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from orchestrator.cli.flags import pairs
from orchestrator.cli.output import record, say, table
from orchestrator.client.types import (
    EnsembleChild,
    EnsembleDefinition,
    EnsembleResult,
    EvaluationRule,
    RunGroup,
)

LIST_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("run groups", "groups_line"),
    ("rules", "rules_line"),
    ("updated", "updated_at"),
]
GROUP_COLUMNS = [
    ("run group", "id"),
    ("instance", "instance_id"),
    ("options", "options_line"),
    ("repetitions", "repetitions"),
]
RULE_COLUMNS = [
    ("index", "index"),
    ("rule", "id"),
    ("statistics path", "statistics_path"),
    ("objective", "objective"),
    ("tolerance", "tolerance_line"),
]


def group_line(group: RunGroup) -> str:
    """``fine (scale1) x2``: the group, its instance when named differently, repetitions."""
    text = group["id"]
    if group["instance_id"] != group["id"]:
        text += f" ({group['instance_id']})"
    if group.get("repetitions", 1) > 1:
        text += f" x{group['repetitions']}"
    return text


def tolerance_line(rule: EvaluationRule) -> str:
    tolerance = rule["tolerance"]
    value = f"{tolerance['value']:g}"
    return f"{value} ({tolerance['type']})" if tolerance["value"] else value


def rule_line(rule: EvaluationRule) -> str:
    """``maximize $.result.value`` (``within 5 (absolute)`` when it has a tolerance)."""
    text = f"{rule['objective']} {rule['statistics_path']}"
    return text + (f" within {tolerance_line(rule)}" if rule["tolerance"]["value"] else "")


def definition_row(d: EnsembleDefinition) -> dict[str, Any]:
    by_index = sorted(d["rules"], key=lambda r: r["index"])
    return {
        **d,
        "groups_line": ", ".join(group_line(g) for g in d["run_groups"]),
        "rules_line": "; ".join(rule_line(r) for r in by_index),
    }


def show_definitions(items: list[EnsembleDefinition]) -> None:
    table([definition_row(d) for d in items], LIST_COLUMNS)


def show_definition(d: EnsembleDefinition) -> None:
    children = sum(g.get("repetitions", 1) for g in d["run_groups"])
    facts = [
        ("id", "id"),
        ("name", "name"),
        ("description", "description"),
        ("child runs", "children"),
        ("created", "created_at"),
        ("updated", "updated_at"),
    ]
    record({**d, "children": children}, facts)
    groups = [{**g, "options_line": pairs(g.get("options"))} for g in d["run_groups"]]
    table(groups, GROUP_COLUMNS, title="Run groups")
    rules = [{**r, "tolerance_line": tolerance_line(r)} for r in d["rules"]]
    table(sorted(rules, key=lambda r: r["index"]), RULE_COLUMNS, title="Rules, in index order")


def winner_line(result: EnsembleResult) -> str:
    """One line: which child the ensemble run returned, out of how many."""
    children = result["child_runs"]
    counts = Counter(c["status"] for c in children)
    tally = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    head = f"ensemble {result['ensemble_definition_id']}"
    chosen = _chosen(result)
    if chosen is None:
        verdict = "no winner yet" if result["status_v2"] == "running" else "no winner"
        return f"{head}: {verdict} among {len(children)} child runs ({tally})"
    return (
        f"{head}: winner {chosen['id']} (run group {chosen['run_group_id']}, repetition "
        f"{chosen['repetition']}) of {len(children)} child runs ({tally})"
    )


def say_winner(result: EnsembleResult) -> None:
    """The winner line on stderr, after the table on stdout (flushed first: at a terminal
    both streams share the screen, and the line must not land inside the table)."""
    sys.stdout.flush()
    say(winner_line(result))


def _chosen(result: EnsembleResult) -> EnsembleChild | None:
    return next((c for c in result["child_runs"] if c["id"] == result["selected_run_id"]), None)


def show_children(result: EnsembleResult) -> None:
    """Every child with the value each rule read from it; the winner marked."""
    rule_ids = [r["id"] for r in sorted(result["rules"], key=lambda r: r["index"])]
    columns = [
        ("run", "id"),
        ("run group", "run_group_id"),
        ("repetition", "repetition"),
        ("status", "status"),
        *[(rule_id, f"value_{n}") for n, rule_id in enumerate(rule_ids)],
        ("winner", "winner"),
    ]
    rows = [
        {
            **c,
            **{f"value_{n}": c["values"].get(r) for n, r in enumerate(rule_ids)},
            "winner": "yes" if c["id"] == result["selected_run_id"] else "",
        }
        for c in result["child_runs"]
    ]
    table(rows, columns, title="Child runs")
