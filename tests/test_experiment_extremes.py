"""Experiment statistics at the edges of the float range, and the words around them.

A model may report any finite float, ``1.7e308`` included. The sum of two such values
overflows although their mean does not: ``statistics.fmean`` raised ``OverflowError`` and
every read of the experiment answered 500. ``b - a`` of ``-1e308`` and ``1e308`` is
``inf``, which turned percentiles into ``Infinity`` and the shifted geometric mean into
``NaN``, neither of them JSON. Here: the statistics functions on such values (pure), then
one experiment of a real daemon whose model reports ``1.7e308``.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.cli import experiment_view as view
from orchestrator.experiments.grouped_summaries import distribution
from orchestrator.experiments.paired import (
    NO_DIFFERENCE,
    NO_RELATIVE_CHANGE,
    NOT_COMPARED,
    difference_change,
    ratio_change,
)
from orchestrator.experiments.report import render_html
from orchestrator.experiments.stats import (
    PERCENTILES,
    Statistic,
    finite,
    mean,
    median,
    quantile,
    shift_for,
    shifted_geometric_mean,
)
from orchestrator.experiments.summary import FAILED_LABEL, Distribution, summarize
from tests.acceptance_model import MANIFEST, MODEL
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, wait_for, write_app
from tests.test_experiment_summary import run

BIG = 1.7e308
TOP = sys.float_info.max


def _strict(data: Any) -> str:
    """``data`` as standard JSON; ValueError on NaN or Infinity anywhere in it."""
    return json.dumps(data, allow_nan=False)


def _no_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def _loads(body: str) -> Any:
    """Parse as a standard JSON client does: NaN and Infinity are errors."""
    return json.loads(body, parse_constant=_no_constant)


# --- the statistics functions ----------------------------------------------------------


@pytest.mark.parametrize("values", [[BIG, BIG], [TOP] * 3, [BIG, BIG, 1.0], [-BIG, -BIG]])
def test_a_mean_past_the_float_maximum_sum_is_still_the_mean(values: list[float]) -> None:
    with pytest.raises(OverflowError):
        statistics.fmean(values)  # what it was computed with
    assert min(values) <= mean(values) <= max(values)
    assert mean(values) == pytest.approx(statistics.mean(values), rel=1e-12)
    assert Statistic.MEAN.of(values) == mean(values)


@pytest.mark.parametrize("values", [[BIG], [BIG] * 2, [BIG] * 5, [-TOP] * 4, [TOP] * 2])
def test_one_value_or_all_equal_ones_are_their_own_statistics(values: list[float]) -> None:
    v = values[0]
    d = distribution(values)
    assert (d["min"], d["max"], d["mean"], d["std"]) == (v, v, v, 0.0)
    assert d["percentiles"] == {p: v for p in PERCENTILES}
    assert (median(values), quantile(values, 0.9)) == (v, v)
    assert Distribution.of(values) == Distribution(len(values), v, v, v, v, v, 0.0)
    _strict(d)


def test_percentiles_between_minus_and_plus_1e308_interpolate() -> None:
    values = [-1e308, 1e308]
    for p in PERCENTILES:  # -1e308 + 2e308 * q, written so that it does not overflow
        q = int(p[1:]) / 100
        assert quantile(values, q) == pytest.approx(1e308 * (2 * q - 1), rel=1e-12, abs=1e294)
    assert quantile(values, 0.0) == -1e308 and quantile(values, 1.0) == 1e308
    assert quantile(values, 0.5) == 0.0 and median(values) == 0.0
    assert quantile([1e308, 1e308, -1e308], 0.5) == 1e308  # no inf * 0 = nan


def test_shifted_geometric_mean_of_huge_values_is_finite() -> None:
    for values in ([-1e308, 1e308], [-BIG, BIG], [BIG, BIG], [-1e20, 3.0], [1e308, 5.0]):
        shift = shift_for(values)
        assert math.isfinite(shift) and all(v + shift > 0 for v in values)
        sgm = shifted_geometric_mean(values, shift)
        slack = 1e-12 * max(abs(v) for v in values)  # exp(log(x)) is exact to ~1e-14 only
        assert min(values) - slack <= sgm <= max(values) + slack, values
        assert Statistic.SHIFTED_GEOMETRIC_MEAN.of(values, shift) == sgm
    # the geometric mean of 10 and 2e308 (shifted), minus the shift: about -1e308
    assert shifted_geometric_mean([-1e308, 1e308], shift_for([-1e308, 1e308])) == (
        pytest.approx(-1e308, rel=1e-6)
    )
    assert shifted_geometric_mean([BIG, BIG]) == pytest.approx(BIG, rel=1e-12)


@pytest.mark.parametrize(
    "values", [[-1e308, 1e308], [-BIG, BIG], [-TOP, TOP], [BIG, BIG, -BIG], [-TOP, -TOP]]
)
def test_every_distribution_is_standard_json(values: list[float]) -> None:
    d = distribution(values)
    _strict(d)
    assert d["min"] == min(values) and d["max"] == max(values)
    assert all(min(values) <= v <= max(values) for v in d["percentiles"].values())
    for stat in Statistic:  # what the acceptance test computes: never raises
        stat.of(values, shift_for(values))


def test_a_spread_past_the_float_range_is_null() -> None:
    assert distribution([-BIG, BIG])["std"] is None  # 2.4e308
    assert Distribution.of([-BIG, BIG]).std is None
    assert distribution([-1e308, 1e308])["std"] == pytest.approx(math.sqrt(2) * 1e308)
    assert Statistic.STD.of([-BIG, BIG]) == math.inf  # for criteria; JSON goes via finite
    assert (finite(math.inf), finite(-math.inf), finite(math.nan), finite(None)) == (None,) * 4
    assert finite(BIG) == BIG and finite(0.0) == 0.0


def test_paired_changes_of_huge_values_are_null_not_infinite() -> None:
    spread = difference_change([-BIG, BIG])  # mean 0, the interval beyond the float range
    assert (spread.mean_relative_change, spread.low, spread.high) == (0.0, None, None)
    assert not spread.significant
    # a run.duration of 1e300 s against 1e-10 s: the ratio is e^713, past the float range
    huge = ratio_change([(1e-10, 1e300)] * 3)
    assert huge.pairs == 3 and huge.mean_relative_change is None and huge.significant
    tiny = ratio_change([(1e100, 1e-300), (1.0, 2.0)])  # 1e-400 underflows to 0: no log
    assert tiny.pairs == 2 and tiny.low == -1.0 and tiny.high is None
    _strict([asdict(c) for c in (huge, tiny, spread)])


def test_ordinary_values_keep_their_exact_statistics() -> None:
    """The careful formulas run only where the ordinary ones fail: bit for bit the same."""
    rng = random.Random(7)
    for n in (1, 2, 3, 10, 101):
        values = [rng.uniform(-1e6, 1e6) * rng.random() for _ in range(n)]
        ordered = sorted(values)
        assert mean(values) == statistics.fmean(values)
        assert median(values) == statistics.median(values)
        for q in (0.01, 0.25, 0.5, 0.9, 0.99):
            position = (n - 1) * q
            low = math.floor(position)
            high = min(low + 1, n - 1)
            old = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
            assert quantile(values, q) == old
        shift = 10.0 if min(values) > -10 else 10.0 - min(values)
        assert shift_for(values) == shift
        logs = math.fsum(math.log(v + shift) for v in values) / n
        assert shifted_geometric_mean(values, shift) == math.exp(logs) - shift


# --- summaries: strict JSON, with and without a baseline --------------------------------


def test_summary_of_huge_values_is_strict_json() -> None:
    facts = [
        run("a", "in-1", BIG),
        run("a", "in-2", BIG),
        run("a", "in-3", statistics={"result": {"value": float("nan")}}),  # skipped
        run("b", "in-1", -1e308),
        run("b", "in-2", 1e308),
        run("b", "in-3", float("inf")),  # skipped
    ]
    summary = summarize(facts, baseline="a", objective="max")
    _strict(summary.to_dict())
    a, b = (t.metrics["result.value"] for t in summary.targets)
    assert (a.count, a.mean, a.median, a.p90, a.std) == (2, BIG, BIG, BIG, 0.0)
    assert (b.count, b.mean, b.median) == (2, 0.0, 0.0)
    (c,) = summary.comparisons
    # (-1e308 - 1.7e308) / 1.7e308 overflows on the way; the change is not that large
    changes = [p.relative_change for p in c.per_input]
    assert changes == [pytest.approx(-1e308 / BIG - 1), pytest.approx(1e308 / BIG - 1)]
    assert (c.paired, c.wins, c.losses) == (2, 0, 2)
    assert "Infinity" not in summary.to_csv() and "nan" not in summary.to_csv()
    html = render_html(summary, facts, "huge")
    assert "inf" not in html.split("<body>")[1].lower().replace("info", "")


# --- the words: nothing compared, failed counts timed out --------------------------------


def _all_fail_summary() -> tuple[list[Any], Any]:
    facts = [run("base", f"in-{i}", float(i)) for i in range(3)] + [
        run("cand", f"in-{i}", None, status="failed", error="boom") for i in range(3)
    ]
    facts.append(run("cand", "in-9", None, status="failed", failure_kind="timeout"))
    return facts, summarize(facts, baseline="base")


def test_a_candidate_that_failed_everywhere_is_not_compared() -> None:
    facts, summary = _all_fail_summary()
    data = summary.to_dict()
    (c,) = data["comparisons"]
    assert c["paired"] == 0 and c["value_change"]["pairs"] == 0
    assert view.verdict(c["value_change"], ("better", "worse"), True, c["paired"]) == (NOT_COMPARED)
    html = render_html(summary, facts, "all fail")
    assert f'data-significant="no">{NOT_COMPARED}</td>' in html
    assert NO_DIFFERENCE not in html.split("Against baseline")[1].split("<p")[0]


def test_verdict_words_for_compared_changes() -> None:
    same = {"pairs": 4, "mean_relative_change": 0.01, "significant": False}
    assert view.verdict(same, ("better", "worse"), True, 4) == NO_DIFFERENCE
    zero_baseline = {"pairs": 0, "mean_relative_change": None, "significant": False}
    assert view.verdict(zero_baseline, ("better", "worse"), True, 3) == NO_RELATIVE_CHANGE
    past_range = {"pairs": 3, "mean_relative_change": None, "significant": True}
    assert view.verdict(past_range, ("faster", "slower"), True) == "slower"
    down = {"pairs": 3, "mean_relative_change": -0.2, "significant": True}
    assert view.verdict(down, ("faster", "slower"), True) == "faster"


def test_runs_tables_say_failed_includes_timed_out(capsys: pytest.CaptureFixture[str]) -> None:
    facts, summary = _all_fail_summary()
    data = summary.to_dict()
    assert "failed" in data["targets"][1] and "timed_out" in data["targets"][1]  # SDK names
    view.outcomes(data["targets"])
    shown = capsys.readouterr().out
    assert FAILED_LABEL in shown
    (cand,) = [line for line in shown.splitlines() if line.strip().startswith("cand")]
    # runs, succeeded, failed (incl. timed out), timed_out, canceled
    assert [c.strip() for c in cand.split("│")] == ["cand", "4", "0", "4", "1", "0"]
    html = render_html(summary, facts, "all fail")
    assert f"<th>{FAILED_LABEL}</th><th>timed out</th>" in html


# --- a real daemon ----------------------------------------------------------------------


@pytest.fixture
def huge_app(daemon: Daemon, tmp_path: Path) -> str:
    """The offset model (``result.value`` = input value + offset) with instances "control"
    and "candidate" (offset 0 both), and input set "huge": two inputs of 1.7e308."""
    folder = write_app(tmp_path / "offset", MODEL, MANIFEST)
    with daemon.client() as api:
        app_id = create_app(api, unique("huge"))
        push_dir(api, app_id, folder, tmp_path)
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for inst in ("control", "candidate"):
            body = {"id": inst, "version_id": "v1", "configuration": {"options": {"offset": "0"}}}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        runs = [run_and_wait(api, app_id, {"input": {"value": BIG}}, "control") for _ in "ab"]
        assert [r["metadata"]["statistics"]["result"]["value"] for r in runs] == [BIG, BIG]
        body = {"id": "huge", "name": "huge", "run_ids": [r["id"] for r in runs]}
        assert api.post(f"/v1/applications/{app_id}/experiments/inputsets", json=body).is_success
    return app_id


def _get(api: httpx.Client, url: str) -> Any:
    r = api.get(url)
    assert r.status_code == 200, f"{url}: {r.status_code} {r.text[:300]}"
    return _loads(r.text)


def test_a_model_reporting_1_7e308_leaves_the_experiment_readable(
    daemon: Daemon, huge_app: str
) -> None:
    base = f"/v1/applications/{huge_app}/experiments"
    with daemon.client() as api:
        body = {
            "id": "ovf",
            "name": "overflow",
            "input_set_id": "huge",
            "instance_ids": ["control", "candidate"],
            "baseline": "control",
        }
        assert api.post(f"{base}/batch", json=body).status_code == 201
        wait_for(
            lambda: api.get(f"{base}/batch/ovf/metadata").json().get("status") != "started",
            timeout=30,
            interval=0.05,
        )
        exp = _get(api, f"{base}/batch/ovf")
        assert exp["status"] == "completed"
        (target, *_) = exp["grouped_distributional_summaries"]
        value = target["indicator_distributions"]["result.value"]
        assert (value["count"], value["mean"], value["std"]) == (2, BIG, 0.0)
        assert value["percentiles"]["p50"] == BIG
        meta = _get(api, f"{base}/batch/ovf/metadata")
        assert meta["grouped_distributional_summaries"] == exp["grouped_distributional_summaries"]
        summary = _get(api, f"{base}/batch/ovf/summary")
        assert summary["targets"][0]["metrics"]["result.value"]["mean"] == BIG
        assert api.get(f"{base}/batch/ovf/report").status_code == 200

        metric = {
            "field": "result.value",
            "metric_type": "direct-comparison",
            "params": {"operator": "ge", "tolerance": {"type": "absolute", "value": 0}},
            "statistic": "mean",
        }
        test = {
            "id": "ovf",
            "control": {"instance_id": "control"},
            "candidate": {"instance_id": "candidate"},
            "metrics": [metric],
        }
        assert api.post(f"{base}/acceptance", json=test).status_code == 201
        acceptance = wait_for(
            lambda: (a := _get(api, f"{base}/acceptance/ovf")).get("results") and a,
            timeout=30,
            interval=0.05,
        )
        assert acceptance["results"]["passed"] is True, acceptance["results"]
        assert "ovf" in [t["id"] for t in _get(api, f"{base}/acceptance")]
