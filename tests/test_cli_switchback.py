"""``orch experiment switchback ...`` as a subprocess against the session daemon: the
lifecycle, and a run made with ``orch app run`` on the baseline going where the plan says."""

from __future__ import annotations

import pytest

from tests.cli_run import new_app, orch, orch_json
from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, Daemon, unique, wait_for
from tests.hints import hint, paste
from tests.test_cli_experiment import rows

INPUT = SAMPLES / "knapsack" / "input.json"
SB = "experiment switchback"


@pytest.fixture(scope="module")
def app_id(daemon: Daemon) -> str:
    return knapsack_with_arms(daemon)


def knapsack_with_arms(daemon: Daemon) -> str:
    """The knapsack with instances "base" (scale 1) and "cand" (scale 4) of version v1."""
    app_id = new_app(daemon, SAMPLES / "knapsack")
    with daemon.client() as api:
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        for inst, scale in (("base", "1"), ("cand", "4")):
            body = {"id": inst, "version_id": "v1", "configuration": {"options": {"scale": scale}}}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    return app_id


def test_lifecycle_and_a_routed_run(daemon: Daemon, app_id: str) -> None:
    test_id = unique("sb")
    arms = "--baseline-instance-id base --candidate-instance-id cand"
    made = orch(
        daemon,
        f"{SB} create -a {app_id} --switchback-test-id {test_id} {arms}"
        " --unit-duration-minutes 30 --units 4 -n Replay",
    )
    assert made.stdout.strip() == test_id and "draft" in made.stderr
    assert rows(orch(daemon, f"{SB} list -a {app_id}").stdout, test_id)[0][2] == "draft"

    started = orch(daemon, f"{SB} start -a {app_id} --switchback-test-id {test_id}")
    assert "4 units of 30 min (seed" in started.stderr
    units = [u for u in rows(started.stdout) if u[0].isdigit()]
    assert [u[0] for u in units] == ["0", "1", "2", "3"]
    assert sorted(u[1] for u in units) == ["baseline"] * 2 + ["candidate"] * 2
    assert units[0][5] == "◀ now"

    run_id = orch(daemon, f"app run -a {app_id} --instance-id base -i", INPUT).stdout.strip()
    shown = orch_json(daemon, f"{SB} get -a {app_id} --switchback-test-id {test_id}")
    first = shown["plan"]["units"][0]
    [run] = shown["runs"]
    assert run["id"] == run_id and run["application_instance_id"] == first["instance_id"]
    assert run["switchback"] == {"unit_index": 0, "arm": first["arm"]}
    assert {a["arm"]: a["runs"] for a in shown["arms"]} == {first["arm"]: 1} | {
        arm: 0 for arm in ("baseline", "candidate") if arm != first["arm"]
    }
    table = orch(daemon, f"{SB} get -a {app_id} --switchback-test-id {test_id}").stdout
    assert rows(table, run_id)[0][1:3] == ["0", first["arm"]]
    assert rows(table, first["arm"])[-1][1:3] == [first["instance_id"], "1"]  # the arms table

    orch(daemon, f"{SB} update -a {app_id} --switchback-test-id {test_id} -n Renamed")
    stopped = orch(daemon, f"{SB} stop -a {app_id} --switchback-test-id {test_id} --intent cancel")
    assert f"switchback test {test_id} canceled" in stopped.stderr
    meta = orch_json(daemon, f"{SB} get -a {app_id} --switchback-test-id {test_id}")
    assert (meta["name"], meta["status"]) == ("Renamed", "canceled")

    refused = orch(daemon, f"{SB} delete -a {app_id} --switchback-test-id {test_id}", code=1)
    assert "--confirm" in refused.stderr
    wait_for(
        lambda: orch(daemon, f"{SB} delete -a {app_id} --switchback-test-id {test_id} --confirm",
                     code=None).returncode == 0,
        timeout=60,
    )  # fmt: skip
    gone = orch(daemon, f"{SB} get -a {app_id} --switchback-test-id {test_id}", code=1)
    assert "not found" in gone.stderr


def test_errors_are_the_daemons_on_stderr(daemon: Daemon, app_id: str) -> None:
    same = "--baseline-instance-id base --candidate-instance-id base"
    proc = orch(
        daemon, f"{SB} create -a {app_id} {same} --unit-duration-minutes 5 --units 2", code=1
    )
    assert "must differ" in proc.stderr and proc.stdout == ""
    pair = "--baseline-instance-id cand --candidate-instance-id base"
    made = orch(daemon, f"{SB} create -a {app_id} {pair} --unit-duration-minutes 5 --units 2")
    test_id = made.stdout.strip()
    with daemon.client() as api:  # a batch experiment may not take its id: runs link by it
        body = {"id": test_id, "name": "b", "input_set_id": "any", "instance_ids": ["base"]}
        taken = api.post(f"/v1/applications/{app_id}/experiments/batch", json=body)
    assert taken.status_code == 409 and "switchback test" in taken.json()["error"]
    proc = orch(daemon, f"{SB} start -a {app_id} --switchback-test-id nope", code=1)
    assert "not found" in proc.stderr
    proc = orch(daemon, f"{SB} update -a {app_id} --switchback-test-id nope", code=2)
    assert "give --name or --description" in proc.stderr  # a usage error, before any request


def test_a_restarted_daemon_still_switches(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    app_id = knapsack_with_arms(d)
    pair = "--baseline-instance-id base --candidate-instance-id cand"
    test_id = orch(
        d, f"{SB} create -a {app_id} {pair} --unit-duration-minutes 60 --units 2"
    ).stdout.strip()
    orch(d, f"{SB} start -a {app_id} --switchback-test-id {test_id}")
    assert d.stop() == 0
    again = make_daemon(home=d.home)
    with again.client() as api:
        made = api.post(f"/v1/applications/{app_id}/runs?instance_id=base", json={"input": {}})
        run_id = made.json()["run_id"]
        meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()["metadata"]
    test = orch_json(again, f"{SB} get -a {app_id} --switchback-test-id {test_id}")
    assert test["status"] == "started" and [r["id"] for r in test["runs"]] == [run_id]
    assert meta["application_instance_id"] == test["plan"]["units"][0]["instance_id"]
    assert meta["experiment_id"] == test_id


def test_create_names_the_start_command_whole(daemon: Daemon, app_id: str) -> None:
    """It said ``start it with: orch experiment switchback start``: no app, no test."""
    test_id = unique("sb")
    made = orch(
        daemon,
        f"{SB} create -a {app_id} --switchback-test-id {test_id}"
        " --baseline-instance-id base --candidate-instance-id cand"
        " --unit-duration-minutes 30 --units 2",
    )
    line = hint(made.stderr, "start it with")
    assert line == (
        f"orch {SB} start -a {app_id} --switchback-test-id {test_id} --home {daemon.home}"
    )
    assert f"switchback test {test_id} started" in paste(line).stderr
    orch(daemon, f"{SB} stop -a {app_id} --switchback-test-id {test_id} --intent cancel")
