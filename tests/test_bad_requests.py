"""Bad requests, against the real daemon: a 4xx with a JSON ``{"error"}`` that says what
is wrong, never a 500 or a stalled daemon, and nothing made on the way. (Found by a
hostile-user walk, 2026-12-08: a header without end, a lone surrogate, a deep app.yaml.)"""

from __future__ import annotations

import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.cli_run import orch
from tests.helpers import (
    Daemon,
    create_app,
    push_archive,
    push_dir,
    raw_connection,
    read_to_end,
    unique,
    write_app,
)
from tests.test_experiments import keep_input

ECHO = "import json, sys\nprint(json.dumps({'got': json.load(sys.stdin)}))\n"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def echo_app(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with daemon.client() as api:
        app_id = create_app(api)
        tmp = tmp_path_factory.mktemp("echo")
        push_dir(api, app_id, write_app(tmp / "app", ECHO), tmp)
    yield app_id


def _refused(r: httpx.Response, status: int, says: str) -> None:
    assert r.status_code == status, r.text
    assert says in r.json()["error"], r.text


def test_a_huge_header_is_a_431_at_once_and_the_daemon_stays_light(daemon: Daemon) -> None:
    """httptools keeps a header however long it grows: one client froze the daemon for
    seconds and grew it by the header's size, before any key was checked."""
    before = daemon.rss_mib()
    with raw_connection(daemon) as sock:
        sent: list[BaseException] = []

        def send() -> None:
            try:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
                for _ in range(16):
                    sock.sendall(b"a" * MIB)
            except OSError as exc:  # the daemon closed the connection: the point
                sent.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        started = time.monotonic()
        health = httpx.get(f"{daemon.url}/healthz", timeout=10)
        assert health.status_code == 200 and time.monotonic() - started < 1
        sender.join(10)
        grown = daemon.rss_mib() - before  # measured while the connection is still open
        answer = read_to_end(sock)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": "request line and headers over 64 KiB"}
    assert sent, "the daemon read all 16 MiB of the header"
    assert grown < 8, f"the daemon grew by {grown:.1f} MiB"
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200


def test_heads_under_the_cap_and_bodies_over_it_still_work(
    daemon: Daemon, api: httpx.Client, echo_app: str
) -> None:
    """Only the head is counted: a 60 KiB header passes, as does a 2 MiB body, and so do
    several requests on one connection whose heads add up to more than the cap."""
    r = api.get("/healthz", headers={"X-Fill": "a" * 60_000})
    assert r.status_code == 200, r.text
    body = {"input": {"blob": "b" * (2 * MIB)}}
    assert api.post(f"/v1/applications/{echo_app}/runs", json=body).status_code == 201
    with raw_connection(daemon) as sock:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Fill: " + b"c" * 40_000 + b"\r\n\r\n"
        sock.sendall(request * 3)
        time.sleep(0.3)
        sock.shutdown(socket.SHUT_WR)
        answers = read_to_end(sock)
    assert answers.count(b"HTTP/1.1 200 ") == 3, answers[:300]


def test_a_request_that_is_no_http_is_refused_in_json(daemon: Daemon) -> None:
    """uvicorn answered what httptools cannot parse in plain text ("Invalid HTTP request
    received."), where every other error of the daemon is ``{"error": ...}``."""
    with raw_connection(daemon) as sock:
        sock.sendall(b"POST /v1/applications HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n")
        head, _, body = read_to_end(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"content-type: application/json" in head
    assert "cannot be parsed" in json.loads(body)["error"]
    assert httpx.get(f"{daemon.url}/healthz", timeout=5).status_code == 200


def _runs(api: httpx.Client, app_id: str) -> int:
    r = api.get(f"/v1/applications/{app_id}/runs", params={"limit": 1000})
    assert r.status_code == 200, r.text
    return len(r.json()["runs"] if isinstance(r.json(), dict) else r.json())


def _post_raw(api: httpx.Client, path: str, body: str) -> httpx.Response:
    """``body`` sent as written: ``\\ud800`` stays the escape a client's JSON holds."""
    headers = {"content-type": "application/json"}
    return api.post(path, content=body.encode(), headers=headers)


def test_a_lone_surrogate_is_a_400_wherever_it_is(api: httpx.Client, echo_app: str) -> None:
    runs = f"/v1/applications/{echo_app}/runs"
    count = _runs(api, echo_app)
    for body in (
        r'{"input": "a\ud800"}',
        r'{"input": {"\ud800": 1}}',
        r'{"input": {"a": ["\udfff"]}}',
    ):
        _refused(_post_raw(api, runs, body), 400, "input is not valid Unicode: a lone surrogate")
    for body in (
        r'{"input": {}, "options": {"x": "\ud800"}}',
        r'{"input": {}, "options": {"\ud800": "1"}}',
    ):
        _refused(_post_raw(api, runs, body), 400, "is not valid Unicode: a lone surrogate")
    limits = r'{"input": {}, "configuration": {"limits": {"a\ud800": 1}}}'
    _refused(_post_raw(api, runs, limits), 400, "unknown limit(s) a\\ud800;")  # quoted, escaped
    assert _runs(api, echo_app) == count  # nothing was made
    r = _post_raw(api, runs, r'{"input": {"emoji": "\ud83d\ude00"}}')  # a pair is a character
    assert r.status_code == 201, r.text
    secrets = f"/v1/applications/{echo_app}/secrets"
    cid = unique("sec")
    for kind, location in (("env", "TOKEN"), ("file", "token.txt")):
        value = {"type": kind, "location": location, "value": "x\ud800"}
        body = json.dumps({"id": cid, "secrets": [value]})
        _refused(_post_raw(api, secrets, body), 400, "is not valid Unicode: a lone surrogate")
    assert api.get(f"{secrets}/{cid}").status_code == 404


def _deep_package(tmp: Path, depth: int) -> Path:
    manifest = "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    manifest += "files: [main.py]\nx: " + "[" * depth + "]" * depth + "\n"
    archive = tmp / "deep.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, text in (("app.yaml", manifest), ("main.py", ECHO)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    return archive


def test_a_deeply_nested_app_yaml_is_refused_in_one_line(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    """Over HTTP (422, no ``RecursionError``) and by ``orch app push`` (one line, no
    traceback): both parse app.yaml through ``Manifest.from_yaml``."""
    says = "app.yaml is nested too deeply (more than 64 levels)"
    app_id = create_app(api)
    _refused(push_archive(api, app_id, _deep_package(tmp_path, 2000)), 422, says)
    folder = tmp_path / "app"
    folder.mkdir()
    with tarfile.open(_deep_package(tmp_path, 2000)) as tar:
        tar.extractall(folder, filter="data")
    proc = orch(daemon, f"app push -a {app_id} --app-dir", folder, code=1)
    assert says in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_a_boolean_limit_is_refused(api: httpx.Client, echo_app: str) -> None:
    runs = f"/v1/applications/{echo_app}/runs"
    body = {"input": {}, "configuration": {"limits": {"timeout_seconds": True}}}
    _refused(api.post(runs, json=body), 400, "limit timeout_seconds must be a number, got True")
    version = unique("v")
    assert api.post(f"/v1/applications/{echo_app}/versions", json={"id": version}).is_success
    instance = {"id": unique("inst"), "version_id": version}
    instance["configuration"] = {"limits": {"memory_mb": False}}
    r = api.post(f"/v1/applications/{echo_app}/instances", json=instance)
    _refused(r, 400, "limit memory_mb must be a number, got False")


def test_an_option_name_a_model_cannot_read_is_refused(api: httpx.Client, echo_app: str) -> None:
    """Runs, instances and experiments, one check: a model got ``-`` or ``-a\\n``."""
    says = "a name must be non-empty, without spaces or control characters"
    runs = f"/v1/applications/{echo_app}/runs"
    version = unique("v")
    assert api.post(f"/v1/applications/{echo_app}/versions", json={"id": version}).is_success
    target = {"id": unique("inst"), "version_id": version}
    assert api.post(f"/v1/applications/{echo_app}/instances", json=target).status_code == 201
    input_id = keep_input(api, echo_app, b"{}", unique("in"))
    batch = f"/v1/applications/{echo_app}/experiments/batch"
    for name in ("", "a\n", "two words", "tab\t"):
        _refused(api.post(runs, json={"input": {}, "options": {name: "1"}}), 400, says)
        instance = {"id": unique("inst"), "version_id": version}
        instance["configuration"] = {"options": {name: "1"}}
        _refused(api.post(f"/v1/applications/{echo_app}/instances", json=instance), 400, says)
        run = {"input_id": input_id, "instance_id": target["id"], "option_set": "s"}
        body = {"id": unique("b"), "runs": [run], "option_sets": {"s": {name: "1"}}}
        _refused(api.post(batch, json=body), 400, says)
        assert api.get(f"{batch}/{body['id']}").status_code == 404
    ok = api.post(runs, json={"input": {}, "options": {"solve.duration": "1"}})
    assert ok.status_code == 201, ok.text
