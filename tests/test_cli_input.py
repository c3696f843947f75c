"""``orch app run`` checks its input before a run exists: empty, missing or unreadable
input is refused with a message, and the daemon never sees a run for it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from orchestrator.cli.run_input import Scratch, read_input
from tests.cli_run import CLI, ENV, new_app, orch, orch_json
from tests.helpers import MULTI_FILE_MANIFEST, SAMPLES, Daemon, write_app

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"


@pytest.fixture
def app_id(daemon: Daemon) -> str:
    """A fresh knapsack app per test: its run count tells whether a run was created."""
    return new_app(daemon, SAMPLES / "knapsack")


def runs_of(api: httpx.Client, app_id: str) -> int:
    return len(api.get(f"/v1/applications/{app_id}/runs").json()["runs"])


def refused(
    daemon: Daemon, api: httpx.Client, app_id: str, *args: str | Path, stdin: str = ""
) -> str:
    proc = orch(daemon, f"app run -a {app_id} -w", *args, stdin=stdin, code=1)
    assert proc.stdout == "" and proc.stderr.startswith("error: "), proc.stderr
    assert runs_of(api, app_id) == 0, "a refused input created a run"
    return proc.stderr


def test_empty_stdin_is_refused(daemon: Daemon, api: httpx.Client, app_id: str) -> None:
    assert "the input on stdin is empty" in refused(daemon, api, app_id, stdin="")
    assert "the input on stdin is empty" in refused(daemon, api, app_id, "-i -", stdin="")


def test_dev_null_and_empty_files_are_refused(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    assert "input /dev/null is empty" in refused(daemon, api, app_id, "-i /dev/null")
    empty = tmp_path / "empty.json"
    empty.touch()
    assert f"input {empty} is empty" in refused(daemon, api, app_id, "-i", empty)


def test_missing_input_and_empty_folder_are_refused(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.json"
    assert f"input {missing} does not exist" in refused(daemon, api, app_id, "-i", missing)
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    assert "holds no files" in refused(daemon, api, app_id, "-i", folder)


def without_read_override() -> list[str]:
    """A prefix that runs a command without the power to read what it has no permission
    for: nothing for a normal user; for root, ``setpriv`` drops the capabilities that
    let root read any file (what an unreadable file means to a normal user)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root without setpriv: every file is readable")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("where", ["file", "folder", "file in a folder"])
def test_unreadable_input_is_refused(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path, where: str
) -> None:
    folder = tmp_path / "inputs"
    folder.mkdir()
    data = folder / "data.json"
    data.write_text(KNAPSACK_INPUT.read_text())
    locked = {"file": data, "folder": folder, "file in a folder": data}[where]
    given = data if where == "file" else folder
    locked.chmod(0)
    try:
        argv = [*without_read_override(), *CLI, "app", "run", "-a", app_id, "-w", "-i", str(given)]
        argv += ["--home", str(daemon.home)]
        proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    finally:
        locked.chmod(0o700)
    assert proc.returncode == 1, proc.stderr
    assert "cannot read input" in proc.stderr and "ermission denied" in proc.stderr
    assert runs_of(api, app_id) == 0


def test_a_pipe_given_as_a_file_is_read_once(daemon: Daemon, app_id: str) -> None:
    """``-i <(command)``: the path is a pipe, read into a file before the run is made."""
    script = f'exec "$@" -i <(cat {KNAPSACK_INPUT}) -w'
    argv = ["bash", "-c", script, "orch", *CLI, "app", "run", "-a", app_id]
    argv += ["--home", str(daemon.home)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["statistics"]["result"]["value"] == 444


def test_an_empty_input_path_is_refused_not_read_as_the_current_folder(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    """``-i "$INPUT"`` with INPUT unset: ``Path("")`` is ``.``, which was sent whole."""
    (tmp_path / "notes.txt").write_text("private\n")
    argv = [*CLI, "app", "run", "-a", app_id, "-i", "", "--home", str(daemon.home)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == "", proc.stderr
    assert proc.stderr.startswith("error: the input path is empty"), proc.stderr
    assert runs_of(api, app_id) == 0


BROKEN_JSON = '{"weight_capacity": 5, "items": [\n'


@pytest.mark.parametrize(
    ("name", "flags", "content"),
    [
        ("bad.json", "", BROKEN_JSON),  # the name says JSON
        ("bad.txt", "--format json", BROKEN_JSON),  # the flag says JSON
        ("bad.txt", "", BROKEN_JSON),  # it opens like a JSON object
        ("bad", "", "[1, 2,\n"),  # ... or like a JSON array
    ],
)
def test_input_meant_as_json_that_does_not_parse_is_refused(
    daemon: Daemon,
    api: httpx.Client,
    app_id: str,
    tmp_path: Path,
    name: str,
    flags: str,
    content: str,
) -> None:
    path = tmp_path / name
    path.write_text(content)
    message = refused(daemon, api, app_id, f"{flags} -i", path)
    assert message.startswith(f"error: {path} is not valid JSON: Expecting value (line 2 column 1)")


def test_json_on_stdin_that_does_not_parse_is_refused(
    daemon: Daemon, api: httpx.Client, app_id: str
) -> None:
    message = refused(daemon, api, app_id, stdin=BROKEN_JSON)
    assert message.startswith("error: the input on stdin is not valid JSON: Expecting value")


def test_text_that_only_looks_a_little_like_json_still_goes_as_text(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    """Text apps exist: an INI file's ``[section]`` is not the start of a JSON array, and
    ``--format text`` sends anything as it is."""
    ini = tmp_path / "settings.ini"
    ini.write_text("[section]\nkey = 1\n")
    broken = tmp_path / "broken.json"
    broken.write_text(BROKEN_JSON)
    for flags, path in (("", ini), ("--format text", broken)):
        run_id = orch(daemon, f"app run -a {app_id} {flags} -i", path).stdout.strip()
        meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
        assert meta["metadata"]["format"]["input"]["type"] == "text"


def test_a_folder_for_a_json_app_is_refused_before_a_run_exists(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    """A folder went to the knapsack (a json app) as multi-file, with no word, and the run
    died in the model on an empty stdin. The executable's format is looked up for a
    folder (only then) and the folder refused, saying what the app takes."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(KNAPSACK_INPUT, folder / "input.json")
    refused = orch(daemon, f"app run -a {app_id} -w -i", folder, code=2)
    assert refused.stdout == ""
    assert refused.stderr.startswith(
        f"error: app {app_id} (instance devint) takes json input, not a folder: "
        "give a file (-i FILE) or pipe it on stdin"
    ), refused.stderr
    orch(daemon, f"app promote -a {app_id} -v v1 -n One")  # production: a version's format
    default = orch(daemon, f"app run -a {app_id} --instance-id default -i", folder, code=2)
    assert f"app {app_id} (instance production) takes json input" in default.stderr
    said = orch(daemon, f"app run -a {app_id} --format json -i", folder, code=2)
    assert f"--format json takes a file, and {folder} is a folder" in said.stderr
    assert runs_of(api, app_id) == 0


@pytest.mark.parametrize("fmt", ["multi-file", "csv-archive"])
def test_a_folder_app_takes_a_folder_in_its_own_format(
    daemon: Daemon, api: httpx.Client, tmp_path: Path, fmt: str
) -> None:
    """A folder app keeps taking folders, on devint and on a version (``default``), each
    sent in the app's format (a csv-archive app's folder was sent as multi-file)."""
    manifest = MULTI_FILE_MANIFEST.replace("format: multi-file", f"format: {fmt}")
    app_id = new_app(daemon, write_app(tmp_path / "app", "print('ok')", manifest))
    orch(daemon, f"app promote -a {app_id} -v v1 -n One")
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.csv").write_text("a\n")
    for target in ("devint", "default"):
        run_id = orch(daemon, f"app run -a {app_id} --instance-id {target} -i", folder).stdout
        meta = orch_json(daemon, f"app run metadata -a {app_id} -r {run_id.strip()}")
        assert meta["metadata"]["format"]["input"]["type"] == fmt


def test_the_scratch_folder_is_removed(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    """stdin is spooled and a folder archived in a temporary folder, removed afterwards."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(KNAPSACK_INPUT, folder / "input.json")
    env = {"TMPDIR": str(scratch)}  # the knapsack model fails on a folder: code=None
    sent = "--format multi-file -i"  # said outright: a json app's format refuses a folder
    orch(daemon, f"app run -a {app_id} -w {sent}", folder, env=env, code=None)
    orch(daemon, f"app run -a {app_id} -w", stdin=KNAPSACK_INPUT.read_text(), env=env)
    assert runs_of(api, app_id) == 2  # both inputs were sent
    assert list(scratch.iterdir()) == [], "a temporary folder was left"


def test_a_file_input_needs_no_scratch_folder() -> None:
    """Most runs read a file where it is: the command then makes no temporary folder."""
    with Scratch() as scratch:
        run_input = read_input(str(KNAPSACK_INPUT), None, scratch)
        assert run_input.inline is not None and scratch.made is None
        spooled = scratch / "stdin"
        assert scratch.made is not None and spooled.parent == scratch.made
    assert not spooled.parent.exists()


# input sets: the same checks as a run's input


@pytest.mark.parametrize(
    ("name", "content", "flags", "said"),
    [
        ("bad.json", '{"a":\n 1,,}', "", "{path} is not valid JSON: Expecting property name"),
        ("bad.txt", "[1, 2,\n", "", "{path} is not valid JSON: Expecting value (line 2 column 1)"),
        ("bad.txt", "plain words", "--format json", "{path} is not valid JSON: Expecting value"),
        ("empty.json", "", "", "input {path} is empty: a run needs an input"),
    ],
)
@pytest.mark.parametrize("source", ["--file", "--dir"])
def test_an_input_set_refuses_what_a_run_refuses(
    daemon: Daemon,
    api: httpx.Client,
    app_id: str,
    tmp_path: Path,
    name: str,
    content: str,
    flags: str,
    said: str,
    source: str,
) -> None:
    """A malformed ``.json`` was kept as text and an empty file as an input: each became a
    run that died in the model once an experiment ran it, where ``app run -i`` refuses both
    with the same words. Nothing is uploaded, no set is made."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    path = folder / name
    path.write_text(content)
    (folder / "good.json").write_text(KNAPSACK_INPUT.read_text())
    run = orch(daemon, f"app run -a {app_id} {flags} -i", path, code=1)
    given = path if source == "--file" else folder
    create = f"experiment input-set create -a {app_id} -s checked -n Checked {flags} {source}"
    proc = orch(daemon, create, given, code=1)
    assert proc.stderr.startswith("error: " + said.format(path=path)), proc.stderr
    assert run.stderr.split(":")[:2] == proc.stderr.split(":")[:2]  # the same words
    assert api.get(f"/v1/applications/{app_id}/inputs").json() == []
    orch(daemon, f"experiment input-set get -a {app_id} -s checked", code=1)
    assert runs_of(api, app_id) == 0


def test_an_input_set_still_keeps_text_as_text(
    daemon: Daemon, api: httpx.Client, app_id: str, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("[section]\nkey = 1\n")
    create = f"experiment input-set create -a {app_id} -s mixed -n Mixed --json --file"
    made = json.loads(orch(daemon, create, notes, "--file", KNAPSACK_INPUT).stdout)
    kept = {i["id"]: i for i in api.get(f"/v1/applications/{app_id}/inputs").json()}
    formats = [kept[i]["format"]["input"]["type"] for i in made["input_ids"]]
    assert formats == ["text", "json"]
