"""``orch experiment shadow ...`` as a subprocess against the session daemon: a run made
with ``orch app run`` on the baseline instance is shadowed on the candidates."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon, unique, wait_for
from tests.hints import hint, paste
from tests.test_cli_experiment import rows

INPUT = SAMPLES / "knapsack" / "input.json"
FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def app_id(daemon: Daemon) -> str:
    """The knapsack with instances base, c1 and c2 on one version."""
    app_id = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app version create -a {app_id} -v v1")
    for inst in ("base", "c1", "c2"):
        orch(daemon, f"app instance create -a {app_id} -v v1 --instance-id {inst}")
    return app_id


def _get(daemon: Daemon, app_id: str, test_id: str) -> Any:
    return orch_json(daemon, f"experiment shadow get -a {app_id} --shadow-test-id {test_id}")


def test_a_cli_run_on_the_baseline_is_shadowed(daemon: Daemon, app_id: str) -> None:
    test_id = unique("shadow")
    made = orch_json(
        daemon,
        f"experiment shadow create -a {app_id} --shadow-test-id {test_id}"
        " --baseline-instance-id base --candidate-instance-ids c1,c2 --maximum-runs 1 --start",
    )
    assert made["status"] == "started" and made["comparisons"] == [
        {"baseline_instance_id": "base", "candidate_instance_ids": ["c1", "c2"]}
    ]
    base = orch(daemon, f"app run -a {app_id} --instance-id base -i", INPUT).stdout.strip()
    test = _get(daemon, app_id, test_id)
    assert test["status"] == "completed" and test["shadowed_runs"] == 1  # maximum_runs 1
    assert {(r["shadow_role"], r["application_instance_id"]) for r in test["runs"]} == {
        ("baseline", "base"),
        ("candidate", "c1"),
        ("candidate", "c2"),
    }
    wait_for(
        lambda: all(r["status_v2"] in FINISHED for r in _get(daemon, app_id, test_id)["runs"]),
        timeout=60,
    )
    shown = orch(daemon, f"experiment shadow get -a {app_id} --shadow-test-id {test_id}").stdout
    table = rows(shown, "run-")
    assert [(r[1], r[2], r[3]) for r in table] == [
        ("baseline", "base", "-"),
        ("candidate", "c1", base),
        ("candidate", "c2", base),
    ] and {(r[4], r[5]) for r in table} == {("succeeded", "444")}
    listed = orch_json(daemon, f"experiment shadow list -a {app_id}")
    assert test_id in [t["id"] for t in listed]
    orch(daemon, f"experiment shadow delete -a {app_id} --shadow-test-id {test_id}", code=1)
    orch(daemon, f"experiment shadow delete -a {app_id} --shadow-test-id {test_id} --confirm")
    orch(daemon, f"app run metadata -a {app_id} -r {base}")  # the baseline run stays


def test_draft_start_stop_update_and_errors(daemon: Daemon, app_id: str) -> None:
    test_id = unique("shadow")
    orch(
        daemon,
        f"experiment shadow create -a {app_id} --shadow-test-id {test_id}"
        " --baseline-instance-id base --candidate-instance-ids c1 --maximum-runs 5",
    )
    assert _get(daemon, app_id, test_id)["status"] == "draft"
    bad = orch(daemon, f"experiment shadow stop -a {app_id} --shadow-test-id {test_id}", code=1)
    assert "not started" in bad.stderr and bad.stdout == ""
    orch(daemon, f"experiment shadow start -a {app_id} --shadow-test-id {test_id}")
    renamed = orch_json(
        daemon, f"experiment shadow update -a {app_id} --shadow-test-id {test_id} -n Renamed"
    )
    assert renamed["name"] == "Renamed"
    stopped = orch_json(
        daemon, f"experiment shadow stop -a {app_id} --shadow-test-id {test_id} --intent cancel"
    )
    assert stopped["status"] == "canceled" and stopped["completed_at"]
    two = orch_json(
        daemon,
        f"experiment shadow create -a {app_id} --termination-maximum-runs 3",
        "--comparisons",
        '{"base":["c1"],"c1":["c2"]}',  # no spaces: the helper splits on them
    )
    assert [c["baseline_instance_id"] for c in two["comparisons"]] == ["base", "c1"]
    orch(daemon, f"experiment shadow create -a {app_id} --maximum-runs 3 --comparisons [", code=1)
    missing = orch(
        daemon,
        f"experiment shadow create -a {app_id} --baseline-instance-id base"
        " --candidate-instance-ids nope --maximum-runs 5",
        code=1,
    )
    assert "nope" in missing.stderr


def test_create_names_the_next_command_whole(daemon: Daemon, app_id: str) -> None:
    """A draft said only ``shadow test X draft``: how to start it, with what, was to guess."""
    test_id = unique("shadow")
    arms = "--baseline-instance-id base --candidate-instance-ids c1 --maximum-runs 5"
    made = orch(daemon, f"experiment shadow create -a {app_id} --shadow-test-id {test_id} {arms}")
    line = hint(made.stderr, "start it with")
    assert line == (
        f"orch experiment shadow start -a {app_id} --shadow-test-id {test_id} --home {daemon.home}"
    )
    assert f"shadow test {test_id} started" in paste(line).stderr
    started = orch(daemon, f"experiment shadow create -a {app_id} {arms} --start")
    other = started.stdout.strip()
    follow = hint(started.stderr, "follow it with")
    assert f"experiment shadow get -a {app_id} --shadow-test-id {other} " in follow
    assert re.search(r"status\s+started", paste(follow).stdout)
    for done in (test_id, other):
        orch(daemon, f"experiment shadow stop -a {app_id} --shadow-test-id {done} --intent cancel")
