"""Ensembles in the browser: the app's definitions, an ensemble run's children and winner,
and a child's way back to its ensemble run."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import Visit
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique, wait_run

EXPECT_TIMEOUT = 30_000


RULES = [{"id": "value", "statistics_path": "$.result.value", "objective": "maximize",
          "tolerance": {"value": 0, "type": "absolute"}, "index": 0}]  # fmt: skip
INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def _define(api: httpx.Client, app_id: str, definition_id: str, groups: list[Any]) -> None:
    body = {"id": definition_id, "run_groups": groups, "rules": RULES}
    r = api.post(f"/v1/applications/{app_id}/ensembles", json=body)
    assert r.status_code == 201, r.text


def _start(api: httpx.Client, app_id: str, definition_id: str) -> str:
    config = {"run_type": {"type": "ensemble", "definition_id": definition_id}}
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": INPUT, "configuration": config})
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


@pytest.fixture(scope="module")
def ensemble_app(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A knapsack app with instances scale1 (value 444) and scale16 (236), and two
    ensembles of them: "best" (named "Best of two") and "slow" (scale1 takes 8 s, scale16 3 s)."""
    tmp: Path = tmp_path_factory.mktemp("ensemble")
    with console_daemon.client() as api:
        app_id = create_app(api, unique("ens"), name="Ensembles")
        push_dir(api, app_id, SAMPLES / "knapsack", tmp)
        api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
        for scale in (1, 16):
            body = {"id": f"scale{scale}", "version_id": "v1",
                    "configuration": {"options": {"scale": str(scale)}}}  # fmt: skip
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
        fine, rough = (
            {"id": "fine", "instance_id": "scale1"},
            {"id": "rough", "instance_id": "scale16"},
        )
        _define(api, app_id, "best", [fine, rough])
        api.patch(f"/v1/applications/{app_id}/ensembles/best", json={"name": "Best of two"})
        slow = [{**fine, "options": {"sleep": "8"}}, {**rough, "options": {"sleep": "3"}}]
        _define(api, app_id, "slow", slow)
    return app_id


@pytest.fixture(scope="module")
def ensemble_run(console_daemon: Daemon, ensemble_app: str) -> str:
    """The finished run of "best", as "app-id/run-id"."""
    with console_daemon.client() as api:
        run_id = _start(api, ensemble_app, "best")
        assert wait_run(api, ensemble_app, run_id)["metadata"]["status_v2"] == "succeeded"
    return f"{ensemble_app}/{run_id}"


def test_ensemble_run_links_children_marks_winner_and_child_links_back(
    signed_in: Visit, ensemble_run: str
) -> None:
    app_id, run_id = ensemble_run.split("/")
    page = signed_in.page
    signed_in.goto(f"/apps/{app_id}")
    listed = page.locator("[data-ensembles] [data-ensemble=best]").inner_text()
    assert "fine → scale1" in listed and "rough → scale16" in listed
    assert "maximize $.result.value" in listed and "Best of two" in listed
    page.locator("[data-ensembles]").scroll_into_view_if_needed()
    signed_in.shot("ensemble-app", full_page=False)

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


def test_an_ensemble_run_page_follows_its_children_live(
    signed_in: Visit, console_daemon: Daemon, ensemble_app: str
) -> None:
    """Opened while both children run: the quicker one turns succeeded while the ensemble
    run waits for the other, then the winner is marked, all without a reload."""
    with console_daemon.client() as api:
        run_id = _start(api, ensemble_app, "slow")
    page = signed_in.page
    signed_in.goto(f"/apps/{ensemble_app}/runs/{run_id}")
    page.evaluate("window.__notReloaded = true")
    assert page.locator("[data-run-status=running]").count() == 1
    done = "[data-ensemble-children] [data-status=succeeded]"
    assert page.locator(done).count() == 0
    page.locator(done).first.wait_for(timeout=EXPECT_TIMEOUT)
    # the ensemble run still waits for the slow child
    assert page.locator("[data-run-status=running]").count() == 1
    page.locator("[data-ensemble-children] [data-winner]").wait_for(timeout=EXPECT_TIMEOUT)
    assert "fine" in page.locator("[data-ensemble-children] [data-winner]").inner_text()
    assert page.locator("[data-run-status=succeeded]").count() == 1
    assert page.evaluate("window.__notReloaded") is True


def test_an_ensemble_runs_from_the_app_page(signed_in: Visit, ensemble_app: str) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{ensemble_app}")
    page.get_by_role("link", name="Run ensemble best").click()
    page.wait_for_url("**/runs/new?ensemble=best")
    assert page.get_by_label("Ensemble").input_value() == "best"
    page.locator("#run-input").fill(json.dumps(INPUT))
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*/runs/run-[0-9a-z]+$"))
    assert page.locator("[data-ensemble-children] [data-child]").count() == 2
    page.locator("[data-ensemble-children] [data-winner]").wait_for(timeout=EXPECT_TIMEOUT)
    assert "444" in page.locator("[data-ensemble-children] [data-winner]").inner_text()
    assert "ensemble best" in page.locator("#run-panels .muted").first.inner_text()


def test_an_ensemble_run_page_describes_the_ensemble_not_an_instance(
    signed_in: Visit, ensemble_run: str
) -> None:
    """The parent ran on no instance of its own: the header names its definition, the limits
    panel and the log point to the children, and re-running runs the ensemble again."""
    app_id, run_id = ensemble_run.split("/")
    page = signed_in.page
    signed_in.goto(f"/apps/{app_id}/runs/{run_id}")
    header = page.locator("#run-panels .head .muted").first.inner_text()
    assert "ensemble best" in header
    assert "instance" not in header and "version" not in header, header
    limits = page.locator("section[aria-labelledby=limits-title]")
    assert limits.locator("dl").count() == 0  # no manifest defaults no child used
    assert "Each child run has its own" in limits.inner_text()
    limits.get_by_role("link", name="child run").click()
    assert page.url.endswith("#ensemble-title")

    log = page.locator("section[aria-labelledby=log-title]")
    assert page.get_by_role("link", name="Download the whole log").count() == 0
    assert log.locator("pre").count() == 0  # no empty grey box
    assert "child runs" in log.inner_text()
    signed_in.shot("ensemble-run-parent")

    assert page.get_by_role("button", name="Re-run with this input").count() == 0
    page.get_by_role("button", name="Re-run ensemble best with this input").click()
    page.wait_for_url(re.compile(r".*/runs/run-[0-9a-z]+$"))
    assert not page.url.endswith(f"/runs/{run_id}")
    assert page.locator("[data-ensemble-children] [data-child]").count() == 2
    assert "ensemble best" in page.locator("#run-panels .muted").first.inner_text()
    page.locator("[data-ensemble-children] [data-winner]").wait_for(timeout=EXPECT_TIMEOUT)
