"""Every page, offline: nothing requested beyond 127.0.0.1, usable at 1280 and 1024 px,
readable in light and dark, labelled for assistive technology; /docs works offline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import Visit
from tests.console.world import World


def _pages(visit: Visit, world: World) -> dict[str, str]:
    with visit.daemon.client() as api:
        runs = api.get(f"/v1/applications/{world.stepper}/runs").json()["runs"]
        exps = api.get(f"/v1/applications/{world.knapsack}/experiments/batch").json()
    pages = {
        "apps": "/apps",
        "app": f"/apps/{world.knapsack}",
        "runs": "/runs",
        "new-run": f"/apps/{world.knapsack}/runs/new",
        "experiments": f"/apps/{world.knapsack}/experiments",
    }
    if runs:
        pages["run"] = f"/apps/{world.stepper}/runs/{runs[0]['id']}"
    if exps:
        pages["experiment"] = f"/apps/{world.knapsack}/experiments/{exps[0]['id']}"
    return pages


UNLABELLED = """() => Array.from(
    document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""


@pytest.mark.parametrize("width", [1280, 1024])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_is_local_fits_the_screen_and_labels_its_fields(
    signed_in: Visit, world: World, width: int, scheme: str
) -> None:
    page = signed_in.page
    page.set_viewport_size({"width": width, "height": 900})
    page.emulate_media(color_scheme=scheme)
    for name, path in _pages(signed_in, world).items():
        signed_in.goto(path)
        page.wait_for_load_state("networkidle") if name not in ("run", "runs") else None
        assert page.locator("h1").count() >= 1, path
        assert page.evaluate(UNLABELLED) == [], path
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} is {overflow} px wider than {width} px"
        signed_in.shot(f"{name}-{width}-{scheme}")
    assert all(url.startswith(signed_in.daemon.url) for url in signed_in.requests)


def test_the_keyboard_reaches_the_skip_link_the_navigation_and_the_tabs(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto("/apps")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    run = _pages(signed_in, world).get("run")
    assert run is not None
    signed_in.goto(run)
    tab = page.get_by_role("tab", name="Plotly chart")
    tab.focus()
    page.keyboard.press("ArrowRight")
    focused: Any = page.evaluate("document.activeElement.textContent")
    assert focused == "Chart.js chart"
    assert page.get_by_role("tab", name="Chart.js chart").get_attribute("aria-selected") == "true"


def test_the_api_reference_works_offline_and_takes_the_key(signed_in: Visit) -> None:
    page = signed_in.page
    signed_in.goto("/docs")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=30_000)
    assert page.locator(".opblock-summary-path", has_text="/v1/applications").count() > 0
    page.get_by_role("button", name="Authorize").first.click()
    key_field = page.locator(".auth-container input").first
    key_field.fill(signed_in.daemon.key)
    page.locator(".auth-btn-wrapper button", has_text="Authorize").click()
    page.locator(".auth-btn-wrapper button", has_text="Close").click()
    signed_in.shot("docs")
    # "Try it out" now sends the key: list the apps through the page
    block = page.locator('.opblock-get:has(.opblock-summary-path[data-path="/v1/applications"])')
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    block.locator(".live-responses-table .response-col_status", has_text="200").wait_for(
        timeout=30_000
    )
    for url in signed_in.requests:
        assert url.startswith(signed_in.daemon.url), url
