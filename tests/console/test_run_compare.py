"""Comparing runs in the console: tick runs in an app's runs list, Compare, see them side by
side, with the same rows and values as ``orch app run compare``; bad links get the error page.

The compared runs are tracked runs of the file's own app (recorded at once, nothing
executes), so the list holds only them; the live test needs a run that changes status."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.cli_run import orch
from tests.console.conftest import Visit, signed_in_client
from tests.console.world import World
from tests.helpers import Daemon, create_app, unique, wait_run

EXPECT_TIMEOUT = 30_000
CELLS = """() => Array.from(document.querySelectorAll("[data-compare-table] tbody tr"), tr =>
  Array.from(tr.children, c => c.textContent.trim()))"""
"""The compare table as [mark, field, value per run] rows, as the CLI's table has them."""


@dataclass
class Tracked:
    app_id: str
    runs: list[str]
    """oldest first: gap 0.0042 with solver=exact, then gap 0.0038 with solver=fast"""
    other_app: str
    other_run: str


def _track(api: httpx.Client, app_id: str, gap: float, options: dict[str, str]) -> str:
    """A tracked run whose output reports ``gap`` (0.0042 and 0.0038 read 0.004 at 3 decimals)."""
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    stats = {"result": {"value": 4, "custom": {"gap": gap}}}
    put = api.put(up["upload_url"], content=json.dumps({"solutions": [], "statistics": stats}))
    assert put.status_code < 300, put.text
    result = {
        "status": "succeeded",
        "execution_duration": 2500,
        "output_upload_id": up["upload_id"],
    }
    body = {"input": {"items": [1, 2]}, "options": options, "result": result}
    r = api.post(f"/v1/applications/{app_id}/runs", json=body)
    assert r.status_code == 201, r.text
    return str(r.json()["run_id"])


@pytest.fixture(scope="module")
def tracked(console_daemon: Daemon) -> Tracked:
    with console_daemon.client() as api:
        app_id, other = create_app(api, unique("cmp")), create_app(api, unique("cmpo"))
        runs = [_track(api, app_id, 0.0042, {"solver": "exact"})]
        runs.append(_track(api, app_id, 0.0038, {"solver": "fast"}))
        return Tracked(app_id, runs, other, _track(api, other, 0.1, {}))


@pytest.fixture(scope="module")
def browser_like(console_daemon: Daemon) -> Iterator[httpx.Client]:
    client, _ = signed_in_client(console_daemon)
    yield client
    client.close()


def _cli_cells(daemon: Daemon, app_id: str, run_ids: list[str]) -> list[list[str]]:
    picked = " ".join(f"-r {run_id}" for run_id in run_ids)
    shown = orch(daemon, f"app run compare -a {app_id} {picked}").stdout
    return [[c.strip() for c in line.split("│")] for line in shown.splitlines() if "│" in line]


def test_bad_compare_links_get_the_error_page_with_what_is_wrong(
    browser_like: httpx.Client, tracked: Tracked
) -> None:
    first, second = tracked.runs
    unknown = "run-" + "0" * 16
    cases = [
        ([first], 400, "compare takes 2 to 20 runs, 1 given"),
        ([], 400, "compare takes 2 to 20 runs, 0 given"),
        ([first, second] + [f"run-{n:016d}" for n in range(19)], 400, "2 to 20 runs, 21 given"),
        ([first, first], 400, f"run {first!r} is given twice"),
        ([first, "../../etc"], 400, "'../../etc' is no run ID"),
        ([first, "RUN-X"], 400, "'RUN-X' is no run ID"),
        ([first, unknown], 404, f"run {unknown!r} not found in app {tracked.app_id!r}"),
        (
            [first, tracked.other_run],
            404,
            f"is a run of app {tracked.other_app!r}, not of {tracked.app_id!r}",
        ),
    ]
    for run_ids, status, message in cases:
        r = browser_like.get(f"/apps/{tracked.app_id}/runs/compare", params={"run": run_ids})
        assert r.status_code == status, (run_ids, r.status_code, r.text[:300])
        assert 'role="alert"' in r.text and message in r.text.replace("&#39;", "'"), run_ids
    r = browser_like.get("/apps/no-such-app/runs/compare", params={"run": tracked.runs})
    assert r.status_code == 404 and "no-such-app" in r.text


def test_tick_two_runs_compare_them_and_see_what_the_cli_shows(
    signed_in: Visit, tracked: Tracked
) -> None:
    """Their options differ, and their gaps only past the table's 3 decimals: the page
    shows the digits that tell them apart, as the CLI does; the same value is no row mark."""
    page = signed_in.page
    older, newer = tracked.runs
    signed_in.goto(f"/apps/{tracked.app_id}")
    assert page.locator("[data-compare-pick]").count() == 0  # the app page: no selection
    signed_in.goto(f"/apps/{tracked.app_id}/runs")
    button = page.get_by_role("button", name="Compare")
    assert button.is_disabled()
    page.get_by_label(f"Compare {older}").check()
    assert button.is_disabled()  # one run is no comparison
    page.get_by_label(f"Compare {newer}").check()
    assert button.is_enabled()
    signed_in.shot("compare-ticked")
    button.click()
    page.wait_for_url(re.compile(r".*/runs/compare\?run=run-.*&run=run-.*"))
    table = page.locator("[data-compare-table]")
    heads = table.locator("thead th[data-run]")
    order = [str(heads.nth(n).get_attribute("data-run")) for n in range(heads.count())]
    assert order == [newer, older]  # as the list shows them, newest first
    for run_id in order:
        link = table.get_by_role("link", name=run_id)
        assert link.get_attribute("href") == f"/apps/{tracked.app_id}/runs/{run_id}"

    def row(field: str) -> Any:
        return table.locator(f"tr[data-field='{field}']")

    assert row("option.solver").get_attribute("data-differs") is not None
    assert row("option.solver").locator("td").all_inner_texts() == ["*", "fast", "exact"]
    assert row("metric.result.custom.gap").locator("td").all_inner_texts()[1:] == [
        "0.0038",
        "0.0042",
    ]
    assert row("metric.result.value").get_attribute("data-differs") is None
    assert row("input").get_attribute("data-differs") is None  # one document
    signed_in.shot("compare-page")
    assert page.evaluate(CELLS) == _cli_cells(signed_in.daemon, tracked.app_id, order)
    table.get_by_role("link", name=older).click()
    page.wait_for_url(f"**/runs/{older}")


def test_a_ticked_run_keeps_its_tick_and_its_columns_when_it_changes_live(
    signed_in: Visit, world: World
) -> None:
    """On ``/runs?app=<app>`` the rows show the app: a row sent by the stream lost that
    column, and a run that ended while ticked came back unticked."""
    page = signed_in.page
    with signed_in.daemon.client() as api:
        older = api.get(f"/v1/applications/{world.stepper}/runs").json()["runs"][0]["id"]
        signed_in.goto(f"/runs?app={world.stepper}")
        page.locator("[data-live-indicator]:not(.off)").wait_for(timeout=EXPECT_TIMEOUT)
        body = {"input": {"steps": 2, "pause": 0.6}}
        r = api.post(f"/v1/applications/{world.stepper}/runs", json=body)
        assert r.status_code == 201, r.text
        fresh = r.json()["run_id"]
        page.get_by_label(f"Compare {fresh}").check(timeout=EXPECT_TIMEOUT)
        page.get_by_label(f"Compare {older}").check()
        ended = wait_run(api, world.stepper, fresh)["metadata"]["status_v2"]
    row = page.locator(f"#run-{fresh}[data-status={ended}]")
    row.wait_for(timeout=EXPECT_TIMEOUT)
    assert row.locator("td[data-label=App]").count() == 1
    assert row.locator("[data-compare-pick]").is_checked()
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(re.compile(r".*/runs/compare\?.*"))
    assert page.locator("[data-compare-table] thead th[data-run]").count() == 2
