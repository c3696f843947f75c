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
    option_sets, runs = expand(specs, {"set": ["i1", "i2"]}, repetitions=3)
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
    ],
)
def test_bad_scenarios_are_refused(
    specs: list[ScenarioSpec], repetitions: int, message: str
) -> None:
    with pytest.raises(Invalid, match=message):
        expand(specs, {"empty": []}, repetitions)
