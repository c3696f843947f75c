"""Scale of state: with 100,000 finished runs in the database (rows copied with sqlite3
while the daemon is stopped), the latency of reading one run and the newest page, against
the same requests with 10 runs; the daemon's memory idle and while the list is hammered."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from orchestrator.client.transport import Transport

from .common import MODELS, Bench, call, ensure_app, result, submit
from .harness import MIB, Daemon
from .results import Row, Target, median, ms


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


def idle_rss(daemon: Daemon, settle: float = 1.0) -> float:
    """The daemon's RSS once it has settled: the median of 5 samples 50 ms apart."""
    time.sleep(settle)
    samples = []
    for _ in range(5):
        samples.append(daemon.rss_mib())
        time.sleep(0.05)
    return median(samples)


def timed_gets(api: Transport, paths: list[str]) -> list[float]:
    times = []
    for path in paths:
        start = time.perf_counter()
        call(api, "GET", path)
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


def hammer(api: Transport, path: str, seconds: float) -> int:
    done, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        call(api, "GET", path)
        done += 1
    return done


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
