"""Habits of the command line: one meaning per short flag, ``-h`` everywhere, ``ORCH_APP_ID``,
``--home`` before the command too, old spellings that still work, readable tables (the
default instance marked), and a readable name for a promoted instance.

The flag checks walk the command tree in-process (every command module is loaded, as
``--help`` would); the rest runs ``orch`` as a subprocess against the session daemon.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli.main import cli
from tests.cli_run import new_app, orch, orch_json
from tests.helpers import SAMPLES, Daemon

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
NEXTMV_SHORT_FLAGS = {
    "-a": "--app-id",
    "-i": "--input",
    "-o": "--options",
    "-n": "--name",
    "-d": "--description",
    "-v": "--version-id",
    "-r": "--run-id",
    "-w": "--wait",
    "-t": "--tail",
    "-l": "--tail",  # nextmv's --logs, an alias of --tail here
    "-u": "--output",
    "-s": "--input-set-id",
    "-b": "--batch-experiment-id",
}
"""What each short flag means in the nextmv CLI (``nextmv cloud run create`` and friends)."""


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from commands(sub, (*path, name))


ALL = list(commands(typer.main.get_command(cli)))


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


def test_a_short_flag_means_one_thing_in_every_command() -> None:
    meanings: dict[str, set[str]] = defaultdict(set)
    for path, command in ALL:
        for param in command.params:
            if getattr(param, "hidden", False):  # an old spelling, kept with a note
                continue
            long = next((o for o in param.opts if o.startswith("--")), None)
            for short in (o for o in param.opts if re.fullmatch(r"-[A-Za-z]", o)):
                meanings[short].add(f"{long}")
                assert long, f"{' '.join(path)}: {short} has no long form"
    clashes = {flag: sorted(longs) for flag, longs in meanings.items() if len(longs) > 1}
    assert not clashes, clashes
    kept = {f: m for f, m in NEXTMV_SHORT_FLAGS.items() if f in meanings}
    assert {f: meanings[f] for f in kept} == {f: {m} for f, m in kept.items()}
    assert meanings["-i"] == {"--input"} and meanings["-a"] == {"--app-id"}


@pytest.mark.parametrize("path", [" ".join(p) for p, _ in ALL], ids=lambda p: p or "orch")
def test_dash_h_is_help_everywhere(path: str) -> None:
    result = CliRunner().invoke(cli, [*path.split(), "-h"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "--help" in result.output


def test_the_app_id_comes_from_orch_app_id(daemon: Daemon, knap: str) -> None:
    env = {"ORCH_APP_ID": knap}
    assert orch_json(daemon, "app get", env=env)["id"] == knap
    proc = orch(daemon, "app run -w -i", KNAPSACK_INPUT, env=env)
    run_id = proc.stderr.split()[1]
    listed = orch(daemon, "app run list --json", env=env).stdout
    assert run_id in listed
    assert orch(daemon, f"app run metadata -r {run_id}", env=env).returncode == 0
    explicit = orch(daemon, "app get -a no-such-app", env=env, code=1)  # -a wins
    assert "no-such-app" in explicit.stderr
    missing = orch(daemon, "app get", code=2)
    assert "--app-id" in missing.stderr and "ORCH_APP_ID" in missing.stderr


def test_home_before_the_command_is_the_commands_home(
    daemon: Daemon, knap: str, tmp_path: Path
) -> None:
    """``orch --home DIR app list`` was refused (no such option: --home): the flag was the
    commands' own. Given at both places the command's own wins; either beats ORCH_HOME."""
    nowhere = tmp_path / "no-daemon-here"
    listed = orch(daemon, "--home", daemon.home, "app list", home=False)
    assert knap in listed.stdout
    own = orch(daemon, "--home", nowhere, "app list --home", daemon.home, home=False)
    assert knap in own.stdout
    lost = orch(daemon, "--home", daemon.home, "app list --home", nowhere, home=False, code=1)
    assert f"no orch daemon is running for {nowhere}" in lost.stderr
    env = {"ORCH_HOME": str(nowhere)}
    assert knap in orch(daemon, "--home", daemon.home, "app list", home=False, env=env).stdout
    grouped = orch(daemon, "app run --home", daemon.home, f"list -a {knap}", home=False)
    assert grouped.stderr == ""  # ``app run``'s own --home reaches its actions too
    shown = orch(daemon, "--help", home=False).stdout
    assert "--home" in shown and "which wins if both are given" in " ".join(shown.split())


def test_home_before_the_command_costs_version_nothing() -> None:
    """``orch --version`` imports no more than before (it is benchmarked, ~65 ms): the root's
    --home is only read by the command's own, and the command is not even loaded."""
    probe = (
        "import sys\n"
        "sys.argv = ['orch', '--home', '/nowhere', '--version']\n"
        "from orchestrator.cli.main import main\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('orchestrator'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    version, loaded = done.stdout.splitlines()
    assert version.startswith("orch ")
    assert loaded.split() == [
        "orchestrator",
        "orchestrator.cli",
        "orchestrator.cli.lazy",
        "orchestrator.cli.main",
        "orchestrator.cli.stdout",
        "orchestrator.cli.usage",
    ]


def test_instance_list_marks_the_default_instance(daemon: Daemon, api: httpx.Client) -> None:
    """The table said nothing of which instance ``--instance-id default`` runs; ``--json``
    stays the API's list, with nothing added."""
    app_id = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app promote -a {app_id} -v v1 -n One")  # production, the default
    orch(daemon, f"app instance create -a {app_id} --instance-id other -v v1")
    lines = orch(daemon, f"app instance list -a {app_id}").stdout.splitlines()
    header = [c.strip() for c in lines[0].split("┃")]
    rows = {r[0]: r for r in ([c.strip() for c in x.split("│")] for x in lines if "│" in x)}
    default = header.index("default")
    marks = {name: row[default] for name, row in rows.items()}
    assert marks == {"devint": "-", "production": "yes", "other": "-"}
    listed = orch_json(daemon, f"app instance list -a {app_id}")
    assert listed == api.get(f"/v1/applications/{app_id}/instances").json()


def test_old_short_flags_still_work_with_a_note(daemon: Daemon, knap: str) -> None:
    orch(daemon, f"app version create -a {knap} -v habit-v1")
    created = orch(daemon, f"app instance create -a {knap} -i habit -v habit-v1")
    note = "note: -i is deprecated here; use --instance-id"
    assert note in created.stderr and "habit" in created.stdout
    got = orch(daemon, f"app instance get -a {knap} -i habit --json")
    assert note in got.stderr and '"id":"habit"' in got.stdout
    promoted = orch(daemon, f"app promote -a {knap} -v habit-v2 -n two -i habit")
    assert note in promoted.stderr and "habit-v2" in promoted.stdout
    clash = orch(daemon, f"app instance get -a {knap} -i habit --instance-id other", code=2)
    assert "say different things" in clash.stderr
    quiet = orch(daemon, f"app instance get -a {knap} --instance-id habit")
    assert "deprecated" not in quiet.stderr


def test_tables_show_local_time_to_the_second_and_runs_have_names(
    daemon: Daemon, api: httpx.Client, knap: str
) -> None:
    orch(daemon, f"app run -a {knap} -n nightly-check -w -i", KNAPSACK_INPUT)
    zone = "Asia/Kolkata"  # UTC+5:30: a shifted half hour cannot pass by accident
    listing = orch(daemon, f"app run list -a {knap}", env={"TZ": zone}).stdout
    header = listing.splitlines()[0]
    assert re.search(r"\bid\b.*\bname\b.*\bstatus\b", header), header
    assert "nightly-check" in listing
    assert not re.search(r"\d\d:\d\d:\d\d\.\d", listing)  # no fractions of a second
    created = api.get(f"/v1/applications/{knap}").json()["created_at"]
    moment = datetime.fromisoformat(created.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
    shown = orch(daemon, f"app get -a {knap}", env={"TZ": zone}).stdout
    assert moment.strftime("%Y-%m-%d %H:%M:%S") in shown, shown


def test_promote_without_an_instance_names_it_production(daemon: Daemon) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    first = orch_json(daemon, f"app promote -a {app_id} -v p1 -n First")
    assert first["instance"]["id"] == "production" and first["created_instance"]
    assert first["application"]["default_instance"] == "production"
    second = orch_json(daemon, f"app promote -a {app_id} -v p2")  # -n: as in the console
    assert second["instance"]["id"] == "production" and not second["created_instance"]
    assert orch_json(daemon, f"app version get -a {app_id} -v p2")["name"] == "p2"

    other = new_app(daemon, SAMPLES / "knapsack")
    orch(daemon, f"app version create -a {other} -v v0")
    orch(daemon, f"app instance create -a {other} --instance-id production -v v0")
    taken = orch_json(daemon, f"app promote -a {other} -v v1 -n One")
    assert taken["instance"]["id"] == "production"  # exists, not the default: moved, no -2
    assert not taken["created_instance"] and taken["moved_instance"]
    assert taken["application"]["default_instance"] == "production"


TAIL_SPELLINGS = {"--tail", "-t", "--follow", "-f", "--logs", "-l"}


@pytest.mark.parametrize("path", [("app", "run"), ("app", "run", "logs")], ids=" ".join)
def test_both_commands_that_follow_a_log_take_every_spelling(path: tuple[str, ...]) -> None:
    """``app run`` took -t/-l/--tail/--logs, ``app run logs`` -t/-f/--tail/--follow."""
    command = dict(ALL)[path]
    (tail,) = [p for p in command.params if p.name == "tail"]
    assert set(tail.opts) == TAIL_SPELLINGS


def test_follow_and_logs_follow_the_log(daemon: Daemon, knap: str) -> None:
    run = orch(daemon, f"app run -a {knap} -f -i", KNAPSACK_INPUT)
    assert '"solutions"' in run.stdout and run.stderr.startswith("run ")
    run_id = run.stderr.split()[1]
    logs = orch(daemon, f"app run logs -a {knap} -r {run_id} -l").stdout
    assert logs == orch(daemon, f"app run logs -a {knap} -r {run_id}").stdout


@pytest.mark.parametrize(
    ("page", "path"),
    [("/runs", "/runs"), ("runs", "/runs"), ("apps/knap?x=1", "/apps/knap?x=1")],
)
def test_a_console_page_is_a_path_from_the_root(page: str, path: str) -> None:
    from orchestrator.cli.console import console_path

    assert console_path(page) == path


@pytest.mark.parametrize("page", ["https://evil.example/", "//evil.example", "localhost:1/x", ""])
def test_a_console_page_that_is_no_path_is_a_usage_error(page: str) -> None:
    """It exited 1, as a failure of the daemon would, without the pointer to the help."""
    result = CliRunner().invoke(cli, ["console", page, "--no-browser"])
    assert result.exit_code == 2, result.output
    assert "must be a path on the console" in result.output and "console -h" in result.output


def test_a_console_page_without_its_slash_lands_there(daemon: Daemon) -> None:
    link = orch(daemon, "console runs --no-browser").stdout.strip().splitlines()[-1]
    assert link.startswith(f"{daemon.url}/login?token=") and link.endswith("&next=/runs")
    with httpx.Client() as browser:
        assert 'content="0;url=/runs"' in browser.get(link).text
