"""A command line that is wrong (a bad value, a missing or unknown option, an unknown
command) is one ``error:`` line on stderr and exit code 2, as every other failure is,
not typer's boxed panel; help stays as it was. And ``orch app run`` with nothing but
``ORCH_APP_ID`` and a pipe starts the run, as its ``--input`` help says it does."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios

import httpx
import pytest

from tests.cli_run import CLI, ENV, new_app, orch
from tests.helpers import SAMPLES, Daemon

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")


def usage_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a usage error is: nothing else on stderr, nothing on stdout."""
    assert proc.returncode == 2, proc
    assert proc.stdout == "", proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "╭" not in proc.stderr and "Usage:" not in proc.stderr
    return lines[0]


def at_terminal(args: list[str], env: dict[str, str], columns: int = 200) -> tuple[int, str]:
    """``orch ARGS`` exactly as given (no ``--home`` added: ``orch app run`` alone is what
    is tried) with stdin, stdout and stderr on one pseudo-terminal; exit code and text."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    environ = {k: v for k, v in ENV.items() if k != "COLUMNS"} | {"TERM": "xterm"} | env
    proc = subprocess.Popen(
        [*CLI, *args], stdin=slave, stdout=slave, stderr=slave, env=environ, start_new_session=True
    )
    os.close(slave)
    output = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            proc.kill()
            raise AssertionError(f"no end; shown: {output!r}")
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command ended
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    return proc.wait(30), ESCAPES.sub("", output.decode(errors="replace"))


# usage errors: one line


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (
            "daemon start --port 70000",
            "error: invalid value for '--port' (env var: 'ORCH_PORT'): "
            "70000 is not in the range 0<=x<=65535",
            "daemon start",
        ),
        (
            "app push -a demo --app-dir /nonexistent",
            "error: invalid value for '--app-dir': Directory '/nonexistent' does not exist",
            "app push",
        ),
        ("app promote -a demo", "error: missing option '--version-id' / '-v'", "app promote"),
        ("app list --bogus", "error: no such option: --bogus", "app list"),
        ("app bogus", "error: no such command 'bogus'", "app"),
        ("bogus", "error: no such command 'bogus'", ""),
        ("--bogus", "error: no such option: --bogus", ""),
        ("app run -a demo --priority 12", "error: invalid value for '--priority'", "app run"),
    ],
)
def test_a_usage_error_is_one_line_naming_the_commands_help(
    daemon: Daemon, args: str, message: str, command: str
) -> None:
    line = usage_error(orch(daemon, args, code=None))
    assert line.startswith(message), line
    help_of = " ".join(["orchestrator", command]).strip()  # run as python -m orchestrator
    assert line.endswith(f"; see 'python -m {help_of} -h'"), line


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (
            "app run -a demo -i {input} -o noequals",
            "error: invalid value for '--options': 'noequals' must look like NAME=VALUE",
            "app run",
        ),
        (
            "app instance create -a demo --instance-id c -v v1 -o noequals",
            "error: invalid value for '--options': 'noequals' must look like NAME=VALUE",
            "app instance create",
        ),
        (
            "app run -a demo -i {input} --memory-mb 99999999999999999999",
            "error: invalid value for '--memory-mb': 99999999999999999999 is not in the range "
            "1<=x<=16777216",
            "app run",
        ),
        (
            "app run -a demo -i {input} --timeout nan",
            "error: invalid value for '--timeout': nan is not a finite number",
            "app run",
        ),
        (
            "app run track -a demo -i {input} --duration nan",
            "error: invalid value for '--duration': nan is not a finite number",
            "app run track",
        ),
        (
            "experiment shadow create -a demo --baseline-instance-id b "
            "--candidate-instance-ids c --maximum-runs 2 --start-time yesterday",
            "error: invalid value for '--start-time': 'yesterday' is not an ISO 8601 time",
            "experiment shadow create",
        ),
        (
            "experiment switchback create -a demo --baseline-instance-id b "
            "--candidate-instance-id c --unit-duration-minutes 1 --units 2 --start yesterday",
            "error: invalid value for '--start': 'yesterday' is not an ISO 8601 time",
            "experiment switchback create",
        ),
        (
            "experiment input-set create -a demo -s s -n S --instance-id i --end-time yesterday",
            "error: invalid value for '--end-time': 'yesterday' is not an ISO 8601 time",
            "experiment input-set create",
        ),
        (
            "app secrets create -a demo --id s2 -n x --secrets {input}",
            "error: --secrets: secret 1 has no type, location, value; expected [{",
            "app secrets create",
        ),
        (
            "app run metadata -a demo -r ''",  # the checks of the commands' own (exit 2)
            "error: --run-id is empty: give an ID",
            "app run metadata",
        ),
    ],
)
def test_a_value_the_daemon_would_refuse_is_a_usage_error_naming_the_flag(
    daemon: Daemon, api: httpx.Client, args: str, message: str, command: str
) -> None:
    """These reached the daemon, whose answer named its own fields
    (``result.execution_duration``, ``start_events.time``, ``secrets.0.type``) or its cap
    as ``1.67772e+07``; or they were said with exit code 1 and no pointer to the help."""
    argv = [w.strip("'") for w in args.format(input=KNAPSACK_INPUT).split()]
    line = usage_error(orch(daemon, argv, code=None))
    assert line.startswith(message), line
    assert line.endswith(f"; see 'python -m orchestrator {command} -h'"), line
    assert api.get("/v1/applications/demo").status_code == 404  # nothing was made


BATCH_START = "experiment batch start -a demo -b b -s s --instance-ids i"
SHADOW = "experiment shadow create -a demo --maximum-runs 2"


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (f"{BATCH_START} --csv", "--csv needs --wait", "experiment batch start"),
        (
            f"{BATCH_START} -w --csv --json",
            "give --json or --csv, not both",
            "experiment batch start",
        ),
        (
            f"{BATCH_START} --fail-if x",
            "--fail-if needs --wait and --baseline",
            "experiment batch start",
        ),
        (
            "experiment batch get -a demo -b b --csv --json",
            "give --json or --csv, not both",
            "experiment batch get",
        ),
        (
            f"{SHADOW} --baseline-instance-id b --candidate-instance-ids c --start "
            "--start-time 2099-01-01T00:00:00Z",
            "give --start or --start-time, not both",
            "experiment shadow create",
        ),
        (
            f"{SHADOW} --baseline-instance-id b",
            "give --baseline-instance-id and --candidate-instance-ids (or --comparisons)",
            "experiment shadow create",
        ),
        (
            "experiment input-set create -a demo -s s -n S",
            "give exactly one source of inputs: --dir, --file",
            "experiment input-set create",
        ),
        (
            "app run -a demo -e best --instance-id i -i {input}",
            "an ensemble run (-e) uses its run groups' instances: leave out --instance-id",
            "app run",
        ),
        (
            "ensemble create -a demo --instance-ids i --statistics-path $.x",
            "a rule needs both --statistics-path and --objective",
            "ensemble create",
        ),
        ("app update -a demo", "nothing to update: give -n, -d or", "app update"),
        (
            "app instance update -a demo --instance-id i",
            "nothing to update: give at least one of -v",
            "app instance update",
        ),
        ("ensemble update -a demo -e e", "nothing to update: give --name", "ensemble update"),
        (
            "app instance get -a demo -i a --instance-id b",
            "-i and --instance-id say different things",
            "app instance get",
        ),
        (
            "experiment acceptance create -a demo -b t --baseline-instance-id b "
            "--candidate-instance-id c",
            "give at least one --metric",
            "experiment acceptance create",
        ),
        ("app run compare -a demo -r r -r r", "give 2 to 20 different runs", "app run compare"),
    ],
)
def test_flags_that_do_not_go_together_are_a_usage_error_naming_them(
    daemon: Daemon, api: httpx.Client, args: str, message: str, command: str
) -> None:
    """``batch start --csv`` without ``--wait`` exited 1 while ``batch get --csv --json``
    exited 2: a combination of flags the command refuses is the same mistake wherever
    it is made, one line naming the flags, exit 2, and nothing sent."""
    line = usage_error(orch(daemon, args.format(input=KNAPSACK_INPUT), code=None))
    assert line.startswith(f"error: {message}"), line
    assert line.endswith(f"; see 'python -m orchestrator {command} -h'"), line
    assert api.get("/v1/applications/demo").status_code == 404  # nothing was made


@pytest.mark.parametrize("flag", ["-i", "-a", "--limit"])
def test_an_option_missing_its_value_points_at_the_help(daemon: Daemon, flag: str) -> None:
    """click raises it without the command's context: the line had no hint."""
    command = "app run list -a demo" if flag == "--limit" else "app run -a demo"
    args = [*command.split()[: -2 if flag == "-a" else None], flag]
    proc = orch(daemon, args, home=False, env={"ORCH_HOME": str(daemon.home)}, code=None)
    help_of = "app run list" if flag == "--limit" else "app run"
    assert usage_error(proc) == (
        f"error: option '{flag}' requires an argument; see 'python -m orchestrator {help_of} -h'"
    )


def test_the_cli_caps_are_the_daemons() -> None:
    """flags.py keeps its own copy (the daemon's model module is slow to import)."""
    from orchestrator.cli.flags import MAX_MB, MAX_SECONDS
    from orchestrator.models import MAX_LIMITS

    assert MAX_LIMITS["memory_mb"] == MAX_LIMITS["output_mb"] == MAX_LIMITS["disk_mb"] == MAX_MB
    assert MAX_LIMITS["cpu_seconds"] == MAX_LIMITS["timeout_seconds"] == MAX_SECONDS


def test_a_suggestion_is_kept_and_the_hint_follows_it(daemon: Daemon) -> None:
    line = usage_error(orch(daemon, "app run logz", code=None))
    assert line == (
        "error: no such command 'logz'. Did you mean 'logs'? "
        "See 'python -m orchestrator app run -h'"
    ), line


def test_at_a_narrow_terminal_the_hint_is_left_out_rather_than_wrapped(daemon: Daemon) -> None:
    home = {"ORCH_HOME": str(daemon.home)}
    code, wide = at_terminal(["daemon", "start", "--port", "70000"], home, columns=200)
    assert code == 2 and wide.strip().endswith("daemon start -h'"), wide
    code, narrow = at_terminal(["daemon", "start", "--port", "70000"], home, columns=110)
    assert code == 2, narrow
    assert narrow.strip().startswith("error: invalid value for '--port'"), narrow
    assert "see '" not in narrow and len(narrow.strip().splitlines()) == 1, narrow


def test_help_is_unchanged(daemon: Daemon) -> None:
    proc = orch(daemon, "daemon start -h")
    assert proc.stdout.lstrip().startswith("Usage: ") and "--port" in proc.stdout
    assert proc.stderr == ""
    bare = orch(daemon, "app", home=False, code=2)  # a group alone: its help, as before
    assert "Usage: " in bare.stdout and "Commands" in bare.stdout and "error" not in bare.stderr


def test_a_group_alone_at_a_terminal_shows_its_help(daemon: Daemon) -> None:
    home = {"ORCH_HOME": str(daemon.home)}
    for args in (["app"], ["app", "run"]):
        code, shown = at_terminal(args, home)
        assert code == 2 and "Usage: " in shown and "Commands" in shown, shown
        assert "error:" not in shown, shown


# orch app run with a pipe and ORCH_APP_ID, nothing else


def test_piped_input_and_orch_app_id_start_a_run(daemon: Daemon, api: httpx.Client) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    env = {"ORCH_HOME": str(daemon.home), "ORCH_APP_ID": app_id}
    proc = orch(daemon, "app run", stdin=KNAPSACK_INPUT.read_text(), home=False, env=env)
    run_id = proc.stdout.strip()
    assert run_id.startswith("run-"), proc
    assert "Usage:" not in proc.stdout + proc.stderr
    runs = api.get(f"/v1/applications/{app_id}/runs").json()["runs"]
    assert [r["id"] for r in runs] == [run_id]


def test_piped_input_without_an_app_id_says_which_is_missing(daemon: Daemon) -> None:
    env = {"ORCH_HOME": str(daemon.home)}
    proc = orch(daemon, "app run", stdin=KNAPSACK_INPUT.read_text(), home=False, env=env, code=2)
    assert usage_error(proc) == (
        "error: missing option -a/--app-id (or set ORCH_APP_ID); "
        "see 'python -m orchestrator app run -h'"
    )


def test_at_a_terminal_a_run_with_no_input_is_still_refused(daemon: Daemon) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    env = {"ORCH_HOME": str(daemon.home), "ORCH_APP_ID": app_id}
    code, shown = at_terminal(["app", "run", "-n", "typed"], env)
    assert code == 1 and "error: no input: give one with -i FILE" in shown, shown
