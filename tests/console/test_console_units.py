"""In-process checks of the console's pieces: sessions, paging cursor, viewers, maps."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator.console import sessions as sessions_module
from orchestrator.console.geojson import render_map
from orchestrator.console.live import QUEUE_LIMIT, RunFeed, sse
from orchestrator.console.pages import run as run_page
from orchestrator.console.pages.experiments import gate_verdict
from orchestrator.console.pages.login import safe_next
from orchestrator.console.pages.run_actions import parse_options, saved_as
from orchestrator.console.runview import flatten, log_tail, stopped_by
from orchestrator.console.sessions import Sessions, csrf_ok
from orchestrator.console.viewers import (
    PREVIEW_BYTES,
    find_tables,
    highlight_json,
    preview,
    readable_log,
)
from orchestrator.errors import Invalid
from orchestrator.experiments.summary import Summary
from orchestrator.models import Failure, FailureKind, Run, RunStatus
from orchestrator.runs.search import decode_cursor, encode_cursor, run_query
from orchestrator.store.db import Database


def test_a_login_link_works_once_and_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions("the-key")
    token, _ = sessions.mint_link()
    assert sessions.redeem(token) is not None
    assert sessions.redeem(token) is None
    late, _ = sessions.mint_link()
    clock = time.monotonic() + sessions_module.LINK_TTL + 1
    monkeypatch.setattr(sessions_module.time, "monotonic", lambda: clock)
    assert sessions.redeem(late) is None


def test_sessions_check_the_key_idle_out_and_end() -> None:
    sessions = Sessions("the-key")
    assert sessions.login("wrong") is None and sessions.login("") is None
    started = sessions.login(" the-key\n")
    assert started is not None and sessions.get(started.token) is started
    assert csrf_ok(started, started.csrf) and not csrf_ok(started, "nope")
    assert not csrf_ok(started, None)
    started.last_seen -= sessions_module.IDLE_TTL + 1
    assert sessions.get(started.token) is None
    again = sessions.login("the-key")
    assert again is not None
    sessions.end(again.token)
    assert sessions.get(again.token) is None


@pytest.mark.parametrize(
    ("given", "safe"),
    [("/runs?x=1", "/runs?x=1"), ("//evil.example", "/apps"), ("https://e.x/", "/apps"),
     ("", "/apps"), (None, "/apps"), ("/\\evil", "/apps"),
     # a browser drops tab, CR and LF from a URL: "/<TAB>/evil.example/" is "//evil.example/"
     ("/\t/evil.example/", "/apps"), ("/\r\n/evil.example/", "/apps"), ("/\n/e.x", "/apps"),
     ("/runs\x00", "/apps"), ("/a\x7f", "/apps"), ("/\u2028/e.x", "/apps"),
     ("/%09/evil.example/", "/%09/evil.example/"), ("/apps/café", "/apps/café")],
)  # fmt: skip
def test_the_way_back_after_login_stays_on_the_console(given: str | None, safe: str) -> None:
    assert safe_next(given) == safe


def test_the_page_cursor_round_trips_and_bad_ones_are_refused() -> None:
    run = Run(id="run-x", app_id="a", instance_id="devint", executable_id="e")
    assert decode_cursor(encode_cursor(run)) == (run.created_at, "run-x")
    for bad in ("", "!!!", "bm9waXBl"):
        with pytest.raises(Invalid):
            decode_cursor(bad)


def test_filters_are_checked_and_a_minute_bound_includes_its_minute() -> None:
    with pytest.raises(Invalid, match="unknown status"):
        run_query(status="done")
    with pytest.raises(Invalid, match="ISO 8601"):
        run_query(since="yesterday")
    query = run_query(app_id="a", status="failed", until="2026-01-02T03:04")
    assert query.status == RunStatus.FAILED
    assert query.created_before == "2026-01-02T03:04:59.999999Z"


async def test_every_runs_filter_walks_an_index_in_page_order(tmp_path: Path) -> None:
    """The query plans of the runs page never sort or scan the table (100,000 runs)."""
    db = Database(tmp_path / "orch.db")
    await db.open()
    await db.close()
    conn = sqlite3.connect(tmp_path / "orch.db")
    head = "EXPLAIN QUERY PLAN SELECT * FROM runs"
    tail = " ORDER BY created_at DESC, id DESC LIMIT 51"
    for where in ("", " WHERE app_id = 'a'", " WHERE status = 'failed'",
                  " WHERE app_id = 'a' AND status = 'failed'",
                  " WHERE created_at <= '2026' AND (created_at, id) < ('2026', 'x')"):  # fmt: skip
        plan = " ".join(str(row[-1]) for row in conn.execute(head + where + tail))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, (where, plan)
    conn.close()


def test_tables_are_found_in_json_and_raw_json_is_escaped() -> None:
    doc = {"solutions": [{"a": 1, "b": "<x>"}, {"a": 2, "c": [1]}], "n": 3}
    (table,) = find_tables(doc)
    assert table.path == "$.solutions" and table.columns == ["a", "b", "c"]
    assert table.rows == [["1", "<x>", ""], ["2", "", "[1]"]]
    html = str(highlight_json(doc))
    assert "&lt;x&gt;" in html and "<x>" not in html
    assert '<span class="j-key">&quot;solutions&quot;</span>' in html


def test_unicode_shows_as_written_in_tables_and_raw_json() -> None:
    """Not ``Z\\u00fcrich``; a lone surrogate (JSON allows it, UTF-8 does not) stays an
    escape instead of failing the page."""
    doc = [{"city": {"name": "Zürich", "note": "naïve ☃"}, "tags": ["é"], "odd": "x\ud800"}]
    (table,) = find_tables(doc)
    assert table.rows == [['{"name":"Zürich","note":"naïve ☃"}', '["é"]', "x\\ud800"]]
    html = str(highlight_json({"clé": "Zürich", "odd": "\ud800"}))
    assert "&quot;clé&quot;" in html and "&quot;Zürich&quot;" in html
    assert "\\u00" not in html and "&quot;\\ud800&quot;" in html
    html.encode()  # what the page sends: UTF-8 can carry all of it


def test_a_large_payload_is_never_read(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b"[" + b"1," * PREVIEW_BYTES + b"1]")
    shown = preview(big, big.stat().st_size)
    assert shown.kind == "large" and shown.value is None
    text = tmp_path / "t"
    text.write_text("not json")
    assert preview(text, 8).kind == "text"
    assert preview(None, 0).kind == "empty"
    assert preview(tmp_path, 10, directory=True).kind == "archive"


def test_the_log_tail_starts_at_a_whole_line_and_knows_its_end(tmp_path: Path) -> None:
    log = tmp_path / "stderr"
    log.write_bytes(b"".join(f"line {n}\n".encode() for n in range(1000)))
    text, end, skipped = log_tail(log, max_bytes=100)
    assert end == log.stat().st_size and skipped > 0
    assert text.startswith("line ") and text.endswith("line 999\n")
    assert log_tail(tmp_path / "missing") == ("", 0, 0)


def test_the_log_is_shown_without_terminal_escapes(tmp_path: Path) -> None:
    """Colours (CSI) and titles or links (OSC) are dropped for the page; the offset the live
    stream resumes from still counts the file's bytes."""
    link = "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"
    coloured = f"\x1b[1;31mred\x1b[0m \x1b]0;title\x07a {link} \x1b(Bb"
    assert readable_log(coloured + "\nnext \x1b[?25l") == "red a link b\nnext "
    assert readable_log("plain [1;31m text") == "plain [1;31m text"
    log = tmp_path / "stderr"
    log.write_bytes(f"{coloured}\n".encode())
    text, end, skipped = log_tail(log)
    assert text == "red a link b\n" and end == log.stat().st_size and skipped == 0


def test_downloads_are_named_with_their_format() -> None:
    run = Run(id="run-x", app_id="a", instance_id="i", executable_id="e")
    assert saved_as(run, "input") == "run-x-input.json"
    assert saved_as(run, "output") == "run-x-output.json"
    run.input_format = "multi-file"
    assert saved_as(run, "output") == "run-x-output.tar.gz"
    run.input_format = "text"
    assert saved_as(run, "input") == "run-x-input"


def test_a_malformed_gate_condition_is_explained_in_the_console_words() -> None:
    """The page has a Condition field, not the CLI's ``--fail-if`` flag."""
    summary = Summary(objective="min", baseline="production", targets=[], comparisons=[])
    gate, error = gate_verdict("result.value >> 3", summary, [])
    assert gate is None
    assert "--fail-if" not in error and error.startswith("malformed condition 'result.value >> 3'")
    assert "METRIC OP baseline" in error  # the syntax is still spelled out
    assert gate_verdict("", summary, []) == (None, "")


def test_the_limit_that_stopped_a_run_and_flat_statistics() -> None:
    run = Run(id="r", app_id="a", instance_id="i", executable_id="e", status=RunStatus.FAILED)
    run.failure = Failure(FailureKind.MEMORY, limit=200, measured=201)
    assert stopped_by(run) == "memory_mb"
    run.failure = Failure(FailureKind.EXIT, measured=3)
    assert stopped_by(run) is None
    assert flatten({"result": {"value": 1, "custom": {"gap": 0.1}}, "n": [1]}) == [
        ("result.value", 1), ("result.custom.gap", 0.1), ("n", [1])]  # fmt: skip


def test_geojson_maps_draw_features_and_refuse_garbage() -> None:
    svg, problem = render_map({"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": "<b>", "geometry": {"type": "Point", "coordinates": [1, 2]},
         "properties": {"style": {"color": "red\" onload=\"x"}}},
        {"type": "Feature", "geometry": {"type": "Polygon",
                                          "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}},
    ]})  # fmt: skip
    assert problem == "" and svg.count('class="feature"') == 2
    assert "&lt;b&gt;" in svg
    assert 'fill="red onloadx"' in svg  # the quote is gone: the value stays one attribute
    for garbage in (None, [], {"type": "Feature"}, {"type": "FeatureCollection", "features": 3}):
        assert render_map(garbage)[0] == ""


def test_option_lines() -> None:
    assert parse_options("a=1\n# note\n\n b = two words \n") == {"a": "1", "b": "two words"}
    with pytest.raises(Invalid, match="line 1"):
        parse_options("novalue")


async def test_a_page_that_hangs_up_leaves_no_task_behind() -> None:
    """Each closed stream left its two waits pending for the daemon's life (thousands a
    day with the console open) and two "Task was destroyed" lines in the log."""
    feed, stop = RunFeed(), asyncio.Event()

    async def page() -> None:
        with feed.subscribe() as sub:
            await sub.next_batch(15, stop)

    for _ in range(50):
        streaming = asyncio.create_task(page())
        await asyncio.sleep(0)
        streaming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await streaming
    await asyncio.sleep(0)
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []
    assert feed.listeners == 0


async def test_the_feed_fans_out_and_a_slow_page_is_told_to_reload() -> None:
    feed = RunFeed()
    stop = asyncio.Event()
    with feed.subscribe() as one, feed.subscribe() as two:
        feed.publish("r1")
        feed.publish("r2")
        feed.publish("r1")
        assert await one.next_batch(1, stop) == ["r1", "r2"]
        assert await two.next_batch(1, stop) == ["r1", "r2"]
        assert await one.next_batch(0.01, stop) == []
        for n in range(3000):
            feed.publish(f"r{n}")
        assert one.overflowed
        stop.set()
        assert await one.next_batch(1, stop) is None
    assert feed.listeners == 0
    assert sse("run", {"a": 1}, "5.running") == 'id: 5.running\nevent: run\ndata: {"a":1}\n\n'


async def test_the_feed_replays_what_a_page_missed_between_its_render_and_its_stream() -> None:
    """A list page's stream subscribes after the page was read: a run that finished in
    between stayed "running" on screen for good. The page now carries the feed's mark."""
    feed = RunFeed()
    feed.publish("before")
    mark = feed.mark  # the page is rendered here
    feed.publish("r1")
    feed.publish("r2")
    stop = asyncio.Event()
    with feed.subscribe(mark) as sub:
        assert await sub.next_batch(1, stop) == ["r1", "r2"]
        assert not sub.overflowed
    with feed.subscribe(feed.mark) as sub:
        assert await sub.next_batch(0.01, stop) == []
    for n in range(QUEUE_LIMIT):
        feed.publish(f"r{n}")
    ahead = mark.split("-")[0] + "-99999"
    for gone in (mark, RunFeed().mark, ahead, "nonsense"):
        with feed.subscribe(gone) as sub:  # too old, another daemon's, ahead, not a mark
            assert sub.overflowed, gone


async def test_a_run_page_stream_reads_the_run_after_subscribing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page showed "running"; the run ended before the stream subscribed, so no
    change will ever be published for it. The stream must still send the ended panels."""
    run = Run(id="r", app_id="a", instance_id="i", executable_id="e", status=RunStatus.SUCCEEDED)

    async def get(app_id: str, run_id: str) -> Run:
        return run

    async def no_context(console: object, run: Run) -> dict[str, object]:
        return {}

    monkeypatch.setattr(run_page, "_context", no_context)
    monkeypatch.setattr(run_page, "render", lambda template, **_: f"<{template}>")
    runs = SimpleNamespace(get=get, log_path=lambda run: tmp_path / "log")
    console = SimpleNamespace(
        services=SimpleNamespace(runs=runs), feed=RunFeed(), stopping=asyncio.Event()
    )
    request = SimpleNamespace(state=SimpleNamespace())
    stream = run_page._run_events(console, request, "a", "r", 0, "running")  # type: ignore[arg-type]
    events = [e async for e in stream]  # ends, rather than waiting for a change
    assert [e.split("\n")[1] for e in events[1:]] == ["event: run", "event: end"]
    assert '"status":"succeeded"' in events[1]
