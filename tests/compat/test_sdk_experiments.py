"""Input sets and batch experiments through the real SDK."""

from __future__ import annotations

import json

from nextmv import cloud
from nextmv.cloud import BatchExperimentRun
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

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
