"""``orch experiment acceptance ...`` as a subprocess against the session daemon.

The model of ``tests/acceptance_model.py``: control offset 0, candidate offset 2, on the
inputs 1, 2, 4, 8 (means 3.75 and 5.75, maxima 8 and 10).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.acceptance_model import CONTROL, MANIFEST, MODEL
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, write_app
from tests.hints import hint, paste
from tests.test_cli_experiment import orch, rows


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The offset app with instances "control" and "candidate" and input set "four"."""
    folder = write_app(tmp_path_factory.mktemp("m") / "offset", MODEL, MANIFEST)
    with daemon.client() as api:
        app_id = create_app(api, unique("acc"))
        push_dir(api, app_id, folder, tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for inst, offset in (("control", "0"), ("candidate", "2")):
            body = {
                "id": inst,
                "version_id": "v1",
                "configuration": {"options": {"offset": offset}},
            }
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        run_ids = [
            run_and_wait(api, app_id, {"input": {"value": v}}, "control")["id"] for v in CONTROL
        ]
        body = {"id": "four", "name": "four", "run_ids": run_ids}
        assert api.post(f"/v1/applications/{app_id}/experiments/inputsets", json=body).is_success
    return app_id


PAIR = ("--baseline-instance-id", "control", "--candidate-instance-id", "candidate")


def test_create_wait_shows_each_verdict_and_exits_on_the_overall_one(
    daemon: Daemon, app_id: str
) -> None:
    test_id = unique("acc")
    proc = orch(
        daemon, "acceptance", "create", "-a", app_id, "-b", test_id, "-s", "four", *PAIR,
        "--metric", "result.value mean gt",
        "--metric", "result.value max < 1",
        "--metric", "result.value p50 le 100%",
        "-w", code=1,
    )  # fmt: skip
    table = rows(proc.stdout, "result.value")
    assert [r[0:3] + r[5:] for r in table] == [
        ["result.value", "mean", "> control", "PASS"],
        ["result.value", "max", "< control + 1", "FAIL"],
        ["result.value", "p50", "<= control + 100%", "PASS"],
    ]
    assert [r[3:5] for r in table] == [["3.75", "5.75"], ["8", "10"], ["3", "5"]]
    assert f"acceptance test {test_id} completed: failed" in proc.stderr

    got = json.loads(
        orch(daemon, "acceptance", "get", "-a", app_id, "-b", test_id, "--json").stdout
    )
    assert got["results"]["passed"] is False and len(got["results"]["metric_results"]) == 3
    assert orch(daemon, "acceptance", "get", "-a", app_id, "-b", test_id, "-w", code=1)
    listed = orch(daemon, "acceptance", "list", "-a", app_id).stdout
    assert [r[5] for r in rows(listed, test_id)] == ["failed"]
    orch(daemon, "acceptance", "update", "-a", app_id, "-b", test_id, "-n", "renamed")
    assert "renamed" in orch(daemon, "acceptance", "get", "-a", app_id, "-b", test_id).stdout

    refused = orch(daemon, "acceptance", "delete", "-a", app_id, "-b", test_id, code=1)
    assert "add --confirm" in refused.stderr
    orch(daemon, "acceptance", "delete", "-a", app_id, "-b", test_id, "--confirm")
    gone = orch(daemon, "acceptance", "get", "-a", app_id, "-b", test_id, code=1)
    assert "not found" in gone.stderr
    assert "not found" in orch(daemon, "batch", "get", "-a", app_id, "-b", test_id, code=1).stderr


def test_json_metrics_from_a_file_pass_and_exit_zero(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    metrics = tmp_path / "metrics.json"
    metrics.write_text(
        json.dumps(
            [
                {
                    "field": "result.custom.gap",
                    "metric_type": "direct-comparison",
                    "params": {"operator": "eq", "tolerance": {"type": "absolute", "value": 2}},
                    "statistic": "mean",
                }
            ]
        )
    )
    test_id = unique("acc")
    args = ("acceptance", "create", "-a", app_id, "-b", test_id, "-s", "four", *PAIR)
    proc = orch(daemon, *args, "--metrics", f"@{metrics}", "-w", "--json")
    test = json.loads(proc.stdout)
    assert test["status"] == "completed" and test["results"]["passed"] is True
    orch(daemon, "acceptance", "delete", "-a", app_id, "-b", test_id, "--confirm")


def test_bad_metrics_are_refused_before_anything_runs(daemon: Daemon, app_id: str) -> None:
    test_id = unique("acc")
    base = ("acceptance", "create", "-a", app_id, "-b", test_id, *PAIR)
    short = orch(daemon, *base, "-s", "four", "--metric", "result.value mean about 1", code=2)
    assert "expected FIELD STATISTIC OP" in short.stderr
    median = orch(daemon, *base, "-s", "four", "--metric", "result.value median gt", code=2)
    assert "statistic must be one of min max mean std" in median.stderr
    assert "at least one --metric" in orch(daemon, *base, code=2).stderr
    missing = orch(daemon, *base, "--metric", "result.value mean gt", code=1)
    assert f"batch experiment {test_id!r} not found" in missing.stderr
    assert "not found" in orch(daemon, "batch", "get", "-a", app_id, "-b", test_id, code=1).stderr


def test_report_and_console_page_show_the_verdicts(
    daemon: Daemon, app_id: str, tmp_path: Path
) -> None:
    test_id = unique("acc")
    args = ("acceptance", "create", "-a", app_id, "-b", test_id, "-s", "four", *PAIR)
    orch(daemon, *args, "--metric", "result.value mean lt 1", "-w", code=1)  # 5.75 < 4.75: no
    html = tmp_path / "report.html"
    orch(daemon, "batch", "report", "-a", app_id, "-b", test_id, "--html", html)
    text = html.read_text()
    assert f"<h2>Acceptance test {test_id}</h2>" in text and "FAILED" in text
    assert "&lt; control (tolerance 1)" in text and "<td>5.75</td>" in text

    gate = ("--fail-if", "result.value > baseline * 4")  # 3>4 4>8 6>16 10>32: never
    orch(daemon, "batch", "report", "-a", app_id, "-b", test_id, "--html", html, *gate)
    assert "<h2>Gate</h2>" in html.read_text() and "PASSED" in html.read_text()
    with daemon.client() as api:
        path = f"/v1/applications/{app_id}/experiments/batch/{test_id}/report"
        assert api.get(path, params={"gate": "nonsense"}).status_code == 400
        link = api.post("/v1/console/login-link").json()["url"]
    with httpx.Client(base_url=daemon.url, headers={"accept": "text/html"}) as browser:
        browser.get(link.removeprefix(daemon.url))
        page = browser.get(f"/apps/{app_id}/experiments/{test_id}").text
    assert 'data-acceptance="failed"' in page and "Acceptance test failed" in page
    orch(daemon, "acceptance", "delete", "-a", app_id, "-b", test_id, "--confirm")


def test_api_refuses_precisely_and_touches_nothing_else(daemon: Daemon, app_id: str) -> None:
    test_id = unique("acc")
    metric = {"field": "result.value", "params": {"operator": "lt"}, "statistic": "mean"}
    orch(daemon, "batch", "start", "-a", app_id, "-b", test_id, "-s", "four",
         "--instance-ids", "control,candidate", "--wait")  # fmt: skip
    base = f"/v1/applications/{app_id}/experiments/acceptance"

    def body(**changes: object) -> dict[str, object]:
        return {
            "id": test_id,
            "control": {"instance_id": "control"},
            "candidate": {"instance_id": "candidate"},
            "metrics": [metric],
        } | changes

    with daemon.client() as api:
        for bad, status, says in [
            (body(candidate={"instance_id": "control"}), 400, "different instances"),
            (body(candidate={"instance_id": "other"}), 400, "'other' has no runs"),
            (body(metrics=[]), 400, "at least one metric"),
            (body(experiment_id="elsewhere"), 400, "must equal"),
            (body(id="no-such-batch"), 404, "start that first"),
        ]:
            r = api.post(base, json=bad)
            assert r.status_code == status and says in r.json()["error"], r.text
        assert test_id not in [t["id"] for t in api.get(base).json()]
        assert api.post(base, json=body()).status_code == 201
        assert api.post(base, json=body()).status_code == 409
        assert api.get(f"{base}/nope").status_code == 404
        assert api.get("/v1/applications/no-app/experiments/acceptance/x").status_code == 404
        long_name = api.patch(f"{base}/{test_id}", json={"name": "n" * 10_000})
        assert long_name.status_code in (400, 422)
        assert api.get(f"{base}/{test_id}").json()["name"] == test_id
        assert api.delete(f"{base}/{test_id}").status_code == 204
        assert api.get(f"/v1/applications/{app_id}/experiments/batch/{test_id}").status_code == 404


def test_create_without_wait_names_the_command_that_waits(daemon: Daemon, app_id: str) -> None:
    test_id = unique("acc")
    args = ("acceptance", "create", "-a", app_id, "-b", test_id, "-s", "four", *PAIR)
    made = orch(daemon, *args, "--metric", "result.value mean gt")
    line = hint(made.stderr, "follow it with")
    assert line == (
        f"orch experiment acceptance get -a {app_id} -b {test_id} --home {daemon.home} --wait"
    )
    assert f"acceptance test {test_id} completed: passed" in paste(line).stderr
    orch(daemon, "acceptance", "delete", "-a", app_id, "-b", test_id, "--confirm")
