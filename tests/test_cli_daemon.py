"""The daemon's address stays put across restarts, and ``orch daemon env`` hands a shell
what the nextmv SDK and the CLI need to reach it."""

from __future__ import annotations

import shlex
import socket
import subprocess
import sys
from pathlib import Path

from tests.cli_run import CLI, ENV
from tests.conftest import MakeDaemon
from tests.helpers import Daemon


def start_stable(home: Path) -> Daemon:
    """A daemon started the way people start one: no port given."""
    daemon: Daemon = Daemon.start(home, port=None)
    return daemon


def port_of(daemon: Daemon) -> int:
    return int(daemon.url.rsplit(":", 1)[1])


def test_a_restarted_daemon_keeps_its_address(tmp_path: Path) -> None:
    first = start_stable(tmp_path / "home")
    assert first.stop() == 0
    assert (tmp_path / "home" / "port").read_text().strip() == str(port_of(first))
    again = start_stable(tmp_path / "home")
    try:
        assert again.url == first.url
    finally:
        again.stop()


def test_a_taken_port_moves_the_daemon_once_and_it_stays_there(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = start_stable(home)
    first.stop()
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.1", port_of(first)))
    blocker.listen(1)  # someone else took the port while the daemon was down
    try:
        moved = start_stable(home)
        moved.stop()
    finally:
        blocker.close()
    assert port_of(moved) != port_of(first)
    back = start_stable(home)  # the new port was recorded: the next start reuses it
    try:
        assert back.url == moved.url
    finally:
        back.stop()


def test_an_explicit_port_zero_is_used_once_and_not_recorded(make_daemon: MakeDaemon) -> None:
    d = make_daemon()  # the test harness asks for --port 0
    assert not (d.home / "port").exists()


def test_daemon_env_exports_what_the_sdk_and_the_cli_need(fresh_daemon: Daemon) -> None:
    env_cmd = [*CLI, "daemon", "env", "--home", str(fresh_daemon.home)]
    exports = subprocess.run(env_cmd, capture_output=True, text=True, env=ENV, check=True).stdout
    assert all(line.startswith("export ") for line in exports.splitlines())
    sdk = (
        "from nextmv import cloud; c = cloud.Client(); "
        "print(c.url); print(cloud.Application.exists(client=c, id='no-such-app'))"
    )
    script = (
        f'eval "$({shlex.join(env_cmd)})"; "$0" -c "{sdk}"; "$0" -m orchestrator app list --json'
    )
    env = {k: v for k, v in ENV.items() if not k.startswith("NEXTMV_")}
    done = subprocess.run(
        ["sh", "-c", script, sys.executable], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    url, exists, apps = done.stdout.splitlines()
    assert url == fresh_daemon.url and exists == "False" and apps == "[]"


def test_daemon_env_without_a_daemon_says_how_to_start_one(tmp_path: Path) -> None:
    argv = [*CLI, "daemon", "env", "--home", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert "orch daemon start" in done.stderr
