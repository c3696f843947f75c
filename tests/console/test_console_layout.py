"""Layout in the browser: a phone's width without sideways scrolling, the same spacing
between panels, a long statistics key that leaves its value in view, and charts that add no
tab stops a keyboard user cannot see."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Visit
from tests.console.world import World
from tests.helpers import Daemon

PHONE = {"width": 390, "height": 844}
DRAWN_TIMEOUT = 30_000

OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
RIGHT_EDGE = "el => Math.round(el.getBoundingClientRect().right)"

NEAR_PANELS = """() => {
  const panels = [...document.querySelectorAll('main .panel')]
    .filter(p => !p.parentElement.closest('.panel') && p.offsetParent !== null);
  const name = p => (p.querySelector('h2') || p).textContent.trim().slice(0, 40);
  const close = [];
  for (const a of panels) for (const b of panels) {
    const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
    const below = rb.top >= ra.bottom - 1, across = rb.left < ra.right && rb.right > ra.left;
    if (a !== b && below && across && rb.top - ra.bottom < 12)
      close.push(`${name(a)} -> ${name(b)}: ${(rb.top - ra.bottom).toFixed(1)} px`);
  }
  return close;
}"""
"""Panels one above the other with less than 12 px between them (the console uses 16)."""

HIDDEN_TAB_STOPS = """() => [...document.querySelectorAll('[data-plotly] *')]
  .filter(el => el.tabIndex >= 0 && el.matches('a[href], button, input, select, [tabindex]'))
  .filter(el => {
    let opacity = 1;
    for (let x = el; x; x = x.parentElement) opacity *= parseFloat(getComputedStyle(x).opacity);
    return opacity === 0;
  })
  .map(el => el.getAttribute('aria-label') || el.outerHTML.slice(0, 80))"""


def _early_run(daemon: Daemon, app_id: str) -> str:
    """The oldest run of the app's newest page: one the world made, finished."""
    with daemon.client() as api:
        return str(api.get(f"/v1/applications/{app_id}/runs").json()["runs"][-1]["id"])


def _main_pages(daemon: Daemon, world: World) -> dict[str, str]:
    return {
        "apps": "/apps",
        "app": f"/apps/{world.knapsack}",
        "app-ensemble": f"/apps/{world.quirky}",  # with an ensemble definition
        "runs": "/runs",
        "run": f"/apps/{world.stepper}/runs/{_early_run(daemon, world.stepper)}",
        "run-quirky": f"/apps/{world.quirky}/runs/{_early_run(daemon, world.quirky)}",
        "experiments": f"/apps/{world.knapsack}/experiments",
        "new-run": f"/apps/{world.knapsack}/runs/new",
    }


def _settle(page: Any, name: str) -> None:
    """Wait for what changes the layout after the load: the charts being drawn."""
    if name == "run":
        page.locator("[data-plotly] .main-svg").first.wait_for(timeout=DRAWN_TIMEOUT)
    elif name != "runs":  # the runs page keeps a stream open: never network-idle
        page.wait_for_load_state("networkidle")


def test_every_main_page_fits_a_phone_without_sideways_scrolling(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    page.set_viewport_size(PHONE)
    pages = _main_pages(signed_in.daemon, world)
    pages["not-found"] = "/" + "x" * 300  # a long address, said back on the page
    for name, path in pages.items():
        signed_in.goto(path)
        _settle(page, name)
        signed_in.shot(f"phone-{name}")
        assert page.evaluate(OVERFLOW) <= 0, f"{path} scrolls sideways at 390 px"
        sign_out = page.get_by_role("button", name="Sign out")
        assert sign_out.evaluate(RIGHT_EDGE) <= PHONE["width"], path
        if name == "run":
            rerun = page.get_by_role("button", name="Re-run with this input")
            assert rerun.evaluate(RIGHT_EDGE) <= PHONE["width"]
    signed_in.goto("/runs")
    status = page.locator("table.runs tbody tr .badge").first  # a run's status, in view
    assert status.evaluate(RIGHT_EDGE) <= PHONE["width"]


def test_panels_one_above_the_other_keep_the_same_distance(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    pages = _main_pages(signed_in.daemon, world)
    for name in ("run", "app", "experiments"):
        for size in ({"width": 1280, "height": 900}, PHONE):
            page.set_viewport_size(size)
            signed_in.goto(pages[name])
            _settle(page, name)
            assert page.evaluate(NEAR_PANELS) == [], (name, size["width"])


def test_a_long_statistics_key_wraps_and_leaves_the_value_in_view(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(_main_pages(signed_in.daemon, world)["run-quirky"])
    table = page.locator("[data-statistics]")
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        panel_right = table.locator("xpath=ancestor::section[1]").evaluate(RIGHT_EDGE)
        assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth"), width
        for cell in table.locator("tbody td.num").all():
            assert cell.is_visible() and cell.evaluate(RIGHT_EDGE) <= panel_right, width
        table.scroll_into_view_if_needed()
        signed_in.shot(f"run-statistics-{width}", full_page=False)
    assert table.get_by_role("cell", name="3.5", exact=True).is_visible()  # the long key's value


def test_charts_add_no_tab_stops_that_cannot_be_seen(signed_in: Visit, world: World) -> None:
    """Plotly's mode bar buttons are invisible until hovered, yet each is a tab stop."""
    page = signed_in.page
    signed_in.goto(_main_pages(signed_in.daemon, world)["run"])
    page.get_by_role("tab", name="Plotly chart").click()
    page.locator("[data-plotly] .main-svg").first.wait_for(timeout=DRAWN_TIMEOUT)
    assert page.evaluate(HIDDEN_TAB_STOPS) == []
