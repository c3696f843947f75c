"""Shadow and switchback test pages keep themselves current while the test runs.

The walk: a shadow test's page said "0 of at most 3 baseline runs shadowed" a second after
a run had been shadowed, until a reload; a switchback's "◀ now" marker stayed on the unit
it was rendered at. Each test here opens the page once and never reloads it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.console.conftest import Visit
from tests.console.world import KNAPSACK_ITEMS
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, run_and_wait, unique

LIVE_TIMEOUT = 15_000
"""ms: a poll every 2 s, a run of the knapsack, and a loaded machine."""


@pytest.fixture(scope="module")
def app_id(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The knapsack sample: v1 on ``production`` and ``stable``; ``candidate`` (scale 4)."""
    with console_daemon.client() as api:
        app_id = create_app(api, unique("live-tests"), name="Live tests")
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("live"))
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        for instance, options in (("production", {}), ("stable", {}), ("candidate", {"scale": 4})):
            body = {"id": instance, "version_id": "v1", "configuration": {"options": options}}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).status_code == 201
    return app_id


def test_the_shadow_page_shows_a_shadowed_run_and_the_end_without_a_reload(
    signed_in: Visit, app_id: str
) -> None:
    page = signed_in.page
    base = f"/v1/applications/{app_id}/experiments/shadow"
    test_id = unique("shadow")
    with signed_in.daemon.client() as api:
        body = {"id": test_id, "comparisons": {"stable": ["candidate"]},
                "termination_events": {"maximum_runs": 3}}  # fmt: skip
        assert api.post(base, json=body).status_code == 201
        assert api.put(f"{base}/{test_id}/start").status_code == 200
        try:
            signed_in.goto(f"/apps/{app_id}/shadow-tests/{test_id}")
            assert "0 of at most 3 baseline runs shadowed" in page.locator(".head").inner_text()
            assert page.locator("#live-test").get_attribute("data-live") == "on"
            run = run_and_wait(api, app_id, {"input": KNAPSACK_ITEMS}, "stable")
            row = page.locator(f"table[data-pairs] tr[data-baseline-run='{run['id']}']")
            row.locator(".badge.succeeded").nth(1).wait_for(timeout=LIVE_TIMEOUT)  # its copy
            assert "1 of at most 3 baseline runs shadowed" in page.locator(".head").inner_text()
        finally:
            api.put(f"{base}/{test_id}/stop", json={"intent": "complete"})
    page.locator("[data-test-status=completed]").wait_for(timeout=LIVE_TIMEOUT)
    assert page.locator("#live-test").get_attribute("data-live") == "off"  # polling stopped
    assert page.get_by_role("button", name="Stop test").count() == 0


def test_the_switchback_page_moves_its_now_marker_and_shows_the_end(
    signed_in: Visit, app_id: str
) -> None:
    """A plan that began 55 s ago (a start may be up to a minute late): its first unit of
    a minute ends in about 5 s, and the marker moves to the next without a reload."""
    page = signed_in.page
    base = f"/v1/applications/{app_id}/experiments/switchback"
    test_id = unique("sb")
    start = (datetime.now(UTC) - timedelta(seconds=55)).isoformat()
    with signed_in.daemon.client() as api:
        body = {"id": test_id, "comparison": {"baseline_instance_id": "production",
                                              "candidate_instance_id": "candidate"},
                "generate_random_plan": {"unit_duration_minutes": 1, "units": 3,
                                         "start": start}}  # fmt: skip
        assert api.post(base, json=body).status_code == 201
        try:
            signed_in.goto(f"/apps/{app_id}/switchback-tests/{test_id}")
            now = page.locator("table[data-units] tr[aria-current=time] td").first
            assert now.inner_text() == "0"
            page.locator(
                "table[data-units] tr[aria-current=time] td:first-child", has_text="1"
            ).wait_for(timeout=LIVE_TIMEOUT)
            assert page.get_by_text("◀ now").count() == 1
        finally:
            api.put(f"{base}/{test_id}/stop", json={"intent": "cancel"})
    page.locator("[data-test-status=canceled]").wait_for(timeout=LIVE_TIMEOUT)
    assert page.locator("#live-test").get_attribute("data-live") == "off"
    assert page.get_by_text("◀ now").count() == 0
