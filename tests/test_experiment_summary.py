"""Experiment summaries, the CI gate and the HTML report: pure functions over RunFacts."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from typing import Any

import pytest

from orchestrator.errors import Invalid
from orchestrator.experiments.gate import Condition, evaluate, parse
from orchestrator.experiments.report import render_html
from orchestrator.experiments.summary import RunFacts, quantile, run_metrics, summarize

_counter = 0


def run(
    target: str,
    input_id: str = "in-1",
    value: float | None = 10.0,
    *,
    option_set: str | None = None,
    rep: int = 0,
    status: str = "succeeded",
    error: str = "",
    failure_kind: str | None = None,
    duration_ms: float | None = 1000.0,
    peak: float | None = 50.0,
    custom: dict[str, Any] | None = None,
    statistics: dict[str, Any] | None = None,
) -> RunFacts:
    """A hand-made run; ``statistics`` overrides the one built from value/custom."""
    global _counter
    _counter += 1
    if statistics is None:
        result: dict[str, Any] = {} if value is None else {"value": value}
        if custom is not None:
            result["custom"] = custom
        statistics = {"run": {"duration": 0.5}, "result": result}
    return RunFacts(
        run_id=f"run-{_counter}",
        target=target,
        input_id=input_id,
        input_name=f"name of {input_id}",
        option_set=option_set,
        repetition=rep,
        status=status,
        error=error,
        failure_kind=failure_kind,
        statistics=statistics,
        duration_ms=duration_ms,
        peak_memory_mb=peak,
    )


# --- distributions ---------------------------------------------------------------------


def test_distribution_of_known_values() -> None:
    facts = [run("a", f"in-{v}", v) for v in (1, 2, 3, 4, 10)]
    d = summarize(facts).targets[0].metrics["result.value"]
    assert (d.count, d.min, d.max, d.mean, d.median) == (5, 1, 10, 4, 3)
    assert d.p90 == pytest.approx(7.6)  # numpy: 4 + 0.6 * (10 - 4)
    assert d.std == pytest.approx(3.5355339, rel=1e-6)  # sample std (n-1)


def test_quantile_interpolates_like_numpy() -> None:
    assert quantile([1, 2, 3, 4], 0.9) == pytest.approx(3.7)
    assert quantile([5], 0.9) == 5
    assert quantile([3, 1, 2], 0.5) == 2


def test_single_value_has_zero_std() -> None:
    d = summarize([run("a", value=7)]).targets[0].metrics["result.value"]
    assert (d.count, d.std, d.p90, d.median) == (1, 0.0, 7, 7)


def test_counts_timeouts_as_failed_too() -> None:
    facts = [
        run("a"),
        run(
            "a", status="failed", error="timeout of 5s exceeded", failure_kind="timeout", value=None
        ),
        run("a", status="failed", error="exited with code 1", value=None),
        run("a", status="canceled"),
        run("a", status="queued", statistics={}),
        run("a", status="running", statistics={}),
    ]
    t = summarize(facts).targets[0]
    assert (t.runs, t.succeeded, t.failed, t.timed_out) == (6, 1, 2, 1)
    assert (t.canceled, t.unfinished) == (1, 2)
    assert t.metrics["result.value"].count == 1  # only succeeded runs feed metrics


def test_metrics_cover_timing_memory_and_flattened_custom() -> None:
    custom = {"items_selected": 8, "solver": {"nodes": 120, "ok": True}, "tag": "x", "v": [1]}
    metrics = run_metrics(run("a", value=444, duration_ms=250, peak=12.5, custom=custom))
    assert metrics == {
        "result.value": 444,
        "run.duration": 0.5,
        "wall_time": 0.25,
        "peak_memory_mb": 12.5,
        "custom.items_selected": 8,
        "custom.solver.nodes": 120,
    }


def test_missing_and_non_finite_values_are_skipped() -> None:
    facts = [
        replace(run("a", duration_ms=None, peak=None), statistics=None),
        run("a", statistics={"result": {"value": float("nan")}}, duration_ms=None, peak=None),
        run("b", statistics={"result": "garbage"}, duration_ms=2000),
    ]
    summary = summarize(facts)
    assert summary.targets[0].metrics == {}  # metrics with no values are omitted
    assert list(summary.targets[1].metrics) == ["wall_time", "peak_memory_mb"]
    json.dumps(summary.to_dict(), allow_nan=False)


def test_targets_keep_first_appearance_order_and_to_dict_is_json() -> None:
    facts = [run("zeta"), run("alpha"), run("zeta", "in-2")]
    data = summarize(facts, baseline="zeta").to_dict()
    assert [t["target"] for t in data["targets"]] == ["zeta", "alpha"]
    assert list(data) == ["objective", "baseline", "targets", "comparisons"]
    assert json.loads(json.dumps(data)) == data


def test_bad_objective_or_unknown_baseline_is_invalid() -> None:
    with pytest.raises(Invalid, match="objective"):
        summarize([run("a")], objective="best")
    with pytest.raises(Invalid, match="has no runs"):
        summarize([run("a")], baseline="ghost")


# --- baseline comparison ---------------------------------------------------------------


def test_pairs_average_repetitions_per_input_and_option_set() -> None:
    facts = [
        run("base", "in-1", 10, rep=0),
        run("base", "in-1", 14, rep=1),  # mean 12
        run("base", "in-1", 100, option_set="fast"),
        run("cand", "in-1", 9, rep=0),
        run("cand", "in-1", 9, rep=1),
        run("cand", "in-1", 9, rep=2),  # mean 9: a win under "min"
        run("cand", "in-1", 110, option_set="fast"),  # a loss
    ]
    c = summarize(facts, baseline="base").comparisons[0]
    assert (c.target, c.paired, c.unpaired) == ("cand", 2, 0)
    plain, fast = c.per_input
    assert (plain.option_set, plain.baseline, plain.candidate) == (None, 12, 9)
    assert plain.relative_change == pytest.approx(-0.25) and plain.verdict == "win"
    assert (fast.option_set, fast.verdict, fast.relative_change) == ("fast", "loss", 0.1)
    assert c.mean_relative_change == pytest.approx(-0.075)
    assert c.median_relative_change == pytest.approx(-0.075)


@pytest.mark.parametrize(
    ("objective", "wins", "losses"),
    [("min", ["in-1"], ["in-2"]), ("max", ["in-2"], ["in-1"])],
)
def test_verdicts_follow_the_objective(objective: str, wins: list[str], losses: list[str]) -> None:
    facts = [
        run("base", "in-1", 10),
        run("base", "in-2", 10),
        run("base", "in-3", 10),
        run("cand", "in-1", 8),
        run("cand", "in-2", 12),
        run("cand", "in-3", 10 * (1 + 1e-12)),  # within 1e-9 relative: a tie
    ]
    c = summarize(facts, baseline="base", objective=objective).comparisons[0]
    by_verdict = {v: [p.input_id for p in c.per_input if p.verdict == v] for v in ("win", "loss")}
    assert by_verdict == {"win": wins, "loss": losses}
    assert (c.wins, c.losses, c.ties) == (1, 1, 1)


def test_unpaired_inputs_and_zero_baselines() -> None:
    facts = [
        run("base", "in-1", 0),
        run("base", "in-2", 5),
        run("base", "in-3", 5),
        run("cand", "in-1", 1),
        run("cand", "in-2", None, status="failed", error="boom"),  # no succeeded candidate
        run("cand", "in-4", 5),  # baseline never ran it
    ]
    c = summarize(facts, baseline="base").comparisons[0]
    assert (c.paired, c.unpaired) == (1, 3)
    assert c.per_input[0].relative_change is None  # base == 0 has no relative change
    assert c.mean_relative_change is None and c.median_relative_change is None
    assert c.losses == 1


def test_timing_changes_are_paired_means() -> None:
    facts = [
        run("base", "in-1", duration_ms=1000),
        run("base", "in-2", duration_ms=2000),
        run("cand", "in-1", duration_ms=1500),
        run("cand", "in-2", duration_ms=2000),
        run("other", "in-1"),
    ]
    comparisons = summarize(facts, baseline="base").comparisons
    assert [c.target for c in comparisons] == ["cand", "other"]
    wall = comparisons[0].timing["wall_time"]  # geometric mean of 1.5 and 1
    assert (wall.pairs, wall.mean_relative_change) == (2, pytest.approx(1.5**0.5 - 1))
    assert comparisons[0].timing["run.duration"].mean_relative_change == 0


def test_no_baseline_no_comparison() -> None:
    assert summarize([run("a"), run("b")]).comparisons == []
    assert summarize([run("a"), run("b")], baseline="").comparisons == []


def test_csv_has_header_and_one_row_per_target_metric() -> None:
    facts = [run("a", value=1, custom={"k": 2}), run("a", value=3), run("b, quoted", value=5)]
    rows = list(csv.reader(io.StringIO(summarize(facts).to_csv())))
    assert rows[0] == ["target", "metric", "count", "min", "max", "mean", "median", "p90", "std"]
    assert [r[:3] for r in rows[1:]] == [
        ["a", "result.value", "2"],
        ["a", "run.duration", "2"],
        ["a", "wall_time", "2"],
        ["a", "peak_memory_mb", "2"],
        ["a", "custom.k", "1"],
        ["b, quoted", "result.value", "1"],
        ["b, quoted", "run.duration", "1"],
        ["b, quoted", "wall_time", "1"],
        ["b, quoted", "peak_memory_mb", "1"],
    ]
    assert [float(x) for x in rows[1][3:]] == [
        1,
        3,
        2,
        2,
        pytest.approx(2.8),
        pytest.approx(1.41421356),
    ]


# --- gate: parsing ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("result.value > baseline * 1.01", [Condition("result.value", ">", "*", 1.01)]),
        ("wall_time>baseline+0.5", [Condition("wall_time", ">", "+", 0.5)]),
        ("  peak_memory_mb >= baseline - 2e1 ", [Condition("peak_memory_mb", ">=", "-", 20.0)]),
        ("custom.items_selected < baseline", [Condition("custom.items_selected", "<")]),
        ("run.duration != baseline", [Condition("run.duration", "!=")]),
        (
            "result.value <= baseline or custom.a.b == baseline * .5",
            [Condition("result.value", "<="), Condition("custom.a.b", "==", "*", 0.5)],
        ),
    ],
)
def test_gate_parses_documented_forms(expr: str, expected: list[Condition]) -> None:
    assert parse(expr) == expected


@pytest.mark.parametrize(
    "expr",
    [
        "",
        "result.value > 3",
        "result.value => baseline",
        "result.value > baseline * ",
        "result.value > baseline / 2",
        "speed > baseline",
        "custom. > baseline",
        "result.value > baseline or",
        "__import__('os').system('x') > baseline",
        "result.value > baseline * 1.01 and wall_time > baseline",
    ],
)
def test_gate_rejects_malformed_expressions_showing_the_syntax(expr: str) -> None:
    with pytest.raises(Invalid, match=re.escape("METRIC OP baseline [* FACTOR")):
        parse(expr)


# --- gate: evaluation ------------------------------------------------------------------


def _experiment(candidate_values: dict[str, float]) -> list[RunFacts]:
    facts = [run("prod", i, 100, rep=r) for i in ("in-1", "in-2", "in-3") for r in (0, 1)]
    facts += [run("new", i, v) for i, v in candidate_values.items()]
    return facts


def test_gate_fails_a_regressing_candidate_and_lists_the_inputs() -> None:
    facts = _experiment({"in-1": 100, "in-2": 103, "in-3": 99})
    result = evaluate("result.value > baseline * 1.01", facts, "prod")
    assert result.failed and result.checked == 3
    (v,) = result.violations
    assert v["target"] == "new" and v["input_id"] == "in-2" and v["input_name"] == "name of in-2"
    assert (v["metric"], v["candidate"], v["baseline"]) == ("result.value", 103, 100)
    assert v["threshold"] == pytest.approx(101)
    text = result.describe()
    assert text.startswith("gate failed") and "name of in-2" in text and "in-1" not in text


def test_gate_passes_a_candidate_within_tolerance() -> None:
    facts = _experiment({"in-1": 100, "in-2": 101, "in-3": 90})
    result = evaluate("result.value > baseline * 1.01", facts, "prod")
    assert not result.failed and result.violations == []
    assert result.describe() == "gate passed: 3 pairs checked"


def test_gate_counts_a_failed_candidate_run_as_a_violation() -> None:
    facts = _experiment({"in-1": 100})
    facts.append(
        run(
            "new",
            "in-2",
            None,
            status="failed",
            error="timeout of 5s exceeded",
            failure_kind="timeout",
        )
    )
    facts.append(run("new", "in-3", None, status="canceled"))  # not a regression: not checked
    result = evaluate("result.value > baseline", facts, "prod")
    assert result.failed and result.checked == 2
    (v,) = result.violations
    assert (v["metric"], v["input_id"], v["candidate"]) == ("status", "in-2", "failed")
    assert "timeout of 5s" in result.describe()


def test_gate_or_fails_when_any_condition_holds() -> None:
    facts = _experiment({"in-1": 100, "in-2": 100, "in-3": 100})
    facts = [
        f if f.target == "prod" else run("new", f.input_id, 100, duration_ms=3000) for f in facts
    ]
    assert not evaluate("result.value > baseline", facts, "prod").failed
    result = evaluate("result.value > baseline or wall_time > baseline + 0.5", facts, "prod")
    assert result.failed and {v["metric"] for v in result.violations} == {"wall_time"}
    assert len(result.violations) == 3


def test_gate_needs_a_baseline_with_runs() -> None:
    with pytest.raises(Invalid, match="baseline 'ghost' has no runs in this experiment"):
        evaluate("result.value > baseline", _experiment({}), "ghost")


def test_a_metric_no_run_reports_is_an_error_not_a_pass() -> None:
    """A misspelled metric applied nowhere, so the gate passed with "0 pairs checked"
    and a false reason; an infinite factor (1e999) was taken as a threshold of inf."""
    facts = _experiment({"in-1": 100, "in-2": 100, "in-3": 100})
    with pytest.raises(Invalid, match=re.escape("no succeeded run reports 'custom.items_selcted'")):
        evaluate("custom.items_selcted < baseline", facts, "prod")
    with pytest.raises(Invalid, match="1e999 is not a finite number"):
        parse("result.value > baseline * 1e999")


# --- report ----------------------------------------------------------------------------


def test_report_has_tables_one_svg_per_metric_and_escapes_names() -> None:
    evil = "<script>alert(1)</script>"
    facts = [run("prod", "in-1", 10, custom={"items": 3}), run("prod", "in-2", 12)]
    facts += [run(evil, "in-1", 9), run(evil, "in-2", 15, option_set="<b>fast</b>")]
    facts.append(run("prod", "in-2", 11, option_set="<b>fast</b>"))
    summary = summarize(facts, baseline="prod")
    page = render_html(summary, facts, title="Knapsack <v2>")
    assert page.startswith("<!DOCTYPE html>") and "<title>Knapsack &lt;v2&gt;</title>" in page
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>fast</b>" not in page
    assert page.count("<svg") == len(summary.metric_names()) == 5
    assert "Against baseline prod" in page and ">win<" in page and ">loss<" in page
    assert "<table>" in page and "median" in page and "p90" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_report_without_baseline_or_metrics_still_renders() -> None:
    facts = [run("a", status="failed", error="boom", value=None, duration_ms=None, peak=None)]
    page = render_html(summarize(facts), facts, title="t")
    assert "<svg" not in page and "Against baseline" not in page and "1 failed" in page


def test_gate_description_lists_at_most_fifty_violations() -> None:
    facts = [run("prod", f"in-{i}", 1) for i in range(60)]
    facts += [run("new", f"in-{i}", 2) for i in range(60)]
    result = evaluate("result.value > baseline", facts, "prod")
    assert len(result.violations) == 60
    assert result.describe().endswith("... and 10 more")
