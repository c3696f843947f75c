"""Requests a careless or hostile client sends, against the real daemon: each one is
answered with a 4xx and a JSON body that says what is wrong, and nothing it touched
answers 500 afterwards. (Found by attacking the API as a client would, 2026-12-07.)"""

from __future__ import annotations

import io
import json
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, write_app

ECHO = "import json, sys\nprint(json.dumps({'got': json.load(sys.stdin)}))\n"
NAN_OUTPUT = 'print(\'{"value": NaN, "best": Infinity}\')\n'
FLOAT_OPTION = """type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files:
  - main.py
configuration:
  options:
    items:
      - name: duration
        option_type: float
        default: 1.0
"""


@pytest.fixture(scope="module")
def echo_app(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with daemon.client() as api:
        app_id = create_app(api)
        tmp = tmp_path_factory.mktemp("echo")
        push_dir(api, app_id, write_app(tmp / "app", ECHO, manifest=FLOAT_OPTION), tmp)
    yield app_id


def _refused(r: httpx.Response, status: int, says: str) -> None:
    assert r.status_code == status, r.text
    assert says in r.json()["error"], r.text


def test_limits_that_are_not_finite_numbers_are_refused(api: httpx.Client, echo_app: str) -> None:
    runs = f"/v1/applications/{echo_app}/runs"
    for name, value in [("timeout_seconds", "nan"), ("cpu_seconds", "inf"), ("memory_mb", "nan")]:
        body = {"input": {}, "configuration": {"limits": {name: value}}}
        _refused(api.post(runs, json=body), 400, f"limit {name} must be a")
    huge = b'{"input": {}, "configuration": {"limits": {"memory_mb": 1e999}}}'
    headers = {"content-type": "application/json"}
    _refused(api.post(runs, content=huge, headers=headers), 400, "limit memory_mb must be a")
    version = unique("v")
    assert api.post(f"/v1/applications/{echo_app}/versions", json={"id": version}).is_success
    instance = {"id": unique("inst"), "version_id": version}
    instance["configuration"] = {"limits": {"timeout_seconds": "nan"}}
    r = api.post(f"/v1/applications/{echo_app}/instances", json=instance)
    _refused(r, 400, "limit timeout_seconds must be a finite number")


def test_a_float_option_must_be_a_finite_number(api: httpx.Client, echo_app: str) -> None:
    body = {"input": {}, "options": {"duration": "nan"}}
    r = api.post(f"/v1/applications/{echo_app}/runs", json=body)
    _refused(r, 400, "option 'duration' (from run) must be a number, got 'nan'")


def test_an_output_with_nan_is_kept_as_text_and_every_read_answers(
    api: httpx.Client, tmp_path: Path
) -> None:
    """Python's json.dumps writes NaN; the API's strict encoder could not answer it back."""
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "app", NAN_OUTPUT), tmp_path)
    result = run_and_wait(api, app_id, {"input": {}})
    assert result["metadata"]["status_v2"] == "succeeded"
    url = result["output"]["url"]  # not a JSON object: the output is served as a file
    assert httpx.get(url).text.strip() == '{"value": NaN, "best": Infinity}'
    run = f"/v1/applications/{app_id}/runs/{result['id']}"
    for path in (run, f"{run}/metadata", f"{run}/input"):
        assert api.get(path).status_code == 200, path


def test_a_body_nested_thousands_deep_is_a_400(api: httpx.Client, echo_app: str) -> None:
    deep = b'{"input": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    for content_type in ("application/json", "application/json; charset=utf-8"):
        r = api.post(
            f"/v1/applications/{echo_app}/runs",
            content=deep,
            headers={"content-type": content_type},
        )
        assert r.status_code == 400, (content_type, r.text)
        assert r.headers["content-type"] == "application/json"


def _chunks(size_mib: int) -> Iterator[bytes]:
    yield b'{"input": {"blob": "'
    for _ in range(size_mib):
        yield b"a" * (1024 * 1024)
    yield b'"}}'


def test_a_chunked_body_is_held_to_the_json_cap(
    daemon: Daemon, api: httpx.Client, echo_app: str
) -> None:
    """Without a Content-Length the announced-size check cannot see the body: it is
    counted as it arrives, on the hot route and on the stack's routes alike."""
    headers = {"content-type": "application/json"}
    for path in (f"/v1/applications/{echo_app}/runs", f"/v1/applications/{echo_app}/versions"):
        r = api.post(path, content=_chunks(65), headers=headers)
        _refused(r, 413, "request body over 64 MiB")
    small = api.post(
        f"/v1/applications/{echo_app}/runs",
        content=iter([b'{"input": {"n": ', b"1}}"]),
        headers=headers,
    )
    assert small.status_code == 201, small.text  # a chunked body under the cap still works
    assert daemon.rss_mib() < 400


def test_live_logs_refuse_a_token_that_is_no_offset(api: httpx.Client, echo_app: str) -> None:
    result = run_and_wait(api, echo_app, {"input": {"a": 1}})
    live = f"/v1/applications/{echo_app}/runs/{result['id']}/logs/live"
    for token in ("-1", "abc", "²"):
        _refused(api.get(live, params={"since": token}), 400, "since must be the next_page_token")
    for token in ("99999999999999999999", str(2**63)):  # past the end: nothing new
        r = api.get(live, params={"since": token})
        assert r.status_code == 200, r.text
        assert r.json()["items"] == []


def test_ids_that_end_in_a_newline_are_refused(api: httpx.Client, echo_app: str) -> None:
    r = api.post("/v1/applications", json={"id": "dupe\n", "name": "Dupe"})
    _refused(r, 400, "may only contain")
    r = api.post(f"/v1/applications/{echo_app}/versions", json={"id": "v9\n"})
    _refused(r, 400, "must be 1-64 characters")


def test_head_answers_wherever_get_does(daemon: Daemon, api: httpx.Client) -> None:
    for path in ("/healthz", "/v1/applications"):
        got, head = api.get(path), api.head(path)
        assert head.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
    assert httpx.head(f"{daemon.url}/v1/applications").status_code == 401  # the key still
    assert api.head("/v1/applications/nope-nope").status_code == 404
    cancel = api.head(f"/v1/applications/{unique()}/runs/run-x/cancel")  # PATCH only
    assert cancel.status_code == 405, cancel.headers


def _raw(url: str, head: bytes, body: bytes = b"") -> bytes:
    """One request on a socket of its own; the daemon's answer, or b"" if it hung up."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_a_client_that_hangs_up_mid_upload_is_no_error(daemon: Daemon, api: httpx.Client) -> None:
    app_id = create_app(api)
    url = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
    target = urlsplit(url)
    head = (
        f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: {target.netloc}\r\n"
        "Content-Length: 1000\r\n\r\n"
    ).encode()
    _raw(url, head, b"abc")
    retried = httpx.put(url, content=b'{"a": 1}')  # the half body left nothing behind
    assert retried.status_code == 200, retried.text
    assert "unhandled error" not in daemon.log()


def test_an_upload_announced_over_its_cap_is_413_before_a_byte(
    daemon: Daemon, api: httpx.Client
) -> None:
    app_id = create_app(api)
    url = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()["upload_url"]
    target = urlsplit(url)
    for size in (90_000_000_000, 600 * 1024 * 1024):  # past the disk, past the input cap
        head = (
            f"PUT {target.path}?{target.query} HTTP/1.1\r\nHost: {target.netloc}\r\n"
            f"Content-Length: {size}\r\nConnection: close\r\n\r\n"
        ).encode()
        answer = _raw(url, head)
        status_line, _, rest = answer.partition(b"\r\n")
        assert b" 413 " in status_line, answer[:300]
        assert b"exceeds the limit of" in rest
    assert httpx.put(url, content=b"{}").status_code == 200  # the URL is still unused


def test_an_unpack_error_names_the_member_not_the_home(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    archive = tmp_path / "long.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in {"app.yaml": b"type: python\nruntime: py\n", "x" * 300: b"1"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    app_id = create_app(api)
    r = api.get(f"/v1/applications/{app_id}/binary")
    httpx.put(r.json()["upload_url"], content=archive.read_bytes())
    r = api.put(f"/v1/applications/{app_id}/binary", json={"requirements": {}})
    assert r.status_code == 422, r.text
    message = json.loads(r.text)["error"]
    assert "File name too long" in message
    assert str(daemon.home) not in message


def test_limits_the_kernel_cannot_apply_are_refused(api: httpx.Client, echo_app: str) -> None:
    """Each was accepted, then failed every run at its start ("Python int too large to
    convert to C long", "not allowed to raise maximum limit"), or read a false breach."""
    runs = f"/v1/applications/{echo_app}/runs"
    too_big = {
        "cpu_seconds": 1e300,
        "timeout_seconds": 1e20,
        "memory_mb": 2**44,
        "output_mb": 2**50,
        "disk_mb": 2**40,
        "open_files": 10_000_000,
        "processes": 2**40,
    }
    for name, value in too_big.items():
        body = {"input": {}, "configuration": {"limits": {name: value}}}
        _refused(api.post(runs, json=body), 400, f"limit {name} must be at most")
    version = unique("v")
    assert api.post(f"/v1/applications/{echo_app}/versions", json={"id": version}).is_success
    instance = {"id": unique("inst"), "version_id": version}
    instance["configuration"] = {"limits": {"open_files": 10_000_000}}
    r = api.post(f"/v1/applications/{echo_app}/instances", json=instance)
    _refused(r, 400, "limit open_files must be at most 1.04858e+06")


def test_options_no_command_line_can_carry_are_refused(api: httpx.Client, echo_app: str) -> None:
    runs = f"/v1/applications/{echo_app}/runs"
    for options in ({"s": "a\0b"}, {"a\0b": "s"}):
        _refused(api.post(runs, json={"input": {}, "options": options}), 400, "holds a NUL")
    big = {"input": {}, "options": {"s": "x" * 200_000}}
    _refused(api.post(runs, json=big), 400, "option 's' (from run) is over 128 KiB")
    many = {"input": {}, "options": {f"o{i}": "x" * 100_000 for i in range(12)}}
    _refused(api.post(runs, json=many), 400, "options are over 1 MiB together")


def test_env_secrets_an_environment_cannot_hold_are_refused(
    api: httpx.Client, echo_app: str
) -> None:
    """A 200 KiB env secret was accepted, then every run using it failed to start
    ("Argument list too long"): one variable holds at most 128 KiB."""
    secrets = f"/v1/applications/{echo_app}/secrets"

    def collection(*secret: tuple[str, str, str]) -> httpx.Response:
        listed = [{"type": t, "location": loc, "value": v} for t, loc, v in secret]
        return api.post(secrets, json={"id": unique("sc"), "secrets": listed})

    big = "x" * 200 * 1024
    _refused(collection(("env", "BIG", big)), 400, "make it a file secret")
    assert collection(("file", "big.txt", big)).status_code == 201
    nine = [("env", f"E{i}", "x" * 120 * 1024) for i in range(9)]
    _refused(collection(*nine), 400, "env secrets hold at most 1 MiB together")
    r = collection(*nine[:8])
    assert r.status_code == 201, r.text
    grow = {"op": "create", "type": "env", "location": "E8", "value": "x" * 120 * 1024}
    r = api.patch(f"{secrets}/{r.json()['id']}", json={"operations": [grow]})
    _refused(r, 400, "env secrets hold at most 1 MiB together")
