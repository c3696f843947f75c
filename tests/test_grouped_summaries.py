"""``grouped_distributional_summaries``: groups and statistics checked against numbers
worked out by hand (pure computation, no daemon)."""

from __future__ import annotations

import math

import pytest

from orchestrator.experiments.grouped_summaries import RunPoint, distribution, grouped_summaries
from orchestrator.models import ExperimentType


def point(instance: str, input_id: str, value: float, **extra: str) -> RunPoint:
    keys = {"instanceID": instance, "versionID": "v1", "inputID": input_id, **extra}
    return RunPoint(keys=keys, metrics={"result.value": value, "custom.items": 1.0})


def test_distribution_of_10_20_40_by_hand() -> None:
    d = distribution([40.0, 10.0, 20.0])
    assert (d["min"], d["max"], d["count"]) == (10.0, 40.0, 3)
    assert d["mean"] == pytest.approx(70 / 3)
    # sample std: deviations -13.33, -3.33, 16.67; sum of squares 466.67 over n-1 = 2
    assert d["std"] == pytest.approx(math.sqrt(700 / 3))
    # shift 10: (20 * 30 * 50) ** (1/3) - 10
    assert d["shifted_geometric_mean"] == {
        "value": pytest.approx(30000 ** (1 / 3) - 10),
        "shift": 10.0,
    }
    # linear interpolation between order statistics 10, 20, 40 (positions 0, 1, 2)
    p = d["percentiles"]
    assert p["p50"] == 20.0 and p["p25"] == 15.0 and p["p75"] == 30.0
    assert p["p90"] == pytest.approx(36.0) and p["p01"] == pytest.approx(10.2)
    assert p["p99"] == pytest.approx(39.6)
    assert set(p) == {"p01", "p05", "p10", "p25", "p50", "p75", "p90", "p95", "p99"}


def test_one_value_has_no_spread_and_low_values_raise_the_shift() -> None:
    assert distribution([5.0])["std"] == 0.0
    low = distribution([-30.0, -20.0])
    assert low["shifted_geometric_mean"]["shift"] == 40.0  # 10 - min
    assert low["shifted_geometric_mean"]["value"] == pytest.approx(math.sqrt(10 * 20) - 40)


def test_batch_groups_by_target_then_by_input_and_target() -> None:
    points = [point("a", "i1", 10), point("a", "i2", 20), point("b", "i1", 40)]
    groups = grouped_summaries(points, ExperimentType.BATCH)
    by = {(tuple(g["group_keys"]), tuple(g["group_values"])): g for g in groups}
    assert list(by) == [
        (("instanceID", "versionID"), ("a", "v1")),
        (("instanceID", "versionID"), ("b", "v1")),
        (("inputID", "instanceID", "versionID"), ("i1", "a", "v1")),
        (("inputID", "instanceID", "versionID"), ("i2", "a", "v1")),
        (("inputID", "instanceID", "versionID"), ("i1", "b", "v1")),
    ]
    a = by[(("instanceID", "versionID"), ("a", "v1"))]
    assert a["indicator_keys"] == ["result.value", "result.custom.items"]
    assert a["indicator_distributions"]["result.value"]["mean"] == 15.0
    assert a["indicator_distributions"]["result.custom.items"]["count"] == 2


def test_scenario_tests_add_scenario_and_option_set_groups() -> None:
    points = [
        point("a", "i1", 10, scenarioID="s1", optionSetID="s1_0"),
        point("a", "i1", 30, scenarioID="s1", optionSetID="s1_1"),
        point("a", "i1", 50, scenarioID="s2", optionSetID="s2_0"),
    ]
    groups = grouped_summaries(points, ExperimentType.SCENARIO)
    keys = {tuple(g["group_keys"]) for g in groups}
    assert ("scenarioID",) in keys and ("scenarioID", "optionSetID") in keys
    s1 = next(
        g for g in groups if g["group_keys"] == ["scenarioID"] and g["group_values"] == ["s1"]
    )
    assert s1["indicator_distributions"]["result.value"]["mean"] == 20.0
    assert grouped_summaries([], ExperimentType.SCENARIO) == []
