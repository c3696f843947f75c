"""Fields the SDK sends that orch once dropped: each set through the SDK reads back through it.

``default_experiment_instance`` (``Application.new``/``update``), an instance's
``configuration.queuing`` (kept, echoed, and applied to its runs) and a run's
``metadata.tracking`` (``clone_run``'s ``cloned_run_id``; ``input_id`` for a run made from a
managed input, which the SDK's clone reuses instead of uploading the input again).
"""

from __future__ import annotations

import json
from typing import Any

import nextmv
import pytest
import requests
from nextmv import cloud
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.compat.conftest import NewApp, Push
from tests.compat.test_sdk_runs import Spy
from tests.helpers import SAMPLES, Daemon, unique

KNAPSACK_INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


@pytest.fixture
def pushed(new_app: NewApp, push: Push) -> cloud.Application:
    """A knapsack app of its own with a version: tests here change its defaults."""
    app = new_app("fields")
    push(app, SAMPLES / "knapsack")
    app.new_version(id="v1")
    return app


def _status(err: pytest.ExceptionInfo[requests.HTTPError]) -> int:
    return err.value.response.status_code


# --------------------------------------------------------------- default_experiment_instance


def test_default_experiment_instance_round_trips(
    client: cloud.Client, pushed: cloud.Application
) -> None:
    inst = pushed.new_instance(version_id="v1", id="exp")
    updated = pushed.update(default_experiment_instance=inst.id)
    assert updated.default_experiment_instance == inst.id
    got = cloud.Application.get(client=client, id=pushed.id)
    assert got.default_experiment_instance == inst.id
    listed = {a.id: a for a in cloud.list_applications(client)}
    assert listed[pushed.id].default_experiment_instance == inst.id
    # the SDK updates by GET + PUT of the whole app: another change keeps it
    assert pushed.update(name="renamed").default_experiment_instance == inst.id
    with pytest.raises(requests.HTTPError) as err:  # an unknown instance: 404, nothing changes
        pushed.update(default_experiment_instance="ghost")
    assert _status(err) == 404
    assert cloud.Application.get(client, pushed.id).default_experiment_instance == inst.id
    cleared = pushed.update(default_experiment_instance="")
    assert cleared.default_experiment_instance is None
    assert cloud.Application.get(client, pushed.id).default_experiment_instance is None


def test_a_new_app_takes_only_an_existing_default_experiment_instance(
    client: cloud.Client,
) -> None:
    app_id = unique("fields")
    with pytest.raises(requests.HTTPError) as err:
        cloud.Application.new(client=client, id=app_id, default_experiment_instance="ghost")
    assert _status(err) == 404 and "ghost" in err.value.response.text
    assert not cloud.Application.exists(client, app_id)  # refused whole: no app left behind
    made = cloud.Application.new(client=client, id=app_id, default_experiment_instance="latest")
    assert made.default_experiment_instance == "latest"  # the reserved instance exists
    assert cloud.Application.get(client, app_id).default_experiment_instance == "latest"


def test_a_new_app_with_an_unknown_default_instance_leaves_no_app(
    client: cloud.Client,
) -> None:
    app_id = unique("fields")
    with pytest.raises(requests.HTTPError) as err:
        cloud.Application.new(client=client, id=app_id, default_instance_id="ghost")
    assert _status(err) == 404 and "ghost" in err.value.response.text
    assert not cloud.Application.exists(client, app_id)  # it could not be made again before
    made = cloud.Application.new(client=client, id=app_id, default_instance_id="devint")
    assert made.default_instance_id is None  # devint as the default means none


def test_deleting_the_default_experiment_instance_clears_it_as_the_default_instance(
    client: cloud.Client, pushed: cloud.Application
) -> None:
    inst = pushed.new_instance(version_id="v1", id="exp")
    pushed.update(default_experiment_instance=inst.id)
    with pytest.raises(requests.HTTPError) as err:  # as for the default instance: --force
        pushed.delete_instance(inst.id)
    assert _status(err) == 409 and "default experiment instance" in err.value.response.text
    client.request(
        method="DELETE",
        endpoint=f"v1/applications/{pushed.id}/instances/{inst.id}",
        query_params={"force": "true"},
    )
    assert not pushed.instance_exists(inst.id)
    assert cloud.Application.get(client, pushed.id).default_experiment_instance is None
    moves = client.request(method="GET", endpoint=f"v1/applications/{pushed.id}/history").json()
    pointers = [(m["pointer"], m["from"], m["to"]) for m in moves["items"]]
    assert ("default_experiment_instance", inst.id, None) in pointers


# --------------------------------------------------------------------- instance queuing


def _queuing(app: cloud.Application, run_id: str, fast: PollingOptions) -> tuple[Any, Any]:
    """The queuing a finished run was given: (priority, disabled)."""
    meta = app.run_result_with_polling(run_id, polling_options=fast).metadata
    assert meta.status_v2 == StatusV2.succeeded, meta.error
    return meta.queuing_priority, meta.queuing_disabled


def test_instance_queuing_round_trips(pushed: cloud.Application) -> None:
    queuing = nextmv.RunQueuing(priority=3, disabled=True)
    config = cloud.InstanceConfiguration(options={"scale": "2"}, queuing=queuing)
    made = pushed.new_instance(version_id="v1", id="q", configuration=config)
    assert made.configuration is not None and made.configuration.queuing == queuing
    got = pushed.instance("q").configuration
    assert got is not None and got.queuing == queuing
    listed = {i.id: i for i in pushed.list_instances()}["q"].configuration
    assert listed is not None and listed.queuing == queuing
    # the SDK's update PUTs the whole instance back: another change keeps it ...
    renamed = pushed.update_instance("q", name="renamed").configuration
    assert renamed is not None and renamed.queuing == queuing
    # ... and a configuration with queuing replaces it
    new = cloud.InstanceConfiguration(queuing=nextmv.RunQueuing(priority=8))
    changed = pushed.update_instance("q", configuration=new).configuration
    assert changed is not None and changed.queuing == nextmv.RunQueuing(priority=8)
    got = pushed.instance("q").configuration
    assert got is not None and got.queuing == nextmv.RunQueuing(priority=8)
    with pytest.raises(requests.HTTPError) as err:  # the SDK's model refuses it; the API too
        pushed.update_instance("q", configuration={"queuing": {"priority": 12}})
    assert _status(err) == 400 and "priority" in err.value.response.text


def test_an_instances_queuing_applies_to_its_runs(
    client: cloud.Client, pushed: cloud.Application, fast: PollingOptions
) -> None:
    queuing = nextmv.RunQueuing(priority=3, disabled=True)
    config = cloud.InstanceConfiguration(queuing=queuing)
    pushed.new_instance(version_id="v1", id="q", configuration=config)
    pushed.new_instance(version_id="v1", id="plain")

    def run(app: cloud.Application = pushed, **kwargs: Any) -> tuple[Any, Any]:
        return _queuing(app, app.new_run(input=KNAPSACK_INPUT, **kwargs), fast)

    assert run(instance_id="q") == (3, True)  # the run sets none: the instance's
    own = nextmv.RunConfiguration(queuing=nextmv.RunQueuing(priority=2))
    assert run(instance_id="q", configuration=own) == (2, True)  # field by field
    off = nextmv.RunConfiguration(queuing=nextmv.RunQueuing(disabled=False))
    assert run(instance_id="q", configuration=off) == (3, False)
    assert run(instance_id="plain") == (6, False)  # an instance without: the defaults
    assert run(instance_id="latest") == (6, False)
    # a run on the app's default instance (the server resolves it) takes its queuing too
    pushed.update(default_instance_id="q")
    assert run(cloud.Application(client=client, id=pushed.id)) == (3, True)


# --------------------------------------------------------------------------- tracking


def test_clone_run_records_the_run_it_cloned(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    first = knapsack.new_run_with_result(input=KNAPSACK_INPUT, polling_options=fast)
    assert first.metadata.tracking is None  # neither cloned nor from a managed input
    clone = knapsack.run_result_with_polling(knapsack.clone_run(first.id), polling_options=fast)
    assert clone.metadata.status_v2 == StatusV2.succeeded, clone.metadata.error
    assert clone.metadata.tracking == nextmv.RunTrackingMetadata(cloned_run_id=first.id)
    info = knapsack.run_information(clone.id).metadata.tracking  # GET .../metadata
    assert info == nextmv.RunTrackingMetadata(cloned_run_id=first.id)


def test_a_clone_must_name_a_run_of_its_app(knapsack: cloud.Application) -> None:
    for ghost in ("run-0000000000000000", "not-a-run"):
        with pytest.raises(requests.HTTPError) as err:
            knapsack.client.request(
                method="POST",
                endpoint=f"{knapsack.endpoint}/runs",
                payload={"input": KNAPSACK_INPUT, "tracking": {"cloned_run_id": ghost}},
            )
        assert _status(err) == 404 and ghost in err.value.response.text


def test_clone_of_a_managed_input_run_reuses_the_managed_input(
    daemon: Daemon, knapsack: cloud.Application, fast: PollingOptions
) -> None:
    upload = knapsack.upload_url()
    knapsack.upload_data(upload_url=upload, data=KNAPSACK_INPUT)
    managed = knapsack.new_managed_input(id=unique("mi"), upload_id=upload.upload_id)
    run_id = knapsack.new_run(managed_input_id=managed.id)
    first = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert first.metadata.tracking == nextmv.RunTrackingMetadata(input_id=managed.id)

    spy = Spy(daemon)
    app = spy.app(knapsack)
    clone = app.run_result_with_polling(app.clone_run(run_id), polling_options=fast)
    assert clone.metadata.status_v2 == StatusV2.succeeded, clone.metadata.error
    assert clone.output is not None and first.output is not None
    assert clone.output["solutions"] == first.output["solutions"]
    assert clone.metadata.tracking == nextmv.RunTrackingMetadata(
        cloned_run_id=run_id, input_id=managed.id
    )
    (post,) = spy.run_posts()
    assert post["payload"]["input_id"] == managed.id and "input" not in post["payload"]
    assert post["payload"]["tracking"] == {"cloned_run_id": run_id}
    assert spy.uploads == []  # the input was not uploaded again
    assert not [r for r in spy.requests if r["endpoint"].endswith("/uploadurl")]
    listed = {r.id: r for r in knapsack.list_runs()}
    assert listed[clone.id].input_id == managed.id
