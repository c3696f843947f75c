"""orch benchmark: every figure next to a baseline measured in the same run.

Run it from the repository root::

    .venv/bin/python scripts/bench.py            # full run, a few minutes; targets enforced
    .venv/bin/python scripts/bench.py --quick    # a few iterations, < 60 s; targets not enforced
    .venv/bin/python scripts/bench.py --json OUT --only latency throughput

It starts a daemon (``python -m orchestrator daemon run``) on a temporary home whose
``config.toml`` sets ``concurrency = <cores>`` and ``max_upload_mb = 2048``, pushes the tiny
models of ``scripts/bench_models/`` and measures:

1. ``latency``: submit → result of a trivial echo model (POST .../runs, then the long-poll
   GET .../runs/{id}?wait=30 on one keep-alive client), median and p90, against
   ``python main.py < input > output`` run directly with the daemon's interpreter; the same
   for a ``binary`` model (a shell script) against running it directly.
2. ``sdk``: the vendor's local runner (``nextmv.local.Application``: ``new_run`` then
   ``run_result_with_polling`` with 1 ms polling) on the same echo model, as the peer to beat.
3. ``throughput``: runs/s of a 20 ms model with concurrency = cores against
   ``xargs -P <cores>`` running ``python main.py < input > /dev/null``.
4. ``push``: a package renamed into ``<home>/push/<app>/`` until GET .../executable shows its
   sha256, against the same package pushed over HTTP (the SDK's three calls); and the wall
   time of ``orch app push`` for ``sample_models/knapsack`` against ``orch --version``.
5. ``state``: with 100,000 finished runs in the database (rows copied with sqlite3 while the
   daemon is stopped), GET .../runs/{id}/metadata and GET .../runs?limit=50, against the
   same requests before the rows were added; the daemon's resident memory idle (against the
   fresh daemon) and while a client hammers the list route.
6. ``large``: a 1 GiB input through the upload URL into a model counting stdin bytes,
   MiB/s from the start of the upload to the result, against ``cat file | python count.py``,
   and the daemon's peak RSS growth meanwhile (sampled every 20 ms).
7. ``experiment``: 100 managed inputs x 2 instances of a 50 ms model, wall time of the batch
   experiment against the ideal (bare run time of the 200 runs / cores).

The table goes to stdout and the figures to ``--json`` (default ``bench-results.json``).
Exit status: 0 if every target is met (always, with ``--quick``), 1 if a target is missed,
2 if a scenario could not run. The daemon's pid and home are printed to stderr at start,
for attaching a profiler (``py-spy record -p PID``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import operator
import os
import platform
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from orchestrator.packaging.build import build_package

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "scripts" / "bench_models"
KNAPSACK = ROOT / "sample_models" / "knapsack"
MIB = 1024 * 1024
ORCH_CLI = Path(sys.executable).parent / "orch"


@dataclass(frozen=True)
class Sizes:
    latency_runs: int
    warmup_runs: int
    sdk_runs: int
    throughput_runs: int
    throughput_pairs: int
    pushes: int
    cli_pushes: int
    state_runs: int
    state_requests: int
    load_seconds: float
    large_mib: int
    large_reps: int
    experiment_inputs: int


FULL = Sizes(60, 3, 20, 500, 3, 25, 5, 100_000, 200, 3.0, 1024, 3, 100)
QUICK = Sizes(5, 1, 3, 20, 1, 3, 1, 2_000, 20, 0.5, 16, 1, 6)


# --- results ----------------------------------------------------------------------------------
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Target:
    on: str  # "ratio" (orch / baseline) or "orch" (the figure itself)
    op: str  # "<", "<=" or ">="
    bound: float
    unit: str = "x"

    def met(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.bound)

    def __str__(self) -> str:
        bound = f"{self.bound:g}{self.unit}" if self.unit == "x" else f"{self.bound:g} {self.unit}"
        return f"{self.on} {self.op} {bound}"


@dataclass
class Row:
    name: str
    orch: float | None
    baseline: float | None
    unit: str
    target: Target | None = None
    baseline_is: str = ""
    error: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.orch is None or not self.baseline:
            return None
        return self.orch / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.orch is None:
            return None if self.error is None else False
        value = self.ratio if self.target.on == "ratio" else self.orch
        return None if value is None else self.target.met(value)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "orch": _rounded(self.orch),
            "baseline": _rounded(self.baseline),
            "unit": self.unit,
            "ratio": _rounded(self.ratio),
            "target": str(self.target) if self.target else None,
            "passed": self.passed,
            "baseline_is": self.baseline_is,
            "error": self.error,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10, method="inclusive")[-1] if len(xs) > 1 else xs[0]


def ms(seconds: float) -> float:
    return seconds * 1000


# --- the daemon -------------------------------------------------------------------------------
@dataclass
class Daemon:
    home: Path
    process: subprocess.Popen[bytes]
    url: str
    key: str

    @classmethod
    def start(cls, home: Path, source: Path = ROOT) -> Daemon:
        """``source``: the tree whose ``orchestrator`` package runs (``-m`` imports from cwd)."""
        (home / "daemon.json").unlink(missing_ok=True)
        argv = [sys.executable, "-m", "orchestrator", "daemon", "run", "--home", str(home)]
        with (home / "daemon.log").open("ab") as log:
            proc = subprocess.Popen([*argv, "--port", "0"], stdout=log, stderr=log, cwd=source)
        deadline = time.monotonic() + 30
        while (info := _daemon_info(home, proc)) is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the daemon did not start within 30 s")
            time.sleep(0.02)
        return cls(home, proc, info["url"], (home / "api-key").read_text().strip())

    def client(self) -> Api:
        return Api(self.url, self.key)

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / MIB

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def _daemon_info(home: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if proc.poll() is not None:
        raise RuntimeError(f"the daemon exited:\n{(home / 'daemon.log').read_text()[-3000:]}")
    try:
        info: dict[str, Any] = json.loads((home / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("pid") == proc.pid else None


class RssSampler:
    """The peak resident memory of a process, sampled every ``interval`` s in a thread."""

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        self.proc, self.interval = psutil.Process(pid), interval
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


# --- shared context and HTTP helpers ----------------------------------------------------------
_dumps = json.dumps  # ``json`` is a parameter name below, as in httpx


@dataclass(frozen=True)
class Reply:
    method: str
    path: str
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class Api:
    """JSON over one keep-alive ``http.client`` connection.

    The benchmark measures orch, not a client library: httpx costs about 0.5 ms
    more per request here than the standard library, a tenth of the overhead
    budget. Bodies may be bytes or a binary file (streamed in 1 MiB blocks).
    """

    def __init__(self, url: str, key: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.headers = {"Authorization": f"Bearer {key}"}
        self._conn: http.client.HTTPConnection | None = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Any = None,
        timeout: float = 60,
    ) -> Reply:
        """``path`` is on the daemon, or an absolute URL on it (upload URLs)."""
        target = urllib.parse.urlsplit(path)
        path = target.path + (f"?{target.query}" if target.query else "")
        if params:
            path += ("&" if "?" in path else "?") + urllib.parse.urlencode(params)
        headers = dict(self.headers)
        if json is not None:
            content = _dumps(json).encode()
            headers["Content-Type"] = "application/json"
        if content is not None:
            sized = isinstance(content, bytes)
            size = len(content) if sized else os.fstat(content.fileno()).st_size
            headers["Content-Length"] = str(size)
        for attempt in (1, 2):  # a keep-alive connection the server closed: reconnect once
            conn = self._connection(timeout)
            try:
                conn.request(method, path, body=content, headers=headers)
                response = conn.getresponse()
                return Reply(method, path, response.status, response.read())
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if attempt == 2 or not (content is None or isinstance(content, bytes)):
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Reply:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Reply:
        return self.request("PUT", path, **kw)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(
                self.host, self.port, timeout=timeout, blocksize=MIB
            )
            self._conn.connect()
            self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn.sock.settimeout(timeout)
        return self._conn


@dataclass
class Bench:
    tmp: Path
    home: Path
    sizes: Sizes
    cores: int
    daemon: Daemon
    api: Api
    fresh_rss_mib: float = 0.0
    apps: set[str] = field(default_factory=set)

    def restart(self) -> None:
        self.api.close()
        self.daemon.stop()
        self.daemon = Daemon.start(self.home)
        self.api = self.daemon.client()
        print(f"daemon restarted: pid {self.daemon.process.pid}", file=sys.stderr)


def expect(response: Reply, status: int = 200) -> Any:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.method} {response.path}: HTTP {response.status_code}: {response.text[:500]}"
        )
    return response.json() if response.content else None


def http_push(api: Api, app: str, archive: Path) -> dict[str, Any]:
    """The SDK's push: upload URL, PUT the package (no key), commit."""
    url = expect(api.get(f"/v1/applications/{app}/binary"))["upload_url"]
    with archive.open("rb") as fh:
        expect(api.put(url, content=fh.read()))
    done: dict[str, Any] = expect(api.put(f"/v1/applications/{app}/binary", json={}))
    return done


def ensure_app(b: Bench, app: str, model_dir: Path) -> None:
    """Create ``app`` and push ``model_dir`` to it (devint) once per bench."""
    if app in b.apps:
        return
    expect(b.api.post("/v1/applications", json={"id": app, "name": app}), 201)
    archive = build_package(model_dir, b.tmp / "packages" / f"{app}.tar.gz").path
    http_push(b.api, app, archive)
    b.apps.add(app)


def upload(api: Api, app: str, content: Any) -> str:
    """POST .../runs/uploadurl, then PUT ``content`` (bytes or a file) there; the upload id."""
    slot = expect(api.post(f"/v1/applications/{app}/runs/uploadurl"))
    expect(api.put(slot["upload_url"], content=content, timeout=600))
    return str(slot["upload_id"])


def submit(api: Api, app: str, body: dict[str, Any]) -> str:
    return str(expect(api.post(f"/v1/applications/{app}/runs", json=body), 201)["run_id"])


def result(api: Api, app: str, run_id: str, wait: float = 30) -> dict[str, Any]:
    """The long-poll: returns the moment the run ends; the run must have succeeded."""
    r = api.get(f"/v1/applications/{app}/runs/{run_id}", params={"wait": wait}, timeout=wait + 30)
    body: dict[str, Any] = expect(r)
    status = body["metadata"]["status_v2"]
    if status != "succeeded":
        raise RuntimeError(f"run {run_id} ended {status}: {body['metadata'].get('error')}")
    return body


def bare(argv: list[str], cwd: Path, stdin: Path, stdout: Path | None) -> float:
    """Seconds to run ``argv < stdin > stdout`` directly (``None`` = /dev/null)."""
    with stdin.open("rb") as fin, (stdout or Path(os.devnull)).open("wb") as fo:
        start = time.perf_counter()
        subprocess.run(argv, cwd=cwd, stdin=fin, stdout=fo, check=True)
        return time.perf_counter() - start


# --- 1. run latency ---------------------------------------------------------------------------
def latency_pair(
    b: Bench, app: str, argv: list[str], cwd: Path, runs: int
) -> tuple[list[float], list[float]]:
    """Interleaved: one run through orch, one bare run, ``runs`` times (after a warm-up)."""
    doc = {"bench": "latency", "items": list(range(10))}
    stdin = b.tmp / f"{app}-input.json"
    stdin.write_text(json.dumps(doc))
    via_orch: list[float] = []
    direct: list[float] = []
    for i in range(b.sizes.warmup_runs + runs):
        start = time.perf_counter()
        body = result(b.api, app, submit(b.api, app, {"input": doc | {"n": i}}))
        took = time.perf_counter() - start
        if body.get("output") != doc | {"n": i}:
            raise RuntimeError(f"{app}: unexpected output {body.get('output')!r}")
        took_bare = bare(argv, cwd, stdin, b.tmp / f"{app}-output.json")
        if i >= b.sizes.warmup_runs:
            via_orch.append(took)
            direct.append(took_bare)
    return via_orch, direct


def latency_rows(kind: str, orch: list[float], base: list[float], cmd: str) -> list[Row]:
    ratio_target = Target("ratio", "<=", 1.2) if kind == "python" else None
    overhead = ms(median(orch) - median(base))
    return [
        Row(f"latency {kind}: median", ms(median(orch)), ms(median(base)), "ms", ratio_target, cmd),
        Row(f"latency {kind}: p90", ms(p90(orch)), ms(p90(base)), "ms", None, cmd),
        Row(
            f"latency {kind}: overhead (median)",
            overhead,
            None,
            "ms",
            Target("orch", "<=", 5, "ms"),
        ),
    ]


def scenario_latency(b: Bench) -> list[Row]:
    n = b.sizes.latency_runs
    ensure_app(b, "echo", MODELS / "echo")
    ensure_app(b, "shell-echo", MODELS / "shell-echo")
    py_orch, py_bare = latency_pair(b, "echo", [sys.executable, "main.py"], MODELS / "echo", n)
    sh_orch, sh_bare = latency_pair(b, "shell-echo", ["./main"], MODELS / "shell-echo", n)
    return [
        *latency_rows("python", py_orch, py_bare, "python main.py < input > output"),
        *latency_rows("binary", sh_orch, sh_bare, "./main < input > output"),
    ]


# --- 2. the vendor's local runner (peer) ------------------------------------------------------
def sdk_peer_main(src: str, runs: int) -> None:
    """Child mode: time ``nextmv.local.Application`` runs of ``src``; print seconds as JSON."""
    from nextmv.local import Application
    from nextmv.polling import PollingOptions

    app = Application(src=src)
    poll = PollingOptions(initial_delay=0, delay=0.001, backoff=0, jitter=0, max_delay=0.001)
    times, torn = [], 0
    for i in range(runs):
        doc = {"bench": "sdk", "n": i}
        start = time.perf_counter()
        run_id = app.new_run(input=doc)
        while True:
            try:
                res = app.run_result_with_polling(run_id, polling_options=poll)
                break
            except ValueError:
                # The runner rewrites <run>.json in place (open "w", json.dump): polled every
                # millisecond, it is sometimes read half-written. Read again, as a user would.
                torn += 1
        times.append(time.perf_counter() - start)
        if res.output != doc:
            raise SystemExit(f"unexpected output from the local runner: {res.output!r}")
    print(f"SDK local runner: {torn} torn reads of the run file retried", file=sys.stderr)
    print(json.dumps(times))


def scenario_sdk(b: Bench) -> list[Row]:
    src = b.tmp / "sdk-echo"
    shutil.copytree(MODELS / "echo", src, dirs_exist_ok=True)
    sdk_home = b.tmp / "sdk-home"  # the SDK keeps a registry in $HOME/.nextmv
    sdk_home.mkdir(exist_ok=True)
    runs, warm = b.sizes.sdk_runs, b.sizes.warmup_runs
    argv = [sys.executable, __file__, "--sdk-peer", str(src), str(runs + warm)]
    env = {**os.environ, "HOME": str(sdk_home)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"the SDK's local runner failed:\n{out.stderr[-3000:]}")
    sys.stderr.write(out.stderr)
    sdk = json.loads(out.stdout.strip().splitlines()[-1])[warm:]
    ensure_app(b, "echo", MODELS / "echo")
    mine, _ = latency_pair(b, "echo", [sys.executable, "main.py"], MODELS / "echo", runs)
    peer = "nextmv.local.Application (SDK local runner)"
    beat = Target("ratio", "<", 1.0)
    return [
        Row(
            "latency python vs SDK local runner: median",
            ms(median(mine)),
            ms(median(sdk)),
            "ms",
            beat,
            peer,
        ),
        Row(
            "latency python vs SDK local runner: p90", ms(p90(mine)), ms(p90(sdk)), "ms", None, peer
        ),
    ]


# --- 3. throughput ----------------------------------------------------------------------------
def scenario_throughput(b: Bench) -> list[Row]:
    """Pairs of (orch, xargs) passes, back to back; the pair with the median ratio is shown.

    One pass of each swings by ±4 % on a shared machine, more than the effects being
    tracked; pairs taken minutes apart would mostly measure the machine's drift.
    """
    n = b.sizes.throughput_runs
    ensure_app(b, "sleep", MODELS / "sleep")
    doc = {"seconds": 0.02}
    stdin = b.tmp / "sleep-20ms.json"
    stdin.write_text(json.dumps(doc))
    pairs = []
    for _ in range(b.sizes.throughput_pairs):
        pairs.append((n / orch_wall(b, n, doc), n / xargs_wall(b.cores, n, stdin)))
    orch_rate, xargs_rate, spread = median_pair(pairs)
    cmd = f"xargs -P {b.cores} sh -c 'python main.py < input > /dev/null'"
    return [
        Row(
            "throughput 20 ms model",
            orch_rate,
            xargs_rate,
            "runs/s",
            Target("ratio", ">=", 0.9),
            f"{cmd}; median of {len(pairs)} back-to-back pairs ({spread})",
        )
    ]


def median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float, str]:
    """The (figure, baseline) pair with the median ratio, and every ratio, lowest first."""
    ranked = sorted(pairs, key=lambda pair: pair[0] / pair[1])
    figure, baseline = ranked[len(ranked) // 2]
    return figure, baseline, ", ".join(f"{f / b:.2f}x" for f, b in ranked)


def orch_wall(b: Bench, n: int, doc: dict[str, Any]) -> float:
    """Submit all ``n`` runs, then collect each result: how a script with a batch would."""
    start = time.perf_counter()
    ids = [submit(b.api, "sleep", {"input": doc}) for _ in range(n)]
    for run_id in ids:
        result(b.api, "sleep", run_id, wait=120)
    return time.perf_counter() - start


def xargs_wall(cores: int, n: int, stdin: Path) -> float:
    script = 'exec "$0" main.py < "$1" > /dev/null'
    argv = ["xargs", "-P", str(cores), "-I{}", "sh", "-c", script, sys.executable, str(stdin)]
    ticks = "".join(f"{i}\n" for i in range(n))
    start = time.perf_counter()
    subprocess.run(argv, input=ticks, text=True, cwd=MODELS / "sleep", check=True)
    return time.perf_counter() - start


# --- 4. push ----------------------------------------------------------------------------------
def wait_executable(b: Bench, app: str, sha: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while expect(b.api.get(f"/v1/applications/{app}/executable"))["id"] != sha:
        if time.monotonic() > deadline:
            log = (b.home / "daemon.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"devint never pointed at {sha[:12]} within {timeout} s:\n{log}")
        time.sleep(0.002)


def versioned_package(src: Path, dest: Path, counter: int) -> tuple[Path, str]:
    """The echo model with a counter comment, so that every package has its own sha256."""
    main = src / "main.py"
    main.write_text((MODELS / "echo" / "main.py").read_text() + f"# push {counter}\n")
    built = build_package(src, dest)
    return built.path, built.sha256


def push_once(b: Bench, app: str, src: Path, i: int) -> tuple[float, float]:
    """One push through the push directory and one over HTTP; seconds each."""
    inbox = b.home / "push" / app
    inbox.mkdir(parents=True, exist_ok=True)
    part, sha = versioned_package(src, inbox / f"bench-{i}.tar.gz.part", 2 * i)
    final = inbox / f"bench-{i}.tar.gz"
    start = time.perf_counter()
    os.rename(part, final)
    wait_executable(b, app, sha)
    via_inbox = time.perf_counter() - start
    while final.exists():  # filed away into .done/: the inbox is idle again
        time.sleep(0.005)
    archive, sha = versioned_package(src, b.tmp / "packages" / f"http-{i}.tar.gz", 2 * i + 1)
    start = time.perf_counter()
    http_push(b.api, app, archive)
    via_http = time.perf_counter() - start
    wait_executable(b, app, sha, timeout=0)
    return via_inbox, via_http


def cli_wall(argv: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    took = time.perf_counter() - start
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stdout}{out.stderr}")
    return took


def scenario_push(b: Bench) -> list[Row]:
    src = b.tmp / "push-src"
    shutil.copytree(MODELS / "echo", src, dirs_exist_ok=True)
    ensure_app(b, "push", src)
    pairs = [push_once(b, "push", src, i) for i in range(b.sizes.pushes)]
    expect(b.api.post("/v1/applications", json={"id": "knapsack", "name": "knapsack"}), 201)
    push_cmd = [str(ORCH_CLI), "app", "push", "-a", "knapsack", "--app-dir", str(KNAPSACK)]
    cli = [cli_wall([*push_cmd, "--home", str(b.home)]) for _ in range(b.sizes.cli_pushes)]
    floor = [cli_wall([str(ORCH_CLI), "--version"]) for _ in range(b.sizes.cli_pushes)]
    return [
        Row(
            "push dir → devint: median",
            ms(median([p[0] for p in pairs])),
            ms(median([p[1] for p in pairs])),
            "ms",
            Target("orch", "<=", 100, "ms"),
            "the same kind of package pushed over HTTP (GET/PUT/PUT .../binary)",
        ),
        Row(
            "orch app push (knapsack): median",
            ms(median(cli)),
            ms(median(floor)),
            "ms",
            None,
            "orch --version (CLI start-up)",
        ),
    ]


# --- 5. scale of state ------------------------------------------------------------------------
def timed_gets(api: Api, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        expect(api.get(path))
        times.append(time.perf_counter() - start)
    return times


def state_probes(b: Bench, ids: list[str]) -> tuple[list[float], list[float]]:
    """Latency of GET one run's metadata (random ids) and of the newest page of 50."""
    n = b.sizes.state_requests
    one = [f"/v1/applications/state/runs/{random.choice(ids)}/metadata" for _ in range(n)]
    page = "/v1/applications/state/runs?limit=50"
    timed_gets(b.api, [one[0], page])  # warm the connection and the caches
    return timed_gets(b.api, one), timed_gets(b.api, [page] * n)


def fill_runs(db: Path, app: str, count: int) -> list[str]:
    """Copy a finished run's row ``count`` times (the daemon must be stopped)."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM runs WHERE app_id = ? LIMIT 1", (app,)).fetchone())
    first = datetime.now(UTC) - timedelta(days=2)
    ids = [f"run-bench-{n}" for n in range(count)]

    def rows() -> Iterator[list[Any]]:
        for n, run_id in enumerate(ids):
            stamp = (first + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            yield list((row | {"id": run_id, "created_at": stamp}).values())

    marks = ", ".join("?" for _ in row)
    with con:
        con.executemany(f"INSERT INTO runs ({', '.join(row)}) VALUES ({marks})", rows())
    con.close()
    return ids


def hammer(api: Api, path: str, seconds: float) -> int:
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        expect(api.get(path))
        done += 1
    return done


def idle_rss(daemon: Daemon, settle: float = 1.0) -> float:
    """The daemon's RSS once it has settled: the median of 5 samples 50 ms apart."""
    time.sleep(settle)
    samples = []
    for _ in range(5):
        samples.append(daemon.rss_mib())
        time.sleep(0.05)
    return median(samples)


def scenario_state(b: Bench) -> list[Row]:
    ensure_app(b, "state", MODELS / "echo")
    real = [submit(b.api, "state", {"input": {"n": i}}) for i in range(10)]
    for run_id in real:
        result(b.api, "state", run_id)
    one_small, page_small = state_probes(b, real)
    b.api.close()
    b.daemon.stop()
    ids = fill_runs(b.home / "orch.db", "state", b.sizes.state_runs)
    b.restart()
    rss = idle_rss(b.daemon)
    one_big, page_big = state_probes(b, ids)
    with RssSampler(b.daemon.process.pid) as sampler:
        hammer(b.api, "/v1/applications/state/runs?limit=50", b.sizes.load_seconds)
    scale = f"{b.sizes.state_runs:,} runs"
    small = "the same request with 10 runs in the database"
    return [
        Row(
            f"get one run @ {scale}: median",
            ms(median(one_big)),
            ms(median(one_small)),
            "ms",
            Target("orch", "<=", 5, "ms"),
            small,
        ),
        Row(
            f"newest page of 50 @ {scale}: median",
            ms(median(page_big)),
            ms(median(page_small)),
            "ms",
            Target("orch", "<=", 20, "ms"),
            small,
        ),
        Row(
            f"daemon RSS idle @ {scale}",
            rss,
            b.fresh_rss_mib,
            "MiB",
            Target("orch", "<=", 80, "MiB"),
            "the fresh daemon, idle",
        ),
        Row(
            f"daemon RSS peak, list route hammered @ {scale}",
            sampler.peak / MIB,
            rss,
            "MiB",
            None,
            "the same daemon, idle",
        ),
    ]


# --- 6. large input ---------------------------------------------------------------------------
def make_large_file(path: Path, mib: int) -> None:
    if path.exists() and path.stat().st_size == mib * MIB:
        return
    line = b"orch bench: a large text input, read by the model in 1 MiB chunks.\n"
    block = (line * (MIB // len(line) + 1))[:MIB]
    with path.open("wb") as fh:
        for _ in range(mib):
            fh.write(block)


def large_via_orch(b: Bench, path: Path) -> tuple[float, float]:
    """Seconds from the start of the upload to the result; the daemon's peak RSS growth (MiB)."""
    size = path.stat().st_size
    before = b.daemon.rss_mib()
    fmt = {"format": {"input": {"type": "text"}}}
    with RssSampler(b.daemon.process.pid) as sampler:
        start = time.perf_counter()
        with path.open("rb") as fh:
            upload_id = upload(b.api, "count", fh)
        run_id = submit(b.api, "count", {"upload_id": upload_id, "configuration": fmt})
        body = result(b.api, "count", run_id, wait=300)
        took = time.perf_counter() - start
    if body.get("output") != {"bytes": size}:
        raise RuntimeError(f"count model read {body.get('output')!r}, expected {size} bytes")
    return took, sampler.peak / MIB - before


def large_via_cat(path: Path) -> float:
    script = 'cat "$1" | "$0" main.py > /dev/null'
    start = time.perf_counter()
    subprocess.run(
        ["sh", "-c", script, sys.executable, str(path)], cwd=MODELS / "count", check=True
    )
    return time.perf_counter() - start


def disk_write_seconds(folder: Path, mib: int) -> float:
    """Seconds to write ``mib`` MiB to ``folder`` in 1 MiB writes, as an upload lands.

    Uploads stream to disk by design, so the disk's write speed is the ceiling of
    the large-input scenario; on some machines it is below half of ``cat``'s speed.
    """
    target = folder / "bench-disk-ceiling"
    block = b"x" * MIB
    start = time.perf_counter()
    with target.open("wb") as fh:
        for _ in range(mib):
            fh.write(block)
    took = time.perf_counter() - start
    target.unlink()
    return took


def scenario_large(b: Bench) -> list[Row]:
    mib = b.sizes.large_mib
    ensure_app(b, "count", MODELS / "count")
    path = b.tmp / f"large-{mib}MiB.txt"
    make_large_file(path, mib)
    runs, cat, disk = [], [], []
    for _ in range(b.sizes.large_reps):  # interleaved, so both sides see the same host
        runs.append(large_via_orch(b, path))
        cat.append(large_via_cat(path))
        disk.append(disk_write_seconds(b.home / "uploads", mib))
    orch_rate = mib / median([r[0] for r in runs])
    return [
        Row(
            f"large input {mib} MiB: vs disk write ceiling",
            orch_rate,
            mib / median(disk),
            "MiB/s",
            None,
            f"writing {mib} MiB to the daemon's disk (what an upload must do at least)",
        ),
        Row(
            f"large input {mib} MiB: throughput",
            orch_rate,
            mib / median(cat),
            "MiB/s",
            Target("ratio", ">=", 0.5),
            "cat file | python count.py",
        ),
        Row(
            f"large input {mib} MiB: daemon RSS growth",
            max(r[1] for r in runs),
            None,
            "MiB",
            Target("orch", "<=", 64, "MiB"),
        ),
    ]


# --- 7. experiment ----------------------------------------------------------------------------
def experiment_setup(b: Bench, n_inputs: int, doc: dict[str, Any]) -> None:
    app = "exp"
    ensure_app(b, app, MODELS / "sleep")
    expect(b.api.post(f"/v1/applications/{app}/versions", json={"id": "v1"}), 201)
    for inst in ("inst-a", "inst-b"):
        body = {"id": inst, "version_id": "v1"}
        expect(b.api.post(f"/v1/applications/{app}/instances", json=body), 201)
    ids = []
    for i in range(n_inputs):
        upload_id = upload(b.api, app, json.dumps(doc).encode())
        body = {"id": f"input-{i}", "name": f"input {i}", "upload_id": upload_id}
        ids.append(expect(b.api.post(f"/v1/applications/{app}/inputs", json=body), 201)["id"])
    input_set = {"id": "set", "name": "bench set", "input_ids": ids}
    expect(b.api.post(f"/v1/applications/{app}/experiments/inputsets", json=input_set), 201)


def experiment_wall(b: Bench, runs: int) -> float:
    base = "/v1/applications/exp/experiments/batch"
    body = {"id": "bench", "input_set_id": "set", "instance_ids": ["inst-a", "inst-b"]}
    start = time.perf_counter()
    expect(b.api.post(base, json=body), 201)
    while (meta := expect(b.api.get(f"{base}/bench/metadata")))["status"] == "started":
        time.sleep(0.02)
    took = time.perf_counter() - start
    done = meta.get("run_counts", {}).get("succeeded", 0)
    if meta["status"] != "completed" or done != runs:
        raise RuntimeError(f"experiment ended {meta['status']} with {meta.get('run_counts')}")
    return took


def scenario_experiment(b: Bench) -> list[Row]:
    n = b.sizes.experiment_inputs
    doc = {"seconds": 0.05}
    experiment_setup(b, n, doc)
    stdin = b.tmp / "sleep-50ms.json"
    stdin.write_text(json.dumps(doc))
    samples = [
        bare([sys.executable, "main.py"], MODELS / "sleep", stdin, None) for _ in range(min(20, n))
    ]
    ideal = statistics.mean(samples) * 2 * n / b.cores
    wall = experiment_wall(b, 2 * n)
    cmd = f"bare run time of the {2 * n} runs / {b.cores} cores"
    return [
        Row(
            f"experiment {n} inputs x 2 instances",
            wall,
            ideal,
            "s",
            Target("ratio", "<=", 1.15),
            cmd,
        )
    ]


# --- driver -----------------------------------------------------------------------------------
SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    "latency": scenario_latency,
    "throughput": scenario_throughput,
    "sdk": scenario_sdk,  # after throughput: the SDK's runner deletes files (see file_create_us)
    "push": scenario_push,
    "experiment": scenario_experiment,
    "large": scenario_large,
    "state": scenario_state,  # last: it restarts the daemon with 100,000 more runs
}


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "cpu": model,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def file_create_us(folder: Path, count: int = 30) -> float:
    """CPU to create one empty file here (median, µs): how loaded the file system is.

    On ext4 without a journal (this project's VM) an inode allocation skips every inode
    of its block group freed recently (minutes; 15+ measured under /tmp), so a file costs 25-45 µs
    normally and hundreds of µs after a bulk delete nearby (another bench's clean-up, a
    test suite). A run makes ~8 files and folders, so that shows in orch's figures and
    not in the baselines'; this figure tells such a run apart. The files stay (deleting
    them would add to what it measures) and go with the bench's home.
    """
    folder.mkdir()
    costs = []
    for i in range(count):
        time.sleep(0.02)  # as far apart as runs are: a tight loop keeps what it scans cached
        start = time.thread_time_ns()
        os.close(os.open(folder / str(i), os.O_CREAT | os.O_WRONLY, 0o644))
        costs.append((time.thread_time_ns() - start) / 1000)
    return median(costs)


def containment(home: Path) -> str:
    """How the daemon contained its runs: it records a run's cgroup, or none when sampling."""
    try:
        con = sqlite3.connect(f"file:{home / 'orch.db'}?mode=ro", uri=True)
        try:
            row = con.execute("SELECT cgroup FROM runs WHERE pid IS NOT NULL LIMIT 1").fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return "unknown"
    return "unknown" if row is None else ("cgroup" if row[0] else "sampling (no cgroup)")


@contextmanager
def bench_context(sizes: Sizes, cores: int) -> Iterator[Bench]:
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    home = tmp / "home"
    home.mkdir()
    (home / "config.toml").write_text(f"concurrency = {cores}\nmax_upload_mb = 2048\n")
    (tmp / "packages").mkdir()
    daemon = Daemon.start(home)
    print(f"daemon pid {daemon.process.pid}, home {home}", file=sys.stderr)
    b = Bench(tmp, home, sizes, cores, daemon, daemon.client())
    try:
        b.fresh_rss_mib = idle_rss(daemon, settle=0.5)
        yield b
    finally:
        b.api.close()
        b.daemon.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def run_scenarios(b: Bench, names: list[str]) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        print(f"scenario {name}...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        try:
            rows.extend(SCENARIOS[name](b))
        except Exception as exc:
            traceback.print_exc()
            rows.append(Row(name, None, None, "", error=f"{type(exc).__name__}: {exc}"))
        print(f"scenario {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return rows


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    digits = max(0, 2 - math.floor(math.log10(abs(value))))
    return f"{value:,.{digits}f}"


def verdict(row: Row, enforced: bool) -> str:
    if row.error:
        return "ERROR"
    if row.passed is None:
        return "—"
    word = "PASS" if row.passed else "MISS"
    return word if enforced else word.lower()


def print_table(rows: list[Row], enforced: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="orch benchmark", title_justify="left")
    for col in ("scenario", "orch", "baseline", "ratio", "target", "verdict"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for row in rows:
        unit = f" {row.unit}" if row.unit else ""
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "—"
        orch = f"error: {row.error[:60]}" if row.error else f"{fmt(row.orch)}{unit}"
        base = f"{fmt(row.baseline)}{unit}" if row.baseline is not None else "—"
        table.add_row(row.name, orch, base, ratio, str(row.target or "—"), verdict(row, enforced))
    console = Console(width=160)
    console.print(table)
    console.print("Baselines:")
    for row in rows:
        if row.baseline_is:
            console.print(f"  {row.name}: {row.baseline_is}", highlight=False)
    if not enforced:
        console.print("(--quick: verdicts in lower case are indicative; targets are not enforced)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few iterations, no thresholds")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), metavar="OUT")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these")
    parser.add_argument("--sdk-peer", nargs=2, metavar=("SRC", "RUNS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sdk_peer:
        sdk_peer_main(args.sdk_peer[0], int(args.sdk_peer[1]))
        return 0
    sizes = QUICK if args.quick else FULL
    names = [n for n in SCENARIOS if not args.only or n in args.only]
    info = machine()
    started = datetime.now(UTC)
    clock = time.perf_counter()
    with bench_context(sizes, info["cores"]) as b:
        info["file_create_us"] = round(file_create_us(b.tmp / "calibration"), 1)
        rows = run_scenarios(b, names)
        daemon = {"concurrency": info["cores"], "containment": containment(b.home)}
    report = {
        "machine": info,
        "daemon": daemon,
        "quick": args.quick,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "scenarios": [r.to_json() for r in rows],
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.perf_counter() - clock, 1),
    }
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print_table(rows, enforced=not args.quick)
    load = " ".join(f"{x:.2f}" for x in info["load_average"])
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load average at start {load}, "
        f"file creation {info['file_create_us']} µs CPU (25-45 when no files were deleted nearby)"
    )
    print(f"daemon: concurrency {daemon['concurrency']}, runs contained by {daemon['containment']}")
    print(f"results: {args.json}")
    if any(r.error for r in rows):
        return 2
    return 1 if not args.quick and any(r.passed is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
