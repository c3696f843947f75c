"""``orch`` at a terminal against off one: live feedback for people, quiet output for scripts.

The terminal is a real pseudo-terminal (``pty``); Ctrl-C is a real SIGINT to the
command's process group. The knapsack sample sleeps for its ``sleep`` option, which
keeps a run going long enough to watch it.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.status import StatusLine, fit
from tests.cli_run import Terminal, new_app, orch
from tests.helpers import SAMPLES, Daemon, wait_for, write_app

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


def status_of(api: httpx.Client, app_id: str, run_id: str) -> str:
    meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
    return str(meta["metadata"]["status_v2"])


def test_waiting_at_a_terminal_shows_state_and_time_then_indented_json(
    daemon: Daemon, knap: str
) -> None:
    term = Terminal(daemon, f"app run -a {knap} -o sleep=1.2 -w -i", KNAPSACK_INPUT)
    code, shown = term.finish()
    assert code == 0, shown
    assert re.search(r"run run-\S+ running · \d+\.\d s", shown), shown  # the status line
    assert "\x1b[2K" in shown  # redrawn in place, then wiped
    text = ESCAPES.sub("", shown)
    assert '{\n  "options": {\n    "duration"' in text  # the output, indented for reading
    assert re.search(r"run run-\S+ succeeded in [\d.]+ s", text)


def test_log_lines_go_above_the_status_line_which_stays_last() -> None:
    out = io.StringIO()
    status = StatusLine(out)
    status.above(["before any status"])  # nothing shown yet: the lines alone
    status.show("run r running · 0.3 s")
    status.above([])
    status.above(["solving", "done"])
    status.clear()
    assert out.getvalue() == (
        "before any status\n"
        "\r\x1b[2Krun r running · 0.3 s"
        "\r\x1b[2Ksolving\ndone\nrun r running · 0.3 s"
        "\r\x1b[2K"
    )


def test_tail_shows_the_log_while_the_run_runs(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    term = Terminal(daemon, f"app run -a {knap} -o sleep=3 --tail -i", KNAPSACK_INPUT)
    shown = term.read_until("solving knapsack")
    run_id = re.search(r"run (run-[0-9a-z]+) ", shown)
    assert run_id, shown
    assert status_of(api, knap, run_id[1]) == "running"  # the log came before the end
    code, shown = term.finish()
    assert code == 0 and "best value 444" in shown


def test_ctrl_c_stops_waiting_and_says_how_to_cancel(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    term = Terminal(daemon, f"app run -a {knap} -o sleep=30 -w -i", KNAPSACK_INPUT)
    term.read_until(" running · ")
    term.interrupt()
    code, shown = term.finish()
    assert code == 130, shown
    text = ESCAPES.sub("", shown)
    found = re.search(r"stopped waiting; run (run-\S+) keeps running\.", text)
    assert found, text
    run_id = found[1]
    assert status_of(api, knap, run_id) == "running"  # Ctrl-C stopped the waiting only
    cancel = re.search(r"cancel it: (orch app run cancel .*)", text)
    assert cancel and f"-a {knap} -r {run_id}" in cancel[1], text
    argv = shlex.split(cancel[1])[1:]  # the command as printed, run as pasted
    assert "canceled" in orch(daemon, *argv, home=False).stderr
    wait_for(lambda: status_of(api, knap, run_id) == "canceled", timeout=20)


def test_ctrl_c_on_a_followed_log_says_the_run_goes_on_and_how_to_cancel(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    """``orch app run logs --tail`` ended on Ctrl-C with exit 130 and nothing said, where
    ``-w`` says the run keeps running and how to cancel it."""
    run_id = orch(daemon, f"app run -a {knap} -o sleep=30 -i", KNAPSACK_INPUT).stdout.strip()
    term = Terminal(daemon, f"app run logs -a {knap} -r {run_id} --tail")
    term.read_until("solving knapsack")
    term.interrupt()
    code, shown = term.finish()
    text = ESCAPES.sub("", shown)
    assert code == 130, text
    assert f"stopped following; run {run_id} goes on unless it has ended." in text
    assert status_of(api, knap, run_id) == "running"
    cancel = re.search(r"cancel it: (orch app run cancel .*)", text)
    assert cancel and f"-a {knap} -r {run_id}" in cancel[1], text
    assert "canceled" in orch(daemon, *shlex.split(cancel[1])[1:], home=False).stderr


def test_a_failed_run_names_the_command_that_shows_its_log(daemon: Daemon, knap: str) -> None:
    """A timeout's summary names no line of the log: the model had logged, and the
    command said nothing of where to read it."""
    argv = f"app run -a {knap} -o sleep=5 --timeout 1 -w -i"
    failed = orch(daemon, argv, KNAPSACK_INPUT, code=1)
    hint = re.search(r"^its log: (orch app run logs .*)$", failed.stderr, re.MULTILINE)
    assert hint, failed.stderr
    assert "solving knapsack" in orch(daemon, *shlex.split(hint[1])[1:], home=False).stdout
    tailed = orch(daemon, f"{argv.replace(' -w', ' --tail')}", KNAPSACK_INPUT, code=1)
    assert "its log:" not in tailed.stderr  # the log was on the screen already


def test_off_a_terminal_waiting_is_quiet_and_the_output_is_as_written(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    proc = orch(daemon, f"app run -a {knap} -o sleep=0.5 -w -i", KNAPSACK_INPUT)
    lines = proc.stderr.splitlines()
    assert len(lines) == 2, proc.stderr  # started, then the summary: no status line
    assert lines[0].endswith("waiting for it to finish") and " succeeded in " in lines[1]
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr
    run_id = lines[0].split()[1]
    raw = api.get(f"/v1/applications/{knap}/runs/{run_id}/output").content
    assert proc.stdout.encode() == raw  # byte for byte what the model wrote


def test_json_is_indented_at_a_terminal_and_compact_in_a_pipe(daemon: Daemon, knap: str) -> None:
    code, shown = Terminal(daemon, f"app get -a {knap} --json").finish()
    assert code == 0 and '{\r\n  "id": "' in shown
    piped = orch(daemon, f"app get -a {knap} --json").stdout
    assert piped.count("\n") == 1 and f'"id":"{knap}"' in piped
    assert json.loads(piped)["id"] == knap


def test_no_input_at_a_terminal_is_refused_with_how_to_give_one(daemon: Daemon, knap: str) -> None:
    code, shown = Terminal(daemon, f"app run -a {knap} -w").finish()
    assert code == 1 and "no input: give one with -i FILE" in shown


def test_run_ids_are_whole_in_a_table_80_columns_wide() -> None:
    from rich.console import Console

    from orchestrator.cli import render
    from orchestrator.cli.run_actions import RUN_COLUMNS

    run_id = "run-01m96wd30dvmcz6j"
    row = [run_id, "a long run name", "succeeded", "devint", "v1", "2026-12-06 23:52:59"]
    row += ["1234", "the model failed with a long message that needs room"]
    console = Console(width=80, record=True)
    table = render.build([h for h, _ in RUN_COLUMNS], [row], None, whole={0})
    console.print(table)
    assert run_id in console.export_text()


def test_empty_columns_give_way_when_a_table_does_not_fit() -> None:
    """At 80 columns the run list cut every cell to "succe…", "devi…" and "2026…" to make
    room for name, version and error columns with nothing in them."""
    from rich.console import Console

    from orchestrator.cli import render
    from orchestrator.cli.run_actions import RUN_COLUMNS

    headers = [h for h, _ in RUN_COLUMNS]
    row = ["run-01m96wd30dvmcz6j", "-", "succeeded", "devint", "-", "2026-12-06 23:52:59"]
    row += ["45", "-"]
    narrow, wide = Console(width=80, record=True), Console(width=200, record=True)
    narrow.print(render.build(headers, [row], None, whole={0}, width=80))
    wide.print(render.build(headers, [row], None, whole={0}, width=200))
    shown = narrow.export_text()
    assert "succeeded" in shown and "devint" in shown and "…" not in shown  # nothing cut
    assert "version" not in shown and "error" not in shown
    assert "version" in wide.export_text()  # room enough: every column stays


def test_columns_that_would_get_no_width_are_left_out() -> None:
    """At 20 columns the run list drew its IDs and then one rule per other column, each of
    width 0. The IDs stay whole; each other column stays only if it keeps a few characters."""
    from rich.console import Console

    from orchestrator.cli import render
    from orchestrator.cli.run_actions import RUN_COLUMNS

    headers = [h for h, _ in RUN_COLUMNS]
    row = ["run-01m96wd30dvmcz6j", "nightly", "succeeded", "devint", "-", "2026-12-06 23:52:59"]
    row += ["45", "-"]
    for width, kept in ((20, ["id"]), (40, ["id", "name", "status"])):
        console = Console(width=width, record=True, soft_wrap=True)  # as render.out
        console.print(render.build(headers, [row], None, whole={0}, width=width))
        lines = console.export_text().splitlines()
        assert lines[0].replace("┃", " ").split() == kept, lines  # these columns, no others
        assert "run-01m96wd30dvmcz6j" in lines[-1] and "││" not in lines[-1], lines
        assert all(len(cell.strip()) >= 2 for cell in lines[-1].split("│")), lines


def test_a_narrow_terminal_says_which_columns_it_left_out(daemon: Daemon, knap: str) -> None:
    run_id = orch(daemon, f"app run -a {knap} -n named -i", KNAPSACK_INPUT).stdout.strip()
    code, shown = Terminal(daemon, f"app run list -a {knap} --limit 1", columns=20).finish()
    text = " ".join(ESCAPES.sub("", shown).split())
    assert code == 0 and run_id in text and "┃┃" not in shown and "││" not in shown, shown
    assert "too narrow to show name, status" in text and "add --json" in text, text


def test_run_list_at_80_columns_shows_whole_run_ids(daemon: Daemon, knap: str) -> None:
    run_id = orch(daemon, f"app run -a {knap} -i", KNAPSACK_INPUT).stdout.strip()
    code, shown = Terminal(daemon, f"app run list -a {knap}", columns=80).finish()
    assert code == 0 and run_id in shown, shown


def test_empty_tables_print_their_headers_at_any_width(daemon: Daemon) -> None:
    """A table with no rows crashed every list of nothing with a traceback (a fresh home's
    ``app list``, a new app's runs, versions, history or secrets): found by a new user."""
    app_id = new_app(daemon)
    for command in ("app run list", "app version list", "app history", "app secrets list"):
        for columns in (80, 200):
            code, shown = Terminal(daemon, f"{command} -a {app_id}", columns=columns).finish()
            assert code == 0 and "Traceback" not in shown, (command, shown)
        piped = orch(daemon, f"{command} -a {app_id}")
        assert "Traceback" not in piped.stderr, (command, piped.stderr)


def test_the_status_line_fits_a_narrow_terminal(daemon: Daemon, knap: str) -> None:
    """A line longer than the terminal wraps, and the wipe erases only its last row: each
    redraw would leave a row of debris behind."""
    term = Terminal(daemon, f"app run -a {knap} -o sleep=1.2 -w -i", KNAPSACK_INPUT, columns=30)
    code, shown = term.finish()
    assert code == 0, shown
    drawn = [part.split("\r")[0] for part in shown.split("\x1b[2K")[1:]]
    status = [line for line in drawn if line.startswith("run ")]
    assert status and all(len(line) < 30 for line in status), status
    assert any(line.endswith("…") for line in status), status


def test_fit_cuts_with_an_ellipsis_and_leaves_the_last_column_free() -> None:
    assert fit("run r running · 0.3 s", 80) == "run r running · 0.3 s"
    assert fit("run r running · 0.3 s", 10) == "run r ru…"
    assert fit("abc", None) == "abc"


def test_term_dumb_gets_no_escape_sequences(daemon: Daemon, knap: str) -> None:
    dumb = {"TERM": "dumb"}
    code, shown = Terminal(daemon, f"app run -a {knap} -w -i nonexistent", env=dumb).finish()
    assert code == 1 and "error: input nonexistent does not exist" in shown
    run = f"app run -a {knap} -o sleep=0.5 -w -i"
    code, shown = Terminal(daemon, run, KNAPSACK_INPUT, env=dumb).finish()
    assert code == 0 and "\x1b" not in shown, shown
    assert "waiting for it to finish" in shown  # what a pipe gets: a start line, a summary


def test_no_color_keeps_the_status_line_and_drops_only_colour(daemon: Daemon, knap: str) -> None:
    no_color = {"NO_COLOR": "1"}
    run = f"app run -a {knap} -o sleep=1.2 -w -i"
    code, shown = Terminal(daemon, run, KNAPSACK_INPUT, env=no_color).finish()
    assert code == 0 and re.search(r"run run-\S+ running · \d+\.\d s", shown), shown
    code, shown = Terminal(daemon, f"app run -a {knap} -w -i nonexistent", env=no_color).finish()
    assert code == 1 and "error: input" in shown and "\x1b[1;31m" not in shown


HOSTILE_LOG = """\
import sys
sys.stderr.write("title \\x1b]0;pwned\\x07 then \\x1b[2J clear\\n")
print('{"solutions": []}')
"""


def test_escape_sequences_from_models_and_names_are_shown_not_obeyed(
    daemon: Daemon, tmp_path: Path
) -> None:
    app_id = new_app(daemon, write_app(tmp_path / "hostile", HOSTILE_LOG))
    name = ["-n", "evil\x1b[2J\x9bname"]  # \x9b: a CSI in one character (C1)
    code, shown = Terminal(daemon, f"app run -a {app_id} --tail -i", KNAPSACK_INPUT, name).finish()
    assert code == 0, shown
    assert "\x1b]0;" not in shown and "\x07" not in shown and "\x1b[2J" not in shown
    assert "title \\x1b]0;pwned\\x07 then \\x1b[2J clear" in shown
    code, shown = Terminal(daemon, f"app run list -a {app_id}").finish()
    assert "evil\\x1b[2J\\x9bname" in shown and "\x1b[2J" not in shown
    code, as_json = Terminal(daemon, f"app run list -a {app_id} --json").finish()
    assert "evil\\u001b[2J\\u009bname" in as_json and "\x9b" not in as_json
    run_id = re.search(r"run-[0-9a-z]+", shown)
    assert run_id, shown
    piped = orch(daemon, f"app run logs -a {app_id} -r {run_id[0]}").stdout
    assert piped == "title \x1b]0;pwned\x07 then \x1b[2J clear\n"  # a pipe gets it byte for byte
