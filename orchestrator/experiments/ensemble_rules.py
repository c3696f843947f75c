"""Which child run an ensemble returns: its rules applied in index order.

Each rule reads one number from every remaining child's statistics (a path like
``$.result.value``), finds the best by its objective, and keeps the children
within its tolerance of that best (absolute: a difference; relative: a fraction
of the best, 1 = 100 %). The next rule breaks the ties the previous one left;
after the last, the earliest child left wins. A child without the number (or
that did not succeed) cannot win. Pure: the unit tests drive it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.ensemble_models import EvaluationRule

OBJECTIVES = ("minimize", "maximize")
TOLERANCES = ("absolute", "relative")


@dataclass(frozen=True)
class Candidate:
    run_id: str
    statistics: dict[str, Any] | None


@dataclass
class Verdict:
    winner: str | None
    values: dict[str, dict[str, float | None]] = field(default_factory=dict)
    """run id -> rule id -> the value read (None: missing)."""
    reason: str = ""


def read_path(statistics: dict[str, Any] | None, path: str) -> float | None:
    """The number at ``$.a.b`` in ``statistics``, or None when absent or not a number."""
    node: Any = statistics
    for part in path.removeprefix("$").strip(".").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, int | float):
        return None
    return float(node)


def within(value: float, best: float, rule: EvaluationRule) -> bool:
    gap = abs(value - best)
    if rule.tolerance_type == "relative":
        return gap <= rule.tolerance_value * abs(best)
    return gap <= rule.tolerance_value


def choose(candidates: list[Candidate], rules: list[EvaluationRule]) -> Verdict:
    """The winner among ``candidates`` (succeeded children, in planned order)."""
    ordered = sorted(rules, key=lambda r: r.index)
    verdict = Verdict(None, {c.run_id: {} for c in candidates})
    for c in candidates:
        for rule in ordered:
            verdict.values[c.run_id][rule.id] = read_path(c.statistics, rule.statistics_path)
    left = [c.run_id for c in candidates]
    if not left:
        verdict.reason = "no child run succeeded"
        return verdict
    for rule in ordered:
        scored = {r: v for r in left if (v := verdict.values[r][rule.id]) is not None}
        if not scored:
            verdict.reason = f"no succeeded child run reports {rule.statistics_path}"
            return verdict
        pick = min if rule.objective == "minimize" else max
        best = pick(scored.values())
        left = [r for r in left if r in scored and within(scored[r], best, rule)]
        if not left:  # a best value no child is within (only a NaN could do that)
            verdict.reason = f"no child run is within the tolerance of rule {rule.id!r}"
            return verdict
    verdict.winner = left[0]
    return verdict
