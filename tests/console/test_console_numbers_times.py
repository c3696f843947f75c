"""The console says what the CLI says: a run's numbers, limits and times read the same in
both, times in the machine's local zone, and a daemon serves the templates it started with.

One daemon for the file, in ``America/New_York`` (``TZ``), and the CLI in the same zone:
in UTC a local time and a stored one would agree by accident. The daemon runs from a copy
of the source tree, so a test may change a template on disk under it.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.cli_run import orch
from tests.console.conftest import Visit, signed_in_client
from tests.helpers import ROOT, Daemon, create_app, push_dir, run_and_wait, unique, write_app

ZONE = "America/New_York"
TZ = {"TZ": ZONE}
COPY_MARK = "<!-- served from the test's copy -->"

COST = """
import json, sys
sys.stdin.read()
json.dump({"solutions": [{}], "statistics": {"result": {"value": 1234567.89},
           "custom": {"distance_m": 2500000.5, "wall_s": 0.00353837}}}, sys.stdout)
"""
"""A model whose objective is a large float, as a routing cost or a distance in metres is."""

LIMITS = {"timeout_seconds": 3600, "disk_mb": 10240, "memory_mb": 1536, "output_mb": 256}


@dataclass
class Zoned:
    daemon: Daemon
    source: Path
    app_id: str
    run: dict[str, Any]
    client: httpx.Client

    @property
    def run_id(self) -> str:
        return str(self.run["id"])

    def page(self, path: str) -> str:
        r = self.client.get(path)
        assert r.status_code == 200, r.text
        return r.text


@pytest.fixture(scope="module")
def zoned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zoned]:
    """A daemon in New York time, run from a copy of ``orchestrator/`` (its compiled files
    kept, so it starts as fast), with one finished run of the ``COST`` model."""
    tmp = tmp_path_factory.mktemp("zoned")
    source = tmp / "src"
    shutil.copytree(ROOT / "orchestrator", source / "orchestrator")
    base = source / "orchestrator" / "console" / "templates" / "base.html"
    base.write_text(base.read_text().replace("</body>", f"{COPY_MARK}</body>"))
    daemon = Daemon.start(tmp / "home", env=TZ, source=source)
    try:
        with daemon.client() as api:
            app_id = create_app(api, unique("cost"), name="Cost")
            push_dir(api, app_id, write_app(tmp / "cost", COST), tmp)
            body = {"input": {}, "options": {}, "configuration": {"limits": LIMITS}}
            run = run_and_wait(api, app_id, body)
        assert run["metadata"]["status_v2"] == "succeeded", run
        client, _ = signed_in_client(daemon)
        yield Zoned(daemon, source, app_id, run, client)
        client.close()
    finally:
        daemon.stop()


def _cli(zoned: Zoned, command: str) -> str:
    return orch(zoned.daemon, command, env=TZ).stdout


def _record(text: str) -> dict[str, str]:
    """``orch app run metadata``'s two columns: label → value."""
    pairs = (re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in text.splitlines())
    return {p[0]: p[1] for p in pairs if len(p) == 2}


def _statistic(page: str, name: str) -> str:
    row = re.search(rf'<td class="mono wrap">{re.escape(name)}</td><td[^>]*>([^<]*)</td>', page)
    assert row, page
    return html.unescape(row.group(1))


def test_a_large_float_statistic_reads_as_the_cli_prints_it(zoned: Zoned) -> None:
    page = zoned.page(f"/apps/{zoned.app_id}/runs/{zoned.run_id}")
    shown = _statistic(page, "result.value")
    assert shown == "1,234,567.89", shown
    cli = _record(_cli(zoned, f"app run metadata -a {zoned.app_id} -r {zoned.run_id}"))
    assert cli["value"] == shown.replace(",", "") == "1234567.89"
    assert _statistic(page, "custom.distance_m") == "2,500,000.5"
    assert _statistic(page, "custom.wall_s") == "0.003538"  # 4 digits, as the CLI's tables


def test_a_runs_created_time_is_the_clis_local_time(zoned: Zoned) -> None:
    listing = _cli(zoned, f"app run list -a {zoned.app_id}")
    row = next(line for line in listing.splitlines() if zoned.run_id in line)
    cli_time = re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row)
    assert cli_time, row
    page = zoned.page(f"/apps/{zoned.app_id}/runs/{zoned.run_id}")
    created = re.search(
        r'<dt>Created[^<]*</dt><dd><time datetime="([^"]+)"[^>]*>([^<]+)</time>', page
    )
    assert created, page
    stored = zoned.run["metadata"]["created_at"]
    assert created.group(1) == stored and stored.endswith("Z")  # machines still get UTC
    assert created.group(2) == cli_time.group(0)
    utc = stored[:19].replace("T", " ")
    assert created.group(2) != utc  # New York is never at UTC's hour


def _minute(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment.replace(second=0, microsecond=0)


def _listed(zoned: Zoned, **query: str) -> bool:
    r = zoned.client.get(f"/apps/{zoned.app_id}/runs", params=query)
    assert r.status_code == 200, r.text
    return zoned.run_id in r.text


def test_the_date_filters_take_local_time(zoned: Zoned) -> None:
    minute = _minute(zoned.run["metadata"]["created_at"]).astimezone(ZoneInfo(ZONE))
    local = minute.strftime("%Y-%m-%dT%H:%M")
    later = (minute + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M")
    assert _listed(zoned, until=local) and _listed(zoned, since=local)
    assert not _listed(zoned, since=later)


def test_a_shared_link_in_utc_filters_the_same_and_shows_in_the_field(
    zoned: Zoned, browser: Any
) -> None:
    created = zoned.run["metadata"]["created_at"]
    since = _minute(created).strftime("%Y-%m-%dT%H:%M:%SZ")
    local = _minute(created).astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        visit = Visit(context.new_page(), zoned.daemon)
        visit.login()
        visit.goto(f"/apps/{zoned.app_id}/runs?since={since}")
        page = visit.page
        assert page.get_by_label("Created from").input_value() == local
        assert page.locator(f"text={zoned.run_id}").count() >= 1
        page.get_by_role("button", name="Filter").click()  # sent again, as the field says
        page.wait_for_url(re.compile(r"since=" + re.escape(local.replace(":", "%3A"))))
        assert page.locator(f"text={zoned.run_id}").count() >= 1
        assert page.get_by_label("Created from").input_value() == local
    finally:
        context.close()


def test_limits_read_in_words_as_the_cli_shows_them(zoned: Zoned) -> None:
    page = zoned.page(f"/apps/{zoned.app_id}/runs/{zoned.run_id}")
    shown = dict(re.findall(r'<dt>([^<]+)</dt><dd data-limit="[a-z_]+">([^<]+)</dd>', page))
    expected = {"timeout": "1 h", "disk": "10 GiB", "memory": "1.5 GiB", "output": "256 MiB"}
    assert {k: shown.get(k) for k in expected} == expected, shown
    assert "timeout_seconds" not in re.sub(r'data-limit="[^"]*"', "", page)
    cli = _record(_cli(zoned, f"app run metadata -a {zoned.app_id} -r {zoned.run_id}"))
    said = dict(part.split(" ", 1) for part in cli["limits"].split(", "))
    assert {k: said.get(k) for k in expected} == expected, cli["limits"]


def test_a_template_changed_on_disk_under_a_running_daemon_is_not_served(zoned: Zoned) -> None:
    first = zoned.page("/apps")
    assert COPY_MARK in first  # the daemon serves the copy, which this test changes
    templates = zoned.source / "orchestrator" / "console" / "templates"
    for name in ("apps.html", "error.html", "base.html"):  # error.html: not rendered yet
        (templates / name).write_text("changed on disk {{ no_such_name }}")
    again = zoned.client.get("/apps")
    missing = zoned.client.get("/no-such-page")
    assert again.status_code == 200 and COPY_MARK in again.text, again.text
    assert missing.status_code == 404 and "Not found" in missing.text, missing.text
    assert "changed on disk" not in again.text + missing.text
