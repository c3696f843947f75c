"""Metrics in-process: flattening, derivation from statistics, and the experiments' fallback."""

from __future__ import annotations

from typing import Any

from orchestrator.experiments.criteria import metric_value
from orchestrator.experiments.summary import RunFacts, run_metrics
from orchestrator.models import Run
from orchestrator.runs.metrics import from_statistics, reported
from orchestrator.runs.metrics import run_metrics as metadata_metrics

STATS = {
    "run": {"duration": 1.5},
    "result": {"value": 7, "duration": 1.0, "custom": {"gap": 0.25, "status": "optimal"}},
    "schema": "v1",
}


def _run(**fields: Any) -> Run:
    return Run(id="run-x", app_id="a", instance_id="devint", executable_id="e", **fields)


def test_statistics_give_flat_scalar_metrics_of_run_and_result() -> None:
    assert from_statistics(STATS) == {
        "run.duration": 1.5,
        "result.value": 7,
        "result.duration": 1.0,
        "result.custom.gap": 0.25,
        "result.custom.status": "optimal",
    }
    assert from_statistics(None) == {} and from_statistics({"result": [1]}) == {}


def test_a_run_s_own_metrics_win_and_lists_and_nulls_are_left_out() -> None:
    own = {"solver": {"status": "optimal", "vars": 2, "trace": [1, 2], "none": None}, "ok": True}
    assert metadata_metrics(_run(metrics=own, statistics=STATS)) == {
        "solver.status": "optimal",
        "solver.vars": 2,
        "ok": True,
    }
    assert metadata_metrics(_run(statistics=STATS))["result.value"] == 7
    assert metadata_metrics(_run()) == {}


def test_reported_metrics_of_an_output_or_a_metrics_file() -> None:
    assert reported({"metrics": {"a": 1}, "solutions": []}) == {"a": 1}
    assert reported({"solutions": []}) is None and reported([1]) is None
    assert reported({"a": 1}, whole=True) == {"a": 1}
    assert reported({"metrics": {"a": 1}}, whole=True) == {"a": 1}


def _facts(statistics: dict[str, Any] | None, metrics: dict[str, Any] | None) -> RunFacts:
    return RunFacts(
        run_id="r",
        target="t",
        input_id="i",
        input_name="i",
        option_set=None,
        repetition=0,
        status="succeeded",
        error="",
        failure_kind=None,
        statistics=statistics,
        duration_ms=2000.0,
        peak_memory_mb=None,
        metrics=metrics,
    )


def test_experiment_metrics_fall_back_to_the_newer_convention() -> None:
    newer = _facts(None, {"result": {"value": 9}, "cost": {"fuel": 3.5}, "label": "x"})
    assert run_metrics(newer) == {"result.value": 9.0, "wall_time": 2.0, "custom.cost.fuel": 3.5}
    both = _facts({"result": {"value": 4}}, {"result": {"value": 9}})
    assert run_metrics(both)["result.value"] == 4.0  # statistics first, as before


def test_a_gate_reads_the_same_metrics_as_the_summary() -> None:
    newer = _facts(None, {"result": {"value": 9}, "cost": {"fuel": 3.5}})
    assert metric_value(newer, "result.value") == 9.0
    assert metric_value(newer, "custom.cost.fuel") == 3.5
    assert metric_value(newer, "result.custom.cost.fuel") == 3.5
    assert metric_value(newer, "custom.missing") is None
    both = _facts({"result": {"value": 4}}, {"result": {"value": 9}})
    assert metric_value(both, "result.value") == 4.0
