"""A console form the daemon refuses shows its page again with the error, and the
address bar is back on that page, not on the form's POST address (which is no page: a
reload sent the form again, or answered 404 or 405). A reload then opens the page."""

from __future__ import annotations

from typing import Any

from tests.console.conftest import Visit
from tests.console.world import World
from tests.helpers import unique


def _refused(visit: Visit, form: str) -> int:
    with visit.page.expect_navigation() as navigation:
        visit.page.locator(f"{form} [type=submit]").click()
    return int(navigation.value.status)


def _reloads_to(visit: Visit, path: str, heading: str) -> None:
    page: Any = visit.page
    assert page.url == visit.daemon.url + path
    again = page.reload()
    assert (again.request.method, again.status) == ("GET", 200)
    assert page.url == visit.daemon.url + path
    assert page.get_by_role("heading", name=heading).first.is_visible()
    assert page.get_by_role("alert").count() == 0  # the page itself, not the refusal again


def test_a_refused_promote_leaves_the_address_on_the_app_page(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}")
    page.locator("#promote-version").fill("BAD VERSION!")
    assert _refused(signed_in, "form[action$='/promote']") == 400
    assert page.get_by_role("alert").is_visible()
    assert page.locator("#promote-version").input_value() == "BAD VERSION!"
    _reloads_to(signed_in, f"/apps/{world.knapsack}", "Promote")


def test_a_refused_edit_is_not_sent_again_by_a_reload(signed_in: Visit, world: World) -> None:
    """The form posts to its page's own address: the address was right, but a reload
    sent the form again."""
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}")
    page.locator("#edit-description").fill("d" * 5000)
    assert _refused(signed_in, f"form[action='/apps/{world.knapsack}']") == 400
    assert "the limit is" in page.get_by_role("alert").inner_text()
    _reloads_to(signed_in, f"/apps/{world.knapsack}", "Edit app")


def test_a_refused_sign_in_leaves_the_address_on_the_sign_in_page(visit: Visit) -> None:
    page = visit.page
    visit.goto("/login?next=/runs")
    page.locator("#api_key").fill("not the key")
    assert _refused(visit, "form[action='/login']") == 401
    assert "not this daemon's API key" in page.get_by_role("alert").inner_text()
    _reloads_to(visit, "/login?next=%2Fruns", "Sign in")


def test_a_refused_new_run_leaves_the_address_on_the_form(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}/runs/new")
    page.locator("[name=name]").fill("no input given")
    assert _refused(signed_in, "form[action$='/runs']") == 400
    assert "give the run an input" in page.get_by_role("alert").inner_text()
    assert page.locator("[name=name]").input_value() == "no input given"
    _reloads_to(signed_in, f"/apps/{world.knapsack}/runs/new", "New run")


def test_a_refused_input_set_leaves_the_address_on_the_experiments_page(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    page.locator("#set-instance").select_option("production")
    page.locator("#set-id").fill("BAD ID!")
    assert _refused(signed_in, "form[action$='/input-sets']") == 400
    assert page.locator("#set-id").input_value() == "BAD ID!"
    _reloads_to(signed_in, f"/apps/{world.knapsack}/experiments", "Experiments")


def test_a_form_refused_with_the_error_page_goes_back_to_its_page(
    signed_in: Visit, world: World
) -> None:
    """A re-run on an instance that is gone: the error page, at the run page's address."""
    page = signed_in.page
    with signed_in.daemon.client() as api:
        run_id = api.get(f"/v1/applications/{world.knapsack}/runs").json()["runs"][0]["id"]
    path = f"/apps/{world.knapsack}/runs/{run_id}"
    signed_in.goto(path)
    gone = unique("gone")
    page.locator("form[aria-label='Run again'] select").first.evaluate(
        f"el => {{ el.add(new Option('{gone}', '{gone}')); el.value = '{gone}'; }}"
    )
    with page.expect_navigation() as navigation:
        page.locator("form[aria-label='Run again'] [type=submit]").first.click()
    assert navigation.value.status == 404
    assert gone in page.get_by_role("alert").inner_text()
    assert page.url == signed_in.daemon.url + path
    again = page.reload()
    assert (again.request.method, again.status) == ("GET", 200)
