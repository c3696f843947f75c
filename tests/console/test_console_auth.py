"""Getting in and staying out: the login link, the key form, no data without a session,
CSRF on every change, and the host the console answers to."""

from __future__ import annotations

import httpx
import pytest

from tests.console.conftest import Visit, signed_in_client
from tests.helpers import Daemon, create_app

PAGES = ("/apps", "/runs", "/apps/{app}", "/apps/{app}/runs", "/apps/{app}/runs/new",
         "/apps/{app}/experiments", "/apps/{app}/switchback-tests/any",
         "/apps/{app}/shadow-tests/any")  # fmt: skip


def test_login_by_link_sets_a_strict_httponly_cookie_and_the_link_works_once(
    visit: Visit,
) -> None:
    with visit.daemon.client() as api:
        link = api.post("/v1/console/login-link").json()["url"]
    assert link.startswith(visit.daemon.url + "/login?token=")
    visit.page.goto(link)
    visit.page.wait_for_url("**/apps")
    assert visit.page.get_by_role("heading", name="Apps", exact=True).is_visible()
    (cookie,) = visit.page.context.cookies()
    assert cookie["name"] == "orch_session"
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    visit.shot("apps-after-login-link")

    visit.page.context.clear_cookies()
    answer = visit.page.goto(link)  # the same link again
    assert answer.status == 401
    assert "already used or has expired" in visit.page.content()


def test_login_with_the_api_key_lands_on_the_page_asked_for(visit: Visit) -> None:
    visit.goto("/runs?status=failed")
    visit.page.wait_for_url(lambda url: "/login?next=" in url)
    visit.shot("login")
    visit.page.get_by_label("API key").fill("not-the-key")
    visit.page.get_by_role("button", name="Sign in").click()
    assert "not this daemon's API key" in visit.page.content()
    visit.page.get_by_label("API key").fill(visit.daemon.key)
    visit.page.get_by_role("button", name="Sign in").click()
    visit.page.wait_for_url(lambda url: url.endswith("/runs?status=failed"))
    assert visit.page.get_by_label("Status").input_value() == "failed"


def test_every_page_refuses_without_a_session_and_shows_no_data(
    visit: Visit, console_daemon: Daemon
) -> None:
    with console_daemon.client() as api:
        app_id = create_app(api, name="Secret app name")
    for template in PAGES:
        path = template.format(app=app_id)
        visit.goto(path)
        assert "/login?next=" in visit.page.url, path
        assert "Secret app name" not in visit.page.content(), path
        assert app_id not in visit.page.inner_text("body"), path  # only in the way back
    # partials, streams and downloads answer 401 to a client without the cookie
    with httpx.Client(base_url=console_daemon.url) as anonymous:
        for path in ("/runs/stream", f"/apps/{app_id}/executable"):
            assert anonymous.get(path).status_code == 401, path


def test_sign_out_ends_the_session(visit: Visit) -> None:
    visit.login()
    visit.page.get_by_role("button", name="Sign out").click()
    visit.page.wait_for_url("**/login")
    visit.goto("/apps")
    assert "/login?next=" in visit.page.url


def test_changes_need_the_csrf_token_and_the_console_origin(console_daemon: Daemon) -> None:
    client, csrf = signed_in_client(console_daemon)
    try:
        form = {"id": "csrf-probe", "name": "x"}
        assert client.post("/apps", data=form).status_code == 403
        assert client.post("/apps", data={**form, "csrf": "wrong"}).status_code == 403
        evil = {"origin": "http://evil.example"}
        assert client.post("/apps", data={**form, "csrf": csrf}, headers=evil).status_code == 403
        with console_daemon.client() as api:
            assert api.get("/v1/applications/csrf-probe").status_code == 404  # nothing made
        done = client.post("/apps", data={**form, "csrf": csrf}, follow_redirects=False)
        assert done.status_code == 303 and done.headers["location"] == "/apps/csrf-probe"
    finally:
        client.close()


def test_signing_in_with_the_key_from_another_site_is_refused(console_daemon: Daemon) -> None:
    """Every other change checked the origin; the key's sign-in form took any (a page
    elsewhere could sign a browser in to the session it chose)."""
    form = {"api_key": console_daemon.key, "next": "/apps"}
    with httpx.Client(base_url=console_daemon.url, follow_redirects=False) as client:
        evil = client.post("/login", data=form, headers={"origin": "http://evil.example"})
        assert evil.status_code == 403 and "set-cookie" not in evil.headers
        own = client.post("/login", data=form, headers={"origin": console_daemon.url})
        assert own.status_code == 303 and "set-cookie" in own.headers


@pytest.mark.parametrize("host", ["evil.example", "127.0.0.1:1", "localhost.evil.example"])
def test_the_console_answers_on_its_own_address_only(console_daemon: Daemon, host: str) -> None:
    """A page served under another name (DNS rebinding) gets nothing, not even a login form."""
    with httpx.Client(base_url=console_daemon.url, headers={"host": host}) as client:
        for path in ("/login", "/apps", "/docs"):
            assert client.get(path).status_code == 421, (host, path)


def test_v1_still_needs_the_bearer_key_and_ignores_the_session(console_daemon: Daemon) -> None:
    client, _ = signed_in_client(console_daemon)
    try:
        assert client.get("/v1/applications").status_code == 401
        assert client.post("/v1/console/login-link").status_code == 401
    finally:
        client.close()
