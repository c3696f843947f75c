"""A big experiment stays responsive: 10,000 runs of a trivial model, the loop never stalls.

Run it from the repository root::

    .venv/bin/python scripts/bench_big_experiment.py              # 10,000 runs, a few minutes
    .venv/bin/python scripts/bench_big_experiment.py --runs 400   # a quick look

It starts a daemon with its loop monitor on (``ORCH_LOOP_MONITOR=1``: a task that
wakes every 10 ms and records how late it woke), pushes the echo model, keeps 100
inputs in an input set and starts a batch experiment of ``inputs x 2 instances x
repetitions`` runs. While it runs, a probe thread asks for one finished run's
metadata every 20 ms (``GET .../runs/{id}/metadata``) and, every 2 s, the
experiment's summary (the heaviest read: every run of the experiment). Reported:
the probe's latency (median, p99, max), the loop's worst lateness and the number
of wake-ups later than 50 ms, and the experiment's wall time against the ideal
(the bare run time of the model x runs / cores), measured in the same run.

Targets (issue 19): no stall over 50 ms, GET run under 5 ms throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench import MODELS, Api, Daemon, bare, ensure_app, expect, machine, upload

APP = "big"


class Bench:
    """What ``bench.ensure_app`` needs of a bench: a client, a tmp folder, the apps made."""

    def __init__(self, tmp: Path, api: Api) -> None:
        self.tmp, self.api, self.apps = tmp, api, set[str]()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the experiment")
    parser.add_argument("--inputs", type=int, default=100)
    args = parser.parse_args()
    reps = max(1, args.runs // (2 * args.inputs))
    total = 2 * args.inputs * reps
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="orch-big-") as tmp_name:
        tmp = Path(tmp_name)
        home = tmp / "home"
        home.mkdir()
        (home / "config.toml").write_text(f"concurrency = {cores}\nloop_monitor = true\n")
        daemon = Daemon.start(home)
        print(f"daemon pid {daemon.process.pid}, home {home}", file=sys.stderr)
        try:
            figures = run(daemon, tmp, args.inputs, reps, total, cores)
        finally:
            daemon.stop()
    figures["machine"] = machine()
    print(json.dumps(figures, indent=2))
    ok = figures["loop"]["stalls_over_50ms"] == 0 and figures["probe_ms"]["p99"] < 5
    print("targets met" if ok else "targets MISSED", file=sys.stderr)
    return 0 if ok else 1


def run(daemon: Daemon, tmp: Path, inputs: int, reps: int, total: int, cores: int) -> dict:
    api = daemon.client()
    ensure_app(Bench(tmp, api), APP, MODELS / "echo")  # type: ignore[arg-type]
    base = f"/v1/applications/{APP}"
    for instance in ("a", "b"):
        body = {"id": instance, "name": instance, "version_id": "v1"}
        if instance == "a":
            expect(api.post(f"{base}/versions", json={"id": "v1", "name": "v1"}), 201)
        expect(api.post(f"{base}/instances", json=body), 201)
    ids = []
    for n in range(inputs):
        upload_id = upload(api, APP, json.dumps({"n": n}).encode())
        body = {"id": f"in-{n}", "name": f"in-{n}", "upload_id": upload_id}
        ids.append(expect(api.post(f"{base}/inputs", json=body), 201)["id"])
    expect(api.post(f"{base}/experiments/inputsets", json={"id": "s", "input_ids": ids}), 201)
    probe_run = expect(api.post(f"{base}/runs", json={"input": {"n": -1}}), 201)["run_id"]
    expect(api.get(f"{base}/runs/{probe_run}", params={"wait": 30}, timeout=60))
    stdin = tmp / "input.json"
    stdin.write_text('{"n": 1}')
    bare_s = statistics.median(
        bare([sys.executable, "main.py"], MODELS / "echo", stdin, None) for _ in range(20)
    )

    probe = Probe(daemon, f"{base}/runs/{probe_run}/metadata", f"{base}/experiments/batch/x")
    started = time.monotonic()
    body = {"id": "x", "name": "big", "input_set_id": "s", "instance_ids": ["a", "b"],
            "repetitions": reps}  # fmt: skip
    expect(api.post(f"{base}/experiments/batch", json=body, timeout=600), 201)
    submitted = time.monotonic() - started
    probe.start()
    while expect(api.get(f"{base}/experiments/batch/x"))["status"] == "started":
        time.sleep(0.5)
    wall = time.monotonic() - started
    probe.stop()
    health = expect(api.get("/healthz"))
    return {
        "runs": total,
        "submit_s": round(submitted, 2),
        "wall_s": round(wall, 1),
        "ideal_s": round(bare_s * total / cores, 1),
        "ratio_to_ideal": round(wall / (bare_s * total / cores), 2),
        "probe_ms": probe.figures(),
        "summary_ms": probe.summary_figures(),
        "loop": health["loop"],
    }


class Probe:
    """GET a run every 20 ms and the experiment's summary every 2 s, from a thread."""

    def __init__(self, daemon: Daemon, run_path: str, exp_path: str) -> None:
        self.daemon, self.run_path, self.exp_path = daemon, run_path, exp_path
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
        api, last_summary = self.daemon.client(), 0.0
        while not self._stop.wait(0.02):
            self.latencies.append(_timed(api, self.run_path))
            if time.monotonic() - last_summary > 2:
                last_summary = time.monotonic()
                self.summaries.append(_timed(api, self.exp_path + "/summary", timeout=120))

    def figures(self) -> dict[str, Any]:
        return _stats(self.latencies)

    def summary_figures(self) -> dict[str, Any]:
        return _stats(self.summaries)


def _timed(api: Api, path: str, timeout: float = 30) -> float:
    t0 = time.perf_counter()
    expect(api.get(path, timeout=timeout))
    return (time.perf_counter() - t0) * 1000


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "max": round(ordered[-1], 2),
    }


if __name__ == "__main__":
    sys.exit(main())
