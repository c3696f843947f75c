"""Big experiment: 10,000 runs of a trivial model while the daemon stays responsive.

Opt-in (``--only big``; a few minutes). The daemon is restarted with its loop monitor
on (``ORCH_LOOP_MONITOR=1``: a task that wakes every 10 ms and records how late it
woke). 100 inputs x 2 instances x 50 repetitions of the echo model run as one batch
experiment; meanwhile a probe thread asks for a finished run's metadata every 20 ms and
for the experiment's summary (every run of it read and summarised) every 2 s. Rows: the
loop's wake-ups later than 50 ms (target 0), the probe's p99 against the same request on
the idle daemon (target < 5 ms), and the experiment's wall time against the ideal (the
bare run time of the model x runs / cores).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time

from orchestrator.client.transport import Transport

from .common import MODELS, Bench, bare, call, connect, ensure_app, upload
from .harness import Daemon
from .results import Row, Target

APP = "big"
BASE = f"/v1/applications/{APP}"


def scenario_big(b: Bench) -> list[Row]:
    inputs, reps = (100, 50) if b.sizes.state_runs >= 100_000 else (10, 10)
    total = 2 * inputs * reps
    _restart(b, monitor=True)
    try:
        probe_run = _setup(b, inputs)
        idle = [_timed(b, f"{BASE}/runs/{probe_run}/metadata") for _ in range(200)]
        stdin = b.tmp / "big-input.json"
        stdin.write_text('{"n": 1}')
        cmd = [b.python, "main.py"]
        bare_s = statistics.median(bare(cmd, MODELS / "echo", stdin, None) for _ in range(20))
        probe = _Probe(b.daemon, probe_run)
        started = time.monotonic()
        body = {"id": "x", "name": "big", "input_set_id": "s", "instance_ids": ["a", "b"],
                "repetitions": reps}  # fmt: skip
        call(b.api, "POST", f"{BASE}/experiments/batch", 201, json_body=body, timeout=600)
        probe.start()
        while call(b.api, "GET", f"{BASE}/experiments/batch/x")["status"] == "started":
            time.sleep(0.5)
        wall = time.monotonic() - started
        probe.stop()
        loop = call(b.api, "GET", "/healthz")["loop"]
    finally:
        _restart(b, monitor=False)
    print(f"big: loop {loop}, summaries {len(probe.summaries)}", file=sys.stderr)
    ideal = bare_s * total / b.cores
    return [
        Row(f"big experiment ({total} runs): loop stalls > 50 ms", loop["stalls_over_50ms"],
            None, "", Target("orch", "<=", 0, ""), f"max lag {loop['max_lag_ms']} ms"),
        Row("big experiment: GET run metadata p99 during it", _p99(probe.latencies),
            _p99(idle), "ms", Target("orch", "<", 5, "ms"), "the same request, daemon idle"),
        Row("big experiment: summary during it (median)", statistics.median(probe.summaries),
            None, "ms", None, "every run read and summarised, off the loop"),
        Row("big experiment: wall time", wall, ideal, "s", None,
            f"bare run time x {total} runs / {b.cores} cores"),
    ]  # fmt: skip


def _restart(b: Bench, monitor: bool) -> None:
    b.api.close()
    b.daemon.stop()
    env = {"ORCH_LOOP_MONITOR": "1" if monitor else "0"}
    b.daemon = Daemon.start(b.home, env=env)
    b.api = connect(b.daemon)


def _setup(b: Bench, inputs: int) -> str:
    ensure_app(b, APP, MODELS / "echo")
    call(b.api, "POST", f"{BASE}/versions", 201, json_body={"id": "v1", "name": "v1"})
    for instance in ("a", "b"):
        body = {"id": instance, "name": instance, "version_id": "v1"}
        call(b.api, "POST", f"{BASE}/instances", 201, json_body=body)
    ids = []
    for n in range(inputs):
        upload_id = upload(b.api, APP, json.dumps({"n": n}).encode())
        body = {"id": f"in-{n}", "name": f"in-{n}", "upload_id": upload_id}
        ids.append(call(b.api, "POST", f"{BASE}/inputs", 201, json_body=body)["id"])
    input_set = {"id": "s", "name": "s", "input_ids": ids}
    call(b.api, "POST", f"{BASE}/experiments/inputsets", 201, json_body=input_set)
    run = call(b.api, "POST", f"{BASE}/runs", 201, json_body={"input": {"n": -1}})["run_id"]
    call(b.api, "GET", f"{BASE}/runs/{run}", params={"wait": 30}, timeout=60)
    return str(run)


class _Probe:
    """A run's metadata every 20 ms and the experiment's summary every 2 s, from a thread."""

    def __init__(self, daemon: Daemon, run_id: str) -> None:
        self.daemon, self.run_id = daemon, run_id
        self.latencies: list[float] = []
        self.summaries: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        api, last = connect(self.daemon), 0.0
        try:
            while not self._stop.wait(0.02):
                self.latencies.append(_timed_on(api, f"{BASE}/runs/{self.run_id}/metadata"))
                if time.monotonic() - last > 2:
                    last = time.monotonic()
                    path = f"{BASE}/experiments/batch/x/summary"
                    self.summaries.append(_timed_on(api, path, timeout=120))
        finally:
            api.close()


def _timed(b: Bench, path: str) -> float:
    return _timed_on(b.api, path)


def _timed_on(api: Transport, path: str, timeout: float = 30) -> float:
    t0 = time.perf_counter()
    call(api, "GET", path, timeout=timeout)
    return (time.perf_counter() - t0) * 1000


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
