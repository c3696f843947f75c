"""Shadow tests through the real SDK: every method, and what a started test does to runs.

A run made on the baseline instance of a started test triggers one run per candidate
instance, with the same input and request options, marked with the test's ID; runs on
other instances trigger nothing; the test ends at ``maximum_runs``, at its end time or
when stopped, and triggers nothing after.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests
from nextmv import cloud
from nextmv.cloud import StartEvents, StopIntent, TerminationEvents
from nextmv.cloud.batch_experiment import ExperimentStatus
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.helpers import SAMPLES, unique, wait_for

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


@pytest.fixture(scope="module")
def instances(knapsack: cloud.Application) -> dict[str, str]:
    """base, cand1, cand2 and other (not in any test); cand2 solves with scale 4."""
    version = knapsack.new_version(id=unique("v"))
    options = {"cand2": {"scale": "4"}}
    return {
        role: knapsack.new_instance(
            version_id=version.id,
            id=unique(role),
            configuration=cloud.InstanceConfiguration(options=options.get(role, {})),
        ).id
        for role in ("base", "cand1", "cand2", "other")
    }


def _new(
    app: cloud.Application,
    instances: dict[str, str],
    maximum_runs: int = 10,
    start: datetime | None = None,
    end: datetime | None = None,
    candidates: tuple[str, ...] = ("cand1", "cand2"),
) -> cloud.ShadowTest:
    return app.new_shadow_test(
        comparisons={instances["base"]: [instances[c] for c in candidates]},
        termination_events=TerminationEvents(maximum_runs=maximum_runs, time=end),
        shadow_test_id=unique("shadow"),
        start_events=StartEvents(time=start) if start else None,
    )


def _runs(app: cloud.Application, test_id: str) -> list[dict[str, object]]:
    answer = app.client.request(
        method="GET", endpoint=f"{app.experiments_endpoint}/shadow/{test_id}/runs"
    )
    runs: list[dict[str, object]] = answer.json()["runs"]
    return runs


def _status(app: cloud.Application, test_id: str) -> ExperimentStatus | None:
    return app.shadow_test_metadata(test_id).status


def test_every_method_and_the_trigger_rule(
    knapsack: cloud.Application, instances: dict[str, str], fast: PollingOptions
) -> None:
    made = _new(knapsack, instances)
    test_id = made.shadow_test_id
    assert test_id is not None and made.status == ExperimentStatus.DRAFT
    assert made.comparisons is not None and made.comparisons[0].candidate_instance_ids == [
        instances["cand1"],
        instances["cand2"],
    ]
    knapsack.new_run(input=INPUT, instance_id=instances["base"])  # a draft shadows nothing
    knapsack.start_shadow_test(test_id)
    assert _status(knapsack, test_id) == ExperimentStatus.STARTED

    base_id = knapsack.new_run(
        input=INPUT, instance_id=instances["base"], options={"duration": "3"}
    )
    knapsack.new_run(input=INPUT, instance_id=instances["other"])  # not a baseline
    test = knapsack.shadow_test(test_id)
    assert test.runs is not None and len(test.runs) == 3
    candidates = [r for r in test.runs if r.id != base_id]
    assert {r.application_instance_id for r in candidates} == {
        instances["cand1"],
        instances["cand2"],
    }
    assert all(r.experiment_id == test_id for r in candidates)
    assert {r["baseline_run_id"] for r in _runs(knapsack, test_id) if r["id"] != base_id} == {
        base_id
    }
    scales: dict[str, object] = {}
    for run in candidates:
        result = knapsack.run_result_with_polling(run.id, polling_options=fast)
        assert result.metadata.status_v2 == StatusV2.succeeded
        assert result.metadata.experiment_type == "shadow"
        assert knapsack.run_input(run.id, output_dir_path=None) == INPUT
        options = result.metadata.options
        assert options is not None and options.request_options == {"duration": "3"}  # as sent
        scales[run.application_instance_id] = (options.active_options or {}).get("scale")
    assert scales == {instances["cand1"]: "1", instances["cand2"]: "4"}

    renamed = knapsack.update_shadow_test(test_id, name="Renamed", description="d")
    assert renamed.name == "Renamed" and renamed.description == "d"
    assert test_id in [t.shadow_test_id for t in knapsack.list_shadow_tests()]
    assert test_id in [t.shadow_test_id for t in knapsack.list_shadow_tests(no_pagination=True)]

    knapsack.stop_shadow_test(test_id, StopIntent.COMPLETE)
    assert _status(knapsack, test_id) == ExperimentStatus.COMPLETED
    knapsack.new_run(input=INPUT, instance_id=instances["base"])  # stopped: nothing more
    assert len(knapsack.shadow_test(test_id).runs or []) == 3

    knapsack.delete_shadow_test(test_id)
    with pytest.raises(requests.HTTPError) as err:
        knapsack.shadow_test(test_id)
    assert err.value.response is not None and err.value.response.status_code == 404
    with pytest.raises(requests.HTTPError):
        knapsack.run_information(candidates[0].id)  # the test's runs go with it...
    assert knapsack.run_information(base_id).id == base_id  # ...the user's run stays


def test_maximum_runs_completes_the_test(
    knapsack: cloud.Application, instances: dict[str, str]
) -> None:
    past = datetime.now(UTC) - timedelta(minutes=1)
    made = _new(knapsack, instances, maximum_runs=2, start=past, candidates=("cand1",))
    test_id = made.shadow_test_id
    assert test_id is not None and made.status == ExperimentStatus.STARTED
    for _ in range(3):
        knapsack.new_run(input=INPUT, instance_id=instances["base"])
    test = knapsack.shadow_test(test_id)
    assert test.status == ExperimentStatus.COMPLETED and test.completed_at is not None
    assert test.runs is not None and len(test.runs) == 4  # 2 baseline runs, 2 candidates
    with pytest.raises(requests.HTTPError) as err:
        knapsack.start_shadow_test(test_id)
    assert err.value.response is not None and err.value.response.status_code == 409


def test_start_and_end_times_drive_the_test(
    knapsack: cloud.Application, instances: dict[str, str]
) -> None:
    start = datetime.now(UTC) + timedelta(seconds=1)
    made = _new(knapsack, instances, start=start, end=start + timedelta(seconds=1.5))
    test_id = made.shadow_test_id
    assert test_id is not None and made.status == ExperimentStatus.DRAFT
    wait_for(lambda: _status(knapsack, test_id) == ExperimentStatus.STARTED, timeout=10)
    wait_for(lambda: _status(knapsack, test_id) == ExperimentStatus.COMPLETED, timeout=10)


def test_cancel_stops_the_candidate_runs(
    knapsack: cloud.Application, instances: dict[str, str], fast: PollingOptions
) -> None:
    made = _new(knapsack, instances, candidates=("cand1",))
    test_id = made.shadow_test_id
    assert test_id is not None
    knapsack.start_shadow_test(test_id)
    base_id = knapsack.new_run(input=INPUT, instance_id=instances["base"], options={"sleep": "30"})
    knapsack.stop_shadow_test(test_id, StopIntent.CANCEL)
    assert _status(knapsack, test_id) == ExperimentStatus.CANCELED
    (candidate,) = [r["id"] for r in _runs(knapsack, test_id) if r["id"] != base_id]
    result = knapsack.run_result_with_polling(str(candidate), polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.canceled
    knapsack.cancel_run(base_id)  # the user's run is the user's to cancel


def test_a_candidate_that_cannot_be_made_is_recorded(
    knapsack: cloud.Application, instances: dict[str, str], fast: PollingOptions
) -> None:
    """A candidate whose instance caps the timeout below the baseline run's: its run
    cannot be made, the baseline's goes on. (A candidate instance cannot be deleted while
    the test is live: that is refused, 409.)"""
    version = knapsack.new_version(id=unique("v"))
    doomed = unique("doomed")
    knapsack.client.request(
        method="POST",
        endpoint=f"{knapsack.endpoint}/instances",
        payload={
            "id": doomed,
            "version_id": version.id,
            "configuration": {"limits": {"timeout_seconds": 5}},
        },
    )
    test = knapsack.new_shadow_test(
        comparisons={instances["base"]: [doomed, instances["cand1"]]},
        termination_events=TerminationEvents(maximum_runs=5),
    )
    assert test.shadow_test_id is not None and test.name == test.shadow_test_id
    knapsack.start_shadow_test(test.shadow_test_id)
    with pytest.raises(requests.HTTPError) as refused:
        knapsack.delete_instance(doomed)
    assert refused.value.response.status_code == 409
    assert f"shadow test {test.shadow_test_id} (started)" in refused.value.response.text
    base_id = knapsack.client.request(
        method="POST",
        endpoint=f"{knapsack.endpoint}/runs",
        payload={"input": INPUT, "configuration": {"limits": {"timeout_seconds": 60}}},
        query_params={"instance_id": instances["base"]},
    ).json()["run_id"]
    result = knapsack.run_result_with_polling(base_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded  # the baseline is never failed
    answer = knapsack.client.request(
        method="GET", endpoint=f"{knapsack.experiments_endpoint}/shadow/{test.shadow_test_id}"
    ).json()
    (error,) = answer["candidate_errors"]
    assert error["candidate_instance_id"] == doomed
    assert "exceeds the instance cap" in error["error"]
    assert len(_runs(knapsack, test.shadow_test_id)) == 2  # the baseline and cand1's run


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"comparisons": {"no-such-instance": ["x"]}}, 404),
        ({"termination_events": {"maximum_runs": 0}}, 400),
        ({"termination_events": {"maximum_runs": 5, "time": "2001-01-01T00:00:00Z"}}, 400),
        ({"comparisons": {}}, 400),
        ({"start_events": {"time": "soon"}}, 400),
    ],
)
def test_bad_shadow_tests_are_refused(
    knapsack: cloud.Application,
    instances: dict[str, str],
    change: dict[str, object],
    status: int,
) -> None:
    body = {
        "id": unique("shadow"),
        "name": "bad",
        "comparisons": {instances["base"]: [instances["cand1"]]},
        "termination_events": {"maximum_runs": 5},
    } | change
    with pytest.raises(requests.HTTPError) as err:
        knapsack.client.request(
            method="POST", endpoint=f"{knapsack.experiments_endpoint}/shadow", payload=body
        )
    assert err.value.response is not None and err.value.response.status_code == status
