"""The rest of what works through the real SDK (the README's table of SDK methods lists
them): cloning runs, the upload helpers, managed inputs and input sets changed and
removed, batch experiments fetched, renamed and waited for, and the Client's own calls."""

from __future__ import annotations

import json

from nextmv import cloud
from nextmv.cloud import BatchExperimentRun
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.helpers import SAMPLES, unique

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def test_a_run_is_cloned_with_its_input(knapsack: cloud.Application, fast: PollingOptions) -> None:
    first = knapsack.new_run_with_result(input=INPUT, polling_options=fast)
    clone_id = knapsack.clone_run(first.id, name="again")
    assert clone_id != first.id
    assert knapsack.run_input(clone_id) == INPUT
    cloned = knapsack.clone_run_with_result(
        first.id, run_options={"scale": "2"}, polling_options=fast
    )
    assert cloned.metadata.status_v2 == StatusV2.succeeded, cloned.metadata.error
    active = cloned.metadata.options.active_options
    assert active is not None and str(active["scale"]) == "2"


def test_upload_helpers_feed_managed_inputs(
    knapsack: cloud.Application, client: cloud.Client
) -> None:
    upload = knapsack.upload_url()
    knapsack.upload_data(upload_url=upload, data=INPUT)
    from_upload = knapsack.new_managed_input(id=unique("mi"), upload_id=upload.upload_id)
    assert knapsack.managed_input(from_upload.id).id == from_upload.id

    third = knapsack.upload_url()
    client.upload_to_presigned_url(data=INPUT, url=third.upload_url)
    assert cloud.get_size(INPUT) == len(json.dumps(INPUT, separators=(",", ":")))
    run_id = knapsack.new_run(upload_id=third.upload_id)
    assert knapsack.run_input(run_id) == INPUT


def test_managed_inputs_are_listed_renamed_and_deleted(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    run = knapsack.new_run_with_result(input=INPUT, polling_options=fast)
    managed = knapsack.new_managed_input(id=unique("mi"), name="first", run_id=run.id)
    assert managed.id in [m.id for m in knapsack.list_managed_inputs()]
    renamed = knapsack.update_managed_input(managed.id, name="second", description="d")
    assert (renamed.name, renamed.description) == ("second", "d")
    knapsack.delete_managed_input(managed.id)
    assert managed.id not in [m.id for m in knapsack.list_managed_inputs()]


def test_input_sets_and_batches_are_updated_and_waited_for(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    run = knapsack.new_run_with_result(input=INPUT, polling_options=fast)
    input_set = knapsack.new_input_set(id=unique("is"), name="one", run_ids=[run.id])
    assert knapsack.update_input_set(input_set.id, name="renamed").name == "renamed"
    assert knapsack.input_set(input_set.id).name == "renamed"
    runs = [BatchExperimentRun(input_id=input_set.input_ids[0], instance_id="latest")]
    done = knapsack.new_batch_experiment_with_result(
        id=unique("b"), name="waited", input_set_id=input_set.id, runs=runs, polling_options=fast
    )
    assert done.status == "completed" and done.runs is not None and len(done.runs) == 1
    assert knapsack.batch_experiment(done.id).name == "waited"
    updated = knapsack.update_batch_experiment(done.id, name="renamed", description="d")
    assert (updated.name, updated.description) == ("renamed", "d")


def test_the_clients_own_calls(knapsack: cloud.Application, client: cloud.Client) -> None:
    one = client.request(method="GET", endpoint=f"v1/applications/{knapsack.id}")
    assert one.json()["id"] == knapsack.id
    every = client.request_with_pagination(method="GET", endpoint="v1/applications")
    assert knapsack.id in [app["id"] for app in every]
    walked = client.iter_with_pagination(method="GET", endpoint="v1/applications")
    assert knapsack.id in [app["id"] for app in walked]
    assert knapsack.id in [app.id for app in cloud.list_applications(client)]
