"""Input sets and batch experiments refuse what they cannot honour, and a refusal leaves
nothing behind: an update replaces a set's inputs (it does not only add), a batch names an
input set that exists and runs only its inputs, a target or a variation is given once, and
a refused input set keeps none of the inputs it would have made."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.helpers import SAMPLES, Daemon, create_app, push_dir, run_and_wait, unique
from tests.test_experiments import keep_input, knapsack_input


@pytest.fixture(scope="module")
def app(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A knapsack app with instance "prod", two kept inputs, input set "both" holding both,
    one succeeded run: pushed once for the module (a push is the slow part)."""
    with daemon.client() as api:
        app_id = create_app(api, unique("val"))
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("pkg"))
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        body = {"id": "prod", "version_id": "v1"}
        assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        ids = [
            keep_input(api, app_id, json.dumps(knapsack_input(s)).encode(), f"case-{s}")
            for s in (1, 2)
        ]
        both = {"id": "both", "name": "Both", "input_ids": ids}
        r = api.post(f"/v1/applications/{app_id}/experiments/inputsets", json=both)
        assert r.status_code == 201, r.text
        run = run_and_wait(api, app_id, {"input": knapsack_input(3)}, instance="prod")
        assert run["metadata"]["status_v2"] == "succeeded", run
    return {"id": app_id, "inputs": ids, "run": run["id"]}


def _sets(app: dict[str, Any]) -> str:
    return f"/v1/applications/{app['id']}/experiments/inputsets"


def _batch(app: dict[str, Any]) -> str:
    return f"/v1/applications/{app['id']}/experiments/batch"


def _new_set(api: httpx.Client, app: dict[str, Any], input_ids: list[str]) -> str:
    set_id = unique("set")
    body = {"id": set_id, "name": set_id, "input_ids": input_ids}
    assert api.post(_sets(app), json=body).status_code == 201
    return set_id


def test_an_update_with_inputs_makes_them_the_sets_inputs(
    api: httpx.Client, app: dict[str, Any]
) -> None:
    """The SDK's ``update_input_set`` re-sends the set's current ``input_ids`` with the new
    ``inputs``: the inputs win, so an input can be taken out of a set."""
    a, b = app["inputs"]
    url = f"{_sets(app)}/{_new_set(api, app, [a, b])}"
    r = api.put(url, json={"input_ids": [a, b], "inputs": [{"id": b}]})
    assert r.status_code == 200, r.text
    assert r.json()["input_ids"] == [b] and [i["id"] for i in r.json()["inputs"]] == [b]
    assert api.get(url).json()["input_ids"] == [b]
    assert api.put(url, json={"input_ids": [a]}).json()["input_ids"] == [a]  # ids alone: those
    renamed = api.put(url, json={"name": "renamed"}).json()  # neither: the inputs stay
    assert (renamed["name"], renamed["input_ids"]) == ("renamed", [a])
    for empty in ({"inputs": []}, {"input_ids": []}):
        r = api.put(url, json=empty)
        assert r.status_code == 400 and "needs inputs" in r.text, r.text
    unknown = api.put(url, json={"inputs": [{"id": "input-nowhere"}]})
    assert unknown.status_code == 404 and "input-nowhere" in unknown.text
    assert api.get(url).json()["input_ids"] == [a]


def _inputs(api: httpx.Client, app: dict[str, Any]) -> list[str]:
    return [i["id"] for i in api.get(f"/v1/applications/{app['id']}/inputs").json()]


@pytest.mark.parametrize(
    ("extra", "status", "named"),
    [
        ({"run_ids": ["RUN", "run-nowhere"]}, 404, "run-nowhere"),
        ({"run_ids": ["RUN"], "input_ids": ["input-nowhere"]}, 404, "input-nowhere"),
    ],
)
def test_a_refused_input_set_keeps_no_inputs(
    api: httpx.Client, app: dict[str, Any], extra: dict[str, Any], status: int, named: str
) -> None:
    """Inputs are made from the runs only once the whole request is known to be good."""
    before = _inputs(api, app)
    body = {"id": unique("set"), "name": "refused"} | extra
    body["run_ids"] = [app["run"] if r == "RUN" else r for r in body["run_ids"]]
    for _ in range(2):
        r = api.post(_sets(app), json=body)
        assert r.status_code == status and named in r.text, r.text
    assert _inputs(api, app) == before


def test_a_batch_names_an_input_set_that_exists(api: httpx.Client, app: dict[str, Any]) -> None:
    a, b = app["inputs"]
    runs = [{"input_id": a, "instance_id": "prod"}]
    body = {"id": unique("b"), "input_set_id": "set-nowhere", "runs": runs}
    r = api.post(_batch(app), json=body)
    assert r.status_code == 404 and "set-nowhere" in r.text, r.text
    only_a = _new_set(api, app, [a])
    body = {"id": unique("b"), "input_set_id": only_a, "runs": [*runs, {**runs[0], "input_id": b}]}
    r = api.post(_batch(app), json=body)
    assert r.status_code == 400 and f"input {b!r} is not in input set {only_a!r}" in r.text
    assert api.get(f"{_batch(app)}/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"instance_ids": ["prod", "prod"]}, "instance 'prod' appears more than once"),
        ({"version_ids": ["v1", "v1"]}, "version 'v1' appears more than once"),
    ],
)
def test_a_batch_target_is_given_once(
    api: httpx.Client, app: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    body = {"id": unique("b"), "input_set_id": "both"} | extra
    r = api.post(_batch(app), json=body)
    assert r.status_code == 400 and message in r.text, r.text


def test_a_scenario_variation_is_given_once(api: httpx.Client, app: dict[str, Any]) -> None:
    scenario = {
        "scenario_id": "s",
        "instance_id": "prod",
        "scenario_input": {"scenario_input_type": "input_set", "scenario_input_data": "both"},
        "configuration": [{"name": "scale", "values": ["1", "1"]}],
    }
    body = {"id": unique("scn"), "type": "scenario", "scenarios": [scenario]}
    r = api.post(_batch(app), json=body)
    assert r.status_code == 400, r.text
    assert "scenario 's': option 'scale' gives value '1' more than once" in r.text
