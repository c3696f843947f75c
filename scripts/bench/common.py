"""What every scenario shares: sizes, the bench's daemon and client, pushing, running.

The client is orch's own transport (``client/http11``, one keep-alive connection): the
benchmark measures orch, not a client library (httpx costs ~0.5 ms more per request
here, a tenth of the overhead budget).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.client.transport import Transport
from orchestrator.packaging.build import build_package
from orchestrator.packaging.pyenv import shared_python

from .harness import ROOT, Daemon

MODELS = ROOT / "scripts" / "bench_models"
KNAPSACK = ROOT / "sample_models" / "knapsack"
ORCH_CLI = Path(sys.executable).parent / "orch"
USER_ENV = {
    k: v
    for k, v in os.environ.items()
    if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PYTHONPROFILEIMPORTTIME")
}
"""The environment of the baselines and the CLI timings: a person's shell, where Python
caches bytecode and buffers stdout. Some environments set these variables for every
process (this project's agents do); orch sets the first two for its models, so what they
cost belongs to orch's side of a comparison, not to both."""


@dataclass(frozen=True)
class Sizes:
    latency_runs: int
    warmup_runs: int
    sdk_runs: int
    throughput_runs: int
    throughput_pairs: int
    cpu_runs: int
    pushes: int
    cli_pushes: int
    cli_runs: int
    state_runs: int
    state_requests: int
    load_seconds: float
    large_mib: int
    large_reps: int
    experiment_inputs: int


FULL = Sizes(60, 3, 20, 500, 3, 200, 25, 5, 15, 100_000, 200, 3.0, 1024, 3, 100)
QUICK = Sizes(5, 1, 3, 20, 1, 10, 3, 1, 2, 2_000, 20, 0.5, 16, 1, 6)


def connect(daemon: Daemon) -> Transport:
    return Transport(daemon.url, daemon.key, timeout=60)


@dataclass
class Bench:
    tmp: Path
    home: Path
    sizes: Sizes
    cores: int
    daemon: Daemon
    api: Transport
    fresh_rss_mib: float = 0.0
    apps: set[str] = field(default_factory=set)
    python: str = ""
    """What the python baselines run (``model_python``): the interpreter orch runs them on."""

    def __post_init__(self) -> None:
        self.python = self.python or model_python(self.home)

    def restart(self) -> None:
        self.api.close()
        self.daemon.stop()
        self.daemon = Daemon.start(self.home)
        self.api = connect(self.daemon)
        print(f"daemon restarted: pid {self.daemon.process.pid}", file=sys.stderr)


def model_python(home: Path) -> str:
    """The interpreter orch runs an app without requirements on, so that a baseline runs
    the same command as orch: the shared environment in the daemon's ``home`` (made at its
    start; built here if it is not there yet), or the daemon's own when it cannot be made."""
    return asyncio.run(shared_python(Path(home) / "envs", sys.executable))


def call(api: Transport, method: str, path: str, status: int = 200, **kw: Any) -> Any:
    """One request that must answer ``status``; its JSON (None when empty)."""
    response = api.request(method, path, **kw)
    if response.status != status:
        raise RuntimeError(f"{method} {path}: HTTP {response.status}: {response.text[:500]}")
    return response.json()


def http_push(api: Transport, app: str, archive: Path) -> dict[str, Any]:
    """The SDK's push: upload URL, PUT the package (no key), commit."""
    url = call(api, "GET", f"/v1/applications/{app}/binary")["upload_url"]
    call(api, "PUT", url, body=archive.read_bytes())
    done: dict[str, Any] = call(api, "PUT", f"/v1/applications/{app}/binary", json_body={})
    return done


def ensure_app(b: Bench, app: str, model_dir: Path) -> None:
    """Create ``app`` and push ``model_dir`` to it (devint) once per bench."""
    if app in b.apps:
        return
    call(b.api, "POST", "/v1/applications", 201, json_body={"id": app, "name": app})
    archive = build_package(model_dir, b.tmp / "packages" / f"{app}.tar.gz").path
    http_push(b.api, app, archive)
    b.apps.add(app)


def upload(api: Transport, app: str, content: Any) -> str:
    """POST .../runs/uploadurl, then PUT ``content`` (bytes or a file) there; the upload id."""
    slot = call(api, "POST", f"/v1/applications/{app}/runs/uploadurl")
    call(api, "PUT", slot["upload_url"], body=content, timeout=600)
    return str(slot["upload_id"])


def submit(api: Transport, app: str, body: dict[str, Any]) -> str:
    return str(call(api, "POST", f"/v1/applications/{app}/runs", 201, json_body=body)["run_id"])


def result(api: Transport, app: str, run_id: str, wait: float = 30) -> dict[str, Any]:
    """The long-poll: returns the moment the run ends; the run must have succeeded."""
    path = f"/v1/applications/{app}/runs/{run_id}"
    body: dict[str, Any] = call(api, "GET", path, params={"wait": wait}, timeout=wait + 30)
    status = body["metadata"]["status_v2"]
    if status != "succeeded":
        raise RuntimeError(f"run {run_id} ended {status}: {body['metadata'].get('error')}")
    return body


def bare(argv: list[str], cwd: Path, stdin: Path, stdout: Path | None) -> float:
    """Seconds to run ``argv < stdin > stdout`` directly (``None`` = /dev/null)."""
    with stdin.open("rb") as fin, (stdout or Path(os.devnull)).open("wb") as fo:
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdin=fin, stdout=fo, env=USER_ENV, check=True)
        return time.perf_counter() - start


def wall(argv: list[str], cwd: Path = ROOT, stdin: Path | None = None) -> float:
    """Seconds a command takes, start to exit, in ``USER_ENV``; it must succeed."""
    with (stdin or Path(os.devnull)).open("rb") as fin:
        start = time.perf_counter()
        out = subprocess.run(
            argv, cwd=cwd, stdin=fin, capture_output=True, env=USER_ENV, check=False
        )
        took = time.perf_counter() - start
    if out.returncode != 0:
        text = (out.stdout + out.stderr).decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}:\n{text}")
    return took
