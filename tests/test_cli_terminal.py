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

import httpx
import pytest

from orchestrator.cli.status import StatusLine
from tests.cli_run import Terminal, new_app, orch
from tests.helpers import SAMPLES, Daemon, wait_for

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
