"""Test helpers: a real daemon in a subprocess, an HTTP client, a deadline-based wait."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from orchestrator.packaging.build import build_package

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_models"
T = TypeVar("T")
RUNTIME = "ghcr.io/nextmv-io/runtime/python:3.11"
_counter = itertools.count()


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


@dataclass
class Daemon:
    home: Path
    process: subprocess.Popen[bytes]
    url: str
    key: str

    @classmethod
    def start(cls, home: Path, env: dict[str, str] | None = None, config: str = "") -> Daemon:
        home.mkdir(parents=True, exist_ok=True)
        if config:
            (home / "config.toml").write_text(config)
        (home / "daemon.json").unlink(missing_ok=True)
        argv = [
            sys.executable,
            "-m",
            "orchestrator",
            "daemon",
            "run",
            "--home",
            str(home),
            "--port",
            "0",
        ]
        log = (home / "daemon.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=log, env={**os.environ, **(env or {})})
        info = wait_for(lambda: _info(home, proc), timeout=20)
        key = (home / "api-key").read_text().strip()
        return cls(home, proc, info["url"], key)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=30,
            **kwargs,
        )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def log(self) -> str:
        return (self.home / "daemon.log").read_text(errors="replace")


def _info(home: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if proc.poll() is not None:
        raise AssertionError(f"daemon exited: {(home / 'daemon.log').read_text()}")
    try:
        info = json.loads((home / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("pid") == proc.pid else None


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
