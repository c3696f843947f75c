"""Browser fixtures: Debian's chromium driven by Playwright, one browser per test file.

The browser is Debian's ``chromium`` (``/usr/bin/chromium``, or ``ORCH_CHROMIUM``):
Playwright's own download (``playwright install``) is never used. Each test gets a
fresh browser context (a fresh profile: no cookies, no cache) whose every request is
recorded; a request to anything but 127.0.0.1 is aborted and fails the test, and so
does a JavaScript error or a Content-Security-Policy violation on the page.
Screenshots go to ``test-artifacts/console/`` (git-ignored), or ``ORCH_SCREENSHOTS``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import ROOT, Daemon

CHROMIUM = os.environ.get("ORCH_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("ORCH_SCREENSHOTS", ROOT / "test-artifacts" / "console"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_HOSTS = {"127.0.0.1"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In each file, the browser tests run last. Playwright's sync API keeps an asyncio
    loop running in the main thread while a browser is open (one per file, see
    ``browser``), and an async test cannot start its own loop then. Files stay whole and
    in their order, so a pytest worker that takes a file (``--dist loadfile``) takes all
    of it; the sort is stable: the order within each group stays."""
    first: dict[Path, int] = {}
    for index, item in enumerate(items):
        first.setdefault(item.path, index)
    items.sort(key=lambda item: (first[item.path], "browser" in getattr(item, "fixturenames", ())))


def _chromium_missing() -> str | None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed (apt-get install -y chromium; .ci/run does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (scripts/setup installs the test extras)"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One browser per test file: closing it stops Playwright's loop, so an async test in
    the next file the same pytest worker runs can start its own (~1 s a file)."""
    missing = _chromium_missing()
    if missing is not None:
        pytest.skip(f"BROWSER TESTS SKIPPED: {missing}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            downloads_path=str(tmp_path_factory.mktemp("downloads")),
        )
        yield browser
        browser.close()


@pytest.fixture(scope="session")
def console_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon of the console tests' own (its runs page shows only their apps)."""
    d = Daemon.start(tmp_path_factory.mktemp("console-home"), config="concurrency = 2\n")
    yield d
    d.stop()


@dataclass
class Visit:
    """A browser page on the console, with what it requested and what went wrong."""

    page: Any
    daemon: Daemon
    requests: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def goto(self, path: str) -> Any:
        return self.page.goto(self.daemon.url + path)

    def login(self) -> None:
        """Open a one-time login link, as ``orch console`` does."""
        with self.daemon.client() as api:
            link = api.post("/v1/console/login-link").json()["url"]
        self.page.goto(link)
        self.page.wait_for_url("**/apps")

    def shot(self, name: str, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path


@pytest.fixture
def visit(browser: Any, console_daemon: Daemon) -> Iterator[Visit]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    seen = Visit(page, console_daemon)

    def guard(route: Any) -> None:
        url = route.request.url
        seen.requests.append(url)
        host = urlsplit(url).hostname
        if url.startswith(("data:", "blob:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            seen.outside.append(url)
            route.abort()

    context.route("**/*", guard)
    page.on("pageerror", lambda exc: seen.errors.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: (
            seen.errors.append(f"console {msg.type}: {msg.text}")
            if msg.type == "error" and "Failed to load resource" not in msg.text
            else None
        ),
    )
    page.on(
        "response",
        lambda r: (
            seen.errors.append(f"{r.status} for {r.url}")
            if "/static/" in r.url and r.status >= 400
            else None
        ),
    )
    yield seen
    context.close()
    assert seen.outside == [], f"requests left 127.0.0.1: {seen.outside}"
    assert seen.errors == [], f"errors in the page: {seen.errors}"


@pytest.fixture(scope="session")
def world(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.console.world import build_world

    with console_daemon.client() as api:
        return build_world(api, tmp_path_factory.mktemp("world"))


@pytest.fixture
def signed_in(visit: Visit) -> Visit:
    visit.login()
    return visit


def signed_in_client(daemon: Daemon) -> tuple[httpx.Client, str]:
    """A client that asks for HTML, as a browser does, signed in by a login link; and the
    session's CSRF token (read from a page's form)."""
    with daemon.client() as api:
        link = api.post("/v1/console/login-link").json()["url"]
    client = httpx.Client(base_url=daemon.url, headers={"accept": "text/html"})
    client.get(link.removeprefix(daemon.url))
    page = client.get("/apps").text
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, page
    return client, match.group(1)
