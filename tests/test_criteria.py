"""The criteria engine shared by the gate and acceptance tests: pure, in process."""

from __future__ import annotations

import math
from typing import Any

import pytest

from orchestrator.errors import Invalid
from orchestrator.experiments import acceptance_eval
from orchestrator.experiments.criteria import (
    Criterion,
    Operator,
    Tolerance,
    ToleranceType,
    metric_value,
)
from orchestrator.experiments.gate import Condition
from orchestrator.experiments.stats import Statistic, shift_for, shifted_geometric_mean
from orchestrator.experiments.summary import RunFacts
from orchestrator.models import AcceptanceTest, ExperimentStatus

ABS = ToleranceType.ABSOLUTE
REL = ToleranceType.RELATIVE


# --- operators and tolerances ------------------------------------------------------------
@pytest.mark.parametrize(
    ("op", "candidate", "expected"),
    [
        (Operator.GT, 10.5, True),
        (Operator.GT, 10.0, False),
        (Operator.GE, 10.0, True),
        (Operator.GE, 9.9, False),
        (Operator.LT, 9.5, True),
        (Operator.LT, 10.0, False),
        (Operator.LE, 10.0, True),
        (Operator.LE, 10.1, False),
        (Operator.EQ, 10.0, True),
        (Operator.EQ, 10.1, False),
        (Operator.NE, 10.1, True),
        (Operator.NE, 10.0, False),
    ],
)
def test_every_operator_compares_exactly_without_tolerance(
    op: Operator, candidate: float, expected: bool
) -> None:
    assert Criterion("result.value", op).holds(control=10.0, candidate=candidate) is expected


@pytest.mark.parametrize(
    ("op", "inside", "outside"),
    [  # control 10, slack 1 (absolute 1, or relative 0.1 of 10)
        (Operator.GT, 9.5, 9.0),
        (Operator.GE, 9.0, 8.9),
        (Operator.LT, 10.5, 11.0),
        (Operator.LE, 11.0, 11.1),
        (Operator.EQ, 9.0, 11.1),
        (Operator.NE, 11.1, 11.0),
    ],
)
@pytest.mark.parametrize("tolerance", [Tolerance(ABS, 1.0), Tolerance(REL, 0.1)])
def test_tolerances_give_slack_on_the_side_the_operator_looks_at(
    op: Operator, inside: float, outside: float, tolerance: Tolerance
) -> None:
    criterion = Criterion("result.value", op, tolerance)
    assert criterion.holds(10.0, inside) and not criterion.holds(10.0, outside)
    assert criterion.evaluate(10.0, inside).slack == pytest.approx(1.0)


def test_relative_tolerance_scales_with_the_magnitude_of_a_negative_control() -> None:
    criterion = Criterion("result.value", Operator.LE, Tolerance(REL, 0.5))
    assert criterion.evaluate(-10.0, -5.0).slack == 5.0
    assert criterion.holds(-10.0, -5.0) and not criterion.holds(-10.0, -4.9)


def test_nan_never_holds() -> None:
    for op in Operator:
        assert not Criterion("m", op).holds(math.nan, 1.0)
        assert not Criterion("m", op).holds(1.0, math.nan)


def test_gate_conditions_are_criteria_with_the_same_thresholds() -> None:
    assert Condition("m", ">", "*", 1.01).threshold(200.0) == 200.0 * 1.01
    assert Condition("m", ">=", "+", 0.5).threshold(0.1) == 0.1 + 0.5
    assert Condition("m", "<", "-", 2.0).threshold(7.3) == 7.3 - 2.0
    assert Condition("m", "!=").criterion == Criterion("m", Operator.NE)
    assert Condition("m", ">", "*", 2.0).violated(candidate=20.1, baseline=10.0)
    assert not Condition("m", ">", "*", 2.0).violated(candidate=20.0, baseline=10.0)
    assert Operator.from_symbol("<=") is Operator.LE and Operator.GE.symbol == ">="


# --- statistics --------------------------------------------------------------------------
VALUES = [4.0, 1.0, 8.0, 2.0]  # sorted: 1 2 4 8


@pytest.mark.parametrize(
    ("stat", "expected"),
    [
        (Statistic.MIN, 1.0),
        (Statistic.MAX, 8.0),
        (Statistic.MEAN, 3.75),
        (Statistic.STD, math.sqrt(28.75 / 3)),
        (Statistic.SHIFTED_GEOMETRIC_MEAN, (11 * 12 * 14 * 18) ** 0.25 - 10),
        (Statistic.P01, 1.0 + 0.03 * 1),  # position 0.03
        (Statistic.P05, 1.0 + 0.15 * 1),
        (Statistic.P10, 1.0 + 0.30 * 1),
        (Statistic.P25, 1.0 + 0.75 * 1),
        (Statistic.P50, 3.0),
        (Statistic.P75, 4.0 + 0.25 * 4),  # position 2.25
        (Statistic.P90, 4.0 + 0.70 * 4),
        (Statistic.P95, 4.0 + 0.85 * 4),
        (Statistic.P99, 4.0 + 0.97 * 4),
    ],
)
def test_every_statistic_against_a_hand_computation(stat: Statistic, expected: float) -> None:
    assert stat.of(VALUES) == pytest.approx(expected)


def test_statistics_of_one_value_and_of_none() -> None:
    assert all(s.of([5.0]) == pytest.approx(5.0) for s in Statistic if s != Statistic.STD)
    assert Statistic.STD.of([5.0]) == 0.0
    with pytest.raises(ValueError):
        Statistic.MEAN.of([])


def test_shifted_geometric_mean_and_its_shift() -> None:
    assert math.isnan(shifted_geometric_mean([-10.0, 5.0]))
    assert shifted_geometric_mean([0.0, 0.0]) == pytest.approx(0.0)
    assert shifted_geometric_mean([2.0, 26.0], shift=1.0) == pytest.approx(8.0)  # sqrt(3*27)-1
    assert shift_for([1.0, -3.0]) == 10.0 and shift_for([-25.0, 4.0]) == 35.0
    assert Statistic.SHIFTED_GEOMETRIC_MEAN.of([-25.0, 4.0], 35.0) == pytest.approx(
        math.sqrt(10 * 39) - 35
    )


# --- metric paths ------------------------------------------------------------------------
def facts(target: str, value: Any, status: str = "succeeded", **more: Any) -> RunFacts:
    stats = {"result": {"value": value, "custom": {"gap": 1, "flag": True}}, "run": {"duration": 2}}
    return RunFacts(
        run_id="r",
        target=target,
        input_id="i",
        input_name="i",
        option_set=None,
        repetition=0,
        status=status,
        error="",
        failure_kind=None,
        statistics=stats,
        duration_ms=more.get("duration_ms", 1500.0),
        peak_memory_mb=more.get("peak_memory_mb", 12.0),
    )


def test_metric_paths_read_statistics_and_measurements() -> None:
    f = facts("a", 7)
    assert metric_value(f, "result.value") == 7.0
    assert metric_value(f, "statistics.result.value") == 7.0
    assert metric_value(f, "run.duration") == 2.0
    assert metric_value(f, "result.custom.gap") == metric_value(f, "custom.gap") == 1.0
    assert metric_value(f, "wall_time") == 1.5 and metric_value(f, "peak_memory_mb") == 12.0
    for missing in ("result.custom.flag", "result.nothing", "result", "result.value.deeper"):
        assert metric_value(f, missing) is None
    assert metric_value(facts("a", float("inf")), "result.value") is None


# --- acceptance metrics and verdicts -----------------------------------------------------
def metric(
    op: str = "lt", stat: str = "mean", tol: Any = None, field: str = "result.value"
) -> dict[str, Any]:
    params: dict[str, Any] = {"operator": op}
    if tol is not None:
        params["tolerance"] = tol
    return {"field": field, "metric_type": "direct-comparison", "params": params, "statistic": stat}


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        (metric(op="gte"), "operator must be one of eq gt ge lt le ne"),
        (metric(stat="median"), "statistic must be one of min max mean std"),
        (metric(tol={"type": "percent", "value": 1}), "tolerance type"),
        (metric(tol={"type": "absolute", "value": -1}), "value must be a number >= 0"),
        (metric(field=""), "dotted path"),
        ({**metric(), "metric_type": "other"}, "metric_type"),
        ({"field": "result.value", "statistic": "mean"}, "params"),
    ],
)
def test_bad_metrics_are_refused_precisely(bad: dict[str, Any], says: str) -> None:
    with pytest.raises(Invalid, match=says):
        acceptance_eval.parse_metrics([bad])
    with pytest.raises(Invalid, match="at least one metric"):
        acceptance_eval.parse_metrics([])


def test_metrics_are_stored_in_the_sdk_form() -> None:
    parsed = acceptance_eval.parse_metric(metric(tol={"type": "", "value": 0.5}))
    assert parsed.tolerance == Tolerance(ABS, 0.5)
    assert acceptance_eval.metric_dict(parsed) == metric(tol={"type": "absolute", "value": 0.5})


def accept(*metrics: dict[str, Any]) -> AcceptanceTest:
    return AcceptanceTest("t", "app", "t", "ctl", "v1", "cand", "v2", list(metrics))


RUNS = [facts("ctl", v) for v in (1, 2, 4, 8)] + [facts("cand", v) for v in (3, 4, 6, 10)]


def test_acceptance_verdicts_per_metric_and_overall() -> None:
    test = accept(metric("gt"), metric("le", "max", {"type": "absolute", "value": 1}))
    out = acceptance_eval.evaluate(test, ExperimentStatus.COMPLETED, RUNS)
    assert out is not None and out["passed"] is False and "error" not in out
    first, second = out["metric_results"]
    assert first["passed"] is True and second["passed"] is False
    assert first["comparison"] | {} == {
        "statistic": "mean",
        "control": 3.75,
        "candidate": 5.75,
        "operator": "gt",
        "reference": 3.75,
        "slack": 0.0,
    }
    assert second["comparison"]["reference"] == 8.0 and second["comparison"]["slack"] == 1.0
    control = first["statistics"]["control"]
    assert control["instance_id"] == "ctl" and control["version_id"] == "v1"
    assert control["distribution_summary_statistics"]["shift_parameter"] == 10.0


def test_acceptance_ignores_failed_runs_but_counts_them() -> None:
    runs = [*RUNS, facts("cand", 1000, status="failed")]
    out = acceptance_eval.evaluate(accept(metric("gt")), ExperimentStatus.COMPLETED, runs)
    assert out is not None and out["passed"] is True
    cand = out["metric_results"][0]["statistics"]["candidate"]
    assert cand["number_of_runs_total"] == 5
    assert cand["distribution_summary_statistics"]["count"] == 4


def test_acceptance_without_values_or_while_running_or_after_a_failed_batch() -> None:
    out = acceptance_eval.evaluate(
        accept(metric("gt"), metric(field="result.nope")), ExperimentStatus.COMPLETED, RUNS
    )
    assert out is not None and out["passed"] is False and len(out["metric_results"]) == 1
    assert "'result.nope': no succeeded run of the control instance 'ctl'" in out["error"]
    assert acceptance_eval.evaluate(accept(metric()), ExperimentStatus.STARTED, RUNS) is None
    failed = acceptance_eval.evaluate(accept(metric()), ExperimentStatus.FAILED, RUNS)
    assert failed == {
        "passed": False,
        "metric_results": [],
        "error": "the batch experiment failed: no run succeeded",
    }


def test_acceptance_uses_one_shift_for_both_sides_of_negative_values() -> None:
    runs = [facts("ctl", -20), facts("ctl", 0), facts("cand", -5), facts("cand", 5)]
    sgm = metric("ge", "shifted_geometric_mean")
    out = acceptance_eval.evaluate(accept(sgm), ExperimentStatus.COMPLETED, runs)
    assert out is not None and out["passed"] is True
    stats = out["metric_results"][0]["statistics"]
    for side, (a, b) in (("control", (-20, 0)), ("candidate", (-5, 5))):
        summary = stats[side]["distribution_summary_statistics"]
        assert summary["shift_parameter"] == 30.0
        assert summary["shifted_geometric_mean"] == pytest.approx(
            math.sqrt((a + 30) * (b + 30)) - 30
        )
