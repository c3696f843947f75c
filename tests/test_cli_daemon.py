"""The daemon's address stays put across restarts, ``orch daemon env`` hands a shell
what the nextmv SDK and the CLI need to reach it, ``stop`` signals only the daemon, and
a start that cannot happen says why in one line."""

from __future__ import annotations

import json
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cli_run import CLI, ENV
from tests.conftest import MakeDaemon
from tests.helpers import Daemon, wait_for


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


def daemon_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*CLI, "daemon", *args, "--home", str(home)]
    return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=60)


def stale_daemon_json(home: Path, pid: int, started_at: float) -> None:
    """What a daemon killed with SIGKILL leaves: its daemon.json, naming a pid that is
    now someone else's."""
    home.mkdir(parents=True, exist_ok=True)
    info = {"url": "http://127.0.0.1:1", "pid": pid, "started_at": started_at, "home": str(home)}
    (home / "daemon.json").write_text(json.dumps(info))


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process of the user's, which no orch command may signal."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def test_stop_never_signals_a_process_that_reused_a_dead_daemons_pid(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    home = tmp_path / "home"
    stale_daemon_json(home, stranger.pid, started_at=time.time() - 3600)  # died an hour ago
    assert daemon_cli(home, "status").returncode == 1
    done = daemon_cli(home, "stop")
    assert done.returncode == 0 and "no orch daemon is running" in done.stderr, done.stderr
    assert stranger.poll() is None, "orch daemon stop signalled an unrelated process"
    assert not (home / "daemon.json").exists()  # the stale file is cleaned up


def test_stop_wants_the_homes_lock_held_not_only_an_old_enough_pid(
    tmp_path: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A process older than the recorded start (a clock set back, a hand-written file) is
    still not the daemon when no daemon holds the home's lock."""
    home = tmp_path / "home"
    stale_daemon_json(home, stranger.pid, started_at=time.time() + 60)
    done = daemon_cli(home, "stop")
    assert done.returncode == 0 and "no orch daemon is running" in done.stderr, done.stderr
    assert stranger.poll() is None


def test_stop_after_the_daemon_was_killed_says_none_runs(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    d.process.send_signal(signal.SIGKILL)  # not collected: a zombie, as under a supervisor
    wait_for(lambda: psutil.Process(d.process.pid).status() == psutil.STATUS_ZOMBIE)
    done = daemon_cli(d.home, "stop")
    assert done.returncode == 0 and "no orch daemon is running" in done.stderr, done.stderr
    assert "stopped" not in done.stderr
    d.process.wait(10)


def test_stop_stops_a_running_daemon(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    done = daemon_cli(d.home, "stop")
    assert done.returncode == 0 and f"stopped (pid {d.process.pid})" in done.stderr
    assert d.process.wait(10) == 0


def test_a_start_asking_for_another_port_than_the_running_daemon_says_so(
    make_daemon: MakeDaemon,
) -> None:
    """``daemon start --port P`` with this home's daemon on another port said "already
    running" and exited 0, and its caller then looked for the daemon on P."""
    d = make_daemon()
    port = port_of(d)
    other = port + 1 if port < 65535 else port - 1
    done = daemon_cli(d.home, "start", "--port", str(other))
    assert done.returncode == 1, done.stderr
    assert f"running at {d.url} (pid {d.process.pid}), not on port {other}" in done.stderr
    same = daemon_cli(d.home, "start", "--port", str(port))
    assert same.returncode == 0 and same.stdout.strip() == d.url, same.stderr


def test_two_starts_at_once_both_find_the_one_daemon(tmp_path: Path) -> None:
    """The start that lost the race for the home's lock said "the daemon could not start"
    and exited 1, while a daemon it was asked for ran there: now both print its URL."""
    home = tmp_path / "home"
    argv = [*CLI, "daemon", "start", "--port", "0", "--home", str(home)]
    for _ in range(3):  # the race is not lost every time: each round has its chance
        starts = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)]
        starts.append(
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        )
        done = [(p.wait(60), *(out.decode() for out in p.communicate())) for p in starts]
        try:
            assert [code for code, _, _ in done] == [0, 0], done
            urls = {out.strip() for _, out, _ in done}
            assert len(urls) == 1, done
            said = " ".join(err for _, _, err in done)
            assert "could not start" not in said, said
        finally:
            assert daemon_cli(home, "stop").returncode == 0


def test_a_second_daemon_on_a_home_exits_with_its_own_code(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    done = daemon_cli(d.home, "run", "--port", "0")
    assert done.returncode == 3, done.stderr
    assert f"another orch daemon is already running on {d.home}" in done.stderr


def test_a_port_out_of_range_is_refused_as_a_usage_error(tmp_path: Path) -> None:
    done = daemon_cli(tmp_path / "home", "start", "--port", "99999")
    assert done.returncode == 2 and "99999" in done.stderr and "0<=x<=65535" in done.stderr
    assert "OverflowError" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["--port", "config.toml"])
def test_a_taken_port_is_named(tmp_path: Path, where: str) -> None:
    """Set in config.toml, the message told to leave out a --port never given."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        args = ["--port", str(port)] if where == "--port" else []
        if where == "config.toml":
            (tmp_path / "home").mkdir()
            (tmp_path / "home" / "config.toml").write_text(f"port = {port}\n")
        done = daemon_cli(tmp_path / "home", "start", *args)
    assert done.returncode == 1, done.stderr
    assert done.stderr == (
        f"error: port {port} is already in use on 127.0.0.1 (by another program or daemon): "
        "choose another (--port, ORCH_PORT or port in config.toml, whichever set it), or set "
        "none to take a free one\n"
    )
    if where == "--port":  # the home the start made stays private, as a daemon makes it
        assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700


def test_a_home_that_cannot_be_a_folder_is_named(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    done = daemon_cli(a_file, "start")
    assert done.returncode == 1 and done.stderr == f"error: home {a_file} is not a folder\n"
    done = daemon_cli(Path("/proc/orch-home"), "run")
    assert done.returncode == 1
    assert done.stderr.startswith("error: home /proc/orch-home cannot be created: "), done.stderr


def test_status_of_a_frozen_daemon_says_it_runs_but_does_not_answer(
    make_daemon: MakeDaemon,
) -> None:
    """A daemon stopped with SIGSTOP (or hung) is still the home's: status used to say
    "not running", with nothing on stderr, while start refused a second one."""
    d = make_daemon()
    d.process.send_signal(signal.SIGSTOP)
    try:
        done = daemon_cli(d.home, "status", "--json")
    finally:
        d.process.send_signal(signal.SIGCONT)
    assert done.returncode == 1
    shown = json.loads(done.stdout)
    assert shown["running"] is True and shown["answering"] is False
    assert shown["pid"] == d.process.pid
    assert f"the daemon (pid {d.process.pid}) runs but does not answer" in done.stderr
    assert json.loads(daemon_cli(d.home, "status", "--json").stdout)["answering"] is True


@pytest.mark.parametrize("config", ["", "tls = true\n"], ids=["http", "https"])
def test_a_daemon_that_does_not_answer_is_said_while_the_command_waits(
    make_daemon: MakeDaemon, config: str
) -> None:
    """A frozen daemon (here stopped by SIGSTOP) made every command wait up to 60 s in
    silence; after 5 s the command now says it is still waiting, then goes on. Over
    https the wait is in TLS's handshake (the frozen daemon's kernel accepts the
    connection), which had kept the minute silent."""
    d = make_daemon(config=config)
    d.process.send_signal(signal.SIGSTOP)
    try:
        argv = [*CLI, "app", "list", "--home", str(d.home)]
        waiting = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
        time.sleep(6.5)
    finally:
        d.process.send_signal(signal.SIGCONT)
    _, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 0, err
    assert f"the daemon at {d.url} has not answered for 5 s; still waiting" in err.decode()
    quick = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)
    assert quick.returncode == 0 and "still waiting" not in quick.stderr


def test_a_typed_home_wins_over_the_exported_url(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    """With ``eval "$(orch daemon env)"`` of one home in the shell, ``--home`` of another
    created the app in the first home, and a home that does not exist listed its apps."""
    exported, typed = make_daemon(), make_daemon()
    env = {**ENV, "ORCH_URL": exported.url, "ORCH_API_KEY": exported.key}

    def orch(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=30)

    made = orch("app", "create", "-a", "typed-only", "-n", "T", "--home", str(typed.home))
    assert made.returncode == 0, made.stderr
    with typed.client() as api:
        assert api.get("/v1/applications/typed-only").status_code == 200
    with exported.client() as api:
        assert api.get("/v1/applications/typed-only").status_code == 404
    assert "typed-only" not in orch("app", "list").stdout  # no --home: the exported daemon
    nowhere = orch("--home", str(tmp_path / "nohome"), "app", "list")
    assert nowhere.returncode == 1 and "no orch daemon is running for" in nowhere.stderr
