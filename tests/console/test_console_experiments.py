"""Experiments in the browser: an input set from recent runs, a batch started from the
console, its progress, box plots, the paired comparison and a gate verdict."""

from __future__ import annotations

from tests.console.conftest import Visit
from tests.console.world import World, production_runs
from tests.helpers import unique
from tests.test_experiments import keep_input, wait_experiment

EXPECT_TIMEOUT = 120_000


def test_start_a_batch_experiment_and_compare_against_the_baseline(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    set_id, exp_id = unique("cases"), unique("cand-vs-prod")
    with signed_in.daemon.client() as api:  # the latest on production, whatever ran before
        production_runs(api, world.knapsack)
    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    page.get_by_label("Instance", exact=True).select_option("production")
    page.get_by_label("Runs", exact=True).fill("3")
    page.locator("#set-id").fill(set_id)
    page.get_by_role("button", name="Create input set").click()
    page.wait_for_url(f"**/input-sets/{set_id}")
    assert page.locator("table tbody tr").count() == 3
    signed_in.shot("input-set")

    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    page.get_by_label("Input set", exact=True).select_option(set_id)
    assert page.get_by_role("checkbox", name="production").is_checked()
    assert page.get_by_role("checkbox", name="candidate").is_checked()
    page.get_by_label("Baseline").select_option("production")
    page.get_by_label("result.value is better when").select_option("max")
    page.get_by_label("Repetitions").fill("2")
    page.locator("#exp-id").fill(exp_id)
    page.get_by_role("button", name="Start experiment").click()
    page.wait_for_url(f"**/experiments/{exp_id}")
    assert page.get_by_role("progressbar").is_visible()
    page.locator("#progress .badge.completed").wait_for(timeout=EXPECT_TIMEOUT)
    page.locator("[data-plotly] .main-svg").first.wait_for(timeout=EXPECT_TIMEOUT)
    assert page.locator("[data-done]").inner_text() == "12"
    charts = page.locator("[data-plotly]")
    assert charts.count() >= 3  # result.value, run.duration, wall_time, peak memory...
    comparison = page.locator("[data-comparison=candidate] tbody tr")
    assert comparison.count() == 3
    changes = page.locator("[data-changes=candidate]").inner_text()
    assert "result.value mean Δ" in changes and "wall_time Δ (6 pairs)" in changes
    assert page.locator("[data-seed]").inner_text().isdigit()  # the drawn queue seed
    signed_in.shot("experiment")
    page.set_viewport_size({"width": 1200, "height": 760})
    page.get_by_role("heading", name="Metric distributions").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    signed_in.shot("readme-experiment", full_page=False)

    hint = page.locator("label[for=gate-expr]").inner_text()  # higher is better here
    assert "result.value < baseline * 0.99: 1 % worse" in hint, hint
    page.get_by_label("Condition that fails a candidate").fill("result.value < baseline * 2")
    page.get_by_role("button", name="Check").click()
    page.wait_for_url(lambda url: "gate=" in url)
    assert page.locator("[data-gate]").get_attribute("data-gate") == "failed"
    assert "violation" in page.locator("[data-gate]").inner_text()
    with signed_in.daemon.client() as api:
        gate = api.get(f"/v1/applications/{world.knapsack}/experiments/batch/{exp_id}/gate",
                       params={"expr": "result.value < baseline * 2"}).json()  # fmt: skip
    assert gate["failed"] is True
    page.get_by_label("Condition that fails a candidate").fill("result.value <<< 3")
    page.get_by_role("button", name="Check").click()
    assert page.get_by_role("alert").is_visible()


def test_a_comparison_without_a_pair_says_so(signed_in: Visit, world: World) -> None:
    """Every run failed (a broken input), so no input has a pair: the panel showed
    '0 wins · 0 losses · median Δ -' and an empty table, as if nothing had been compared."""
    set_id, exp_id = unique("broken"), unique("no-pairs")
    base = f"/v1/applications/{world.knapsack}/experiments"
    with signed_in.daemon.client() as api:
        ids = [keep_input(api, world.knapsack, b'{"no_items": true}', "broken")]
        api.post(f"{base}/inputsets", json={"id": set_id, "name": "B", "input_ids": ids})
        body = {"id": exp_id, "input_set_id": set_id, "baseline": "production",
                "instance_ids": ["production", "candidate"]}  # fmt: skip
        assert api.post(f"{base}/batch", json=body).status_code == 201
        assert wait_experiment(api, world.knapsack, exp_id)["status"] == "failed"  # all did
    signed_in.goto(f"/apps/{world.knapsack}/experiments/{exp_id}")
    said = signed_in.page.locator("[data-no-pairs=candidate]").inner_text()
    assert said.startswith("No pair yet: a comparison needs a succeeded run of the baseline")
    assert "fill in" not in said  # the experiment has ended: no more will come
    assert signed_in.page.locator("[data-comparison=candidate]").count() == 0
