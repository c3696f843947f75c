"""A run page through its states: a queued run offers its log only once it has one; open
pages say so when their live updates cannot come back (the daemon restarted and forgot the
session); a Chart.js chart fills its box in colour at any width.

The restart test has a daemon of its own (one worker, so a second run stays queued), as it
stops and starts it on the same port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.console.conftest import Visit
from tests.console.world import SLEEPER, World
from tests.helpers import Daemon, create_app, push_dir, unique, write_app

EXPECT_TIMEOUT = 30_000
PHONE = {"width": 390, "height": 844}


class Lone:
    """A daemon of this file's own and its sleeper app; the restart test replaces the
    daemon, so the fixture holds it here and stops whichever is current."""

    def __init__(self, daemon: Daemon, sleeper: str) -> None:
        self.daemon = daemon
        self.sleeper = sleeper

    def start_run(self) -> str:
        with self.daemon.client() as api:
            r = api.post(f"/v1/applications/{self.sleeper}/runs", json={"input": {}})
            assert r.status_code == 201, r.text
            return str(r.json()["run_id"])

    def status(self, run_id: str) -> str:
        with self.daemon.client() as api:
            r = api.get(f"/v1/applications/{self.sleeper}/runs/{run_id}/metadata")
            return str(r.json()["metadata"]["status_v2"])

    def cancel(self, run_id: str) -> None:
        with self.daemon.client() as api:
            api.patch(f"/v1/applications/{self.sleeper}/runs/{run_id}/cancel")


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lone]:
    home = tmp_path_factory.mktemp("lone-home")
    daemon = Daemon.start(home, config="concurrency = 1\nshutdown_grace_seconds = 1\n")
    tmp: Path = tmp_path_factory.mktemp("lone")
    with daemon.client() as api:
        sleeper = create_app(api, unique("sleep"), name="Sleeper")
        push_dir(api, sleeper, write_app(tmp / "sleeper", SLEEPER), tmp)
    held = Lone(daemon, sleeper)
    yield held
    held.daemon.stop()


def _signed_in_page(browser: Any, daemon: Daemon) -> tuple[Any, Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    seen = Visit(context.new_page(), daemon)
    seen.page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    seen.login()
    return context, seen


def _wait_status(lone: Lone, run_id: str, status: str) -> None:
    deadline = time.monotonic() + EXPECT_TIMEOUT / 1000
    while lone.status(run_id) != status:
        assert time.monotonic() < deadline, f"{run_id} never became {status}"
        time.sleep(0.1)


def test_a_queued_run_offers_its_log_only_once_it_has_one(browser: Any, lone: Lone) -> None:
    """No dead link while the run waits in the queue; the link appears, without a reload,
    once the run has started and has a log."""
    first = lone.start_run()
    _wait_status(lone, first, "running")
    queued = lone.start_run()
    context, seen = _signed_in_page(browser, lone.daemon)
    page = seen.page
    try:
        seen.goto(f"/apps/{lone.sleeper}/runs/{queued}")
        assert page.locator("[data-run-status=queued]").count() == 1
        page.evaluate("window.__notReloaded = true")
        download = page.get_by_role("link", name="Download the whole log")
        assert download.count() == 0  # hidden: the run has no log yet
        lone.cancel(first)
        page.locator("[data-run-status=running]").wait_for(timeout=EXPECT_TIMEOUT)
        download.wait_for(timeout=EXPECT_TIMEOUT)
        with page.expect_download() as saved:
            download.click()
        assert "about to sleep" in Path(saved.value.path()).read_text()
        assert page.evaluate("window.__notReloaded") is True
    finally:
        lone.cancel(queued)
        context.close()
    assert seen.errors == []


def test_open_pages_say_live_updates_stopped_once_the_daemon_restarted(
    browser: Any, lone: Lone
) -> None:
    """While the daemon is down the browser retries and the dot goes grey; once it is back
    it has forgotten the session (the streams get 401 and close for good): the pages say
    so, with a reload link, and stop claiming to be live."""
    run_id = lone.start_run()
    _wait_status(lone, run_id, "running")
    context, seen = _signed_in_page(browser, lone.daemon)
    run_page = seen.page
    runs_page = context.new_page()
    runs_page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    try:
        seen.goto(f"/apps/{lone.sleeper}/runs/{run_id}")
        runs_page.goto(f"{lone.daemon.url}/runs")
        runs_page.locator("[data-live-indicator]:not(.off)").wait_for(timeout=EXPECT_TIMEOUT)
        assert run_page.get_by_text("(live)").is_visible()
        assert runs_page.get_by_text("update live").is_visible()
        for page in (run_page, runs_page):
            page.evaluate("window.__notReloaded = true")

        port = urlsplit(lone.daemon.url).port
        lone.daemon.stop()
        runs_page.locator("[data-live-indicator].off").wait_for(timeout=EXPECT_TIMEOUT)
        run_page.wait_for_timeout(1500)  # the browser retries meanwhile
        for page in (run_page, runs_page):
            assert page.locator("[data-live-stopped]").count() == 0  # retrying: not said yet

        lone.daemon = Daemon.start(lone.daemon.home, port=port)
        for page in (run_page, runs_page):
            notice = page.locator("[data-live-stopped]")
            notice.wait_for(timeout=EXPECT_TIMEOUT)
            assert "Live updates stopped" in notice.inner_text()
            reload = notice.get_by_role("link", name="Reload the page")
            assert reload.get_attribute("href") == page.url
            assert page.evaluate("window.__notReloaded") is True
        assert not run_page.get_by_text("(live)").is_visible()
        assert not runs_page.get_by_text("update live").is_visible()
        assert runs_page.locator("[data-live-indicator].off").count() == 1
        seen.shot("live-stopped-run", full_page=False)
        reload = run_page.get_by_role("link", name="Reload the page")
        reload.click()  # the page asks to sign in again, as a restarted daemon does
        run_page.wait_for_url("**/login**")
    finally:
        lone.cancel(run_id)
        context.close()
    assert seen.errors == []


def test_a_chartjs_chart_fills_its_box_in_colour(signed_in: Visit, world: World) -> None:
    """At a phone's width the chart is as tall as its box (no blank band below it), and a
    model that gives no colours gets Chart.js's palette, not its default grey."""
    page = signed_in.page
    with signed_in.daemon.client() as api:
        runs = api.get(f"/v1/applications/{world.stepper}/runs").json()["runs"]
    signed_in.goto(f"/apps/{world.stepper}/runs/{runs[-1]['id']}")
    page.get_by_role("tab", name="Chart.js chart").click()
    chart = page.locator("[data-chartjs][data-drawn]")
    chart.wait_for(timeout=EXPECT_TIMEOUT)
    for size in (PHONE, {"width": 1280, "height": 900}):
        page.set_viewport_size(size)
        page.wait_for_timeout(300)  # Chart.js resizes on the next frame
        box = chart.evaluate("el => el.getBoundingClientRect().height")
        drawn = chart.locator("canvas").evaluate("el => el.getBoundingClientRect().height")
        assert drawn >= box - 2, (size["width"], drawn, box)
        chart.scroll_into_view_if_needed()
        signed_in.shot(f"chartjs-{size['width']}", full_page=False)
    colour = chart.locator("canvas").evaluate(
        "el => window.Chart.getChart(el).data.datasets[0].backgroundColor"
    )
    assert colour and colour != "rgba(0,0,0,0.1)", colour
