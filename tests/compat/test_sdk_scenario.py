"""Scenario tests through the real SDK: the SDK expands scenarios x inputs x option
variations x repetitions into runs itself; the daemon must run exactly those, keep each
run's scenario and repetition, list scenario tests apart from batch experiments, and
serve ``grouped_distributional_summaries`` with the right numbers."""

from __future__ import annotations

import math
from collections import Counter

import httpx
import pytest
import requests
from nextmv import cloud
from nextmv.cloud import (
    BatchExperimentRun,
    Scenario,
    ScenarioConfiguration,
    ScenarioInput,
    ScenarioInputType,
)
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.helpers import Daemon, unique

LE_MEAN = {
    "field": "result.value",
    "metric_type": "direct-comparison",
    "params": {"operator": "le", "tolerance": {"type": "absolute", "value": 0}},
    "statistic": "mean",
}


def one_item(value: int) -> dict[str, object]:
    """A knapsack whose optimum is known by hand: one item of ``value`` that fits."""
    return {"weight_capacity": 10, "items": [{"id": "only", "value": value, "weight": 1}]}


def keep(app: cloud.Application, value: int) -> cloud.ManagedInput:
    """A managed input made the SDK's way: upload URL, bytes, input from the upload."""
    url = app.upload_url()
    app.upload_data(data=one_item(value), upload_url=url)
    return app.new_managed_input(id=unique("mi"), name=f"v{value}", upload_id=url.upload_id)


@pytest.fixture(scope="module")
def instances(knapsack: cloud.Application) -> tuple[str, str, str]:
    """(version, fine instance, rough instance)."""
    version = knapsack.new_version(id=unique("v"))
    fine = knapsack.new_instance(version_id=version.id, id=unique("fine"))
    rough = knapsack.new_instance(
        version_id=version.id,
        id=unique("rough"),
        configuration=cloud.InstanceConfiguration(options={"scale": "2"}),
    )
    return version.id, fine.id, rough.id


def test_scenario_test_runs_every_combination(
    knapsack: cloud.Application,
    instances: tuple[str, str, str],
    fast: PollingOptions,
    daemon: Daemon,
) -> None:
    _, fine, rough = instances
    input_set = knapsack.new_input_set(
        id=unique("is"), name="Two", inputs=[keep(knapsack, 10), keep(knapsack, 20)]
    )
    scenarios = [
        Scenario(  # 2 inputs x 2 option variations
            scenario_id="set",
            instance_id=fine,
            scenario_input=ScenarioInput(
                scenario_input_type=ScenarioInputType.INPUT_SET,
                scenario_input_data=input_set.id,
            ),
            configuration=[ScenarioConfiguration(name="scale", values=["1", "3"])],
        ),
        Scenario(  # 1 input, no variation
            scenario_id="listed",
            instance_id=rough,
            scenario_input=ScenarioInput(
                scenario_input_type=ScenarioInputType.INPUT,
                scenario_input_data=[keep(knapsack, 40).id],
            ),
        ),
        Scenario(  # 1 new input x 1 variation of 2 options
            scenario_id="fresh",
            instance_id=fine,
            scenario_input=ScenarioInput(
                scenario_input_type=ScenarioInputType.NEW, scenario_input_data=[one_item(7)]
            ),
            configuration=[
                ScenarioConfiguration(name="scale", values=["1"]),
                ScenarioConfiguration(name="duration", values=["2"]),
            ],
        ),
    ]
    test_id = knapsack.new_scenario_test(
        scenarios=scenarios, id=unique("sc"), name="Three scenarios", repetitions=1
    )
    done = knapsack.scenario_test_with_polling(test_id, polling_options=fast)
    expected = (2 * 2 + 1 + 1) * 2  # (inputs x variations per scenario) x (1 + 1 repetition)
    assert done.status == "completed" and done.type == "scenario"
    assert done.number_of_requested_runs == expected
    assert done.runs is not None and len(done.runs) == expected
    assert {r.status_v2 for r in done.runs} == {StatusV2.succeeded}
    per_scenario = Counter((r.scenario_id, r.option_set, r.repetition) for r in done.runs)
    assert per_scenario == {
        **{("set", f"set_{i}", rep): 2 for i in (0, 1) for rep in (0, 1)},
        **{("listed", "listed_0", rep): 1 for rep in (0, 1)},
        **{("fresh", "fresh_0", rep): 1 for rep in (0, 1)},
    }
    assert {r.input_set_id for r in done.runs if r.scenario_id == "set"} == {input_set.id}
    assert done.option_sets == {
        "set_0": {"scale": "1"},
        "set_1": {"scale": "3"},
        "listed_0": {},
        "fresh_0": {"scale": "1", "duration": "2"},
    }

    # the variation's options reached the model (on the daemon: the run's applied options)
    varied = next(r for r in done.runs if r.option_set == "set_1")
    varied_meta = knapsack.run_information(varied.id).metadata
    assert varied_meta.experiment_type == "scenario"
    applied = varied_meta.options
    assert applied is not None and applied.active_options is not None
    assert str(applied.active_options["scale"]) == "3"
    listed = next(r for r in done.runs if r.scenario_id == "listed")
    assert knapsack.run_information(listed.id).metadata.application_instance_id == rough

    meta = knapsack.scenario_test_metadata(test_id)
    assert meta.number_of_runs == expected and meta.number_of_completed_runs == expected
    answer = httpx.get(
        f"{daemon.url}/v1/applications/{knapsack.id}/experiments/batch/{test_id}/runs",
        headers={"Authorization": f"Bearer {daemon.key}"},
    ).json()
    assert len(answer["runs"]) == expected  # counted by the daemon, not by the SDK

    stray = {"input_id": listed.input_id, "instance_id": fine, "input_set_id": input_set.id}
    refused = httpx.post(
        f"{daemon.url}/v1/applications/{knapsack.id}/experiments/batch",
        headers={"Authorization": f"Bearer {daemon.key}"},
        json={"id": unique("sc"), "name": "stray", "type": "scenario", "runs": [stray]},
    )
    assert refused.status_code == 400 and "is not in input set" in refused.json()["error"]


def test_lists_filter_by_type_and_a_test_is_updated_and_deleted(
    knapsack: cloud.Application, instances: tuple[str, str, str], fast: PollingOptions
) -> None:
    _, fine, rough = instances
    input_id = keep(knapsack, 5).id
    scenario = Scenario(
        instance_id=fine,
        scenario_input=ScenarioInput(
            scenario_input_type=ScenarioInputType.INPUT, scenario_input_data=[input_id]
        ),
    )
    test = knapsack.new_scenario_test_with_result(
        scenarios=[scenario], id=unique("sc"), polling_options=fast
    )
    assert test.status == "completed" and test.runs is not None and len(test.runs) == 1
    assert test.runs[0].scenario_id == "scenario-1" and test.runs[0].repetition == 0
    batch = knapsack.new_batch_experiment_with_result(
        id=unique("batch"),
        runs=[BatchExperimentRun(input_id=input_id, instance_id=fine)],
        polling_options=fast,
    )
    assert batch.type == "batch"

    scenario_ids = [t.id for t in knapsack.list_scenario_tests()]
    batch_ids = [b.id for b in knapsack.list_batch_experiments()]
    assert test.id in scenario_ids and batch.id not in scenario_ids
    assert batch.id in batch_ids and test.id not in batch_ids
    assert {t.type for t in knapsack.list_scenario_tests(no_pagination=True)} == {"scenario"}
    assert {b.type for b in knapsack.list_batch_experiments(no_pagination=True)} == {"batch"}

    updated = knapsack.update_scenario_test(test.id, name="Renamed", description="why")
    assert updated.name == "Renamed"
    assert knapsack.scenario_test(test.id).description == "why"

    with pytest.raises(requests.HTTPError) as refused:  # a scenario test is no batch to gate
        knapsack.new_acceptance_test(
            candidate_instance_id=rough, baseline_instance_id=fine, metrics=[LE_MEAN], id=test.id
        )
    assert refused.value.response is not None and refused.value.response.status_code == 400
    assert "is a scenario test" in refused.value.response.text

    knapsack.delete_scenario_test(test.id)
    assert test.id not in [t.id for t in knapsack.list_scenario_tests()]
    with pytest.raises(Exception, match="404"):
        knapsack.scenario_test_metadata(test.id)
    knapsack.delete_batch_experiment(batch.id)


def test_grouped_distributional_summaries_by_hand(
    knapsack: cloud.Application, instances: tuple[str, str, str], fast: PollingOptions
) -> None:
    """Values 10, 20, 40 on one instance: every statistic worked out by hand."""
    version, fine, _ = instances
    input_set = knapsack.new_input_set(
        id=unique("is"), name="Known", inputs=[keep(knapsack, v) for v in (10, 20, 40)]
    )
    runs = [BatchExperimentRun(input_id=i, instance_id=fine) for i in input_set.input_ids]
    done = knapsack.new_batch_experiment_with_result(
        id=unique("batch"), input_set_id=input_set.id, runs=runs, polling_options=fast
    )
    groups = done.grouped_distributional_summaries
    assert groups is not None
    target = next(g for g in groups if g["group_keys"] == ["instanceID", "versionID"])
    assert target["group_values"] == [fine, version]
    assert target["indicator_keys"][0] == "result.value"
    assert "result.custom.items_selected" in target["indicator_keys"]
    value = target["indicator_distributions"]["result.value"]
    assert (value["min"], value["max"], value["count"]) == (10, 40, 3)
    assert value["mean"] == pytest.approx(70 / 3)
    assert value["std"] == pytest.approx(math.sqrt(700 / 3))  # sample std
    assert value["shifted_geometric_mean"]["shift"] == 10
    assert value["shifted_geometric_mean"]["value"] == pytest.approx(30000 ** (1 / 3) - 10)
    assert value["percentiles"]["p50"] == 20 and value["percentiles"]["p90"] == pytest.approx(36)
    per_input = [g for g in groups if g["group_keys"] == ["inputID", "instanceID", "versionID"]]
    assert len(per_input) == 3
    assert all(g["indicator_distributions"]["result.value"]["count"] == 1 for g in per_input)
    raw = knapsack.client.request(
        method="GET", endpoint=f"{knapsack.experiments_endpoint}/batch/{done.id}/metadata"
    ).json()
    assert raw["grouped_distributional_summaries"] == groups
    knapsack.delete_batch_experiment(done.id)


def test_an_acceptance_tests_experiment_leaves_the_batch_list(
    knapsack: cloud.Application, instances: tuple[str, str, str], fast: PollingOptions
) -> None:
    _, fine, rough = instances
    input_id = keep(knapsack, 3).id
    batch_id = knapsack.new_batch_experiment(
        id=unique("acc"),
        runs=[BatchExperimentRun(input_id=input_id, instance_id=i) for i in (fine, rough)],
    )
    assert batch_id in [b.id for b in knapsack.list_batch_experiments()]
    knapsack.batch_experiment_with_polling(batch_id, polling_options=fast)
    knapsack.new_acceptance_test(
        candidate_instance_id=rough,
        baseline_instance_id=fine,
        metrics=[LE_MEAN],
        id=batch_id,
    )
    assert knapsack.batch_experiment(batch_id).type == "acceptance"
    assert batch_id not in [b.id for b in knapsack.list_batch_experiments()]
    assert batch_id not in [t.id for t in knapsack.list_scenario_tests()]
    assert batch_id in [t.id for t in knapsack.list_acceptance_tests()]
    knapsack.delete_acceptance_test(batch_id)
