"""Input sets and batch experiments through the real SDK."""

from __future__ import annotations

import json

import nextmv
import pytest
import requests
from nextmv import cloud
from nextmv.cloud import BatchExperimentRun
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.compat.conftest import NewApp
from tests.helpers import SAMPLES, unique

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def test_input_set_and_batch_experiment(knapsack: cloud.Application, fast: PollingOptions) -> None:
    version = knapsack.new_version(id=unique("v"))
    fine = knapsack.new_instance(
        version_id=version.id,
        id=unique("fine"),
        configuration=cloud.InstanceConfiguration(options={"scale": "1"}),
    )
    rough = knapsack.new_instance(
        version_id=version.id,
        id=unique("rough"),
        configuration=cloud.InstanceConfiguration(options={"scale": "4"}),
    )
    run_ids = [knapsack.new_run(input=INPUT, instance_id=fine.id) for _ in range(3)]
    for run_id in run_ids:
        knapsack.run_result_with_polling(run_id, polling_options=fast)
    managed = knapsack.new_managed_input(id=unique("mi"), name="from a run", run_id=run_ids[0])
    assert managed.id and knapsack.managed_input(managed.id).name == "from a run"

    input_set = knapsack.new_input_set(id=unique("is"), name="Past runs", run_ids=run_ids)
    assert len(input_set.input_ids) == 3 and len(input_set.inputs) == 3
    assert knapsack.input_set(input_set.id).name == "Past runs"
    assert input_set.id in [s.id for s in knapsack.list_input_sets()]

    batch_id = knapsack.new_batch_experiment(
        id=unique("batch"),
        name="Fine vs rough",
        input_set_id=input_set.id,
        runs=[
            BatchExperimentRun(input_id=input_id, instance_id=instance.id)
            for input_id in input_set.input_ids
            for instance in (fine, rough)
        ],
    )
    done = knapsack.batch_experiment_with_polling(batch_id, polling_options=fast)
    assert done.status == "completed"
    assert sorted(done.instance_ids) == sorted([fine.id, rough.id])
    assert done.runs is not None and len(done.runs) == 6
    assert {r.status_v2 for r in done.runs} == {StatusV2.succeeded}
    meta = knapsack.batch_experiment_metadata(batch_id)
    assert meta.number_of_runs == 6 and meta.number_of_completed_runs == 6
    assert batch_id in [b.id for b in knapsack.list_batch_experiments()]
    knapsack.delete_batch_experiment(batch_id)
    knapsack.delete_input_set(input_set.id)


def test_a_run_joins_a_batch_experiment_by_its_id(
    new_app: NewApp, knapsack: cloud.Application, fast: PollingOptions
) -> None:
    """``new_run(batch_experiment_id=...)`` makes the run one of the experiment's runs, as on
    Nextmv (where tracked runs join experiments this way): listed with them, counted, and
    waited for: an ended experiment takes it and ends again once it does."""
    run_ids = [knapsack.new_run(input=INPUT) for _ in range(2)]
    for run_id in run_ids:
        knapsack.run_result_with_polling(run_id, polling_options=fast)
    input_set = knapsack.new_input_set(id=unique("is"), name="joined", run_ids=run_ids)
    batch_id = knapsack.new_batch_experiment(
        id=unique("batch"),
        name="Grows",
        input_set_id=input_set.id,
        runs=[BatchExperimentRun(input_id=i, instance_id="latest") for i in input_set.input_ids],
    )
    done = knapsack.batch_experiment_with_polling(batch_id, polling_options=fast)
    assert done.status == "completed" and done.runs is not None and len(done.runs) == 2

    joined = knapsack.new_run(input=INPUT, batch_experiment_id=batch_id, options={"sleep": "1"})
    assert knapsack.batch_experiment(batch_id).status == "started"  # it waits for the run
    exp = knapsack.batch_experiment_with_polling(batch_id, polling_options=fast)
    assert exp.status == "completed" and exp.runs is not None
    assert joined in [r.id for r in exp.runs] and len(exp.runs) == 3
    assert {r.status_v2 for r in exp.runs} == {StatusV2.succeeded}
    info = knapsack.run_information(joined).metadata
    assert (info.experiment_id, info.experiment_type) == (batch_id, "batch")
    assert {r.id: r for r in knapsack.list_runs()}[joined].experiment_id == batch_id

    tracked = knapsack.new_run(  # a run that happened elsewhere joins the same way
        input=INPUT,
        external_result=nextmv.ExternalRunResult(status="succeeded", execution_duration=7),
        batch_experiment_id=batch_id,
    )
    meta = knapsack.batch_experiment_metadata(batch_id)
    assert meta.status == "completed"
    assert meta.number_of_runs == 4 and meta.number_of_completed_runs == 4
    assert meta.number_of_requested_runs == 4
    assert tracked in [r.id for r in knapsack.batch_experiment(batch_id).runs or []]

    before = len(knapsack.list_runs())
    for app, exp_id in ((knapsack, "ghost"), (new_app("elsewhere"), batch_id)):
        with pytest.raises(requests.HTTPError) as err:  # in that app, or nothing is made
            app.new_run(
                input=INPUT,
                external_result=nextmv.ExternalRunResult(status="succeeded"),
                batch_experiment_id=exp_id,
            )
        assert err.value.response.status_code == 404 and exp_id in err.value.response.text
    assert len(knapsack.list_runs()) == before
    knapsack.delete_batch_experiment(batch_id)  # its runs go with it, the joined ones too
    assert not {joined, tracked} & {r.id for r in knapsack.list_runs()}
