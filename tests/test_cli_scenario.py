"""``orch experiment scenario ...`` as a subprocess against the session daemon: the
scenarios expand on the daemon, the runs count is checked there, lists keep their type."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique, wait_for
from tests.hints import hint, paste
from tests.test_cli_experiment import orch, rows


def one_item(value: int) -> str:
    return json.dumps({"weight_capacity": 10, "items": [{"id": "x", "value": value, "weight": 1}]})


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A knapsack app with instance "prod" and input set "known" (values 10, 20, 40)."""
    with daemon.client() as api:
        app_id = create_app(api, unique("scn"))
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        body = {"id": "prod", "version_id": "v1"}
        assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    folder = tmp_path_factory.mktemp("inputs")
    for value in (10, 20, 40):
        (folder / f"v{value}.json").write_text(one_item(value))
    orch(daemon, "input-set", "create", "-a", app_id, "-s", "known", "-n", "Known", "--dir", folder)
    return app_id


def test_create_wait_get_list_runs_delete(daemon: Daemon, app_id: str) -> None:
    proc = orch(
        daemon,
        *("scenario", "create", "-a", app_id, "-b", "sizes", "-n", "Sizes"),
        *("--scenario", "id=plain,instance=prod,input-set=known,scale=1|2"),
        *("--scenario", "instance=prod,input-set=known"),
        *("--repetitions", "2", "--wait"),
    )
    assert "scenario test sizes started: 18 runs" in proc.stderr  # (3x2 + 3x1) x 2 repetitions
    by_option_set = {r[1]: r for r in rows(proc.stdout) if len(r) == 7}
    assert by_option_set["plain_0"][0] == "plain" and by_option_set["plain_0"][3] == "6"
    assert by_option_set["plain_1"][2] == "scale=2"
    assert by_option_set["scenario-2_0"][4] == "23.333"  # mean of 10, 20, 40 (x2 repetitions)

    data = json.loads(orch(daemon, "scenario", "get", "-a", app_id, "-b", "sizes", "--json").stdout)
    assert data["type"] == "scenario" and data["status"] == "completed"
    assert data["number_of_runs"] == 18 and data["run_counts"] == {"succeeded": 18}
    runs = json.loads(
        orch(daemon, "scenario", "runs", "-a", app_id, "-b", "sizes", "--json").stdout
    )
    assert len(runs["runs"]) == 18
    assert {(r["scenario_id"], r["option_set"]) for r in runs["runs"]} == {
        ("plain", "plain_0"),
        ("plain", "plain_1"),
        ("scenario-2", "scenario-2_0"),
    }

    orch(
        daemon,
        "batch",
        "start",
        "-a",
        app_id,
        "-b",
        "plainbatch",
        "-s",
        "known",
        "--instance-ids",
        "prod",
        "--wait",
    )
    scenario_ids = [
        e["id"] for e in json.loads(orch(daemon, "scenario", "list", "-a", app_id, "--json").stdout)
    ]
    batch_ids = [
        e["id"] for e in json.loads(orch(daemon, "batch", "list", "-a", app_id, "--json").stdout)
    ]
    assert scenario_ids == ["sizes"] and batch_ids == ["plainbatch"]

    refused = orch(
        daemon, "scenario", "delete", "-a", app_id, "-b", "plainbatch", "--confirm", code=1
    )
    assert "not a scenario test" in refused.stderr
    orch(daemon, "scenario", "delete", "-a", app_id, "-b", "sizes", "--confirm")
    assert json.loads(orch(daemon, "scenario", "list", "-a", app_id, "--json").stdout) == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("input-set=known", "instance=ID is required"),
        ("instance=prod", "give input-set=ID or inputs=ID|ID"),
        ("instance=prod,inputs=a,input-set=known", "give input-set=ID or inputs=ID|ID"),
        ("instance=prod,input-set", "is not KEY=VALUE"),
    ],
)
def test_bad_specs_fail_before_any_request(
    daemon: Daemon, app_id: str, spec: str, message: str
) -> None:
    proc = orch(daemon, "scenario", "create", "-a", app_id, "--scenario", spec, code=2)
    assert message in proc.stderr


def test_the_daemon_names_a_missing_input_set(daemon: Daemon, app_id: str, tmp_path: Path) -> None:
    spec = "instance=prod,input-set=nowhere"
    proc = orch(daemon, "scenario", "create", "-a", app_id, "--scenario", spec, code=1)
    assert "input set 'nowhere' not found" in proc.stderr


def test_create_without_wait_names_the_command_that_follows(daemon: Daemon, app_id: str) -> None:
    test_id = unique("scn")
    made = orch(
        daemon,
        *("scenario", "create", "-a", app_id, "-b", test_id),
        *("--scenario", "instance=prod,input-set=known"),
    )
    line = hint(made.stderr, "follow it with")
    want = f"orch experiment scenario get -a {app_id} -b {test_id} --home {daemon.home} --wait"
    assert line == want
    assert test_id in paste(line).stdout
    wait_for_end = f"/v1/applications/{app_id}/experiments/batch/{test_id}/metadata"
    with daemon.client() as api:
        wait_for(lambda: api.get(wait_for_end).json()["status"] != "started", timeout=30)
    orch(daemon, "scenario", "delete", "-a", app_id, "-b", test_id, "--confirm")


def test_rows_come_by_scenario_in_the_order_given(daemon: Daemon, app_id: str) -> None:
    """Each scenario's configurations together, scenarios and configurations as given (the
    rows came in queue order, ``zeta_0, zeta_1, alpha_0, zeta_2``, and the option sets
    were stored sorted by name)."""
    proc = orch(
        daemon,
        *("scenario", "create", "-a", app_id, "-b", unique("order")),
        *("--scenario", "id=zeta,instance=prod,input-set=known,scale=1|4|2"),
        *("--scenario", "id=alpha,instance=prod,input-set=known"),
        "--wait",
    )
    shown = [r[1] for r in rows(proc.stdout) if len(r) == 7]
    assert shown == ["zeta_0", "zeta_1", "zeta_2", "alpha_0"], shown
