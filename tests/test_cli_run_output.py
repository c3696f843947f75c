"""What ``orch app run -w``, ``result``, ``input`` and ``logs`` print of a finished run,
where its output is awkward: nested past Python's recursion limit, a folder (a tar.gz)
at a terminal, a failed run's partial output, a reader that stops early, a flood of log.

The exit code is always the run's (0 succeeded, 1 failed, 2 canceled), and the summary
line on stderr always comes, whatever happened to the output on the way.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import tarfile
from pathlib import Path
from subprocess import DEVNULL, PIPE
from typing import cast

import pytest

from orchestrator.cli.run_output import summary
from orchestrator.client.types import RunInfo
from tests.cli_run import CLI, ENV, Terminal, new_app, orch
from tests.helpers import MULTI_FILE_MANIFEST, Daemon, write_app, write_tree

ESCAPES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\r")
SUMMARY = re.compile(r"run (run-\S+) (succeeded|failed|canceled) in [\d.]+ s")
DEEP_APP = 'import sys\nsys.stdin.read()\nprint("[" * 5000 + "]" * 5000)\n'
"""JSON nested deeper than ``json`` can read or write under Python's recursion limit."""
PARTIAL_APP = """\
import sys
sys.stdin.read()
print("half done", file=sys.stderr)
print('{"partial": true}')
sys.exit(3)
"""
SILENT_APP = "import sys\nsys.stdin.read()\nsys.exit(3)\n"
BIG_APP = 'import sys\nsys.stdin.read()\nprint("[" + "1," * 1_500_000 + "1]")\n'
"""3 MB: more than one block of the download (1 MiB), so a write follows the one the
reader left during, and fails (that one only comes back short)."""
FLOOD_APP = """\
import sys
sys.stdin.read()
sys.stderr.write(("x" * 1023 + "\\n") * 6 * 1024 + "50%\\r100%")
print("{}")
"""
FLOOD_LOG = ("x" * 1023 + "\n") * 6 * 1024 + "50%\r100%"
"""What it writes: 6 MiB and a little more, a carriage return, no line end at the end."""
TITLE_APP = "import sys\nsys.stdin.read()\nsys.stderr.write('\\x1b]0;pwned\\x07 done\\n')\n"
"""A log line that would set the terminal's title."""
FOLDER_APP = """\
import os, shutil
os.makedirs("outputs", exist_ok=True)
shutil.copy("inputs/a.csv", "outputs/a.csv")
"""


def json_app(daemon: Daemon, tmp: Path, main: str) -> str:
    return new_app(daemon, write_app(tmp, main))


@pytest.fixture(scope="module")
def apps(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("output-apps")
    return {
        "deep": json_app(daemon, tmp / "deep", DEEP_APP),
        "partial": json_app(daemon, tmp / "partial", PARTIAL_APP),
        "silent": json_app(daemon, tmp / "silent", SILENT_APP),
        "big": json_app(daemon, tmp / "big", BIG_APP),
        "flood": json_app(daemon, tmp / "flood", FLOOD_APP),
        "title": json_app(daemon, tmp / "title", TITLE_APP),
        "folder": new_app(daemon, write_app(tmp / "folder", FOLDER_APP, MULTI_FILE_MANIFEST)),
    }


@pytest.fixture
def json_input(tmp_path: Path) -> Path:
    path = tmp_path / "in.json"
    path.write_text("{}")
    return path


@pytest.fixture
def folder_input(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "inputs", {"a.csv": "a\n1\n"})


def summary_of(text: str) -> re.Match[str]:
    found = SUMMARY.search(text)
    assert found, text
    return found


def test_json_nested_too_deep_to_indent_is_printed_as_it_is_at_a_terminal(
    daemon: Daemon, apps: dict[str, str], json_input: Path
) -> None:
    """It was a RecursionError traceback and exit 1, though the run succeeded."""
    code, shown = Terminal(daemon, f"app run -a {apps['deep']} -w -i", json_input).finish()
    text = ESCAPES.sub("", shown)
    assert code == 0, text
    assert "Traceback" not in text and "[" * 5000 + "]" * 5000 + "\n" in text
    run_id = summary_of(text)[1]
    code, shown = Terminal(daemon, f"app run result -a {apps['deep']} -r {run_id}").finish()
    assert code == 0 and "Traceback" not in shown and "[" * 5000 in shown, shown


def test_a_folder_output_at_a_terminal_says_how_to_save_it(
    daemon: Daemon, apps: dict[str, str], folder_input: Path, tmp_path: Path
) -> None:
    """The run succeeded: its summary, then the command that saves the archive, exit 0 (it
    was an error line alone and exit 1, the code of a failed run)."""
    term = Terminal(daemon, f"app run -a {apps['folder']} -w -i", folder_input)
    code, shown = term.finish()
    lines = ESCAPES.sub("", shown).strip().splitlines()
    assert code == 0, shown
    run_id = summary_of(lines[-2])[1]
    hint = re.fullmatch(r"the output is a tar\.gz archive, .*: save it with (orch .*)", lines[-1])
    assert hint, lines
    want = f"orch app run result -a {apps['folder']} -r {run_id} --output FILE --home "
    assert hint[1] == want + str(daemon.home)
    saved = tmp_path / "out.tar.gz"
    orch(daemon, *shlex.split(hint[1].replace("FILE", str(saved)))[1:], home=False)
    with tarfile.open(saved) as tar:
        member = tar.extractfile("a.csv")
        assert member is not None and member.read() == b"a\n1\n"


def test_a_failed_run_shows_the_output_it_has_then_its_summary(
    daemon: Daemon, apps: dict[str, str], json_input: Path
) -> None:
    """As the API and the SDK give it; it was nothing, with exit 1."""
    proc = orch(daemon, f"app run -a {apps['partial']} -w -i", json_input, code=1)
    assert proc.stdout == '{"partial": true}\n'
    run_id = summary_of(proc.stderr)[1]
    assert "failed" in proc.stderr and "error:" not in proc.stderr
    result = orch(daemon, f"app run result -a {apps['partial']} -r {run_id}", code=1)
    assert result.stdout == '{"partial": true}\n'
    code, shown = Terminal(daemon, f"app run result -a {apps['partial']} -r {run_id}").finish()
    assert code == 1 and '{\r\n  "partial": true\r\n}' in shown, shown


def test_a_failed_run_writes_its_output_to_a_file_only_when_it_has_one(
    daemon: Daemon, apps: dict[str, str], json_input: Path, tmp_path: Path
) -> None:
    """A run with no output writes no (empty) file and says no error: its summary alone."""
    out = tmp_path / "out.json"
    proc = orch(daemon, f"app run -a {apps['partial']} -w -i", json_input, "-u", out, code=1)
    assert out.read_text() == '{"partial": true}\n' and f"wrote {out}" in proc.stderr
    out.unlink()
    proc = orch(daemon, f"app run -a {apps['silent']} -w -i", json_input, "-u", out, code=1)
    assert not out.exists()
    assert proc.stdout == "" and "error:" not in proc.stderr and "wrote" not in proc.stderr
    run_id = summary_of(proc.stderr)[1]
    result = orch(daemon, f"app run result -a {apps['silent']} -r {run_id}", code=1)
    assert result.stdout == "" and result.stderr.splitlines() == proc.stderr.splitlines()[-2:]


def test_logs_tail_ends_with_the_summary_and_the_exit_code_of_the_run(
    daemon: Daemon, apps: dict[str, str], json_input: Path
) -> None:
    """As ``app run --tail`` does; it exited 0 with no final word. Without --tail, as before."""
    run_id = orch(daemon, f"app run -a {apps['partial']} -i", json_input).stdout.strip()
    tailed = orch(daemon, f"app run logs -a {apps['partial']} -r {run_id} --tail", code=1)
    assert tailed.stdout == "half done\n"
    last = tailed.stderr.splitlines()[-1]
    assert summary_of(last).groups() == (run_id, "failed") and last.endswith(": exited with code 3")
    plain = orch(daemon, f"app run logs -a {apps['partial']} -r {run_id}")
    assert plain.stdout == "half done\n" and plain.stderr == ""


def test_a_folder_input_at_a_terminal_is_refused_with_how_to_save_it(
    daemon: Daemon, apps: dict[str, str], folder_input: Path, tmp_path: Path
) -> None:
    """It was the tar.gz's raw bytes on the screen."""
    run_id = orch(daemon, f"app run -a {apps['folder']} -i", folder_input).stdout.strip()
    term = Terminal(daemon, f"app run input -a {apps['folder']} -r {run_id}")
    code, shown = term.finish()
    assert code == 1 and b"\x1f\x8b" not in term.output, shown
    said = ESCAPES.sub("", shown).strip()
    hint = re.fullmatch(r"error: the input is a tar\.gz archive, .*: save it with (orch .*)", said)
    assert hint, said
    saved = tmp_path / "in.tar.gz"
    orch(daemon, *shlex.split(hint[1].replace("FILE", str(saved)))[1:], home=False)
    with tarfile.open(saved) as tar:
        assert "a.csv" in tar.getnames()


def test_a_reader_that_stops_early_leaves_the_summary_and_the_exit_code_of_the_run(
    daemon: Daemon, apps: dict[str, str], json_input: Path
) -> None:
    """``| head -c 10``: the output cut short is no failure of the run (it was exit 1 and no
    summary); nothing is said about the closed pipe."""
    argv = [*CLI, "app", "run", "-a", apps["big"], "-w", "-i", str(json_input)]
    proc = subprocess.Popen(
        [*argv, "--home", str(daemon.home)], stdin=DEVNULL, stdout=PIPE, stderr=PIPE, env=ENV
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b"[1,1,1,1,1"
    proc.stdout.close()  # the reader leaves, about 3 MB before the end
    said = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 0, said
    lines = said.splitlines()
    assert len(lines) == 2 and summary_of(lines[1])[2] == "succeeded", said


def test_logs_is_the_whole_log_byte_for_byte_and_harmless_at_a_terminal(
    daemon: Daemon, apps: dict[str, str], json_input: Path
) -> None:
    """A log over 5 MiB came out cut to its last 5 MiB, a note on its first line: now
    ``logs > file`` is the log. At a terminal, control characters are shown escaped."""
    run_id = summary_of(orch(daemon, f"app run -a {apps['flood']} -w -i", json_input).stderr)[1]
    argv = [*CLI, "app", "run", "logs", "-a", apps["flood"], "-r", run_id]
    done = subprocess.run([*argv, "--home", str(daemon.home)], capture_output=True, env=ENV)
    assert done.returncode == 0 and done.stderr == b"", done.stderr
    assert done.stdout == FLOOD_LOG.encode()
    run_id = summary_of(orch(daemon, f"app run -a {apps['title']} -w -i", json_input).stderr)[1]
    term = Terminal(daemon, f"app run logs -a {apps['title']} -r {run_id}")
    code, shown = term.finish()
    assert code == 0 and "\\x1b]0;pwned\\x07 done" in shown and b"\x1b]0" not in term.output


@pytest.mark.parametrize(
    ("metadata", "said"),
    [
        (
            {"status_v2": "canceled", "duration": 0, "error": "canceled"},
            "canceled before it started",
        ),
        ({"status_v2": "canceled", "duration": 1500, "error": "canceled"}, "canceled in 1.50 s"),
        ({"status_v2": "failed", "duration": 20, "error": "exit 3"}, "failed in 0.02 s: exit 3"),
    ],
)
def test_the_summary_line_says_each_thing_once(metadata: dict[str, object], said: str) -> None:
    """A run canceled in the queue read ``canceled in 0.00 s: canceled``."""
    info = cast(RunInfo, {"id": "run-x", "metadata": metadata})
    assert summary(info, full_error=True) == f"run run-x {said}"
