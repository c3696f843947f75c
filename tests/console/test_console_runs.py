"""Runs in the browser: the new-run form, a run finishing live, a failed run, the runs list."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.console.conftest import Visit
from tests.console.world import World
from tests.helpers import wait_for, wait_run

EXPECT_TIMEOUT = 30_000


def _status(visit: Visit) -> str:
    return str(visit.page.locator("[data-run-status]").first.get_attribute("data-run-status"))


def test_a_run_from_the_form_finishes_live_with_output_statistics_and_visuals(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.stepper}/runs/new")
    page.get_by_label("Instance").select_option("devint")
    page.get_by_label("Input", exact=False).first.fill(json.dumps({"steps": 4, "pause": 0.5}))
    page.get_by_label("Options").fill("note=from the console")
    signed_in.shot("new-run-form")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*/runs/run-[0-9a-z]+$"))
    page.evaluate("window.__notReloaded = true")
    assert _status(signed_in) in ("queued", "running")
    page.locator("#log").get_by_text("step 1 of the solve").wait_for(timeout=EXPECT_TIMEOUT)
    signed_in.shot("run-running")
    page.locator("[data-run-status=succeeded]").wait_for(timeout=EXPECT_TIMEOUT)
    assert page.evaluate("window.__notReloaded") is True  # it happened live, no reload
    assert "step 3 of the solve" in page.locator("#log").inner_text()
    stats = page.locator("[data-statistics]").inner_text()
    assert "result.value" in stats and "42" in stats and "result.custom.gap" in stats
    options = page.get_by_role("heading", name="Options applied").locator("xpath=..")
    assert "from the console" in options.inner_text() and "run" in options.inner_text()
    output = page.locator("[data-payload=output]")
    assert "apple" in output.locator("[data-json-table]").first.inner_text()  # table view
    output.get_by_role("tab", name="Raw").click()
    assert output.locator(".j-key").first.is_visible()  # syntax-coloured raw view
    page.get_by_role("tab", name="Plotly chart").click()
    page.locator("[data-visual=plotly] .main-svg").first.wait_for(timeout=EXPECT_TIMEOUT)
    signed_in.shot("run-succeeded-plotly")
    page.get_by_role("tab", name="Chart.js chart").click()
    page.locator("[data-visual=chartjs] [data-drawn=true]").wait_for(timeout=EXPECT_TIMEOUT)
    page.get_by_role("tab", name="Route map").click()
    assert page.locator("[data-visual=geojson] svg.map g.feature").count() == 2
    signed_in.shot("run-succeeded-map")
    with page.expect_download() as download:
        output.get_by_role("link", name="Download").click()
    saved = json.loads(Path(download.value.path()).read_text())
    assert saved["statistics"]["result"]["value"] == 42
    stopped = page.locator("dt", has_text="Stopped by").locator("xpath=following-sibling::dd[1]")
    assert stopped.inner_text() == "-"  # "no limit" is for a run that failed by itself


def test_a_failed_run_shows_its_error_the_limit_that_stopped_it_and_its_log(
    signed_in: Visit, world: World
) -> None:
    with signed_in.daemon.client() as api:
        body = {"input": {}, "configuration": {"limits": {"timeout_seconds": 1}}}
        r = api.post(f"/v1/applications/{world.sleeper}/runs", json=body)
        run_id = r.json()["run_id"]
        signed_in.goto(f"/apps/{world.sleeper}/runs/{run_id}")
        wait_run(api, world.sleeper, run_id)
    page = signed_in.page
    page.locator("[data-run-status=failed]").wait_for(timeout=EXPECT_TIMEOUT)
    assert "timeout of 1 s exceeded" in page.locator("[data-run-error]").inner_text()
    stopped = page.locator("[data-stopped-by]")
    assert stopped.inner_text() == "timeout"  # in words; the API's field stays for machines
    assert stopped.get_attribute("data-stopped-by") == "timeout_seconds"
    assert "about to sleep" in page.locator("#log").inner_text()
    signed_in.shot("run-failed")


def test_cancel_and_rerun_on_another_instance(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    with signed_in.daemon.client() as api:
        run_id = api.post(f"/v1/applications/{world.knapsack}/runs",
                          json={"input": {"weight_capacity": 5, "items": []},
                                "options": {"sleep": "20"}}).json()["run_id"]  # fmt: skip
    signed_in.goto(f"/apps/{world.knapsack}/runs/{run_id}")
    page.get_by_role("button", name="Cancel run", exact=True).click()  # asks first
    page.get_by_role("button", name=f"Cancel run {run_id}").click()
    page.locator("[data-run-status=canceled]").wait_for(timeout=EXPECT_TIMEOUT)
    page.get_by_label("Instance for the new run").select_option("candidate")
    page.get_by_role("button", name="Re-run with this input").click()
    page.wait_for_url(lambda url: run_id not in url and "/runs/run-" in url)
    new_id = page.url.rsplit("/", 1)[1]
    with signed_in.daemon.client() as api:
        meta = api.get(f"/v1/applications/{world.knapsack}/runs/{new_id}/metadata").json()
        assert meta["metadata"]["application_instance_id"] == "candidate"
        assert meta["metadata"]["options"]["request_options"] == {"sleep": "20"}  # as asked
        api.patch(f"/v1/applications/{world.knapsack}/runs/{new_id}/cancel")


def test_the_runs_page_filters_by_app_status_and_time(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto("/runs")
    page.get_by_label("App").select_option(world.knapsack)
    page.get_by_label("Status").select_option("succeeded")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(lambda url: "status=succeeded" in url)
    rows = page.locator("table.runs tbody tr")
    assert rows.count() >= 3
    for status in rows.evaluate_all("rows => rows.map(r => r.dataset.status)"):
        assert status == "succeeded"
    assert set(rows.locator("td:nth-child(2)").all_inner_texts()) == {world.knapsack}
    signed_in.shot("runs-filtered")
    page.get_by_label("Created until").fill("2001-01-01T00:00")
    page.get_by_role("button", name="Filter").click()
    page.get_by_text("No runs match.").wait_for()
    page.get_by_label("Instance").fill("candidate")
    page.get_by_label("Created until").fill("")
    page.get_by_label("Status").select_option("")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(lambda url: "instance=candidate" in url)
    instances = page.locator("table.runs tbody tr td:nth-child(3)").all_inner_texts()
    assert instances and all(text.startswith("candidate") for text in instances)


def test_the_runs_page_updates_queued_and_running_runs_live(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.stepper}/runs")
    page.locator("[data-live-indicator]:not(.off)").wait_for(timeout=EXPECT_TIMEOUT)
    page.evaluate("window.__notReloaded = true")
    with signed_in.daemon.client() as api:
        r = api.post(f"/v1/applications/{world.stepper}/runs",
                     json={"input": {"steps": 2, "pause": 0.5}})  # fmt: skip
        run_id = r.json()["run_id"]
        row = page.locator(f"#run-{run_id}")
        row.wait_for(timeout=EXPECT_TIMEOUT)
        assert row.get_attribute("data-status") in ("queued", "running")
        page.locator(f"#run-{run_id}[data-status=succeeded]").wait_for(timeout=EXPECT_TIMEOUT)
    assert page.evaluate("window.__notReloaded") is True


def test_no_runs_match_shows_again_when_the_last_live_row_leaves(
    signed_in: Visit, world: World
) -> None:
    """Filtered on "running": a run's row comes while it runs and goes when it ends; with
    no row left, the page says so again (without a reload)."""
    page = signed_in.page
    signed_in.goto(f"/apps/{world.stepper}/runs?status=running")
    empty = page.get_by_text("No runs match.")
    empty.wait_for()
    page.locator("[data-live-indicator]:not(.off)").wait_for(timeout=EXPECT_TIMEOUT)
    page.evaluate("window.__notReloaded = true")
    with signed_in.daemon.client() as api:
        r = api.post(f"/v1/applications/{world.stepper}/runs",
                     json={"input": {"steps": 3, "pause": 0.5}})  # fmt: skip
        run_id = r.json()["run_id"]
        page.locator(f"#run-{run_id}").wait_for(timeout=EXPECT_TIMEOUT)
        assert empty.is_hidden()
        wait_run(api, world.stepper, run_id)
    page.locator(f"#run-{run_id}").wait_for(state="detached", timeout=EXPECT_TIMEOUT)
    empty.wait_for(timeout=EXPECT_TIMEOUT)
    assert page.evaluate("window.__notReloaded") is True


def test_older_pages_follow_the_keyset_cursor(signed_in: Visit, world: World) -> None:
    """55 runs: the first page shows 50, 'Older' shows the rest, none twice."""
    with signed_in.daemon.client() as api:
        app = world.knapsack
        ids = [api.post(f"/v1/applications/{app}/runs", json={"input": {
            "weight_capacity": 1, "items": []}}).json()["run_id"] for _ in range(55)]  # fmt: skip
        wait_for(lambda: all(_finished(api, app, r) for r in ids[-3:]), timeout=120)
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}/runs")
    first = page.locator("table.runs tbody tr").evaluate_all("rs => rs.map(r => r.id)")
    assert len(first) == 50 and first[0] == f"run-{ids[-1]}"
    page.get_by_role("link", name="Older →").click()
    second = page.locator("table.runs tbody tr").evaluate_all("rs => rs.map(r => r.id)")
    assert second and not set(first) & set(second)
    assert f"run-{ids[0]}" in second
    time.sleep(0)  # nothing to wait for: the pages are plain links


def _finished(api: object, app: str, run_id: str) -> bool:
    r = api.get(f"/v1/applications/{app}/runs/{run_id}/metadata")  # type: ignore[attr-defined]
    return bool(r.json()["metadata"]["status_v2"] in ("succeeded", "failed", "canceled"))
