"""A developer's day in the console: an experiment's values link to their runs, acceptance
verdicts show in the list and atop the test, experiment runs can be left out of the runs
lists, and a devint run says which push it ran.

The model of ``tests/acceptance_model.py``: control offset 0, candidate offset 2 on the
inputs 1, 2, 4, 8; two acceptance tests on it, one that passes and one that fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.acceptance_model import CONTROL, MANIFEST, MODEL
from tests.console.conftest import Visit
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, write_app
from tests.test_experiments import wait_experiment

PHONE = {"width": 390, "height": 844}
OVERFLOW = "document.documentElement.scrollWidth - window.innerWidth"
LIVE_TIMEOUT = 60_000


@dataclass
class Day:
    app: str
    sha: str
    """the pushed executable's full sha256: what devint ran"""
    devint_runs: list[str]
    control_runs: list[str]
    passing: str
    """an acceptance test on candidate > control (mean): passed"""
    failing: str
    """an acceptance test on candidate < control (mean), 2 repetitions: failed"""


def _acceptance(api: httpx.Client, app: str, test_id: str, operator: str, reps: int) -> None:
    base = f"/v1/applications/{app}/experiments"
    batch = {"id": test_id, "input_set_id": "four", "baseline": "control", "repetitions": reps,
             "instance_ids": ["control", "candidate"]}  # fmt: skip
    assert api.post(f"{base}/batch", json=batch).status_code == 201
    assert wait_experiment(api, app, test_id)["status"] == "completed"
    exact = {"type": "absolute", "value": 0}
    metric = {"field": "result.value", "metric_type": "direct-comparison", "statistic": "mean",
              "params": {"operator": operator, "tolerance": exact}}  # fmt: skip
    test = {"id": test_id, "control": {"instance_id": "control"},
            "candidate": {"instance_id": "candidate"}, "metrics": [metric]}  # fmt: skip
    r = api.post(f"{base}/acceptance", json=test)
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def day(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Day:
    """Two runs on devint, four on control (an input set of them), then two acceptance
    tests: their 24 runs are the app's newest."""
    tmp = tmp_path_factory.mktemp("day")
    with console_daemon.client() as api:
        app = create_app(api, unique("day"), name="Day")
        pushed = push_dir(api, app, write_app(tmp / "offset", MODEL, MANIFEST), tmp)
        sha = pushed["executable"]["id"]
        devint = [run_and_wait(api, app, {"input": {"value": v}})["id"] for v in (5.0, 6.0)]
        assert api.post(f"/v1/applications/{app}/versions", json={"id": "v1"}).is_success
        for inst, offset in (("control", "0"), ("candidate", "2")):
            options = {"options": {"offset": offset}}
            body = {"id": inst, "version_id": "v1", "configuration": options}
            assert api.post(f"/v1/applications/{app}/instances", json=body).status_code == 201
        control = [
            run_and_wait(api, app, {"input": {"value": v}}, "control")["id"] for v in CONTROL
        ]
        body = {"id": "four", "name": "four", "run_ids": control}
        assert api.post(f"/v1/applications/{app}/experiments/inputsets", json=body).is_success
        passing, failing = unique("accpass"), unique("accfail")
        _acceptance(api, app, passing, "gt", 1)
        _acceptance(api, app, failing, "lt", 2)
    return Day(app, sha, devint, control, passing, failing)


def _experiment_runs(daemon: Daemon, app: str, exp_id: str) -> list[dict[str, Any]]:
    with daemon.client() as api:
        url = f"/v1/applications/{app}/experiments/batch/{exp_id}/runs"
        return list(api.get(url).json()["runs"])


def _fits_a_phone(visit: Visit, name: str) -> None:
    """A screenshot at 1280 px and at 390 px; at 390 nothing scrolls sideways. The page is
    loaded again at 390, as a phone loads it: charts drawn at 1280 are redrawn on a resize
    one after the other, and the last ones were still 400 px wide when measured."""
    page = visit.page
    visit.shot(f"day-{name}")
    page.set_viewport_size(PHONE)
    page.reload()
    visit.shot(f"day-{name}-phone")
    assert page.evaluate(OVERFLOW) <= 0, f"{name} scrolls sideways at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})


def test_each_value_of_an_experiment_links_to_the_runs_it_came_from(
    signed_in: Visit, day: Day
) -> None:
    """The walk: a loss in the per-input table could not be opened to read the two runs."""
    page = signed_in.page
    runs = _experiment_runs(signed_in.daemon, day.app, day.failing)
    assert len(runs) == 16  # 4 inputs, 2 instances, 2 repetitions
    signed_in.goto(f"/apps/{day.app}/experiments/{day.failing}")
    rows = page.locator("[data-comparison=candidate] tbody tr")
    assert rows.count() == 4
    linked: list[str] = []
    for i in range(4):
        row = rows.nth(i)
        input_id = row.locator("td").first.locator(".mono").inner_text()
        for side, target in (("baseline", "control"), ("candidate", "candidate")):
            cell = row.locator(f"td[data-side={side}]")
            want = sorted(
                (r for r in runs if r["target"] == target and r["input_id"] == input_id),
                key=lambda r: r["repetition"],
            )
            hrefs = [f"/apps/{day.app}/runs/{r['id']}" for r in want]
            value = cell.locator("> a")  # the value: the first repetition's run
            assert value.get_attribute("href") == hrefs[0], (side, input_id)
            assert float(value.inner_text()) == sum(r["result_value"] for r in want) / 2
            label = value.get_attribute("aria-label") or ""
            said = f"{value.inner_text()}: mean of 2 runs, the first of {target} on "
            assert label.startswith(said), label
            reps = cell.locator(".reps a")  # each repetition's, named below the mean
            assert [reps.nth(j).get_attribute("href") for j in range(reps.count())] == hrefs
            assert cell.locator(".reps").inner_text() == "mean of runs 1 · 2"
            linked += [r["id"] for r in want]
    assert sorted(linked) == sorted(r["id"] for r in runs)
    _fits_a_phone(signed_in, "experiment")

    first = rows.first.locator("td[data-side=candidate] a").first
    run_id = (first.get_attribute("href") or "").rsplit("/", 1)[-1]
    first.click()
    page.wait_for_url(f"**/runs/{run_id}")
    head = page.locator(".head p.muted").first.inner_text()
    assert "instance candidate (version v1)" in head and f"experiment {day.failing}" in head

    signed_in.goto(f"/apps/{day.app}/experiments/{day.passing}")  # one run a value: its link
    links = page.locator("[data-comparison=candidate] td[data-side] a")
    hrefs = {links.nth(i).get_attribute("href") for i in range(links.count())}
    runs = _experiment_runs(signed_in.daemon, day.app, day.passing)
    assert links.count() == 8 and page.locator(".reps").count() == 0
    assert hrefs == {f"/apps/{day.app}/runs/{r['id']}" for r in runs}


def test_acceptance_verdicts_show_in_the_list_and_atop_the_test(signed_in: Visit, day: Day) -> None:
    """The walk: the list said "acceptance test completed" for a failed and a passed test;
    the verdict was the last card, below the charts."""
    page = signed_in.page
    signed_in.goto(f"/apps/{day.app}/experiments")
    for test_id, verdict in ((day.passing, "passed"), (day.failing, "failed")):
        row = page.locator("tr", has=page.get_by_role("link", name=test_id, exact=True))
        badge = row.locator("[data-verdict]")
        assert badge.get_attribute("data-verdict") == verdict
        assert badge.inner_text() == verdict
        assert "badge" in (badge.get_attribute("class") or "")
    _fits_a_phone(signed_in, "experiments")

    signed_in.goto(f"/apps/{day.app}/experiments/{day.failing}")
    heading = page.get_by_role("heading", level=1)
    assert heading.locator("[data-verdict=failed]").inner_text() == "acceptance test failed"
    verdict = page.locator("[data-acceptance]")
    assert verdict.inner_text() == "failed Acceptance test failed"
    charts = page.get_by_role("heading", name="Metric distributions")
    above = "(a, b) => !!(a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING)"
    assert verdict.evaluate(above, charts.element_handle()), "the verdict is below the charts"
    page.locator("[data-plotly] .main-svg").first.wait_for(timeout=LIVE_TIMEOUT)
    _fits_a_phone(signed_in, "acceptance")
    signed_in.goto(f"/apps/{day.app}/experiments/{day.passing}")
    assert page.locator("h1 [data-verdict]").inner_text() == "acceptance test passed"


def _rows(visit: Visit) -> list[str]:
    rows = visit.page.locator("table.runs tbody tr")
    return [rows.nth(i).inner_text() for i in range(rows.count())]


def _ids(visit: Visit) -> list[str]:
    links = visit.page.locator("table.runs tbody tr td.run a")
    return [links.nth(i).inner_text() for i in range(links.count())]


def test_experiment_runs_are_left_out_of_the_app_page_and_on_request_of_the_runs_page(
    signed_in: Visit, day: Day
) -> None:
    """The walk: after one acceptance test both lists showed only its runs."""
    page = signed_in.page
    signed_in.goto(f"/apps/{day.app}")
    ids = page.locator("section[aria-labelledby=runs-title] table.runs tbody tr")
    shown = [ids.nth(i).get_attribute("id") for i in range(ids.count())]
    mine = [*day.devint_runs, *day.control_runs]
    assert shown == [f"run-{r}" for r in reversed(mine)]  # newest first, no experiment run
    assert page.locator("[data-experiment-runs-hidden]").is_visible()
    page.get_by_role("heading", name="Recent runs").scroll_into_view_if_needed()
    _fits_a_phone(signed_in, "app")

    signed_in.goto(f"/apps/{day.app}/runs")  # everything, as before: the experiments' first
    hide = page.get_by_role("checkbox", name="Hide experiment runs")
    assert not hide.is_checked()
    rows = _rows(signed_in)
    assert len(rows) == 30 and all(f"experiment {day.failing}" in r for r in rows[:16])
    hide.check()
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**hide_experiments=1**")
    assert _ids(signed_in) == list(reversed(mine))
    page.reload()
    assert page.get_by_role("checkbox", name="Hide experiment runs").is_checked()
    assert _ids(signed_in) == list(reversed(mine))
    page.locator(".live-dot:not(.off)").wait_for(timeout=LIVE_TIMEOUT)
    _fits_a_phone(signed_in, "runs")

    # live: a new experiment's runs stay out, a run of one's own comes in
    later = unique("later")
    with signed_in.daemon.client() as api:
        base = f"/v1/applications/{day.app}/experiments"
        batch = {"id": later, "input_set_id": "four", "instance_ids": ["control"]}
        assert api.post(f"{base}/batch", json=batch).status_code == 201
        assert wait_experiment(api, day.app, later)["status"] == "completed"
        own = run_and_wait(api, day.app, {"input": {"value": 7.0}}, "control")["id"]
    page.locator(f"#run-{own}[data-status=succeeded]").wait_for(timeout=LIVE_TIMEOUT)
    assert not any("experiment" in row for row in _rows(signed_in))
    page.get_by_role("link", name="Clear").click()
    assert _ids(signed_in)[0] == own
    assert f"experiment {later}" in _rows(signed_in)[1]


def test_a_devint_run_says_which_push_it_ran(signed_in: Visit, day: Day) -> None:
    """The walk: a devint run showed no version and nothing else, so which edit it ran
    could not be told."""
    page = signed_in.page
    signed_in.goto(f"/apps/{day.app}/runs?hide_experiments=1")
    row = page.locator(f"#run-{day.devint_runs[0]}")
    instance = row.locator("td[data-label=Instance]")
    assert instance.inner_text() == f"devint @ {day.sha[:12]}"
    sha = instance.locator(".mono")
    assert sha.get_attribute("title") == f"executable {day.sha}"
    assert page.locator(f"#run-{day.control_runs[0]} td[data-label=Instance]").inner_text() == (
        "control (version v1)"
    )

    signed_in.goto("/runs?hide_experiments=1")  # every app's: the same filter, one field more
    assert page.get_by_role("checkbox", name="Hide experiment runs").is_checked()
    assert page.locator(f"#run-{day.devint_runs[0]} td[data-label=Instance]").inner_text() == (
        f"devint @ {day.sha[:12]}"
    )
    _fits_a_phone(signed_in, "all-runs")

    signed_in.goto(f"/apps/{day.app}/runs/{day.devint_runs[0]}")
    head = page.locator(".head p.muted").first
    assert f"instance devint @ {day.sha[:12]}" in head.inner_text()
    assert head.locator(f".mono[title='executable {day.sha}']").inner_text() == day.sha[:12]
    _fits_a_phone(signed_in, "devint-run")
