"""The driver: one daemon on a temporary home, the scenarios in order, the table, the JSON."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .big import scenario_big
from .cli_timings import scenario_cli
from .common import FULL, QUICK, Bench, Sizes, connect
from .experiment import scenario_experiment
from .harness import Daemon
from .large import scenario_large
from .latency import scenario_latency
from .push import scenario_push
from .results import Row, file_create_us, machine, print_table, tmpfs_file_create_us
from .sdk import scenario_sdk, sdk_peer_main
from .state import idle_rss, scenario_state
from .throughput import scenario_cpu, scenario_throughput

SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    "latency": scenario_latency,
    "throughput": scenario_throughput,
    "cpu": scenario_cpu,
    "sdk": scenario_sdk,  # after throughput: the SDK's runner deletes files (file_create_us)
    "cli": scenario_cli,
    "push": scenario_push,
    "experiment": scenario_experiment,
    "large": scenario_large,
    "state": scenario_state,  # last: it restarts the daemon with 100,000 more runs
    "big": scenario_big,  # opt-in (--only big): 10,000 runs, a few minutes
}
OPT_IN = {"big"}


def containment(home: Path) -> str:
    """How the daemon contained its runs: it records a run's cgroup, or none when sampling."""
    try:
        con = sqlite3.connect(f"file:{home / 'orch.db'}?mode=ro", uri=True)
        try:
            row = con.execute(
                "SELECT placement FROM runs WHERE placement IS NOT NULL LIMIT 1"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:
        return "unknown"
    if row is None:
        return "unknown"
    return "cgroup" if json.loads(row[0]).get("cgroup") else "sampling (no cgroup)"


@contextmanager
def bench_context(sizes: Sizes, cores: int) -> Iterator[Bench]:
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    home = tmp / "home"
    (tmp / "packages").mkdir()
    config = f"concurrency = {cores}\nmax_upload_mb = 2048\n"
    daemon = Daemon.start(home, config=config)
    print(f"daemon pid {daemon.process.pid}, home {home}", file=sys.stderr)
    b = Bench(tmp, home, sizes, cores, daemon, connect(daemon))
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


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description="orch benchmark")
    parser.add_argument("--quick", action="store_true", help="few iterations, no thresholds")
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"), metavar="OUT")
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these")
    parser.add_argument("--sdk-peer", nargs=2, metavar=("SRC", "RUNS"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.sdk_peer:
        sdk_peer_main(args.sdk_peer[0], int(args.sdk_peer[1]))
        return 0
    sizes = QUICK if args.quick else FULL
    names = [n for n in SCENARIOS if (n in args.only if args.only else n not in OPT_IN)]
    info = machine()
    started = datetime.now(UTC)
    clock = time.perf_counter()
    with bench_context(sizes, info["cores"]) as b:
        info["file_create_us"] = round(file_create_us(b.tmp / "calibration"), 1)
        tmpfs = tmpfs_file_create_us()
        info["file_create_tmpfs_us"] = None if tmpfs is None else round(tmpfs, 1)
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
    after = " ".join(f"{x:.2f}" for x in report["load_average_after"])
    tmpfs = info["file_create_tmpfs_us"]
    reference = f", {tmpfs} µs on a tmpfs" if tmpfs is not None else ""
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, load average {load} at start, "
        f"{after} at the end; file creation {info['file_create_us']} µs CPU{reference} "
        "(one file every 20 ms, as runs make them)"
    )
    print(f"daemon: concurrency {daemon['concurrency']}, runs contained by {daemon['containment']}")
    print(f"results: {args.json}")
    if any(r.error for r in rows):
        return 2
    return 1 if not args.quick and any(r.passed is False for r in rows) else 0
