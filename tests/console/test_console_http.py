"""The console's answers over plain HTTP, as a browser gets them: error pages for wrong
addresses (while the API keeps its JSON), where a login link may lead, download names, and
what pages say about times, logs, unknown apps and malformed gate conditions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest

from tests.console.conftest import signed_in_client
from tests.console.world import World
from tests.helpers import Daemon

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


@pytest.fixture
def browser_like(console_daemon: Daemon) -> Iterator[httpx.Client]:
    client, _ = signed_in_client(console_daemon)
    try:
        yield client
    finally:
        client.close()


def _early_run(daemon: Daemon, app_id: str) -> str:
    """The oldest run of the app's newest page: one the world made, finished."""
    with daemon.client() as api:
        return str(api.get(f"/v1/applications/{app_id}/runs").json()["runs"][-1]["id"])


def test_a_wrong_address_shows_the_console_error_page_with_its_status(
    browser_like: httpx.Client, world: World, console_daemon: Daemon
) -> None:
    run_id = _early_run(console_daemon, world.knapsack)
    for path in ("/nonexistent", f"/apps/{world.knapsack}/runs/{run_id}/nope"):
        r = browser_like.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html"), path
        assert "Not found" in r.text and f"there is no page at {path}" in r.text
        assert "Sign out" in r.text  # the signed-in page, with the navigation
    for path in (f"/apps/{world.knapsack}/promote", "/logout"):  # the addresses of forms
        r = browser_like.get(path)
        assert r.status_code == 405 and r.headers["allow"] == "POST", path
        assert r.headers["content-type"].startswith("text/html"), path
        assert "not a page to open" in r.text
    signed_out = httpx.get(console_daemon.url + "/nonexistent", headers=HTML)
    assert signed_out.status_code == 404 and "Not found" in signed_out.text
    assert "Sign out" not in signed_out.text


def test_the_api_keeps_its_json_errors_whoever_asks(console_daemon: Daemon) -> None:
    key = {"authorization": f"Bearer {console_daemon.key}"}
    with httpx.Client(base_url=console_daemon.url, headers={**HTML, **key}) as browser:
        for method, path, status in (("GET", "/v1/nope", 404), ("GET", "/uploads/x", 405),
                                     ("GET", "/downloads/x", 404), ("POST", "/healthz", 405),
                                     ("POST", "/openapi.json", 405)):  # fmt: skip
            r = browser.request(method, path)
            assert r.status_code == status, path
            assert r.headers["content-type"] == "application/json", path
    r = httpx.get(console_daemon.url + "/v1/nope", headers=HTML)  # no key: refused first
    assert r.status_code == 401 and r.headers["content-type"] == "application/json"
    r = httpx.get(console_daemon.url + "/nonexistent")  # a client that does not ask for HTML
    assert r.status_code == 404 and r.json() == {"error": "no such route"}
    r = httpx.get(console_daemon.url + "/logout")
    assert r.status_code == 405 and r.json()["error"] == "method not allowed here; use POST"


def test_the_login_link_never_leads_off_the_console(console_daemon: Daemon) -> None:
    """``/<TAB>/evil.example/`` is ``//evil.example/`` to a browser's URL parser."""
    for target in ("/%09/evil.example/", "/%0d%0a/evil.example/", "/%5Cevil.example/"):
        with console_daemon.client() as api:
            link = api.post("/v1/console/login-link").json()["url"]
        r = httpx.get(f"{link}&next={target}")
        assert r.status_code == 200, target
        assert '<meta http-equiv="refresh" content="0;url=/apps">' in r.text, target


def test_a_blank_key_is_asked_for_and_a_wrong_one_named(console_daemon: Daemon) -> None:
    for key, said in (
        ("  ", "Enter the API key"),
        ("nope", "That is not this daemon&#39;s API key"),
    ):
        r = httpx.post(f"{console_daemon.url}/login", data={"api_key": key}, headers=HTML)
        assert r.status_code == 401 and said in r.text, r.text


def test_a_runs_filter_that_ends_before_it_starts_says_so(browser_like: httpx.Client) -> None:
    r = browser_like.get("/runs", params={"since": "2026-01-02T00:00", "until": "2026-01-01T00:00"})
    assert r.status_code == 400
    assert "since (2026-01-02T00:00) is after until (2026-01-01T00:00)" in r.text


def test_runs_of_an_unknown_app_say_that_the_app_is_unknown(browser_like: httpx.Client) -> None:
    r = browser_like.get("/runs", params={"app": "nope"})
    assert r.status_code == 404
    assert "unknown app &#39;nope&#39;" in r.text
    assert "No runs match." not in r.text and "data-live-runs" not in r.text


def test_downloads_of_json_runs_are_named_json(
    browser_like: httpx.Client, world: World, console_daemon: Daemon
) -> None:
    run_id = _early_run(console_daemon, world.knapsack)
    for kind in ("input", "output"):
        r = browser_like.get(f"/apps/{world.knapsack}/runs/{run_id}/{kind}")
        assert r.status_code == 200
        assert r.headers["content-disposition"] == f'attachment; filename="{run_id}-{kind}.json"'
        json.loads(r.content)


def test_the_run_page_says_its_times_and_shows_unicode_and_a_log_without_escapes(
    browser_like: httpx.Client, world: World, console_daemon: Daemon
) -> None:
    run_id = _early_run(console_daemon, world.quirky)
    r = browser_like.get(f"/apps/{world.quirky}/runs/{run_id}")
    assert r.status_code == 200
    for fact in ("Created", "Started", "Ended"):  # local time, as the CLI's
        assert f"<dt>{fact}</dt>" in r.text
    assert "Zürich" in r.text and "\\u00fc" not in r.text  # nested, in a table cell
    assert "red alert then plain" in r.text and "\x1b" not in r.text
    log = browser_like.get(f"/apps/{world.quirky}/runs/{run_id}/log")
    assert b"\x1b[1;31mred alert\x1b[0m" in log.content  # the download is the file as written


def test_the_live_log_stream_sends_no_escapes(
    browser_like: httpx.Client, world: World, console_daemon: Daemon
) -> None:
    """From offset 0, a finished run's stream sends its panels, the whole log, then ends."""
    run_id = _early_run(console_daemon, world.quirky)
    stream = browser_like.get(
        f"/apps/{world.quirky}/runs/{run_id}/stream", params={"offset": 0, "status": "queued"}
    )
    events = dict(re.findall(r"event: (\w+)\ndata: (.*)\n", stream.text))
    assert json.loads(events["log"])["text"] == "red alert then plain\n"
    assert "end" in events


def test_the_promote_form_says_an_empty_version_id_is_generated(
    browser_like: httpx.Client, world: World
) -> None:
    page = browser_like.get(f"/apps/{world.knapsack}").text
    field = re.search(r'<input id="promote-version"[^>]*>', page)
    assert field is not None and 'placeholder="generated if empty"' in field.group(0)


def test_the_experiment_page_says_when_and_explains_a_bad_gate_in_its_own_words(
    browser_like: httpx.Client, world: World, console_daemon: Daemon
) -> None:
    with console_daemon.client() as api:
        base = f"/v1/applications/{world.quirky}/experiments"
        made = {"id": "utc-set", "instance_id": "devint", "maximum_runs": 1}
        r = api.post(f"{base}/inputsets", json=made)
        assert r.status_code == 201, r.text
        batch = {"id": "utc-exp", "input_set_id": "utc-set", "instance_ids": ["devint"],
                 "baseline": "devint"}  # fmt: skip
        r = api.post(f"{base}/batch", json=batch)
        assert r.status_code == 201, r.text
    page = browser_like.get(f"/apps/{world.quirky}/experiments/utc-exp").text
    assert re.search(r"started <time [^>]+>[0-9: -]+</time>", page), page
    bad = browser_like.get(
        f"/apps/{world.quirky}/experiments/utc-exp", params={"gate": "result.value >> 3"}
    )
    assert "malformed condition" in bad.text and "--fail-if" not in bad.text
    input_set = browser_like.get(f"/apps/{world.quirky}/input-sets/utc-set").text
    assert re.search(r"created <time [^>]+>[0-9: -]+</time>", input_set)
