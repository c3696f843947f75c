"""What the console walk found in experiments, against the session daemon.

- An acceptance test's paired comparison ranked ``result.value`` the batch's default way
  (lower is better) whatever the test's metrics said, so one page read "Acceptance test
  failed" above "4 wins ... better": the test's experiment now takes its direction from
  the metrics, whoever started the experiment (the CLI's ``-s``, the API, the SDK).
- A run a user made on a switchback test's baseline is the user's run (the test only
  chose which instance served it): it stays in "Recent runs" and under "Hide experiment
  runs"; a shadow test's copies and a batch's runs stay out.
- An input set from an instance's recent runs takes those user runs only, and each
  distinct input once.

The model (``tests/acceptance_model.py``) reports ``result.value = value + offset``:
control offset 0, candidate offset 2, so the candidate is higher by 2 on every input.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from tests.acceptance_model import CONTROL, MANIFEST, MODEL
from tests.console.conftest import signed_in_client
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, wait_for, write_app
from tests.test_cli_experiment import orch
from tests.test_experiments import wait_experiment

INSTANCES = {"control": "0", "candidate": "2", "stable": "0", "shadowed": "0", "solo": "0"}
PAIR = ("--baseline-instance-id", "control", "--candidate-instance-id", "candidate")


@pytest.fixture(scope="module")
def app_id(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The offset app: ``INSTANCES`` of v1 (name: offset), input set "four" (``CONTROL``)."""
    folder = write_app(tmp_path_factory.mktemp("m") / "offset", MODEL, MANIFEST)
    with daemon.client() as api:
        app_id = create_app(api, unique("walk"))
        push_dir(api, app_id, folder, tmp_path_factory.mktemp("pkg"))
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        for inst, offset in INSTANCES.items():
            body = {
                "id": inst,
                "version_id": "v1",
                "configuration": {"options": {"offset": offset}},
            }
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        ids = [keep(api, app_id, {"value": v}) for v in CONTROL]
        body = {"id": "four", "name": "four", "input_ids": ids}
        assert api.post(f"/v1/applications/{app_id}/experiments/inputsets", json=body).is_success
    return app_id


def keep(api: httpx.Client, app_id: str, data: dict[str, Any]) -> str:
    """A managed input made from a run of ``data`` on the devint instance (no instance of
    this file's tests), so only the tests' own runs land on their instances."""
    run = run_and_wait(api, app_id, {"input": data})
    body = {"run_id": run["id"], "name": f"value {data['value']}"}
    r = api.post(f"/v1/applications/{app_id}/inputs", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def summary(api: httpx.Client, app_id: str, exp_id: str) -> dict[str, Any]:
    r = api.get(f"/v1/applications/{app_id}/experiments/batch/{exp_id}/summary")
    assert r.status_code == 200, r.text
    return dict(r.json())


def console(daemon: Daemon, path: str) -> str:
    client, _ = signed_in_client(daemon)
    try:
        r = client.get(path)
    finally:
        client.close()
    assert r.status_code == 200, r.text
    return r.text


# --- 1. the acceptance test's paired comparison follows its metrics ---------------------------
def test_the_cli_made_test_ranks_result_value_the_way_its_metric_passes(
    daemon: Daemon, app_id: str
) -> None:
    """The walk's command: ``-s`` starts the batch with no objective (lower is better); the
    metric ``ge`` says higher is better, and the whole page now says so."""
    test_id = unique("acc")
    args = ("acceptance", "create", "-a", app_id, "-b", test_id, "-s", "four", *PAIR)
    orch(daemon, *args, "--metric", "result.value mean ge 5%", "-w")  # exit 0: passed
    shown = orch(daemon, "batch", "get", "-a", app_id, "-b", test_id, "--json").stdout
    assert json.loads(shown)["objective"] == "max"
    with daemon.client() as api:
        got = summary(api, app_id, test_id)
    assert got["objective"] == "max"
    [compared] = [c for c in got["comparisons"] if c["metric"] == "result.value"]
    assert (compared["wins"], compared["losses"]) == (4, 0)

    page = console(daemon, f"/apps/{app_id}/experiments/{test_id}")
    assert 'data-acceptance="passed"' in page
    assert "result.value better when higher" in page
    assert re.search(r'class="badge win">win</span> 4 wins', page)
    verdict = page[page.index('id="acceptance-title"') : page.index("</section>")]
    assert '<span class="badge passed">passed</span> <strong>Acceptance test passed' in verdict
    assert verdict.count('<td><span class="badge passed">passed</span></td>') == 1
    assert "badge succeeded" not in verdict


def test_the_api_made_test_on_a_max_batch_ranks_lower_better_when_its_metric_says_lt(
    daemon: Daemon, app_id: str
) -> None:
    """The domain decides, not the CLI: the batch started (API) with ``max``; the test's
    ``lt`` metric makes lower better; a test without an ordering metric leaves it be."""
    with daemon.client() as api:
        base = f"/v1/applications/{app_id}/experiments"
        made = {}
        for operator in ("lt", "eq"):
            exp_id = unique(f"acc-{operator}")
            batch = {"id": exp_id, "input_set_id": "four", "objective": "max",
                     "instance_ids": ["control", "candidate"], "baseline": "control"}  # fmt: skip
            assert api.post(f"{base}/batch", json=batch).status_code == 201, exp_id
            metric = {"field": "result.value", "statistic": "mean",
                      "params": {"operator": operator}}  # fmt: skip
            body = {"id": exp_id, "control": {"instance_id": "control"},
                    "candidate": {"instance_id": "candidate"}, "metrics": [metric]}  # fmt: skip
            r = api.post(f"{base}/acceptance", json=body)
            assert r.status_code in (200, 201), r.text
            made[operator] = exp_id
        for exp_id in made.values():
            assert wait_experiment(api, app_id, exp_id)["status"] == "completed"
        lower = summary(api, app_id, made["lt"])
        kept = summary(api, app_id, made["eq"])
        test = api.get(f"{base}/acceptance/{made['lt']}").json()
    assert test["results"]["passed"] is False
    assert lower["objective"] == "min"
    [compared] = [c for c in lower["comparisons"] if c["metric"] == "result.value"]
    assert (compared["wins"], compared["losses"]) == (0, 4)  # agrees with "failed"
    assert kept["objective"] == "max"


# --- 2. a switchback's routed run is the user's run -------------------------------------------
def test_routed_runs_stay_with_the_users_runs_and_experiment_made_runs_stay_out(
    daemon: Daemon, app_id: str
) -> None:
    with daemon.client() as api:
        base = f"/v1/applications/{app_id}/experiments"
        sb, shadow, batch = unique("sb"), unique("shadow"), unique("batch")
        body = {"id": sb, "comparison": {"baseline_instance_id": "control",
                                         "candidate_instance_id": "candidate"},
                "generate_random_plan": {"unit_duration_minutes": 30, "units": 2}}  # fmt: skip
        assert api.post(f"{base}/switchback", json=body).status_code == 201
        body = {"id": shadow, "comparisons": {"shadowed": ["stable"]},
                "termination_events": {"maximum_runs": 5}}  # fmt: skip
        assert api.post(f"{base}/shadow", json=body).status_code == 201
        try:
            assert api.put(f"{base}/switchback/{sb}/start").status_code == 200
            assert api.put(f"{base}/shadow/{shadow}/start").status_code == 200
            routed = run_and_wait(api, app_id, {"input": {"value": 5.0}}, "control")
            shadowed = run_and_wait(api, app_id, {"input": {"value": 6.0}}, "shadowed")
            copies = wait_for(
                lambda: [
                    r["id"]
                    for r in api.get(f"{base}/shadow/{shadow}/runs").json()["runs"]
                    if r["shadow_role"] == "candidate"
                ]
            )
        finally:
            api.put(f"{base}/switchback/{sb}/stop", json={"intent": "cancel"})
            api.put(f"{base}/shadow/{shadow}/stop", json={"intent": "cancel"})
        spec = {"id": batch, "input_set_id": "four", "instance_ids": ["stable"]}
        assert api.post(f"{base}/batch", json=spec).status_code == 201
        assert wait_experiment(api, app_id, batch)["status"] == "completed"
        batch_runs = api.get(f"{base}/batch/{batch}/runs").json()["runs"]
        served = [r["id"] for r in api.get(f"{base}/switchback/{sb}/runs").json()["runs"]]
    assert served == [routed["id"]], "the switchback test routed the user's run"
    assert batch_runs and copies

    mine = [routed["id"], shadowed["id"]]
    made = [*copies, *(r["id"] for r in batch_runs)]
    for path in (f"/apps/{app_id}", f"/apps/{app_id}/runs?hide_experiments=1"):
        page = console(daemon, path)
        for run_id in mine:
            assert f'id="run-{run_id}"' in page, (path, run_id)
        for run_id in made:
            assert f'id="run-{run_id}"' not in page, (path, run_id)


# --- 3. an input set from an instance's recent runs -------------------------------------------
def test_an_input_set_from_recent_runs_takes_the_users_distinct_inputs(
    daemon: Daemon, app_id: str
) -> None:
    """On ``solo``: the user's runs of 11, 12 and 12 again, then a batch of "four" (1, 2,
    4, 8) on it. The set holds 11 and 12, once each: no experiment input, no double."""
    with daemon.client() as api:
        mine = {
            run_and_wait(api, app_id, {"input": {"value": value}}, "solo")["id"]: value
            for value in (11.0, 12.0, 12.0)
        }
        base = f"/v1/applications/{app_id}/experiments"
        batch = unique("batch")
        spec = {"id": batch, "input_set_id": "four", "instance_ids": ["solo"]}
        assert api.post(f"{base}/batch", json=spec).status_code == 201
        assert wait_experiment(api, app_id, batch)["status"] == "completed"
        before = len(api.get(f"/v1/applications/{app_id}/inputs").json())
        body = {"id": unique("recent"), "instance_id": "solo", "maximum_runs": 10}
        r = api.post(f"{base}/inputsets", json=body)
        assert r.status_code == 201, r.text
        after = len(api.get(f"/v1/applications/{app_id}/inputs").json())
    inputs = r.json()["inputs"]
    assert all(i["run_id"] in mine for i in inputs), "an experiment's run was taken"
    assert sorted(mine[i["run_id"]] for i in inputs) == [11.0, 12.0]
    assert len({i["sha256"] for i in inputs}) == 2
    assert after - before == 2, "a duplicate input was made and left behind"
