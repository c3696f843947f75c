"""Switchback and shadow tests in the console: listed on the experiments page, one page
each (plan, summary, runs; instances, criteria, paired runs), and Start / Stop forms that
move a test as the API does, behind the CSRF token.

The tests are made through the HTTP API on an app of this file's own (the knapsack
sample), so a started test never routes or shadows the runs other console tests make.
Every test stops what it starts: an instance is the baseline of one live test at a time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from orchestrator.formatting import number
from tests.console.conftest import Visit, signed_in_client
from tests.console.world import KNAPSACK_ITEMS
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, run_and_wait, unique, wait_for

PHONE = {"width": 390, "height": 844}
UNLABELLED = """() => Array.from(
    document.querySelectorAll('input:not([type=hidden]), select, textarea'))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map(el => el.outerHTML)"""
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
WIDER_THAN_THE_PAGE = """() => [...document.querySelectorAll('main *')]
  .filter(el => el.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter(el => !el.parentElement.closest('.scroll')
    || getComputedStyle(el).position === 'absolute')
  .map(el => el.outerHTML.slice(0, 100))"""
"""What reaches past the window where no table's scrolling box holds it in: the culprits
(an absolutely placed element escapes the box of a table it sits in)."""
FINISHED = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def online(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An app with the knapsack sample: v1 on ``production`` (the switchback tests'
    baseline) and on ``stable`` (the shadow tests'), and ``candidate`` (v1, scale=4)."""
    with console_daemon.client() as api:
        app_id = create_app(api, unique("online"), name="Online tests")
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path_factory.mktemp("online"))
        r = api.post(f"/v1/applications/{app_id}/promote",
                     json={"version_id": "v1", "instance_id": "production"})  # fmt: skip
        assert r.status_code == 200, r.text
        for instance, options in (("candidate", {"scale": 4}), ("stable", {})):
            body = {"id": instance, "version_id": "v1", "configuration": {"options": options}}
            r = api.post(f"/v1/applications/{app_id}/instances", json=body)
            assert r.status_code == 201, r.text
    return app_id


@pytest.fixture
def browser_like(console_daemon: Daemon) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = signed_in_client(console_daemon)
    try:
        yield client, csrf
    finally:
        client.close()


def _switchback_base(app_id: str) -> str:
    return f"/v1/applications/{app_id}/experiments/switchback"


def _shadow_base(app_id: str) -> str:
    return f"/v1/applications/{app_id}/experiments/shadow"


def new_switchback(api: httpx.Client, app_id: str, units: int = 4) -> str:
    """A draft on production against candidate, in units of a minute."""
    test_id = unique("sb")
    body = {"id": test_id, "name": f"Switch {test_id}",
            "comparison": {"baseline_instance_id": "production",
                           "candidate_instance_id": "candidate"},
            "generate_random_plan": {"unit_duration_minutes": 1, "units": units}}  # fmt: skip
    r = api.post(_switchback_base(app_id), json=body)
    assert r.status_code == 201, r.text
    return test_id


def new_shadow(api: httpx.Client, app_id: str) -> str:
    """A draft: runs on stable are shadowed on candidate, at most 10 of them."""
    test_id = unique("shadow")
    body = {"id": test_id, "name": f"Shadow {test_id}", "comparisons": {"stable": ["candidate"]},
            "termination_events": {"maximum_runs": 10}}  # fmt: skip
    r = api.post(_shadow_base(app_id), json=body)
    assert r.status_code == 201, r.text
    return test_id


def api_status(api: httpx.Client, base: str, test_id: str) -> str:
    return str(api.get(f"{base}/{test_id}").json()["status"])


def stop_if_started(api: httpx.Client, base: str, test_id: str) -> None:
    """Free the baseline instance for the next test, whatever this one's assertions did."""
    if api_status(api, base, test_id) == "started":
        api.put(f"{base}/{test_id}/stop", json={"intent": "cancel"})


def switch_one_run(api: httpx.Client, app_id: str, test_id: str) -> dict[str, Any]:
    """Start the test and make one run on its baseline (served by the current unit)."""
    assert api.put(f"{_switchback_base(app_id)}/{test_id}/start").status_code == 200
    return run_and_wait(api, app_id, {"input": KNAPSACK_ITEMS}, instance="production")


def shadow_one_run(api: httpx.Client, app_id: str, test_id: str) -> dict[str, dict[str, Any]]:
    """Start the test, make one run on its baseline and wait for its shadow run to end;
    the API's ``.../runs`` by ``shadow_role``."""
    base = _shadow_base(app_id)
    assert api.put(f"{base}/{test_id}/start").status_code == 200
    run_and_wait(api, app_id, {"input": KNAPSACK_ITEMS}, instance="stable")

    def shadow_done() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = api.get(f"{base}/{test_id}/runs").json()["runs"]
        made = [r for r in runs if r["shadow_role"] == "candidate"]
        return runs if made and made[0]["status_v2"] in FINISHED else None

    return {r["shadow_role"]: r for r in wait_for(shadow_done, timeout=60, interval=0.2)}


def table(html: str, marker: str) -> str:
    """The ``<table ...marker...>`` element of a page, as text."""
    found = re.search(rf"<table {marker}>.*?</table>", html, re.S)
    assert found is not None, marker
    return found.group(0)


def numbers(row: str) -> list[str]:
    return re.findall(r'<td class="num"[^>]*>([^<]*)</td>', row)


# --- over HTTP, as a browser without JavaScript ------------------------------------------------
def test_the_experiments_page_lists_the_switchback_and_shadow_tests(
    browser_like: tuple[httpx.Client, str], online: str, console_daemon: Daemon
) -> None:
    client, _ = browser_like
    with console_daemon.client() as api:
        sb, shadow = new_switchback(api, online, units=6), new_shadow(api, online)
        empty = create_app(api, unique("bare"), name="No tests")
    r = client.get(f"/apps/{online}/experiments")
    assert r.status_code == 200
    switchbacks = table(r.text, "data-switchback-tests")
    row = re.search(rf"<tr>.*?{sb}.*?</tr>", switchbacks, re.S)
    assert row is not None
    assert f'href="/apps/{online}/switchback-tests/{sb}"' in row.group(0)
    for shown in (
        f"Switch {sb}",
        "badge draft",
        "production",
        "candidate",
        "6 \N{MULTIPLICATION SIGN} 1 min",
    ):
        assert shown in row.group(0), shown
    shadows = table(r.text, "data-shadow-tests")
    row = re.search(rf"<tr>.*?{shadow}.*?</tr>", shadows, re.S)
    assert row is not None
    assert f'href="/apps/{online}/shadow-tests/{shadow}"' in row.group(0)
    for shown in (f"Shadow {shadow}", "badge draft", "<div>stable</div>", "<div>candidate</div>",
                  "0 / 10"):  # fmt: skip
        assert shown in row.group(0), shown

    bare = client.get(f"/apps/{empty}/experiments")
    assert bare.status_code == 200
    assert "No switchback tests yet" in bare.text and "No shadow tests yet" in bare.text
    assert "data-switchback-tests" not in bare.text and "data-shadow-tests" not in bare.text


def test_a_switchback_test_shows_its_plan_summary_and_routed_runs(
    browser_like: tuple[httpx.Client, str], online: str, console_daemon: Daemon
) -> None:
    client, _ = browser_like
    base = _switchback_base(online)
    with console_daemon.client() as api:
        test_id = new_switchback(api, online, units=4)
        draft = client.get(f"/apps/{online}/switchback-tests/{test_id}").text
        assert 'data-test-status="draft"' in draft and "The plan is drawn when" in draft
        assert "No runs routed yet" in draft and ">Start test</button>" in draft
        try:
            run = switch_one_run(api, online, test_id)
            plan = api.get(f"{base}/{test_id}").json()["plan"]
            arms = api.get(f"{base}/{test_id}/summary").json()["arms"]
            r = client.get(f"/apps/{online}/switchback-tests/{test_id}")
        finally:
            stop_if_started(api, base, test_id)
    assert r.status_code == 200
    page = r.text
    assert 'data-test-status="started"' in page
    assert ">Stop test</button>" in page and ">Cancel test</button>" in page
    assert ">Start test</button>" not in page
    assert f'<span class="mono">{plan["seed"]}</span>' in page
    units = table(page, "data-units")
    assert units.count("<tr") == 1 + 4  # the header, then a row per unit
    for unit in plan["units"]:
        assert f"<td>{unit['instance_id']}</td>" in units
    assert units.count("◀ now") == 1 and 'aria-current="time"' in units
    runs = table(page, "data-runs")
    assert f'href="/apps/{online}/runs/{run["id"]}"' in runs
    counts = table(page, "data-arms")
    for arm in arms:
        row = re.search(rf'<tr data-arm="{arm["arm"]}">.*?</tr>', counts, re.S)
        assert row is not None, arm["arm"]
        assert f"<td>{arm['target']}</td>" in row.group(0)
        expected = [arm[k] for k in ("runs", "succeeded", "failed", "timed_out", "canceled",
                                     "unfinished")]  # fmt: skip
        assert numbers(row.group(0)) == [str(n) for n in expected]
    served = next(a for a in arms if a["runs"] == 1)
    metrics = table(page, "data-metrics")
    assert "result.value" in metrics
    assert number(served["metrics"]["result.value"]["mean"], grouped=True) in metrics


def test_a_shadow_test_pairs_each_shadow_run_with_the_run_it_shadows(
    browser_like: tuple[httpx.Client, str], online: str, console_daemon: Daemon
) -> None:
    client, _ = browser_like
    base = _shadow_base(online)
    with console_daemon.client() as api:
        test_id = new_shadow(api, online)
        try:
            listed = shadow_one_run(api, online, test_id)
            r = client.get(f"/apps/{online}/shadow-tests/{test_id}")
        finally:
            stop_if_started(api, base, test_id)
    assert r.status_code == 200
    page = r.text
    assert 'data-test-status="started"' in page and ">Stop test</button>" in page
    comparisons = table(page, "data-comparisons")
    assert "<td>stable</td><td>candidate</td>" in comparisons
    criteria = re.search(r"<dl class=\"facts\" data-criteria>.*?</dl>", page, re.S)
    assert criteria is not None
    assert "none: started by hand" in criteria.group(0) and "10 <span" in criteria.group(0)
    assert "<dd data-shadowed>1</dd>" in page
    pairs = table(page, "data-pairs")
    baseline, shadow = listed["baseline"], listed["candidate"]
    row = re.search(rf'<tr data-baseline-run="{baseline["id"]}">.*?</tr>', pairs, re.S)
    assert row is not None
    assert f'href="/apps/{online}/runs/{baseline["id"]}"' in row.group(0)
    assert shadow["baseline_run_id"] == baseline["id"]
    assert f'href="/apps/{online}/runs/{shadow["id"]}"' in row.group(0)
    values = [baseline["result_value"], shadow["result_value"]]
    assert numbers(row.group(0)) == [number(v, grouped=True) for v in values]
    # and the shadow run's own page links back to its test
    run_page = client.get(f"/apps/{online}/runs/{shadow['id']}").text
    assert f'href="/apps/{online}/shadow-tests/{test_id}"' in run_page


def test_unknown_tests_get_the_console_not_found_page(
    browser_like: tuple[httpx.Client, str], online: str
) -> None:
    client, csrf = browser_like
    for kind, what in (("switchback-tests", "switchback test"), ("shadow-tests", "shadow test")):
        r = client.get(f"/apps/{online}/{kind}/nope")
        assert r.status_code == 404, kind
        assert r.headers["content-type"].startswith("text/html")
        assert "Not found" in r.text and f"{what} &#39;nope&#39; not found" in r.text
        assert "Sign out" in r.text
        started = client.post(f"/apps/{online}/{kind}/nope/start", data={"csrf": csrf})
        assert started.status_code == 404 and "Not found" in started.text
        other = client.get(f"/apps/unknown-app/{kind}/nope")
        assert other.status_code == 404 and "app &#39;unknown-app&#39; not found" in other.text
    for path in (f"/apps/{online}", f"/apps/{online}/experiments", f"/apps/{online}/runs"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("kind", ["switchback", "shadow"])
def test_start_and_stop_need_the_csrf_token_and_move_the_test_as_the_api_does(
    browser_like: tuple[httpx.Client, str], online: str, console_daemon: Daemon, kind: str
) -> None:
    client, csrf = browser_like
    with console_daemon.client() as api:
        if kind == "switchback":
            base, test_id = _switchback_base(online), new_switchback(api, online)
        else:
            base, test_id = _shadow_base(online), new_shadow(api, online)
        page = f"/apps/{online}/{kind}-tests/{test_id}"
        try:
            assert client.post(f"{page}/start").status_code == 403
            assert client.post(f"{page}/start", data={"csrf": "stale"}).status_code == 403
            assert api_status(api, base, test_id) == "draft"
            r = client.post(f"{page}/start", data={"csrf": csrf}, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == page
            assert api_status(api, base, test_id) == "started"

            again = client.post(f"{page}/start", data={"csrf": csrf})  # no longer a draft
            assert again.status_code == 409
            assert re.search(r'<p class="error" role="alert">[^<]*is started, not a draft</p>',
                             again.text)  # fmt: skip
            assert 'data-test-status="started"' in again.text  # the page, with the error in it
            wrong = client.post(f"{page}/stop", data={"csrf": csrf, "intent": "pause"})
            assert wrong.status_code == 400 and "intent must be one of" in wrong.text
            assert client.post(f"{page}/stop", data={"intent": "cancel"}).status_code == 403
            assert api_status(api, base, test_id) == "started"
            stop = {"csrf": csrf, "intent": "cancel"}
            r = client.post(f"{page}/stop", data=stop, follow_redirects=False)
            assert r.status_code == 303 and r.headers["location"] == page
            assert api_status(api, base, test_id) == "canceled"
            ended = client.get(page).text
            assert 'data-test-status="canceled"' in ended
            assert "Start test" not in ended and "Stop test" not in ended
        finally:
            stop_if_started(api, base, test_id)


# --- in Chromium ---------------------------------------------------------------------------
def _open_from_the_list(signed_in: Visit, app_id: str, test_id: str, kind: str) -> Any:
    page = signed_in.page
    signed_in.goto(f"/apps/{app_id}/experiments")
    page.get_by_role("link", name=test_id, exact=True).click()
    page.wait_for_url(f"**/apps/{app_id}/{kind}-tests/{test_id}")
    return page


def _status(page: Any) -> str:
    return str(page.locator("[data-test-status]").get_attribute("data-test-status"))


def test_start_and_stop_switchback_and_shadow_tests_from_the_browser(
    signed_in: Visit, online: str
) -> None:
    with signed_in.daemon.client() as api:
        sb, shadow = new_switchback(api, online, units=3), new_shadow(api, online)
    try:
        page = _open_from_the_list(signed_in, online, sb, "switchback")
        assert _status(page) == "draft"
        page.get_by_role("button", name="Start test").click()
        page.locator("[data-test-status=started]").wait_for()
        assert page.locator("[data-units] tbody tr").count() == 3
        assert page.locator("[data-units] tr[aria-current=time]").count() == 1
        signed_in.shot("switchback-test-started")
        page.get_by_role("button", name="Stop test").click()
        page.locator("[data-test-status=completed]").wait_for()
        assert page.get_by_role("button", name="Start test").count() == 0
        assert page.locator("[data-units] tr[aria-current=time]").count() == 0

        page = _open_from_the_list(signed_in, online, shadow, "shadow")
        assert _status(page) == "draft"
        page.get_by_role("button", name="Start test").click()
        page.locator("[data-test-status=started]").wait_for()
        signed_in.shot("shadow-test-started")
        page.get_by_role("button", name="Cancel test").click()
        page.locator("[data-test-status=canceled]").wait_for()
        assert page.get_by_role("button", name="Stop test").count() == 0

        signed_in.goto(f"/apps/{online}/experiments")
        for name in (sb, shadow):
            row = page.get_by_role("row").filter(has=page.get_by_role("link", name=name))
            assert row.locator(".badge").first.inner_text() in ("completed", "canceled")
    finally:
        with signed_in.daemon.client() as api:
            stop_if_started(api, _switchback_base(online), sb)
            stop_if_started(api, _shadow_base(online), shadow)
    assert all(url.startswith(signed_in.daemon.url) for url in signed_in.requests)


def test_the_test_pages_fit_a_phone_read_in_dark_and_label_their_fields(
    signed_in: Visit, online: str
) -> None:
    """What ``test_console_offline`` and ``test_console_layout`` check of the main pages."""
    page = signed_in.page
    with signed_in.daemon.client() as api:  # with a run each: every table has rows
        sb, shadow = new_switchback(api, online), new_shadow(api, online)
        try:
            switch_one_run(api, online, sb)
            shadow_one_run(api, online, shadow)
        finally:
            stop_if_started(api, _switchback_base(online), sb)
            stop_if_started(api, _shadow_base(online), shadow)
    pages = {
        "experiments-online": f"/apps/{online}/experiments",
        "switchback-test": f"/apps/{online}/switchback-tests/{sb}",
        "shadow-test": f"/apps/{online}/shadow-tests/{shadow}",
    }
    for scheme, size in (("light", PHONE), ("dark", {"width": 1280, "height": 900})):
        page.set_viewport_size(size)
        page.emulate_media(color_scheme=scheme)
        for name, path in pages.items():
            signed_in.goto(path)
            page.wait_for_load_state("networkidle")
            signed_in.shot(f"{name}-{size['width']}-{scheme}")
            assert page.locator("h1").count() >= 1, path
            assert page.evaluate(UNLABELLED) == [], path
            wide = page.evaluate(WIDER_THAN_THE_PAGE)
            assert page.evaluate(OVERFLOW) <= 0, f"{path} is too wide at {size['width']}: {wide}"
