"""``orch console``: the link it prints or opens, used once, landing on the page asked for."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.helpers import Daemon


def orch(
    daemon: Daemon, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator", *args, "--home", str(daemon.home)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_no_browser_prints_a_one_time_link_as_the_last_line(console_daemon: Daemon) -> None:
    done = orch(console_daemon, "console", "--no-browser")
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert link.startswith(f"{console_daemon.url}/login?token=")
    with httpx.Client() as browser:
        first = browser.get(link)
        assert first.status_code == 200 and "orch_session" in first.cookies
        assert browser.get(f"{console_daemon.url}/apps", follow_redirects=False).status_code == 200
    with httpx.Client() as other:
        assert other.get(link).status_code == 401  # used


def test_a_page_argument_lands_there(console_daemon: Daemon) -> None:
    done = orch(console_daemon, "console", "/runs?status=failed", "--no-browser")
    link = done.stdout.strip().splitlines()[-1]
    with httpx.Client() as browser:
        entering = browser.get(link).text
    assert 'content="0;url=/runs?status=failed"' in entering


def test_it_opens_the_browser_the_environment_names(console_daemon: Daemon, tmp_path: Path) -> None:
    """The one stand-in: no desktop browser here, so BROWSER names a script that records
    the URL it is given (Python's webbrowser module honours BROWSER)."""
    opened = tmp_path / "opened"
    fake = tmp_path / "fake-browser"
    fake.write_text(f'#!/bin/sh\necho "$1" > {opened}\n')
    fake.chmod(0o755)
    done = orch(console_daemon, "console", env={"BROWSER": str(fake), "DISPLAY": ""})
    assert done.returncode == 0, done.stderr
    assert opened.read_text().startswith(f"{console_daemon.url}/login?token=")
    assert "opened the console" in done.stderr


def test_refuses_a_page_that_is_not_a_console_path(console_daemon: Daemon) -> None:
    done = orch(console_daemon, "console", "https://evil.example/", "--no-browser")
    assert done.returncode != 0 and "must be a path" in done.stderr


def test_without_a_daemon_it_says_how_to_start_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator", "console", "--no-browser", "--home", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0 and "orch daemon start" in done.stderr
