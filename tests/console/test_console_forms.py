"""Forms in the browser, when things go wrong: a refused form comes back with what was typed
(edit app, promote, start an experiment, new input set), the input set's "Runs" is held to
the bounds its field declares, a description keeps its line breaks through Save, a form sent
after the session ended leads to the sign-in page (the API keeps its JSON 401), and a bug in
a page handler shows the console's error page to a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import Response

from orchestrator.api import errors
from orchestrator.console.live import RunFeed
from orchestrator.console.pages.base import pages_router
from orchestrator.console.pages.experiments import SET_RUNS
from orchestrator.console.sessions import COOKIE, Sessions
from orchestrator.console.state import Console
from tests.console.conftest import Visit
from tests.console.world import World
from tests.helpers import MULTI_FILE_MANIFEST, Daemon, create_app, push_dir, unique, write_app

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def _send(visit: Visit, form: str) -> int:
    """Submit the form ``form`` (a selector) with its button; the status of the answer."""
    with visit.page.expect_navigation() as navigation:
        visit.page.locator(f"{form} [type=submit]").click()
    return int(navigation.value.status)


def _input_set(daemon: Daemon, app_id: str) -> str:
    set_id = unique("kept")
    with daemon.client() as api:
        r = api.post(
            f"/v1/applications/{app_id}/experiments/inputsets",
            json={"id": set_id, "name": set_id, "instance_id": "production", "maximum_runs": 2},
        )
        assert r.status_code in (200, 201), r.text
    return set_id


async def test_a_bug_in_a_page_shows_the_error_page_to_a_browser_and_json_to_a_script() -> None:
    """The 500 that the API's catch-all gives (JSON, internals hidden), as a page."""
    app = FastAPI()
    errors.install(app)
    sessions = Sessions("key")
    none = cast(Any, None)
    app.state.console = Console(services=none, sessions=sessions, search=none, feed=RunFeed())
    router = pages_router()

    @router.get("/apps/{app_id}/broken")
    async def broken(app_id: str) -> Response:
        raise ZeroDivisionError(app_id)

    app.include_router(router)
    started = sessions.login("key")
    assert started is not None
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://127.0.0.1:8123", cookies={COOKIE: started.token}
    ) as client:
        page = await client.get("/apps/a/broken", headers=HTML)
        assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
        assert "Something broke" in page.text and "internal error: ZeroDivisionError" in page.text
        assert "Sign out" in page.text  # the console's page, with its navigation
        script = await client.get("/apps/a/broken")
        assert script.status_code == 500
        assert script.json() == {"error": "internal error: ZeroDivisionError"}


def test_a_form_sent_by_a_script_without_a_session_still_gets_json(
    console_daemon: Daemon, world: World
) -> None:
    """Only a browser's form post is led to the sign-in page; the API, a script and a
    partial keep their JSON 401."""
    with httpx.Client(base_url=console_daemon.url) as anyone:
        api = anyone.post("/v1/applications", json={"id": "nope", "name": "x"}, headers=HTML)
        assert api.status_code == 401 and "error" in api.json()
        form = {"name": "x", "csrf": "x"}
        script = anyone.post(f"/apps/{world.knapsack}", data=form)
        assert script.status_code == 401
        assert script.json() == {"error": "sign in to the console first"}
        partial = anyone.post(
            f"/apps/{world.knapsack}", data=form, headers={**HTML, "hx-request": "true"}
        )
        assert partial.status_code == 401 and "error" in partial.json()


def test_edit_app_keeps_what_was_typed_when_refused(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}")
    page.locator("#edit-name").fill("A new name")
    page.locator("#edit-description").fill("first line\n" + "d" * 5000)
    page.locator("#default-instance").select_option("candidate")
    assert _send(signed_in, f"form[action='/apps/{world.knapsack}']") == 400
    assert "the limit is" in page.get_by_role("alert").inner_text()
    assert page.locator("#edit-name").input_value() == "A new name"
    assert page.locator("#edit-description").input_value() == "first line\n" + "d" * 5000
    assert page.locator("#default-instance").input_value() == "candidate"
    with signed_in.daemon.client() as api:
        assert api.get(f"/v1/applications/{world.knapsack}").json()["name"] == "Knapsack"


def test_promote_keeps_what_was_typed_when_refused(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}")
    page.locator("#promote-version").fill("BAD VERSION!")
    page.locator("#promote-name").fill("Release notes name")
    page.locator("#promote-instance").fill("staging-2")
    assert _send(signed_in, "form[action$='/promote']") == 400
    alert = page.get_by_role("alert")
    assert alert.count() == 1 and alert.is_visible()
    # said at the form, which is in view, not at the top of a long page
    assert alert.evaluate("el => el.closest('section').querySelector('#promote-title') !== null")
    assert page.locator("#promote-version").evaluate("el => el === document.activeElement")
    assert page.locator("#promote-version").input_value() == "BAD VERSION!"
    assert page.locator("#promote-name").input_value() == "Release notes name"
    assert page.locator("#promote-instance").input_value() == "staging-2"
    assert page.locator("#edit-name").input_value() == "Knapsack"  # the other form: stored


def test_start_experiment_keeps_what_was_typed_when_refused(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    set_id = _input_set(signed_in.daemon, world.knapsack)
    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    page.locator("#exp-set").select_option(set_id)
    page.get_by_role("checkbox", name="devint").check()
    page.get_by_role("checkbox", name="candidate").uncheck()
    page.locator("#exp-baseline").select_option("devint")
    page.locator("#exp-objective").select_option("max")
    page.locator("#exp-reps").fill("7")
    page.locator("#exp-id").fill("Bad ID with spaces!")
    page.locator("#exp-name").fill("My carefully typed name")
    assert _send(signed_in, "form[action$='/experiments']") == 400
    assert page.get_by_role("alert").is_visible()
    assert page.locator("#exp-set").input_value() == set_id
    assert page.get_by_role("checkbox", name="devint").is_checked()
    assert page.get_by_role("checkbox", name="production").is_checked()
    assert not page.get_by_role("checkbox", name="candidate").is_checked()
    assert page.locator("#exp-baseline").input_value() == "devint"
    assert page.locator("#exp-objective").input_value() == "max"
    assert page.locator("#exp-reps").input_value() == "7"
    assert page.locator("#exp-id").input_value() == "Bad ID with spaces!"
    assert page.locator("#exp-name").input_value() == "My carefully typed name"


def test_new_input_set_keeps_what_was_typed_when_refused(signed_in: Visit, world: World) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    page.locator("#set-instance").select_option("candidate")
    page.locator("#set-max").fill("33")
    page.locator("#set-id").fill("BAD ID!")
    page.locator("#set-name").fill("My set name")
    assert _send(signed_in, "form[action$='/input-sets']") == 400
    assert page.get_by_role("alert").is_visible()
    assert page.locator("#set-instance").input_value() == "candidate"
    assert page.locator("#set-max").input_value() == "33"
    assert page.locator("#set-id").input_value() == "BAD ID!"
    assert page.locator("#set-name").input_value() == "My set name"


@pytest.mark.parametrize("runs", ["99999999999999999999", "-1", "0", "1001", "1e3", "2.5"])
def test_input_set_runs_out_of_bounds_are_refused_with_the_form_kept(
    signed_in: Visit, world: World, runs: str
) -> None:
    """The field's own min and max are the handler's (one source); what the browser would
    stop, a script (or a page with its attributes edited) still cannot send."""
    page = signed_in.page
    set_id = unique("runs")
    signed_in.goto(f"/apps/{world.knapsack}/experiments")
    field = page.locator("#set-max")
    assert (field.get_attribute("min"), field.get_attribute("max")) == (
        str(SET_RUNS.low),
        str(SET_RUNS.high),
    )
    field.evaluate(
        "el => { el.removeAttribute('min'); el.removeAttribute('max'); el.type = 'text' }"
    )
    page.locator("#set-instance").select_option("production")
    field.fill(runs)
    page.locator("#set-id").fill(set_id)
    assert _send(signed_in, "form[action$='/input-sets']") == 400
    assert "runs must be" in page.get_by_role("alert").inner_text()
    assert page.locator("#set-id").input_value() == set_id
    assert page.locator("#set-instance").input_value() == "production"
    with signed_in.daemon.client() as api:
        got = api.get(f"/v1/applications/{world.knapsack}/experiments/inputsets/{set_id}")
        assert got.status_code == 404, got.text


def test_a_description_keeps_its_line_breaks_through_save(signed_in: Visit) -> None:
    page = signed_in.page
    app_id = unique("lines")
    url = f"/v1/applications/{app_id}"
    with signed_in.daemon.client() as api:
        r = api.post("/v1/applications", json={"id": app_id, "name": "Lines",
                                               "description": "para one\n\npara two"})  # fmt: skip
        assert r.status_code == 201, r.text
    signed_in.goto(f"/apps/{app_id}")
    assert page.locator("#edit-description").evaluate("el => el.tagName") == "TEXTAREA"
    assert page.locator("#edit-description").input_value() == "para one\n\npara two"
    page.get_by_role("button", name="Save").click()  # untouched
    page.get_by_text("Saved.").wait_for()
    with signed_in.daemon.client() as api:
        assert api.get(url).json()["description"] == "para one\n\npara two"
    page.locator("#edit-description").fill("first line\nsecond line")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    with signed_in.daemon.client() as api:
        assert api.get(url).json()["description"] == "first line\nsecond line"
    assert page.locator("#edit-description").input_value() == "first line\nsecond line"


def test_a_form_sent_after_signing_out_leads_to_the_sign_in_page_and_back(
    signed_in: Visit, world: World
) -> None:
    """Signed out in another tab (a restarted daemon forgets sessions the same way): the
    form's post lands on the sign-in page saying why, not on JSON; signing in there leads
    back to the form's page."""
    page = signed_in.page
    form_page = f"/apps/{world.knapsack}/runs/new"
    signed_in.goto(form_page)
    page.locator("#run-name").fill("typed a while ago")
    page.locator("#run-input").fill('{"items": []}')
    other = page.context.new_page()
    other.goto(signed_in.daemon.url + "/apps")
    other.get_by_role("button", name="Sign out").click()
    other.wait_for_url("**/login")
    other.close()
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url("**/login?**")
    assert page.get_by_role("heading", name="Sign in to the console").is_visible()
    assert "Your session ended" in page.get_by_role("alert").inner_text()
    signed_in.shot("session-ended-form")
    page.get_by_label("API key").fill(signed_in.daemon.key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{form_page}")
    assert page.get_by_role("heading", name="New run of Knapsack").is_visible()


def test_the_new_run_form_offers_no_text_box_for_a_folder_input(
    signed_in: Visit, tmp_path: Path
) -> None:
    """Pasting JSON for a multi-file app was refused with 'input archive is not a tar.gz'.
    The box shows for the instance picked only when its input is not a folder."""
    daemon = signed_in.daemon
    with daemon.client() as api:
        app_id = create_app(api, unique("folders"))
        push_dir(api, app_id, write_app(tmp_path / "json", "print('{}')"), tmp_path)
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        body = {"id": "json-one", "version_id": "v1"}
        assert api.post(f"/v1/applications/{app_id}/instances", json=body).is_success
        folder_app = write_app(tmp_path / "mf", "print('ok')", MULTI_FILE_MANIFEST)
        push_dir(api, app_id, folder_app, tmp_path)  # devint now takes a folder
    page = signed_in.page
    signed_in.goto(f"/apps/{app_id}/runs/new?ensemble=")
    assert page.get_by_label("Instance").input_value() == "devint"  # picked at first
    assert not page.locator("#run-input").is_visible()  # rendered so: no script needed
    assert page.locator("[data-folder-hint]").is_visible()
    page.get_by_label("Instance").select_option("json-one")
    assert page.locator("#run-input").is_visible()
    assert not page.locator("[data-folder-hint]").is_visible()
    page.get_by_label("Instance").select_option("devint")
    assert not page.locator("#run-input").is_visible()
