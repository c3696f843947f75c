"""Versions and instances made and deleted from the app page, in the browser: each change
through the service the API uses (the API sees it), each refusal in the page with the
service's own message and what was typed, each delete asked in the page first."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.console.conftest import Visit, signed_in_client
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, unique


@pytest.fixture
def pushed(console_daemon: Daemon, tmp_path: Path) -> str:
    """An app with the knapsack sample pushed (its app.yaml declares scale, an int)."""
    with console_daemon.client() as api:
        app_id = create_app(api, unique("reg"), name="Registry")
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    return app_id


@pytest.fixture
def api(console_daemon: Daemon) -> Iterator[httpx.Client]:
    with console_daemon.client() as client:
        yield client


def _send(visit: Visit, button: str) -> int:
    """Click a form's button; the status of the page that answers (after any redirect)."""
    with visit.page.expect_navigation() as navigation:
        visit.page.get_by_role("button", name=button, exact=True).click()
    return int(navigation.value.status)


def _refused_here(visit: Visit, app_id: str, status: int, expected: int, says: str) -> None:
    """Refused with the service's words, and the address bar back on the app page."""
    assert status == expected
    assert says in visit.page.get_by_role("alert").inner_text()
    assert visit.page.url == f"{visit.daemon.url}/apps/{app_id}"


def test_a_version_then_an_instance_made_in_the_page(
    signed_in: Visit, pushed: str, api: httpx.Client
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{pushed}")
    assert page.locator("#new-instance-version option").count() == 0
    assert page.get_by_role("button", name="Create instance").is_disabled()  # no version yet
    page.locator("#new-version-id").fill("v1")
    page.locator("#new-version-name").fill("First cut")
    page.locator("#new-version-description").fill("made in the console")
    assert _send(signed_in, "Create version") == 200
    assert page.url.endswith(f"/apps/{pushed}?version-created=v1")  # POST, redirect, GET
    assert "Version v1 created" in page.get_by_role("status").inner_text()
    assert "First cut" in page.locator("[data-version=v1]").inner_text()
    version = api.get(f"/v1/applications/{pushed}/versions/v1").json()
    app = api.get(f"/v1/applications/{pushed}").json()
    assert (version["name"], version["description"]) == ("First cut", "made in the console")
    assert version["executable"]["id"] == app["executable_id"]  # devint's current push

    assert page.locator("#new-instance-version").input_value() == "v1"  # the newest, offered
    page.locator("#new-instance-id").fill("blue")
    page.locator("#new-instance-name").fill("Blue team")
    page.locator("#new-instance-options").fill("scale=2\n# a comment\nduration = 3\nscal=4\n")
    assert _send(signed_in, "Create instance") == 200
    assert page.url.endswith(f"/apps/{pushed}?instance-created=blue")
    assert "Instance blue created" in page.get_by_role("status").inner_text()
    note = page.locator("[data-option-note]").inner_text()  # as the CLI notes it
    assert "option 'scal' is not declared" in note and "did you mean 'scale'?" in note
    row = page.locator("[data-instance=blue]").inner_text()
    assert "Blue team" in row and "v1" in row and "scale=2" in row
    instance = api.get(f"/v1/applications/{pushed}/instances/blue").json()
    assert (instance["name"], instance["version_id"]) == ("Blue team", "v1")
    assert instance["configuration"]["options"] == {"scale": "2", "duration": "3", "scal": "4"}
    signed_in.shot("app-registry-forms")


def test_a_refused_version_says_why_in_the_page_and_keeps_what_was_typed(
    signed_in: Visit, api: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in.page
    app_id = create_app(api, unique("bare"), name="Nothing pushed")
    signed_in.goto(f"/apps/{app_id}")
    page.locator("#new-version-id").fill("v1")
    page.locator("#new-version-name").fill("Kept name")
    status = _send(signed_in, "Create version")
    _refused_here(signed_in, app_id, status, 409, "has no executable yet: push one first")
    assert page.locator("#new-version-id").input_value() == "v1"
    assert page.locator("#new-version-name").input_value() == "Kept name"

    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
    signed_in.goto(f"/apps/{app_id}")
    page.locator("#new-version-id").fill("v1")
    status = _send(signed_in, "Create version")
    _refused_here(signed_in, app_id, status, 409, "version 'v1' already exists")
    page.locator("#new-version-id").fill("BAD ID!")
    status = _send(signed_in, "Create version")
    _refused_here(signed_in, app_id, status, 400, "must be 1-64 characters")
    assert page.locator("#new-version-id").input_value() == "BAD ID!"
    assert [v["id"] for v in api.get(f"/v1/applications/{app_id}/versions").json()] == ["v1"]


def _fill_instance(page: Any, instance_id: str, version: str, options: str) -> None:
    page.locator("#new-instance-id").fill(instance_id)
    page.locator("#new-instance-version").select_option(version)
    page.locator("#new-instance-name").fill("Typed name")
    page.locator("#new-instance-options").fill(options)


def test_a_refused_instance_says_why_in_the_page_and_keeps_what_was_typed(
    signed_in: Visit, pushed: str, api: httpx.Client
) -> None:
    page = signed_in.page
    base = f"/v1/applications/{pushed}"
    for version in ("v1", "v2"):
        assert api.post(f"{base}/versions", json={"id": version}).is_success
    taken = {"id": "taken", "version_id": "v1"}
    assert api.post(f"{base}/instances", json=taken).is_success
    signed_in.goto(f"/apps/{pushed}")
    cases = [  # (ID, version, options) → status, the service's words
        ("green", "v1", "scale=2\nnot an option line", 400, "options line 2: write name=value"),
        ("green", "v1", "scale=big", 400, "instance 'green' on version 'v1': "),
        ("taken", "v1", "", 409, "instance 'taken' already exists"),
        ("BAD ID!", "v1", "", 400, "instance ID 'BAD ID!' must be 1-64 characters"),
    ]
    for instance_id, version, options, expected, says in cases:
        _fill_instance(page, instance_id, version, options)
        _refused_here(signed_in, pushed, _send(signed_in, "Create instance"), expected, says)
        assert page.locator("#new-instance-id").input_value() == instance_id
        assert page.locator("#new-instance-version").input_value() == version
        assert page.locator("#new-instance-name").input_value() == "Typed name"
        assert page.locator("#new-instance-options").input_value() == options

    _fill_instance(page, "green", "v2", "scale=2")
    assert api.delete(f"{base}/versions/v2").status_code == 204  # gone while the form was open
    status = _send(signed_in, "Create instance")
    _refused_here(signed_in, pushed, status, 404, "version 'v2' not found")
    assert page.locator("#new-instance-version").input_value() == "v2"  # as it was sent
    ids = [i["id"] for i in api.get(f"{base}/instances").json()]
    assert "green" not in ids and "BAD ID!" not in ids


def _ask_to_delete(visit: Visit, app_id: str, kind: str, item_id: str) -> None:
    """The row's link: the question in the page, nothing deleted yet."""
    visit.page.get_by_role("link", name=f"Delete {kind} {item_id}", exact=True).click()
    visit.page.wait_for_url(f"**/apps/{app_id}?delete-{kind}={item_id}#confirm")
    assert visit.page.locator(f"[data-confirm={kind}]").is_visible()


def test_a_delete_is_asked_first_and_the_services_refusal_is_shown_as_it_says_it(
    signed_in: Visit, pushed: str, api: httpx.Client
) -> None:
    page = signed_in.page
    base = f"/v1/applications/{pushed}"
    assert api.post(f"{base}/versions", json={"id": "v1"}).is_success
    assert api.post(f"{base}/instances", json={"id": "held", "version_id": "v1"}).is_success
    assert api.put(f"{base}/instances/held/lock", json={"locked": True}).is_success
    signed_in.goto(f"/apps/{pushed}")

    _ask_to_delete(signed_in, pushed, "instance", "held")
    page.get_by_role("link", name="Keep it").click()
    page.wait_for_url(f"**/apps/{pushed}")
    assert api.get(f"{base}/instances/held").is_success  # asked, kept

    _ask_to_delete(signed_in, pushed, "instance", "held")
    signed_in.shot("app-delete-question", full_page=False)
    status = _send(signed_in, "Delete instance held")
    said = api.delete(f"{base}/instances/held").json()["error"]  # what the API says
    _refused_here(signed_in, pushed, status, 409, "is locked and cannot be deleted")
    assert page.locator("#delete-error").inner_text() == said
    signed_in.shot("app-delete-refused", full_page=False)

    _ask_to_delete(signed_in, pushed, "version", "v1")
    status = _send(signed_in, "Delete version v1")
    said = api.delete(f"{base}/versions/v1").json()["error"]
    _refused_here(signed_in, pushed, status, 409, "is used by instance(s) held")
    assert page.locator("#delete-error").inner_text() == said

    assert api.put(f"{base}/instances/held/lock", json={"locked": False}).is_success
    signed_in.goto(f"/apps/{pushed}")
    _ask_to_delete(signed_in, pushed, "instance", "held")
    assert _send(signed_in, "Delete instance held") == 200
    assert "Instance held deleted" in page.get_by_role("status").inner_text()
    assert page.locator("[data-instance=held]").count() == 0
    assert api.get(f"{base}/instances/held").status_code == 404
    _ask_to_delete(signed_in, pushed, "version", "v1")
    assert _send(signed_in, "Delete version v1") == 200
    assert "Version v1 deleted" in page.get_by_role("status").inner_text()
    assert api.get(f"{base}/versions/v1").status_code == 404


def test_the_forms_work_without_javascript(
    browser: Any, console_daemon: Daemon, pushed: str, api: httpx.Client
) -> None:
    """Made and deleted with scripts off: plain forms, a link and a button, no dialog."""
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(api.post("/v1/console/login-link").json()["url"])
        page.wait_for_url("**/apps")  # the sign-in page's meta refresh: no script either
        page.goto(f"{console_daemon.url}/apps/{pushed}")
        page.locator("#new-version-id").fill("nojs")
        page.get_by_role("button", name="Create version").click()
        page.wait_for_url("**?version-created=nojs")
        page.get_by_role("link", name="Delete version nojs").click()
        page.get_by_role("button", name="Delete version nojs").click()
        page.wait_for_url("**?version-deleted=nojs")
    finally:
        context.close()
    assert api.get(f"/v1/applications/{pushed}/versions/nojs").status_code == 404


def test_a_delete_posted_without_the_confirmation_only_asks(
    console_daemon: Daemon, pushed: str, api: httpx.Client
) -> None:
    """The CLI's --confirm: a post without ``confirm=yes`` deletes nothing and is led to
    the question."""
    assert api.post(f"/v1/applications/{pushed}/versions", json={"id": "v1"}).is_success
    client, csrf = signed_in_client(console_daemon)
    try:
        r = client.post(f"/apps/{pushed}/versions/v1/delete", data={"csrf": csrf})
        assert r.status_code == 303
        assert r.headers["location"] == f"/apps/{pushed}?delete-version=v1#confirm"
        assert api.get(f"/v1/applications/{pushed}/versions/v1").is_success
        asked = client.get(r.headers["location"]).text
        assert 'name="confirm" value="yes"' in asked and "Delete version v1?" in asked
    finally:
        client.close()
