"""Ensembles in the browser: the app's definitions, an ensemble run's children and winner,
and a child's way back to its ensemble run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.console.conftest import Visit
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique, wait_run


@pytest.fixture(scope="module")
def ensemble_run(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A knapsack app whose ensemble "best" ran scale1 (value 444) against scale16 (236)
    and kept scale1: "app-id/run-id" of the finished ensemble run."""
    tmp: Path = tmp_path_factory.mktemp("ensemble")
    with console_daemon.client() as api:
        app_id = create_app(api, unique("ens"), name="Ensembles")
        push_dir(api, app_id, SAMPLES / "knapsack", tmp)
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for scale in (1, 16):
            body = {"id": f"scale{scale}", "version_id": "v1",
                    "configuration": {"options": {"scale": str(scale)}}}  # fmt: skip
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        definition = {
            "id": "best",
            "name": "Best of two",
            "run_groups": [{"id": "fine", "instance_id": "scale1"},
                           {"id": "rough", "instance_id": "scale16"}],
            "rules": [{"id": "value", "statistics_path": "$.result.value",
                       "objective": "maximize", "tolerance": {"value": 0, "type": "absolute"},
                       "index": 0}],
        }  # fmt: skip
        r = api.post(f"/v1/applications/{app_id}/ensembles", json=definition)
        assert r.status_code == 201, r.text
        data = json.loads((SAMPLES / "knapsack" / "input.json").read_text())
        config = {"run_type": {"type": "ensemble", "definition_id": "best"}}
        r = api.post(f"/v1/applications/{app_id}/runs",
                     json={"input": data, "configuration": config})  # fmt: skip
        assert r.status_code == 201, r.text
        run_id = r.json()["run_id"]
        assert wait_run(api, app_id, run_id)["metadata"]["status_v2"] == "succeeded"
    return f"{app_id}/{run_id}"


def test_ensemble_run_links_children_marks_winner_and_child_links_back(
    signed_in: Visit, ensemble_run: str
) -> None:
    app_id, run_id = ensemble_run.split("/")
    page = signed_in.page
    signed_in.goto(f"/apps/{app_id}")
    listed = page.locator("[data-ensembles] [data-ensemble=best]").inner_text()
    assert "fine → scale1" in listed and "rough → scale16" in listed
    assert "maximize $.result.value" in listed and "Best of two" in listed

    signed_in.goto(f"/apps/{app_id}/runs/{run_id}")
    children = page.locator("[data-ensemble-children] [data-child]")
    assert children.count() == 2
    winner = page.locator("[data-ensemble-children] [data-winner]")
    assert winner.count() == 1
    row = winner.inner_text()
    assert "fine" in row and "444" in row and "winner" in row
    assert "236" in page.locator("[data-ensemble-children]").inner_text()
    signed_in.shot("ensemble-run")
    child_id = str(winner.get_attribute("data-child"))
    winner.get_by_role("link", name=child_id).click()
    page.wait_for_url(f"**/runs/{child_id}")
    parent = page.locator("[data-ensemble-parent]")
    assert parent.inner_text() == run_id
    assert page.locator("[data-winner]").count() == 1  # this child is the winner
    parent.click()
    page.wait_for_url(f"**/runs/{run_id}")
    page.locator("[data-ensemble-children]").wait_for()
