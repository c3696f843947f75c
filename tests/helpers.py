"""Test helpers: a real daemon in a subprocess (the benchmarks' harness), an HTTP client,
a deadline-based wait."""

from __future__ import annotations

import itertools
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from orchestrator.packaging.build import build_package
from scripts.bench import harness

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
T = TypeVar("T")
RUNTIME = "ghcr.io/nextmv-io/runtime/python:3.11"
_counter = itertools.count()
TEXT_MANIFEST = f"""\
type: python
runtime: {RUNTIME}
files: [main.py]
configuration:
  content:
    format: text
"""
"""An app.yaml of a python app whose input and output are text."""


def wait_for(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(interval)


def unique(prefix: str = "app") -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


class Daemon(harness.Daemon):
    """The shared harness's daemon (``scripts/bench/harness.py``), with an httpx client."""

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
            **kwargs,
        )


_WITH_CONSTANTS = """\
import importlib, json, runpy, sys
for name, value in json.loads(sys.argv[1]).items():
    module, _, constant = name.rpartition(".")
    target = importlib.import_module(module)
    if not hasattr(target, constant):
        raise SystemExit(f"with_constants: {module} has no {constant}")
    setattr(target, constant, value)
sys.argv = ["orchestrator", *sys.argv[2:]]
runpy.run_module("orchestrator", run_name="__main__", alter_sys=True)
"""


def with_constants(constants: dict[str, float]) -> tuple[str, ...]:
    """A ``launcher`` for ``Daemon.start``: the real daemon, with module constants set
    before it runs (``{"orchestrator.inbox_watch.REWATCH_SECONDS": 0.5}``). For a test that waits
    out one of the daemon's timers: the same code path, a shorter wait."""
    return ("-c", _WITH_CONSTANTS, json.dumps(constants))


def create_app(api: httpx.Client, app_id: str | None = None, name: str = "Test app") -> str:
    app_id = app_id or unique()
    r = api.post("/v1/applications", json={"id": app_id, "name": name})
    assert r.status_code == 201, r.text
    return app_id


def push_archive(api: httpx.Client, app_id: str, archive: Path) -> httpx.Response:
    """The SDK's three-step push over HTTP; returns the final response."""
    r = api.get(f"/v1/applications/{app_id}/binary")
    assert r.status_code == 200, r.text
    up = httpx.put(r.json()["upload_url"], content=archive.read_bytes(), timeout=30)
    assert up.status_code == 200, up.text
    return api.put(f"/v1/applications/{app_id}/binary", json={"requirements": {}})


def push_dir(api: httpx.Client, app_id: str, app_dir: Path, tmp: Path) -> dict[str, Any]:
    archive = build_package(app_dir, tmp / f"{unique('pkg')}.tar.gz").path
    r = push_archive(api, app_id, archive)
    assert r.status_code == 200, r.text
    return r.json()


MULTI_FILE_MANIFEST = f"""\
type: python
runtime: {RUNTIME}
files: [main.py]
configuration:
  content:
    format: multi-file
"""
"""A python app (``main.py``) of the multi-file format: inputs/ in, outputs/ out."""


def write_app(folder: Path, main: str, manifest: str | None = None, kind: str = "python") -> Path:
    """A throwaway app: ``main`` is the entrypoint's source."""
    folder.mkdir(parents=True, exist_ok=True)
    entry = "main.py" if kind == "python" else "main"
    (folder / entry).write_text(main)
    if kind != "python":
        (folder / entry).chmod(0o755)
    (folder / "app.yaml").write_text(
        manifest
        or f"type: {kind}\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\nfiles:\n  - {entry}\n"
    )
    return folder


def write_tree(root: Path, files: dict[str, str | bytes]) -> Path:
    """Files (text or bytes) at their relative paths under ``root``, folders made."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)
    return root


def run_and_wait(
    api: httpx.Client,
    app_id: str,
    body: dict[str, Any],
    instance: str | None = None,
    timeout: float = 60,
) -> dict[str, Any]:
    params = {"instance_id": instance} if instance else {}
    r = api.post(f"/v1/applications/{app_id}/runs", json=body, params=params)
    assert r.status_code == 201, r.text
    return wait_run(api, app_id, r.json()["run_id"], timeout)


def wait_run(api: httpx.Client, app_id: str, run_id: str, timeout: float = 60) -> dict[str, Any]:
    r = api.get(
        f"/v1/applications/{app_id}/runs/{run_id}", params={"wait": timeout}, timeout=timeout + 10
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["metadata"]["status_v2"] in ("succeeded", "failed", "canceled"), body
    return body


def raw_connection(daemon: harness.Daemon) -> socket.socket:
    """A plain TCP connection to the daemon, for requests no HTTP client would send."""
    url = urlsplit(daemon.url)
    return socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=10)


def read_to_end(sock: socket.socket) -> bytes:
    """All the daemon sends on ``sock`` until it closes (or resets) the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data
