"""Tracked runs, metrics and compare_runs through the official SDK."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import nextmv
import pytest
import requests
from nextmv import TrackedRun, TrackedRunStatus, cloud
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.compat.conftest import NewApp, Push
from tests.helpers import SAMPLES, Daemon, unique

KNAPSACK_INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())
TRACKED_OUTPUT = {
    "solutions": [{"items": ["made-elsewhere"]}],
    "statistics": {"run": {"duration": 1.5}, "result": {"value": 7, "custom": {"gap": 0.25}}},
}


def test_track_run_records_its_own_output_finished_at_once(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    tracked = TrackedRun(
        status=TrackedRunStatus.SUCCEEDED,
        duration=1234,
        input=KNAPSACK_INPUT,
        output=TRACKED_OUTPUT,
        logs="solving elsewhere\ndone\n",  # a list is joined by the SDK with a literal "\\n"
        name="from my laptop",
    )
    run_id = knapsack.track_run(tracked)
    info = knapsack.run_information(run_id)
    assert info.metadata.status_v2 == StatusV2.succeeded  # at once, not "running"
    assert info.metadata.run_type is not None
    assert info.metadata.run_type.run_type.value == "external"
    assert info.metadata.duration == 1234 and info.name == "from my laptop"
    assert info.metadata.metrics == {
        "run.duration": 1.5,
        "result.value": 7,
        "result.custom.gap": 0.25,
    }
    result = knapsack.run_result(run_id)
    assert result.output == TRACKED_OUTPUT  # its own output, not the model's
    assert result.metadata.statistics == TRACKED_OUTPUT["statistics"]
    assert knapsack.run_logs(run_id).log == "solving elsewhere\ndone\n"
    assert knapsack.run_input(run_id) == KNAPSACK_INPUT
    assert run_id in {r.id for r in knapsack.list_runs()}


def test_track_run_with_result_of_a_failed_run_with_metrics_and_assets(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    tracked = TrackedRun(
        status=TrackedRunStatus.FAILED,
        duration=50,
        input=KNAPSACK_INPUT,
        output={"solutions": [], "metrics": {"solver": {"status": "infeasible", "gap": 1}}},
        error="solver gave up",
        assets=[{"name": "trace", "content": {"steps": [1, 2]}, "content_type": "json"}],
    )
    result = knapsack.track_run_with_result(tracked, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.failed
    assert result.metadata.error == "solver gave up"
    assert result.metadata.metrics == {"solver.status": "infeasible", "solver.gap": 1}
    [asset] = knapsack.list_assets(result.id)
    assert asset.name == "trace" and asset.content_type == "json"
    assert knapsack.download_asset_content(asset) == {"steps": [1, 2]}


def test_tracked_folder_output_with_statistics_and_metrics_given_apart(
    new_app: NewApp, push: Push, tmp_path: Path
) -> None:
    app = new_app("trackmf")
    push(app, SAMPLES / "knapsack")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("1,2\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "solution.csv").write_text("x\n1\n")
    tracked = TrackedRun(
        status=TrackedRunStatus.SUCCEEDED,
        duration=10,
        input_dir_path=str(tmp_path / "in"),
        output_dir_path=str(tmp_path / "out"),
        statistics={"result": {"value": 3}},
        metrics={"cost": 12.5},
    )
    run_id = app.track_run(tracked, configuration={"format": {"input": {"type": "multi-file"}}})
    info = app.run_information(run_id)
    assert info.metadata.status_v2 == StatusV2.succeeded
    assert info.metadata.metrics == {"cost": 12.5}
    assert app.run_result(run_id, output_dir_path=str(tmp_path / "got")).metadata.statistics == {
        "result": {"value": 3}
    }
    assert (tmp_path / "got" / "solution.csv").read_text() == "x\n1\n"


def test_statistics_and_metrics_given_apart_win_over_the_outputs(
    knapsack: cloud.Application,
) -> None:
    """``TrackedRun(statistics=..., metrics=...)`` says what the run's figures are; the
    ones inside its output are its output's."""
    tracked = TrackedRun(
        status=TrackedRunStatus.SUCCEEDED,
        duration=10,
        input=KNAPSACK_INPUT,
        output=TRACKED_OUTPUT,
        statistics={"result": {"value": 3}},
        metrics={"cost": 12.5},
    )
    run_id = knapsack.track_run(tracked)
    assert knapsack.run_result(run_id).metadata.statistics == {"result": {"value": 3}}
    assert knapsack.run_information(run_id).metadata.metrics == {"cost": 12.5}


def test_compare_runs_compares_metrics_of_executed_and_tracked_runs(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    executed = knapsack.new_run_with_result(input=KNAPSACK_INPUT, polling_options=fast).id
    tracked = knapsack.track_run(
        TrackedRun(status=TrackedRunStatus.SUCCEEDED, input=KNAPSACK_INPUT, output=TRACKED_OUTPUT)
    )
    comparison = knapsack.compare_runs([executed, tracked])
    assert comparison.run_ids == [executed, tracked]
    assert comparison.metrics is not None
    value = comparison.metrics["result.value"]
    assert value.values == {executed: 444, tracked: 7} and value.has_differences
    assert comparison.metadata["run_type"].values == {executed: "standard", tracked: "external"}


def test_a_tracked_run_needs_a_known_status(knapsack: cloud.Application) -> None:
    with pytest.raises(Exception, match=r"422|status"):
        knapsack.client.request(
            "POST",
            f"{knapsack.endpoint}/runs",
            payload={"input": {}, "result": {"status": "running"}},
        )


def test_a_tracked_run_feeds_an_input_set_and_shows_as_tracked_in_the_console(
    knapsack: cloud.Application, daemon: Daemon
) -> None:
    run_id = knapsack.track_run(
        TrackedRun(status=TrackedRunStatus.SUCCEEDED, input=KNAPSACK_INPUT, output=TRACKED_OUTPUT)
    )
    input_set = knapsack.new_input_set(id=unique("fromtracked"), name="tracked", run_ids=[run_id])
    [kept] = input_set.inputs or []
    assert kept.run_id == run_id
    with daemon.client() as api:
        link = api.post("/v1/console/login-link").json()["url"]
    with httpx.Client(base_url=daemon.url, headers={"accept": "text/html"}) as page:
        page.get(link.removeprefix(daemon.url))
        html = page.get(f"/apps/{knapsack.id}/runs/{run_id}").text
    assert "data-run-external" in html and "result.custom.gap" in html


def test_an_app_with_nothing_pushed_takes_tracked_runs(new_app: NewApp, daemon: Daemon) -> None:
    app = new_app("external")
    run_id = app.track_run(
        TrackedRun(status=TrackedRunStatus.SUCCEEDED, input={"n": 1}, output=TRACKED_OUTPUT)
    )
    result = app.run_result(run_id)
    assert result.output == TRACKED_OUTPUT
    assert result.metadata.application_instance_id == "devint"
    assert [r.id for r in app.list_runs()] == [run_id]
    assert app.list_assets(run_id) == []
    with pytest.raises(Exception, match=r"404|409"):  # running it still needs a push
        app.new_run(input={"n": 1})
    with daemon.client() as api:
        link = api.post("/v1/console/login-link").json()["url"]
    with httpx.Client(base_url=daemon.url, headers={"accept": "text/html"}) as page:
        page.get(link.removeprefix(daemon.url))
        assert page.get(f"/apps/{app.id}/runs/{run_id}").status_code == 200
        assert page.get(f"/apps/{app.id}").status_code == 200


def test_a_tracked_run_of_an_app_with_nothing_pushed_keeps_its_tracking(
    new_app: NewApp,
) -> None:
    """As on a pushed app: the managed input it was made from, the run it was cloned from
    (checked: a run of the app)."""
    app = new_app("external")
    upload = app.upload_url()
    app.upload_data(upload_url=upload, data={"n": 1})
    managed = app.new_managed_input(id=unique("mi"), upload_id=upload.upload_id)
    done = nextmv.ExternalRunResult(status="succeeded", execution_duration=5)
    run_id = app.new_run(managed_input_id=managed.id, external_result=done)
    info = app.run_information(run_id).metadata
    assert info.tracking == nextmv.RunTrackingMetadata(input_id=managed.id)
    assert {r.id: r for r in app.list_runs()}[run_id].input_id == managed.id

    body = {"input": {"n": 2}, "result": done.to_dict(), "tracking": {"cloned_run_id": run_id}}
    clone = app.client.request("POST", f"{app.endpoint}/runs", payload=body).json()["run_id"]
    assert app.run_information(clone).metadata.tracking == nextmv.RunTrackingMetadata(
        cloned_run_id=run_id
    )
    ghost = body | {"tracking": {"cloned_run_id": "run-0000000000000000"}}
    with pytest.raises(requests.HTTPError) as err:
        app.client.request("POST", f"{app.endpoint}/runs", payload=ghost)
    assert err.value.response.status_code == 404
