"""Files the user names for a command's output (``-u FILE``, ``--html FILE``) are written the
one way the shell's ``>`` writes them: in place, through a symlink, into a FIFO, never
replaced by a new regular file; and only once there is something to write, so a refused
request leaves what was there. ``-u`` on ``orch app run`` waits for the run to write it.

Only FIFOs, symlinks and files made under ``tmp_path`` are written here: a command that
replaces its output path would replace whatever is there (it once replaced a device node).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

from tests.cli_run import new_app, orch
from tests.helpers import SAMPLES, Daemon

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
PIPE_BYTES = 1024 * 1024
"""The FIFO's buffer, so a whole output fits in it and the test reads it after the command."""


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


@pytest.fixture(scope="module")
def experiment(daemon: Daemon, knap: str) -> str:
    """A finished batch experiment of one run, for its report."""
    orch(daemon, f"experiment input-set create -a {knap} -s one -n One --file", KNAPSACK_INPUT)
    orch(daemon, f"experiment batch start -a {knap} -b exp -s one --instance-ids devint -w")
    return "exp"


@pytest.fixture(scope="module")
def run_id(daemon: Daemon, knap: str) -> str:
    return orch(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT).stderr.split()[1]


def writing_commands(knap: str, experiment: str, run_id: str) -> dict[str, str]:
    """Each command that writes a file it is given, with its flag last."""
    return {
        "report": f"experiment batch report -a {knap} -b {experiment} --html",
        "input": f"app run input -a {knap} -r {run_id} -u",
        "result": f"app run result -a {knap} -r {run_id} -u",
        "run": f"app run -a {knap} -w -i {KNAPSACK_INPUT} -u",
    }


@pytest.mark.parametrize("command", ["report", "input", "result", "run"])
def test_an_output_goes_into_a_fifo_which_stays_one(
    daemon: Daemon, knap: str, experiment: str, run_id: str, tmp_path: Path, command: str
) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    # A reader first (non-blocking, so nothing waits on it), with room for the whole output.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        fcntl.fcntl(reader, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        args = writing_commands(knap, experiment, run_id)[command]
        orch(daemon, args, fifo)
        received = _drain(reader)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode), "the FIFO was replaced by a file"
    assert received, "nothing came through the FIFO"
    assert b"<svg" in received if command == "report" else json.loads(received)


@pytest.mark.parametrize("command", ["report", "input"])
def test_an_output_goes_through_a_symlink_which_stays_one(
    daemon: Daemon, knap: str, experiment: str, run_id: str, tmp_path: Path, command: str
) -> None:
    target, link = tmp_path / "target", tmp_path / "link"
    target.write_text("old")
    link.symlink_to(target)
    orch(daemon, writing_commands(knap, experiment, run_id)[command], link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    written = target.read_bytes()
    assert b"<svg" in written if command == "report" else json.loads(written)


def test_a_refused_request_leaves_the_file_as_it_was(
    daemon: Daemon, knap: str, tmp_path: Path
) -> None:
    """The daemon answers 404 before any byte: the file named is not even opened."""
    kept = tmp_path / "kept"
    for args in (
        f"experiment batch report -a {knap} -b no-such-experiment --html",
        f"app run input -a {knap} -r run-00000000000000 -u",
        f"app run result -a {knap} -r run-00000000000000 -u",
    ):
        kept.write_text("an older report")
        proc = orch(daemon, args, kept, code=1)
        assert proc.stderr.startswith("error: ") and "not found" in proc.stderr, proc.stderr
        assert kept.read_text() == "an older report", args
    made = tmp_path / "never-made"
    orch(daemon, f"app run input -a {knap} -r run-00000000000000 -u", made, code=1)
    assert not made.exists()


def test_output_of_app_run_waits_for_the_run_and_writes_it(
    daemon: Daemon, api: httpx.Client, knap: str, tmp_path: Path
) -> None:
    """``-u`` without ``-w`` printed the run ID and never wrote the file; as the nextmv
    CLI's ``--output``, it waits."""
    out = tmp_path / "out.json"
    proc = orch(daemon, f"app run -a {knap} -i", KNAPSACK_INPUT, "-u", out)
    assert proc.stdout == ""
    assert f"wrote {out}" in proc.stderr and " succeeded in " in proc.stderr
    run_id = proc.stderr.split()[1]
    raw = api.get(f"/v1/applications/{knap}/runs/{run_id}/output").content
    assert out.read_bytes() == raw


def test_assets_output_without_an_asset_is_refused(
    daemon: Daemon, knap: str, run_id: str, tmp_path: Path
) -> None:
    """Listing the assets has no file to write: ``-u`` alone was ignored, silently."""
    out = tmp_path / "x.out"
    proc = orch(daemon, f"app run assets -a {knap} -r {run_id} -u", out, code=2)
    assert proc.stdout == ""
    assert proc.stderr == (
        "error: --output writes a downloaded asset: give --asset-id too; "
        "see 'python -m orchestrator app run assets -h'\n"
    )
    assert not out.exists()


def _drain(fd: int) -> bytes:
    """Everything buffered in the FIFO (its writer has exited)."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return data
            raise
        if not chunk:
            return data
        data += chunk
