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

from tests.cli_run import CLI, ENV, new_app, orch
from tests.helpers import SAMPLES, Daemon

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
