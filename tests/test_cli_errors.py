"""What goes wrong around a command ends it with one line on stderr and a non-zero exit,
never a traceback: a daemon that stops while a command waits, an empty ID (an unset
shell variable), an output that cannot be written (a missing folder, a full disk), a
run whose folder was deleted by hand."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import pytest

from orchestrator.client import ClientError, OrchClient
from orchestrator.client.transport import Transport
from tests.cli_run import CLI, ENV, argv_of, new_app, orch, spawn
from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, Daemon, wait_for

KNAPSACK_INPUT = SAMPLES / "knapsack" / "input.json"
FULL = Path("/dev/full")


@pytest.fixture(scope="module")
def knap(daemon: Daemon) -> str:
    return new_app(daemon, SAMPLES / "knapsack")


def one_error_line(stderr: str) -> str:
    """The last line of stderr, once it is known to be the only error and no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert lines and sum(line.startswith("error: ") for line in lines) == 1, stderr
    return lines[-1]


def runs_of(api: httpx.Client, app_id: str) -> int:
    return len(api.get(f"/v1/applications/{app_id}/runs").json()["runs"])


# a daemon that stops while a command waits


def test_a_daemon_stopping_while_run_waits_is_one_line(make_daemon: MakeDaemon) -> None:
    d = make_daemon()
    app_id = new_app(d, SAMPLES / "knapsack")
    waiting = spawn(d, f"app run -a {app_id} -o sleep=3 -w -i", KNAPSACK_INPUT)
    with d.client() as api:
        wait_for(lambda: api.get(f"/v1/applications/{app_id}/runs").json()["runs"], timeout=20)
    d.stop()  # it answers the waiting request first, "Connection: close", then is gone
    _, stderr = waiting.communicate(timeout=30)
    assert waiting.returncode == 1, stderr
    line = one_error_line(stderr)
    assert line.startswith(f"error: cannot reach the daemon at {d.url}: "), line
    run_id = line.split("stopped waiting for run ", 1)[1].split(":", 1)[0]
    assert f"orch app run metadata -a {app_id} -r {run_id}" in line  # how to learn its end


class _ClosingHandler(BaseHTTPRequestHandler):
    """Answers every request and closes the connection, as a daemon that is stopping."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[HTTPServer]:
    server = HTTPServer(("127.0.0.1", 0), _ClosingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_connection_closed_by_the_daemon_is_opened_again(closing_server: HTTPServer) -> None:
    url = f"http://127.0.0.1:{closing_server.server_address[1]}"
    http = Transport(url, api_key="key")
    assert http.request("GET", "/v1/one").json() == {}
    assert http.request("GET", "/v1/two").json() == {}  # the "close" was honoured
    closing_server.shutdown()
    closing_server.server_close()
    with pytest.raises(ClientError, match="cannot reach the daemon"):
        http.request("GET", "/v1/three")


# empty IDs


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("app get -a", "--app-id"),
        ("app delete --confirm -a", "--app-id"),
        ("app version get -a {app} -v", "--version-id"),
        ("app instance get -a {app} --instance-id", "--instance-id"),
        ("app run metadata -a {app} -r", "--run-id"),
        ("app run -a {app} -i {input} --instance-id", "--instance-id"),
    ],
)
def test_an_empty_id_is_refused_before_any_request(
    daemon: Daemon, api: httpx.Client, command: str, flag: str
) -> None:
    app_id = new_app(daemon)
    proc = orch(daemon, command.format(app=app_id, input=KNAPSACK_INPUT), [""], code=2)
    expected = f"error: {flag} is empty: give an ID (is a shell variable unset?); see "
    assert one_error_line(proc.stderr).startswith(expected)  # then the command's help
    assert api.get(f"/v1/applications/{app_id}").status_code == 200  # nothing deleted
    assert runs_of(api, app_id) == 0


def test_an_id_with_a_slash_is_refused_before_any_request(daemon: Daemon) -> None:
    """It answered "no such route": the server decodes %2F before it routes."""
    proc = orch(daemon, "app run metadata -a knap -r run/x", code=2)
    assert one_error_line(proc.stderr).startswith(
        "error: --run-id 'run/x' is no ID: IDs have no '/'; see "
    )


def test_the_client_refuses_empty_ids_and_unexpected_redirects(daemon: Daemon) -> None:
    with OrchClient(daemon.url, daemon.key) as client:
        with pytest.raises(ClientError, match="an ID cannot be empty"):
            client.apps.get("")
        with pytest.raises(ClientError, match="an ID cannot be empty"):
            client.versions.get("knap", "")
        with pytest.raises(ClientError, match="'run/x' is no ID: IDs have no '/'"):
            client.runs.metadata("knap", "run/x")  # the server would route it elsewhere
        with pytest.raises(ClientError, match="HTTP 307") as redirected:
            client.http.request("DELETE", "/v1/applications/")  # once counted as done
        assert redirected.value.status == 307


# outputs that cannot be written


def test_an_output_file_in_a_missing_folder_is_refused_before_the_run(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    app_id = new_app(daemon, SAMPLES / "knapsack")
    dest = tmp_path / "missing" / "out.json"
    proc = orch(daemon, f"app run -a {app_id} -w -i", KNAPSACK_INPUT, "-u", dest, code=1)
    assert one_error_line(proc.stderr) == (
        f"error: cannot write {dest}: the folder {dest.parent} does not exist"
    )
    assert runs_of(api, app_id) == 0


def to_dev_full(daemon: Daemon, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """``orch ARGS > /dev/full``: every write to stdout fails with ENOSPC, as on a full disk."""
    argv = [*CLI, *argv_of(args), "--home", str(daemon.home)]
    with FULL.open("w") as full:
        return subprocess.run(
            argv, stdout=full, stderr=subprocess.PIPE, text=True, env=ENV, timeout=60
        )


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")
def test_a_full_disk_under_stdout_is_one_line(daemon: Daemon, knap: str) -> None:
    run_id = orch(daemon, f"app run -a {knap} -i", KNAPSACK_INPUT).stdout.strip()
    for args in (
        "app list",
        "app list --json",
        f"app run logs -a {knap} -r {run_id}",
        f"app run -a {knap} -w -i {KNAPSACK_INPUT}",
    ):
        done = to_dev_full(daemon, args)
        assert done.returncode == 1, (args, done.stderr)
        expected = "error: cannot write stdout (/dev/full): No space left on device"
        assert one_error_line(done.stderr) == expected, args


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full on this system")
def test_a_full_disk_under_an_output_file_is_one_line(daemon: Daemon, knap: str) -> None:
    run_id = orch(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT).stderr.split()[1]
    proc = orch(daemon, f"app run input -a {knap} -r {run_id} -u", FULL, code=1)
    assert one_error_line(proc.stderr) == f"error: cannot write {FULL}: No space left on device"


def test_a_reader_that_went_away_stays_silent(daemon: Daemon, knap: str) -> None:
    """``orch app list | head -0``: the pipe's reader is gone (EPIPE); not an error to show."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run(
            [*CLI, "app", "list", "--json", "--home", str(daemon.home)],
            stdout=write, stderr=subprocess.PIPE, text=True, env=ENV, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.returncode == 1 and done.stderr == ""


# a run whose folder was deleted by hand


def test_a_run_whose_folder_was_deleted_says_so(daemon: Daemon, knap: str) -> None:
    """``rm -rf`` of a finished run's folder: reading its log, output or input is one error
    line naming the run and the folder, exit 1 (it was an empty log and exit 0, and a bare
    "has no output"); its metadata still reads."""
    run_id = orch(daemon, f"app run -a {knap} -w -i", KNAPSACK_INPUT).stderr.split()[1]
    folder = daemon.home / "runs" / run_id
    shutil.rmtree(folder)
    said = (
        f"error: run {run_id!r}: its folder {folder} no longer exists, so its {{}} is gone "
        "(deleted outside orch; the run's metadata is kept)"
    )
    for args, what in (
        ("logs", "log"),
        ("logs --tail", "log"),
        ("result", "output"),
        ("result --json", "output"),
        ("input", "input"),
    ):
        proc = orch(daemon, f"app run {args} -a {knap} -r {run_id}", code=1)
        assert one_error_line(proc.stderr) == said.format(what), args
        assert proc.stdout == "", args
    meta = orch(daemon, f"app run metadata -a {knap} -r {run_id} --json")
    assert json.loads(meta.stdout)["metadata"]["status_v2"] == "succeeded"
