"""Scenario expansion (pure): the same runs and option sets the SDK builds client-side."""

from __future__ import annotations

from collections import Counter

import pytest

from orchestrator.errors import Invalid
from orchestrator.experiments.scenarios import ScenarioSpec, expand


def test_runs_are_scenarios_x_inputs_x_variations_x_repetitions() -> None:
    specs = [
        ScenarioSpec(
            "prod", "a", input_set_id="set", configuration=(("x", ("1", "2")), ("y", ("3", "4")))
        ),
        ScenarioSpec("cand", input_ids=("i9",)),
    ]
    option_sets, runs = expand(specs, {"set": ["i1", "i2"]}, repetitions=3, most=1000)
    assert len(runs) == 2 * 4 * 3 + 1 * 1 * 3
    assert option_sets == {  # the SDK's order and names: x varies slowest
        "a_0": {"x": "1", "y": "3"},
        "a_1": {"x": "1", "y": "4"},
        "a_2": {"x": "2", "y": "3"},
        "a_3": {"x": "2", "y": "4"},
        "scenario-2_0": {},
    }
    assert Counter(r.scenario_id for r in runs) == {"a": 24, "scenario-2": 3}
    assert {r.repetition for r in runs} == {0, 1, 2}
    assert {(r.instance_id, r.input_set_id) for r in runs if r.scenario_id == "a"} == {
        ("prod", "set")
    }
    assert runs[-1].input_id == "i9" and runs[-1].input_set_id is None


@pytest.mark.parametrize(
    ("specs", "repetitions", "message"),
    [
        ([], 1, "at least one scenario"),
        ([ScenarioSpec("p", "s", input_ids=("i",))] * 2, 1, "more than once"),
        ([ScenarioSpec("p", input_set_id="set", input_ids=("i",))], 1, "input set or a list"),
        ([ScenarioSpec("p")], 1, "input set or a list"),
        ([ScenarioSpec("p", input_set_id="empty")], 1, "has no inputs"),
        ([ScenarioSpec("p", input_ids=("i",), configuration=(("x", ()),))], 1, "no values"),
        ([ScenarioSpec("p", input_ids=("i",))], 0, "at least 1"),
        ([ScenarioSpec("p", input_ids=("i", "i"))], 1, "lists input 'i' more than once"),
        (
            [ScenarioSpec("p", "s", input_ids=("i",), configuration=(("x", ("1", "1")),))],
            1,
            "'s': option 'x' gives value '1' more than once",
        ),
        (
            [ScenarioSpec("p", input_ids=("i",), configuration=(("x", ("1",)), ("x", ("2",))))],
            1,
            "gives option 'x' more than once",
        ),
    ],
)
def test_bad_scenarios_are_refused(
    specs: list[ScenarioSpec], repetitions: int, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        expand(specs, {"empty": []}, repetitions, most=1000)


def test_variations_and_runs_are_counted_before_they_are_made() -> None:
    """8 options of 10 values is 10^8 combinations: the cap is checked on the count (a
    300-byte request used to build them all, and 6 options grew the daemon by 280 MB)."""
    wide = tuple((f"o{n}", tuple(str(v) for v in range(10))) for n in range(8))
    with pytest.raises(Invalid, match="100000000 option variations"):
        expand([ScenarioSpec("p", input_ids=("i",), configuration=wide)], {}, 1, most=1000)
    few = ScenarioSpec("p", input_ids=("i1", "i2"), configuration=(("x", ("1", "2")),))
    with pytest.raises(Invalid, match="would make 12 runs"):
        expand([few], {}, 3, most=10)
