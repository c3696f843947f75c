"""Ensemble definitions and ensemble runs through the real SDK.

The knapsack's value depends on its ``scale`` option (1: 444, 4: 394, 16: 236 on the
sample input), so which child an ensemble returns is known in advance.
"""

from __future__ import annotations

import json

import pytest
import requests
from nextmv import RunConfiguration, RunType, RunTypeConfiguration, cloud
from nextmv.cloud import (
    EvaluationRule,
    RuleObjective,
    RuleTolerance,
    RuleToleranceType,
    RunGroup,
)
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.helpers import SAMPLES, unique, wait_for

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def _rule(objective: RuleObjective, tolerance: float = 0.0, index: int = 0) -> EvaluationRule:
    return EvaluationRule(
        id=unique("rule"),
        statistics_path="$.result.value",
        objective=objective,
        tolerance=RuleTolerance(value=tolerance, type=RuleToleranceType.ABSOLUTE),
        index=index,
    )


def _ensemble_config(definition_id: str) -> RunConfiguration:
    return RunConfiguration(
        run_type=RunTypeConfiguration(run_type=RunType.ENSEMBLE, definition_id=definition_id)
    )


@pytest.fixture(scope="module")
def scales(knapsack: cloud.Application) -> dict[int, str]:
    """One instance per scale: scale -> instance id."""
    version = knapsack.new_version(id=unique("v"))
    return {
        scale: knapsack.new_instance(
            version_id=version.id,
            id=unique(f"scale{scale}"),
            configuration=cloud.InstanceConfiguration(options={"scale": str(scale)}),
        ).id
        for scale in (1, 4, 16)
    }


def test_definition_crud(knapsack: cloud.Application, scales: dict[int, str]) -> None:
    groups = [RunGroup(id="fine", instance_id=scales[1], repetitions=2)]
    made = knapsack.new_ensemble_definition(
        run_groups=groups, rules=[_rule(RuleObjective.MAXIMIZE)], id=unique("ens"), name="Best"
    )
    assert made.application_id == knapsack.id and made.run_groups[0].repetitions == 2
    got = knapsack.ensemble_definition(made.id)
    assert got.name == "Best" and got.rules[0].statistics_path == "$.result.value"
    assert made.id in [d.id for d in knapsack.list_ensemble_definitions()]
    assert made.id in [d.id for d in knapsack.list_ensemble_definitions(no_pagination=True)]
    renamed = knapsack.update_ensemble_definition(made.id, name="Renamed")
    assert renamed.name == "Renamed" and renamed.description == "Best"
    knapsack.delete_ensemble_definition(made.id)
    with pytest.raises(requests.HTTPError) as err:
        knapsack.ensemble_definition(made.id)
    assert err.value.response is not None and err.value.response.status_code == 404


def test_the_misspelt_alias_makes_a_definition_too(
    knapsack: cloud.Application, scales: dict[int, str]
) -> None:
    groups = [RunGroup(id="fine", instance_id=scales[1])]
    with pytest.warns(DeprecationWarning):
        made = knapsack.new_ensemble_defintion(
            run_groups=groups, rules=[_rule(RuleObjective.MAXIMIZE)], id=unique("ens")
        )
    assert knapsack.ensemble_definition(made.id).run_groups[0].instance_id == scales[1]


def test_definition_refuses_unknown_instance(knapsack: cloud.Application) -> None:
    with pytest.raises(requests.HTTPError) as err:
        knapsack.new_ensemble_definition(
            run_groups=[RunGroup(id="g", instance_id="no-such-instance")],
            rules=[_rule(RuleObjective.MAXIMIZE)],
        )
    assert err.value.response is not None and err.value.response.status_code == 404


@pytest.mark.parametrize(("objective", "winner"), [("maximize", 1), ("minimize", 16)])
def test_ensemble_run_returns_the_best_child(
    knapsack: cloud.Application,
    scales: dict[int, str],
    fast: PollingOptions,
    objective: str,
    winner: int,
) -> None:
    groups = [
        RunGroup(id=f"scale{s}", instance_id=i, repetitions=2 if s == 4 else 1)
        for s, i in scales.items()
    ]
    definition = knapsack.new_ensemble_definition(
        run_groups=groups, rules=[_rule(RuleObjective(objective))], id=unique("ens")
    )
    run_id = knapsack.new_run(input=INPUT, configuration=_ensemble_config(definition.id))
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded
    assert result.metadata.run_type.run_type == RunType.ENSEMBLE
    expected = {1: 444, 4: 394, 16: 236}[winner]
    assert result.output["statistics"]["result"]["value"] == expected
    ensemble = result.ensemble
    assert ensemble is not None and ensemble["ensemble_definition_id"] == definition.id
    children = ensemble["child_runs"]
    assert len(children) == 4 and {c["status"] for c in children} == {"succeeded"}
    chosen = next(c for c in children if c["id"] == ensemble["selected_run_id"])
    assert chosen["run_group_id"] == f"scale{winner}"
    assert chosen["values"] == {definition.rules[0].id: float(expected)}
    child = knapsack.run_information(chosen["id"])
    assert child.metadata.run_type.run_type == RunType.ENSEMBLE_CHILD
    assert child.metadata.application_instance_id == scales[winner]


def test_clone_run_of_an_ensemble_run_starts_the_same_ensemble(
    knapsack: cloud.Application, scales: dict[int, str], fast: PollingOptions
) -> None:
    """The SDK clones a run from its metadata's ``run_type``: it must name the definition."""
    groups = [RunGroup(id=f"scale{s}", instance_id=i) for s, i in scales.items()]
    definition = knapsack.new_ensemble_definition(
        run_groups=groups, rules=[_rule(RuleObjective("maximize"))], id=unique("ens")
    )
    run_id = knapsack.new_run(input=INPUT, configuration=_ensemble_config(definition.id))
    knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert knapsack.run_information(run_id).metadata.run_type.definition_id == definition.id
    clone = knapsack.run_result_with_polling(knapsack.clone_run(run_id), polling_options=fast)
    assert clone.metadata.status_v2 == StatusV2.succeeded
    assert clone.ensemble is not None and clone.ensemble["ensemble_definition_id"] == definition.id


def test_tolerance_keeps_ties_for_the_next_rule(
    knapsack: cloud.Application, scales: dict[int, str], fast: PollingOptions
) -> None:
    """Within 60 of the best value, scales 1 and 4 tie; the second rule (fewest items...
    here: the smallest value) then picks scale 4."""
    groups = [RunGroup(id=f"scale{s}", instance_id=i) for s, i in scales.items()]
    rules = [
        _rule(RuleObjective.MAXIMIZE, tolerance=60, index=0),
        _rule(RuleObjective.MINIMIZE, index=1),
    ]
    definition = knapsack.new_ensemble_definition(run_groups=groups, rules=rules)
    run_id = knapsack.new_run(input=INPUT, configuration=_ensemble_config(definition.id))
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.output["statistics"]["result"]["value"] == 394


def test_cancel_ensemble_run_cancels_children(
    knapsack: cloud.Application, scales: dict[int, str], fast: PollingOptions
) -> None:
    groups = [RunGroup(id="slow", instance_id=scales[1], options={"sleep": "30"}, repetitions=2)]
    definition = knapsack.new_ensemble_definition(
        run_groups=groups, rules=[_rule(RuleObjective.MAXIMIZE)]
    )
    run_id = knapsack.new_run(input=INPUT, configuration=_ensemble_config(definition.id))
    knapsack.cancel_run(run_id)
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.canceled
    assert result.ensemble is not None and len(result.ensemble["child_runs"]) == 2
    children = [c["id"] for c in result.ensemble["child_runs"]]

    def all_canceled() -> bool:
        states = {knapsack.run_information(c).metadata.status_v2 for c in children}
        return states == {StatusV2.canceled}

    wait_for(all_canceled, timeout=30)


def test_ensemble_run_fails_when_no_child_reports_the_statistic(
    knapsack: cloud.Application, scales: dict[int, str], fast: PollingOptions
) -> None:
    rule = EvaluationRule(
        id="missing",
        statistics_path="$.result.custom.nothing",
        objective=RuleObjective.MINIMIZE,
        tolerance=RuleTolerance(value=0, type=RuleToleranceType.RELATIVE),
        index=0,
    )
    definition = knapsack.new_ensemble_definition(
        run_groups=[RunGroup(id="one", instance_id=scales[4])], rules=[rule]
    )
    run_id = knapsack.new_run(input=INPUT, configuration=_ensemble_config(definition.id))
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.failed
    assert "$.result.custom.nothing" in (result.metadata.error or "")
