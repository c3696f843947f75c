"""A daemon that cannot start says why in one line, within seconds, and leaves nothing running.

Full disk (on a tmpfs the test mounts and fills), read-only home (the same
tmpfs remounted read-only), bad config: ``orch daemon run`` and ``orch daemon
start`` both exit non-zero with one line on stderr, and no process names the
home afterwards.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults import fill, orch, processes_using, remount, tmpfs
from tests.helpers import SAMPLES, Daemon, create_app, push_dir, run_and_wait

CONFIG = "disk_low_mb = 8\ndisk_reserve_mb = 4\n"


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", 32) as mounted:
        yield mounted


def _refused(home: Path, *words: str) -> list[str]:
    """``daemon run`` and ``daemon start`` on ``home``: each fails fast with one line."""
    lines = []
    for command in ("run", "start"):
        started = time.monotonic()
        done = orch("daemon", command, "--home", str(home), "--port", "0", timeout=30)
        assert done.returncode != 0, (command, done.stdout, done.stderr)
        assert time.monotonic() - started < 10, command
        line = done.stderr.strip()
        assert line and "\n" not in line, (command, done.stderr)
        assert "Traceback" not in line
        for word in words:
            assert word in line, (command, line)
        lines.append(line)
    assert not processes_using(home), "a process was left behind"
    return lines


def test_start_up_on_a_full_disk(disk: Path) -> None:
    home = disk / "home"
    d = Daemon.start(home, config=CONFIG)
    d.client().post("/v1/applications", json={"id": "kept", "name": "Kept"})
    d.stop()
    ballast = fill(disk)
    _refused(home, "disk", "full", "MiB")
    _refused(disk / "fresh-home", "disk", "full")  # a home never started before, too
    ballast.unlink()
    started = orch("daemon", "start", "--home", str(home), "--port", "0")
    assert started.returncode == 0, started.stderr
    assert orch("daemon", "stop", "--home", str(home)).returncode == 0


def test_start_up_on_a_read_only_home(disk: Path) -> None:
    home = disk / "home"
    Daemon.start(home, config=CONFIG).stop()
    remount(disk, "ro")
    try:
        _refused(home, "read-only", str(home))
    finally:
        remount(disk, "rw")


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('host = "0.0.0.0"\n', "127.0.0.1 only"),
        ('concurrency = "four"\n', "concurrency"),
        ("colour = 3\n", "colour"),
        ("concurrency = \n", "not valid TOML"),
        ("disk_low_mb = -1\n", "disk_low_mb"),
        ('[limits]\nmemory_mb = "x"\n', "config.toml [limits]: limit memory_mb must be"),
        ("[execution_classes.big]\ncpus = 2\n", "config.toml [execution_classes.big]: "),
        ("execution_classes = 3\n", "config.toml: execution_classes must be a table"),
        ("limits = 3\n", "config.toml: limits must be a table"),
        ("[isolation]\nuse = 3\n", "use must be a list of names"),  # was a traceback
        ("[isolation]\nread_paths = 3\n", "read_paths must be a list of absolute paths"),
    ],
)
def test_a_bad_config_is_one_line(tmp_path: Path, config: str, named: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text(config)
    _refused(home, named)


def test_a_config_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_bytes(b"concurrency = 2\n# caf\xe9\n")
    _refused(home, "config.toml", "line 2", "UTF-8")


@pytest.mark.parametrize("loss", ["emptied", "removed"])
def test_a_lost_database_deletes_nothing(tmp_path: Path, loss: str) -> None:
    """A new database names no run or package: a daemon starting on one would delete
    them all as a crash's leftovers. It refuses instead, and every file stays."""
    home = tmp_path / "home"
    d = Daemon.start(home)
    with d.client() as api:
        app = create_app(api)
        push_dir(api, app, SAMPLES / "knapsack", tmp_path)
        run = run_and_wait(api, app, {"input": (SAMPLES / "knapsack" / "input.json").read_text()})
    d.stop()
    held = {f: sorted(os.listdir(home / f)) for f in ("runs", "executables", "blobs")}
    assert held["runs"] == [run["id"]]
    if loss == "emptied":
        (home / "orch.db").write_bytes(b"")
    else:
        (home / "orch.db").unlink()
    _refused(home, "orch.db", "missing or empty", "1 run folder(s)", "1 unpacked package(s)")
    assert {f: sorted(os.listdir(home / f)) for f in held} == held


def test_a_broken_database_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "orch.db").write_bytes(b"this is not a database" * 100)
    _refused(home, "orch.db")


def test_a_taken_port_is_named_by_the_daemon_itself(tmp_path: Path) -> None:
    """``daemon run`` (no CLI check before it) names the port it could not take."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = orch("daemon", "run", "--home", str(tmp_path / "home"), "--port", str(port))
    assert done.returncode != 0
    assert f"port {port} is already in use on 127.0.0.1" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
