"""An acceptance test's verdict: its metrics, through the criteria engine, on a batch's runs.

Pure computation over ``RunFacts``. Each metric's values are every *succeeded* run of the
control instance, and of the candidate instance, that reports the metric (all inputs and
repetitions together, as Nextmv's distributions are); the metric's statistic collapses
each side to one number and ``Criterion.evaluate(control, candidate)`` gives the verdict.
The test passes when every metric passes. A metric no succeeded run reports on a side is
named in ``error`` and fails the test: a gate that cannot look does not say yes. The
shifted geometric mean uses one shift for both sides (``stats.shift_for`` of all values).

The metric JSON is Nextmv's ``Metric`` (``field``, ``metric_type``, ``params.operator``,
``params.tolerance``, ``statistic``); results are its ``AcceptanceTestResults``, plus a
``comparison`` per metric with the two statistics, the reference and the slack.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.errors import Invalid
from orchestrator.experiments.criteria import (
    Criterion,
    Operator,
    Tolerance,
    ToleranceType,
    metric_values,
)
from orchestrator.experiments.stats import PERCENTILES, Statistic, shift_for
from orchestrator.experiments.summary import RunFacts
from orchestrator.models import AcceptanceTest, ExperimentStatus

E = TypeVar("E", Operator, Statistic)
METRIC_TYPE = "direct-comparison"
MAX_METRICS = 100


def parse_metric(data: Any) -> Criterion:
    """A Nextmv ``Metric`` JSON object as a criterion; ``Invalid`` naming what is wrong."""
    if not isinstance(data, dict):
        raise Invalid("a metric is an object with field, metric_type, params and statistic")
    field = data.get("field")
    if not isinstance(field, str) or not field.strip() or len(field) > 200:
        raise Invalid("metric field must be a dotted path such as 'result.value'")
    if data.get("metric_type", METRIC_TYPE) != METRIC_TYPE:
        raise Invalid(f"metric_type must be {METRIC_TYPE!r}, got {data.get('metric_type')!r}")
    params = data.get("params")
    if not isinstance(params, dict):
        raise Invalid(f"metric {field!r}: params (operator, tolerance) are required")
    return Criterion(
        metric=field,
        operator=_choice(Operator, params.get("operator"), f"metric {field!r}: operator"),
        tolerance=_tolerance(field, params.get("tolerance")),
        statistic=_choice(Statistic, data.get("statistic"), f"metric {field!r}: statistic"),
    )


def _choice(kind: type[E], value: Any, what: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = " ".join(m.value for m in kind)
        raise Invalid(f"{what} must be one of {allowed}, got {value!r}") from None


def _tolerance(field: str, data: Any) -> Tolerance:
    if data is None:
        return Tolerance()
    if not isinstance(data, dict):
        raise Invalid(f"metric {field!r}: tolerance is an object with type and value")
    kind, value = data.get("type") or "absolute", data.get("value", 0.0)
    if kind not in ("absolute", "relative"):
        raise Invalid(f"metric {field!r}: tolerance type must be absolute or relative")
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise Invalid(f"metric {field!r}: tolerance value must be a number >= 0, got {value!r}")
    return Tolerance(ToleranceType(kind), float(value))


def metric_dict(c: Criterion) -> dict[str, Any]:
    """The criterion as the SDK's ``Metric`` JSON (its canonical, stored form)."""
    return {
        "field": c.metric,
        "metric_type": METRIC_TYPE,
        "params": {
            "operator": c.operator.value,
            "tolerance": {"type": c.tolerance.type.value, "value": c.tolerance.value},
        },
        "statistic": c.statistic.value,
    }


OBJECTIVE_FIELD = "result.value"
"""The field a batch experiment's paired comparison ranks by (``summary.compare``)."""
_BETTER_WHEN = {Operator.GT: "max", Operator.GE: "max", Operator.LT: "min", Operator.LE: "min"}


def objective_of(criteria: list[Criterion]) -> str | None:
    """Which way ``result.value`` is better, as the test's metrics say it: the first
    ``result.value`` metric with an ordering operator (``ge``: the candidate passes when
    higher, so ``max``). None when no metric says (``eq``/``ne`` only, or other fields):
    the experiment keeps the objective it was started with. The test's experiment takes
    it, so its paired comparison's wins and losses agree with the verdict above them on
    every page, whoever started the experiment (CLI, API, SDK, console)."""
    for c in criteria:
        if c.metric == OBJECTIVE_FIELD and c.operator in _BETTER_WHEN:
            return _BETTER_WHEN[c.operator]
    return None


def parse_metrics(items: Any) -> list[Criterion]:
    if not isinstance(items, list) or not items:
        raise Invalid("an acceptance test needs at least one metric")
    if len(items) > MAX_METRICS:
        raise Invalid(f"at most {MAX_METRICS} metrics, got {len(items)}")
    return [parse_metric(m) for m in items]


@dataclass(frozen=True)
class Side:
    """One instance's runs in the experiment."""

    instance_id: str
    version_id: str
    runs: list[RunFacts]

    def values(self, path: str) -> list[float]:
        return metric_values(self.runs, path)

    def statistics(self, values: list[float], shift: float) -> dict[str, Any]:
        """Nextmv's ``ResultStatistics`` of ``values`` (non-empty)."""
        summary = {s: Statistic(s).of(values) for s in ("min", "max", "mean", "std")}
        return {
            "instance_id": self.instance_id,
            "version_id": self.version_id,
            "number_of_runs_total": len(self.runs),
            "distribution_summary_statistics": summary
            | {
                "count": len(values),
                "shifted_geometric_mean": Statistic.SHIFTED_GEOMETRIC_MEAN.of(values, shift),
                "shift_parameter": shift,
            },
            "distribution_percentiles": {p: Statistic(p).of(values) for p in PERCENTILES},
        }


def sides(test: AcceptanceTest, facts: list[RunFacts]) -> tuple[Side, Side]:
    """(control, candidate)."""

    def side(instance_id: str, version_id: str) -> Side:
        return Side(instance_id, version_id, [f for f in facts if f.target == instance_id])

    return (
        side(test.control_instance_id, test.control_version_id),
        side(test.candidate_instance_id, test.candidate_version_id),
    )


def evaluate(
    test: AcceptanceTest, status: ExperimentStatus, facts: list[RunFacts]
) -> dict[str, Any] | None:
    """``AcceptanceTestResults`` JSON once the experiment has ended; None while it runs."""
    if status == ExperimentStatus.STARTED:
        return None
    if status != ExperimentStatus.COMPLETED:
        why = "failed: no run succeeded" if status == ExperimentStatus.FAILED else "was canceled"
        return {"passed": False, "metric_results": [], "error": f"the batch experiment {why}"}
    control, candidate = sides(test, facts)
    results, errors = [], []
    for criterion in parse_metrics(test.metrics):
        result = _metric_result(criterion, control, candidate)
        if isinstance(result, str):
            errors.append(result)
        else:
            results.append(result)
    passed = not errors and all(r["passed"] for r in results)
    out: dict[str, Any] = {"passed": passed, "metric_results": results}
    if errors:
        out["error"] = "; ".join(errors)
    return out


def _metric_result(c: Criterion, control: Side, candidate: Side) -> dict[str, Any] | str:
    """The metric's result JSON, or why it could not be computed."""
    values: dict[str, list[float]] = {}
    for name, side in (("control", control), ("candidate", candidate)):
        values[name] = side.values(c.metric)
        if not values[name]:
            return (
                f"metric {c.metric!r}: no succeeded run of the {name} instance "
                f"{side.instance_id!r} reports it"
            )
    shift = shift_for(values["control"] + values["candidate"])
    stats = {
        "control": control.statistics(values["control"], shift),
        "candidate": candidate.statistics(values["candidate"], shift),
    }
    control_value = _statistic(stats["control"], c.statistic)
    candidate_value = _statistic(stats["candidate"], c.statistic)
    verdict = c.evaluate(control_value, candidate_value)
    return {
        "metric": metric_dict(c),
        "statistics": stats,
        "passed": verdict.holds,
        "comparison": {
            "statistic": c.statistic.value,
            "control": control_value,
            "candidate": candidate_value,
            "operator": c.operator.value,
            "reference": verdict.reference,
            "slack": verdict.slack,
        },
    }


def _statistic(stats: dict[str, Any], statistic: Statistic) -> float:
    if statistic.value in PERCENTILES:
        return float(stats["distribution_percentiles"][statistic.value])
    return float(stats["distribution_summary_statistics"][statistic.value])
