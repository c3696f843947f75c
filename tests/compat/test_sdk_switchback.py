"""Switchback tests through the real SDK, against a live daemon.

Units are a minute at least (the SDK's floor), so a test checks the plan's assignment
for the moment each run was made: the unit is read from the clock before and after the
call, and a run made across a unit boundary is only checked to be on one of the arms.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from nextmv import cloud
from nextmv.cloud import StopIntent, SwitchbackTest, TestComparisonSingle
from nextmv.cloud.batch_experiment import ExperimentStatus
from nextmv.status import StatusV2

from tests.helpers import SAMPLES, unique, wait_for

INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


@pytest.fixture(scope="module")
def arms(knapsack: cloud.Application) -> tuple[str, str]:
    """(baseline, candidate) instances of one version, told apart by their scale option."""
    version = knapsack.new_version(id=unique("v"))
    return tuple(
        knapsack.new_instance(
            version_id=version.id,
            id=unique(name),
            configuration=cloud.InstanceConfiguration(options={"scale": scale}),
        ).id
        for name, scale in (("base", "1"), ("cand", "4"))
    )


def _new(app: cloud.Application, arms: tuple[str, str], **kw: Any) -> SwitchbackTest:
    comparison = TestComparisonSingle(baseline_instance_id=arms[0], candidate_instance_id=arms[1])
    return app.new_switchback_test(
        comparison=comparison, switchback_test_id=unique("sb"), **{"units": 3} | kw
    )


def _raw_runs(app: cloud.Application, test_id: str) -> list[dict[str, Any]]:
    path = f"{app.experiments_endpoint}/switchback/{test_id}/runs"
    runs: list[dict[str, Any]] = app.client.request(method="GET", endpoint=path).json()["runs"]
    return runs


def _unit(test: SwitchbackTest, at: datetime) -> int:
    assert test.plan is not None and test.plan.start is not None
    return int((at - test.plan.start).total_seconds() // 60)


def _status(app: cloud.Application, run_id: str) -> StatusV2:
    return app.run_information(run_id).metadata.status_v2


def _finished(app: cloud.Application, run_id: str) -> bool:
    return _status(app, run_id) in (StatusV2.succeeded, StatusV2.failed, StatusV2.canceled)


def test_runs_on_the_baseline_follow_the_plan(
    knapsack: cloud.Application, arms: tuple[str, str]
) -> None:
    made = _new(knapsack, arms, unit_duration_minutes=1, name="Replay")
    test_id = made.switchback_test_id
    assert test_id is not None and made.status == ExperimentStatus.DRAFT
    assert made.plan is not None and made.plan.units is None  # drawn at the start
    assert knapsack.switchback_test_metadata(test_id).status == ExperimentStatus.DRAFT
    assert test_id in [t.switchback_test_id for t in knapsack.list_switchback_tests()]
    listed = knapsack.list_switchback_tests(no_pagination=True)
    assert test_id in [t.switchback_test_id for t in listed]
    renamed = knapsack.update_switchback_test(test_id, name="Renamed", description="why")
    assert (renamed.name, renamed.description) == ("Renamed", "why")

    knapsack.start_switchback_test(test_id)
    test = knapsack.switchback_test(test_id)
    assert test.status == ExperimentStatus.STARTED and test.started_at is not None
    assert test.plan is not None and test.plan.units is not None and len(test.plan.units) == 3
    assert {u.instance_id for u in test.plan.units} <= set(arms)
    assert [u.index for u in test.plan.units] == [0, 1, 2]

    routed = []
    for _ in range(2):
        before = datetime.now(UTC)
        run_id = knapsack.new_run(input=INPUT, instance_id=arms[0])
        after = datetime.now(UTC)
        meta = knapsack.run_information(run_id).metadata
        served_by = meta.application_instance_id
        assert (meta.experiment_id, meta.experiment_type) == (test_id, "switchback")
        if _unit(test, before) == _unit(test, after):
            assert served_by == test.plan.units[_unit(test, before)].instance_id
        assert served_by in arms
        routed.append(run_id)
    slow = knapsack.new_run(input=INPUT, instance_id=arms[0], options={"sleep": "60"})
    knapsack.cancel_run(slow)  # an ordinary run: cancellable
    wait_for(lambda: _status(knapsack, slow) == StatusV2.canceled, timeout=30)
    routed.append(slow)
    elsewhere = knapsack.new_run(input=INPUT, instance_id=arms[1])  # the candidate: as asked

    runs = knapsack.switchback_test(test_id).runs or []
    assert [r.id for r in runs] == routed and all(r.experiment_id == test_id for r in runs)
    raw = {r["id"]: r["switchback"] for r in _raw_runs(knapsack, test_id)}
    for run in runs:
        unit = raw[run.id]["unit_index"]
        assert test.plan.units[unit].instance_id == run.application_instance_id
        assert raw[run.id]["arm"] == (
            "baseline" if run.application_instance_id == arms[0] else "candidate"
        )
    assert set(routed) | {elsewhere} <= {r.id for r in knapsack.list_runs()}  # ordinary runs

    knapsack.stop_switchback_test(test_id, StopIntent.COMPLETE)
    stopped = knapsack.switchback_test(test_id)
    assert stopped.status == ExperimentStatus.COMPLETED and stopped.completed_at is not None
    after_stop = knapsack.new_run(input=INPUT, instance_id=arms[0])
    assert knapsack.run_information(after_stop).metadata.application_instance_id == arms[0]
    assert [r.id for r in knapsack.switchback_test(test_id).runs or []] == routed

    wait_for(lambda: all(_finished(knapsack, r) for r in routed), timeout=60)
    knapsack.delete_switchback_test(test_id)
    for gone in (
        lambda: knapsack.switchback_test(test_id),
        lambda: knapsack.run_information(routed[0]),
    ):
        with pytest.raises(requests.HTTPError) as err:
            gone()
        assert err.value.response is not None and err.value.response.status_code == 404


def test_cancel_intent_and_a_scheduled_start(
    knapsack: cloud.Application, arms: tuple[str, str]
) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    scheduled = _new(knapsack, arms, unit_duration_minutes=30, units=2, start=later)
    assert scheduled.status == ExperimentStatus.DRAFT and scheduled.plan is not None
    assert scheduled.plan.start == later
    assert scheduled.switchback_test_id is not None
    run_id = knapsack.new_run(input=INPUT, instance_id=arms[0])  # not started yet: as asked
    assert knapsack.run_information(run_id).metadata.application_instance_id == arms[0]
    with pytest.raises(requests.HTTPError) as err:  # the baseline is taken by the schedule
        _new(knapsack, arms, unit_duration_minutes=5, start=later)
    assert err.value.response is not None and err.value.response.status_code == 409
    knapsack.delete_switchback_test(scheduled.switchback_test_id)

    made = _new(knapsack, arms, unit_duration_minutes=5)
    assert made.switchback_test_id is not None
    knapsack.start_switchback_test(made.switchback_test_id)
    with pytest.raises(requests.HTTPError) as err:
        knapsack.start_switchback_test(made.switchback_test_id)
    assert err.value.response is not None and err.value.response.status_code == 409
    knapsack.stop_switchback_test(made.switchback_test_id, StopIntent.CANCEL)
    assert knapsack.switchback_test(made.switchback_test_id).status == ExperimentStatus.CANCELED


def test_refusals(knapsack: cloud.Application, arms: tuple[str, str]) -> None:
    for baseline, candidate, code in ((arms[0], arms[0], 400), (arms[0], "missing", 404)):
        with pytest.raises(requests.HTTPError) as err:
            _new(knapsack, (baseline, candidate), unit_duration_minutes=1)
        assert err.value.response is not None and err.value.response.status_code == code
    with pytest.raises(requests.HTTPError) as err:
        knapsack.switchback_test_metadata("no-such-test")
    assert err.value.response is not None and err.value.response.status_code == 404
