"""The run log, live: a model writing megabytes leaves the page holding only the log's last
``LOG_TAIL_BYTES`` (as a freshly opened page does), with the hint saying how much comes
before; the stream itself skips to the tail instead of sending what the page would drop.
Bidirectional controls in a log are shown escaped, on the first render and live alike."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.console.runview import LOG_TAIL_BYTES
from orchestrator.console.viewers import readable_log
from tests.console.conftest import Visit, signed_in_client
from tests.helpers import Daemon, create_app, push_dir, unique, wait_run, write_app

EXPECT_TIMEOUT = 60_000
LINE = "x" * 99

WRITER = f"""
import json, os, sys, time
data = json.load(sys.stdin)
print("ready \\u202egnp.exe", file=sys.stderr, flush=True)
while data.get("wait") and not os.path.exists("go"):  # the test opens the page first
    time.sleep(0.05)
for n in range(data.get("flood", 0)):  # all at once: far more than the page keeps
    sys.stderr.write(f"{{n:07d}} {LINE}\\n")
sys.stderr.flush()
for burst in range(data.get("bursts", 0)):  # a page's worth at a time: the page trims
    time.sleep(0.3)
    for n in range(450):
        sys.stderr.write(f"burst {{burst}} {{n:04d}} {LINE}\\n")
    sys.stderr.flush()
print("after \\u2067abc\\u2069 the end", file=sys.stderr, flush=True)
print("{{}}")
"""
"""A model that logs as much as its input says, once the test lets it (a file ``go`` in its
working directory), with bidirectional controls in its first and last lines."""


@pytest.fixture(scope="module")
def writer(console_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("writer")
    with console_daemon.client() as api:
        app_id = create_app(api, unique("logs"), name="Log writer")
        push_dir(api, app_id, write_app(tmp / "app", WRITER), tmp)
    return app_id


def _start(daemon: Daemon, app_id: str, **data: object) -> str:
    with daemon.client() as api:
        r = api.post(f"/v1/applications/{app_id}/runs", json={"input": data})
        assert r.status_code == 201, r.text
        return str(r.json()["run_id"])


def _let_go(daemon: Daemon, run_id: str) -> None:
    (Path(daemon.home) / "runs" / run_id / "work" / "go").touch()


def _events(stream: Iterator[str]) -> Iterator[tuple[str, dict[str, object]]]:
    kind = ""
    for line in stream:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield kind, json.loads(line.removeprefix("data: "))


def test_bidi_controls_in_a_log_are_shown_escaped() -> None:
    shown = readable_log("rtl \u202egnp.exe \u200e\u200f\u202a\u2066\u2069 \x1b[31mred")
    assert shown == "rtl <U+202E>gnp.exe <U+200E><U+200F><U+202A><U+2066><U+2069> red"


def test_the_stream_of_a_flooded_log_skips_to_its_tail(console_daemon: Daemon, writer: str) -> None:
    """From offset 0 of a finished run's 3 MB log the stream sends one ``reset`` with the
    tail and the bytes it skipped, not the megabytes (which it did, 1 MiB a read)."""
    run_id = _start(console_daemon, writer, flood=30_000)
    with console_daemon.client() as api:
        wait_run(api, writer, run_id)
    raw = (Path(console_daemon.home) / "runs" / run_id / "stderr").read_bytes()
    client, _ = signed_in_client(console_daemon)
    url = f"/apps/{writer}/runs/{run_id}/stream?offset=0&status=running"
    logs = []
    try:
        with client.stream("GET", url, timeout=30) as response:
            for kind, data in _events(response.iter_lines()):
                if kind == "log":
                    logs.append(data)
                if kind == "end":
                    break
    finally:
        client.close()
    text = "".join(str(data["text"]) for data in logs)
    assert len(text) <= LOG_TAIL_BYTES
    assert logs[0]["reset"] is True and len(logs) == 1
    skipped = int(str(logs[0]["skipped"]))
    assert 0 < len(raw) - skipped <= LOG_TAIL_BYTES and raw[skipped - 1 : skipped] == b"\n"
    assert re.match(r"\d{7} x+\n", text)  # begins at a whole line
    assert text.endswith(" the end\n")


def test_a_live_log_keeps_only_its_tail_and_says_how_much_came_before(
    signed_in: Visit, writer: str
) -> None:
    page, daemon = signed_in.page, signed_in.daemon
    run_id = _start(daemon, writer, wait=True, flood=30_000, bursts=6)
    signed_in.goto(f"/apps/{writer}/runs/{run_id}")
    log, hint = page.locator("#log"), page.locator("[data-log-hint]")
    log.get_by_text("ready").wait_for(timeout=EXPECT_TIMEOUT)  # the model waits for "go"
    assert log.get_attribute("data-log-cap") == str(LOG_TAIL_BYTES)  # the server's cap
    assert hint.is_hidden()
    _let_go(daemon, run_id)
    page.locator("[data-live-run][data-ended=true]").wait_for(timeout=EXPECT_TIMEOUT)
    text = log.text_content() or ""
    assert len(text) <= LOG_TAIL_BYTES + 1024, len(text)
    assert text.endswith(" the end\n")
    assert "burst 5 0449" in text and re.match(r"(burst \d )?\d{4,7} x+\n", text)
    assert hint.is_visible()
    skipped = re.fullmatch(r"The first (\d+\.\d) MiB are not shown here: .*", hint.inner_text())
    assert skipped and float(skipped[1]) >= 3.0, hint.inner_text()
    signed_in.shot("run-live-log-capped")


def test_bidi_controls_show_escaped_on_the_page_and_live(signed_in: Visit, writer: str) -> None:
    page, daemon = signed_in.page, signed_in.daemon
    run_id = _start(daemon, writer, wait=True)
    signed_in.goto(f"/apps/{writer}/runs/{run_id}")
    log = page.locator("#log")
    log.get_by_text("ready").wait_for(timeout=EXPECT_TIMEOUT)
    page.reload()
    assert "ready <U+202E>gnp.exe" in log.inner_text()  # the first render
    _let_go(daemon, run_id)
    page.locator("[data-live-run][data-ended=true]").wait_for(timeout=EXPECT_TIMEOUT)
    text = log.text_content() or ""
    assert "after <U+2067>abc<U+2069> the end" in text  # the live one
    assert not re.search("[\u200e\u200f\u202a-\u202e\u2066-\u2069]", text)
