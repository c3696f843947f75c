#!/usr/bin/env python3
"""The console's speed with 100,000 runs in the store, next to the API on the same daemon.

Fills a fresh home with real runs of a tiny model, then copies their rows to
``--runs`` (100,000) across three apps, restarts the daemon on it, signs in through
a login link, and measures on one keep-alive connection (``http.client``):

- ``/runs`` (first page, newest 50 across apps) and a run's page, against the API's
  newest page of 50 and a run's metadata (the same data as JSON: the baseline);
- the filtered runs pages, an older page (keyset cursor) and ``/apps`` (counts);
- in Chromium, when it is installed: the time to load ``/runs`` and a run page, and
  the time from a run's model ending (its last statement prints the clock) to its open
  run page showing it finished, against a long-poll client (``?wait=``) on the same
  run. Without Chromium, a Python client of the page's event stream stands in.

It prints the machine and its load, a table, and a verdict per target: /runs and a run
page <= 150 ms median, run end to page <= 300 ms median. ``--quick`` (2,000 runs, few
repetitions) runs in the test suite so this script cannot rot; it checks no target.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.packaging.build import build_package  # noqa: E402

CHROMIUM = os.environ.get("ORCH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
APPS = ("bench-a", "bench-b", "bench-c")
MODEL = """
import json, sys, time
data = json.load(sys.stdin)
print("solving", data, file=sys.stderr, flush=True)
time.sleep(float(data.get("sleep", 0)))
print(json.dumps({"solutions": [{"item": n, "take": n % 2 == 0} for n in range(20)],
                  "statistics": {"result": {"value": 42}}, "end": time.time()}))
"""


@dataclass
class Row:
    name: str
    median_ms: float
    p90_ms: float
    baseline_ms: float | None
    baseline: str
    target_ms: float | None = None

    @property
    def passed(self) -> bool | None:
        return None if self.target_ms is None else self.median_ms <= self.target_ms


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def row(
    name: str, times: list[float], base: list[float] | None, what: str, target: float | None
) -> Row:
    ms = [t * 1000 for t in times]
    base_ms = statistics.median(base) * 1000 if base else None
    return Row(name, statistics.median(ms), pct(ms, 0.9), base_ms, what, target)


# --- a daemon of its own ------------------------------------------------------------------
class Daemon:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.key = ""

    def start(self) -> None:
        (self.home / "daemon.json").unlink(missing_ok=True)
        log = (self.home / "daemon.log").open("ab") if self.home.exists() else None
        self.home.mkdir(parents=True, exist_ok=True)
        log = log or (self.home / "daemon.log").open("ab")
        argv = [
            sys.executable,
            "-m",
            "orchestrator",
            "daemon",
            "run",
            "--home",
            str(self.home),
            "--port",
            "0",
        ]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=log, cwd=ROOT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                info = json.loads((self.home / "daemon.json").read_text())
                if info.get("pid") == self.proc.pid:
                    self.url, self.key = info["url"], (self.home / "api-key").read_text().strip()
                    return
            except (OSError, ValueError):
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"the daemon exited: {(self.home / 'daemon.log').read_text()}")
            time.sleep(0.05)
        raise SystemExit("the daemon did not start within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)


class Http:
    """One keep-alive connection; the bench's figures include only what it sends."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        self.headers = headers

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {**self.headers, **({"Content-Type": "application/json"} if data else {})}
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        return response.status, response.read(), response.headers

    def get(self, path: str) -> bytes:
        status, body, _ = self.request("GET", path)
        if status != 200:
            raise SystemExit(f"GET {path} answered {status}: {body[:300]!r}")
        return body

    def timed(self, paths: list[str]) -> list[float]:
        self.get(paths[0])  # warm the connection and the caches
        times = []
        for path in paths:
            start = time.perf_counter()
            self.get(path)
            times.append(time.perf_counter() - start)
        return times


# --- filling the store --------------------------------------------------------------------
def seed(d: Daemon, work: Path) -> Http:
    api = Http(d.url, {"Authorization": f"Bearer {d.key}"})
    model = work / "model"
    model.mkdir()
    (model / "main.py").write_text(MODEL)
    (model / "app.yaml").write_text(
        "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\nfiles: [main.py]\n"
    )
    for app in APPS:
        api.request("POST", "/v1/applications", {"id": app, "name": app.title()})
        package = build_package(model, work / f"{app}.tar.gz").path
        upload = json.loads(api.get(f"/v1/applications/{app}/binary"))["upload_url"]
        put = Http(upload, {})
        put.conn.request(
            "PUT", urlsplit(upload).path + "?" + urlsplit(upload).query, body=package.read_bytes()
        )
        put.conn.getresponse().read()
        api.request("PUT", f"/v1/applications/{app}/binary", {"requirements": {}})
        for n in range(5):
            run_id = submit(api, app, {"n": n})
            wait(api, app, run_id)
    return api


def submit(api: Http, app: str, data: dict[str, Any]) -> str:
    status, body, _ = api.request("POST", f"/v1/applications/{app}/runs", {"input": data})
    if status != 201:
        raise SystemExit(f"run refused: {body!r}")
    return str(json.loads(body)["run_id"])


def wait(api: Http, app: str, run_id: str) -> dict[str, Any]:
    return dict(json.loads(api.get(f"/v1/applications/{app}/runs/{run_id}/metadata?wait=60")))


def fill(db: Path, count: int) -> None:
    """Copy finished rows ``count`` times over three apps and two days (daemon stopped)."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM runs")]
    first = datetime.now(UTC) - timedelta(days=2)
    statuses = ["succeeded"] * 18 + ["failed", "canceled"]

    def copies() -> Iterator[list[Any]]:
        for n in range(count):
            base = rows[n % len(rows)]
            stamp = (first + timedelta(seconds=n * 1.5)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            yield list(
                (
                    base
                    | {
                        "id": f"run-fill-{n:06d}",
                        "created_at": stamp,
                        "status": statuses[n % len(statuses)],
                    }
                ).values()
            )

    cols = list(rows[0])
    with con:
        con.executemany(
            f"INSERT INTO runs ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            copies(),
        )
    con.close()


def sign_in(d: Daemon, api: Http) -> Http:
    _, body, _ = api.request("POST", "/v1/console/login-link")
    link = json.loads(body)["url"]
    page = Http(d.url, {"Accept": "text/html"})
    status, _, headers = page.request("GET", urlsplit(link).path + "?" + urlsplit(link).query)
    cookie = headers.get("set-cookie", "").split(";", 1)[0]
    if status != 200 or not cookie:
        raise SystemExit(f"login link refused ({status})")
    page.headers["Cookie"] = cookie
    return page


# --- measurements -------------------------------------------------------------------------
def page_loads(api: Http, page: Http, run: tuple[str, str], n: int) -> list[Row]:
    app, run_id = run
    first = page.get("/runs").decode()
    older = re.search(r'href="(/runs\?before=[^"]+)"', first)
    rows = [
        row(
            "/runs, first page (HTML)",
            page.timed(["/runs"] * n),
            api.timed([f"/v1/applications/{app}/runs?limit=50"] * n),
            "API newest page of 50 (JSON)",
            150,
        ),
        row(
            "run page (HTML)",
            page.timed([f"/apps/{app}/runs/{run_id}"] * n),
            api.timed([f"/v1/applications/{app}/runs/{run_id}/metadata"] * n),
            "API run metadata (JSON)",
            150,
        ),
        row("/runs?status=failed", page.timed(["/runs?status=failed"] * n), None, "", None),
        row(
            f"/runs?app={APPS[1]}&status=canceled",
            page.timed([f"/runs?app={APPS[1]}&status=canceled"] * n),
            None,
            "",
            None,
        ),
        row("/apps (run counts by status)", page.timed(["/apps"] * max(5, n // 4)), None, "", None),
    ]
    if older:
        path = older.group(1).replace("&amp;", "&")
        rows.append(row("/runs, older page (cursor)", page.timed([path] * n), None, "", None))
    rows.append(
        row("/healthz", api.timed(["/healthz"] * n), None, "(floor: one HTTP round trip)", None)
    )
    return rows


def long_poll_delay(d: Daemon, app: str, run_id: str, out: list[float]) -> None:
    client = Http(d.url, {"Authorization": f"Bearer {d.key}"})
    body = json.loads(client.get(f"/v1/applications/{app}/runs/{run_id}?wait=60"))
    out.append(time.time() - float(body["output"]["end"]))


LOAD_EVENT_END = "performance.getEntriesByType('navigation')[0].loadEventEnd"
"""Chromium's own clock, from the start of the navigation to the end of the load event:
the page, its CSS and scripts (from the browser's cache after the first visit)."""


def end_to_page(d: Daemon, api: Http, page: Http, n: int, sleep: float) -> list[Row]:
    """Seconds from the model's last statement to the page showing the run finished."""
    if shutil.which(CHROMIUM) is None:
        return end_to_stream(d, api, page, n, sleep)
    from playwright.sync_api import sync_playwright

    shown, polled, loads_runs, loads_run = [], [], [], []
    cookie = page.headers["Cookie"].split("=", 1)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        context = browser.new_context()
        context.add_cookies([{"name": cookie[0], "value": cookie[1], "url": d.url}])
        tab = context.new_page()
        tab.goto(f"{d.url}/runs", wait_until="load")  # the first visit fills the cache
        for _ in range(n):
            tab.goto(f"{d.url}/runs", wait_until="load")
            loads_runs.append(tab.evaluate(LOAD_EVENT_END) / 1000)
        for _ in range(n):
            run_id = submit(api, APPS[0], {"sleep": sleep})
            tab.goto(f"{d.url}/apps/{APPS[0]}/runs/{run_id}", wait_until="load")
            loads_run.append(tab.evaluate(LOAD_EVENT_END) / 1000)
            tab.evaluate("""() => { window.__seen = null; new MutationObserver((_, o) => {
                if (document.querySelector('[data-run-status=succeeded]')) {
                  window.__seen = Date.now(); o.disconnect(); } })
                .observe(document.body, {subtree: true, childList: true}); }""")
            poller = threading.Thread(target=long_poll_delay, args=(d, APPS[0], run_id, polled))
            poller.start()
            deadline = time.monotonic() + 60
            while tab.evaluate("window.__seen") is None and time.monotonic() < deadline:
                time.sleep(0.02)  # the page stamps the moment itself; polling adds nothing
            poller.join()
            out = json.loads(api.get(f"/v1/applications/{APPS[0]}/runs/{run_id}"))["output"]
            shown.append(tab.evaluate("window.__seen") / 1000 - float(out["end"]))
        browser.close()
    return [
        row("/runs in Chromium (navigation start to load event end)", loads_runs, None, "", None),
        row("run page in Chromium (navigation start to load event end)", loads_run, None, "", None),
        row(
            "run end → open run page shows it (Chromium)",
            shown,
            polled,
            "API long-poll (?wait=) on the same run",
            300,
        ),
    ]


def end_to_stream(d: Daemon, api: Http, page: Http, n: int, sleep: float) -> list[Row]:
    """No browser here: read the run page's event stream in Python instead."""
    shown, polled = [], []
    for _ in range(n):
        run_id = submit(api, APPS[0], {"sleep": sleep})
        poller = threading.Thread(target=long_poll_delay, args=(d, APPS[0], run_id, polled))
        poller.start()
        stream = Http(d.url, page.headers)
        stream.conn.request(
            "GET", f"/apps/{APPS[0]}/runs/{run_id}/stream?status=queued", headers=page.headers
        )
        response = stream.conn.getresponse()
        seen = 0.0
        for line in response:
            if line.startswith(b"data:") and b'"status":"succeeded"' in line:
                seen = time.time()
                break
        stream.conn.close()
        poller.join()
        out = json.loads(api.get(f"/v1/applications/{APPS[0]}/runs/{run_id}"))["output"]
        shown.append(seen - float(out["end"]))
    return [
        row(
            "run end → event stream shows it (no Chromium: Python SSE client)",
            shown,
            polled,
            "API long-poll (?wait=) on the same run",
            300,
        )
    ]


# --- report -------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(ln.split()[1])
        for ln in Path("/proc/meminfo").read_text().splitlines()
        if ln.startswith("MemTotal")
    )
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def report(rows: list[Row], info: dict[str, Any], runs: int, quick: bool) -> None:
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['memory_gib']} GiB, "
        f"Python {info['python']}, kernel {info['kernel']}"
    )
    print(f"load average at start {info['load_average']}, at end {info['load_average_after']}")
    print(f"store: {runs:,} runs over {len(APPS)} apps\n")
    print(f"{'scenario':58} {'median':>9} {'p90':>9} {'baseline':>9}  target   verdict")
    for r in rows:
        base = f"{r.baseline_ms:7.2f}ms" if r.baseline_ms is not None else "        -"
        target = f"<= {r.target_ms:.0f} ms" if r.target_ms else "-"
        verdict = "-" if r.passed is None or quick else ("pass" if r.passed else "MISS")
        print(f"{r.name:58} {r.median_ms:7.2f}ms {r.p90_ms:7.2f}ms {base}  {target:8} {verdict}")
        if r.baseline:
            print(f"{'':60}baseline: {r.baseline}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=100, help="requests per page figure")
    parser.add_argument("--quick", action="store_true", help="2,000 runs, few repetitions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    runs, repeat, ends = (2_000, 10, 2) if args.quick else (args.runs, args.repeat, 20)
    info = machine()
    work = Path(tempfile.mkdtemp(prefix="orch-bench-console-"))
    d = Daemon(work / "home")
    try:
        d.start()
        api = seed(d, work)
        real = (
            APPS[0],
            json.loads(api.get(f"/v1/applications/{APPS[0]}/runs?limit=1"))["runs"][0]["id"],
        )
        d.stop()
        fill(d.home / "orch.db", runs)
        d.start()
        api = Http(d.url, {"Authorization": f"Bearer {d.key}"})
        page = sign_in(d, api)
        rows = page_loads(api, page, real, repeat)
        rows += end_to_page(d, api, page, ends, sleep=0.3)
    finally:
        d.stop()
        shutil.rmtree(work, ignore_errors=True)
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    report(rows, info, runs, args.quick)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": info,
                    "runs": runs,
                    "rows": [asdict(r) | {"passed": r.passed} for r in rows],
                },
                indent=2,
            )
        )
    missed = [r.name for r in rows if r.passed is False]
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
