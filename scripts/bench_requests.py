"""The daemon's CPU per HTTP request, two source trees side by side, paired.

``bench_ab.py`` pairs whole runs, where the model and the run path move the figure by
more than one request costs. This isolates requests: one daemon per tree (same
interpreter, same machine minute), each with the echo model and one finished run, then
rounds of ``--requests`` requests of each kind on A and B alternately (the order flips
each round), reading each daemon's own CPU (user + system, all threads) around its block.
psutil's CPU clock ticks every 10 ms, so a block of 300 requests resolves ~33 µs; the
median of the rounds' B - A resolves much less::

    git worktree add --detach /tmp/orch-base main
    .venv/bin/python scripts/bench_requests.py /tmp/orch-base . --rounds 12
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import common, results  # the sibling package: daemon, client, models
from bench.harness import Daemon

from orchestrator.client.transport import Transport
from orchestrator.packaging.build import build_package

Request = Callable[[], object]


def _kinds(api: Transport, run_id: str) -> dict[str, Request]:
    """What one client does per kind: the run has ended, so the long-poll answers at once;
    a tracked run is recorded as given (nothing executes), so its POST is mostly HTTP."""
    run = f"/v1/applications/echo/runs/{run_id}"
    tracked = {"input": {"hello": "world"}, "result": {"status": "succeeded"}}  # runs nothing
    return {
        "POST tracked run (hot)": lambda: common.submit(api, "echo", tracked),
        "GET run result ?wait=30 (hot)": lambda: common.call(api, "GET", run, params={"wait": 30}),
        "GET run metadata (stack)": lambda: common.call(api, "GET", f"{run}/metadata"),
        "GET app (stack)": lambda: common.call(api, "GET", "/v1/applications/echo"),
        "GET /healthz (stack)": lambda: api.request("GET", "/healthz"),
    }


def _side(tree: Path, root: Path) -> tuple[Daemon, dict[str, Request]]:
    daemon = Daemon.start(root / tree.name / "home", source=tree)
    api = common.connect(daemon)
    common.call(api, "POST", "/v1/applications", 201, json_body={"id": "echo", "name": "echo"})
    archive = build_package(common.MODELS / "echo", root / f"{tree.name}.tar.gz").path
    common.http_push(api, "echo", archive)
    run_id = common.submit(api, "echo", {"input": {"hello": "world"}})
    common.result(api, "echo", run_id)
    return daemon, _kinds(api, run_id)


def _cpu_per_request(pid: int, request: Request, n: int) -> float:
    """µs of the daemon's CPU per request over a block of ``n``."""
    times = psutil.Process(pid).cpu_times
    before = times()
    for _ in range(n):
        request()
    after = times()
    return (after.user + after.system - before.user - before.system) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    results.tree_arguments(parser)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--requests", type=int, default=300, help="per block")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="orch-requests-"))
    print(f"A = {args.a}\nB = {args.b}\nload before: {results.load_line()}")
    (da, ka), (db, kb) = _side(args.a.resolve(), root / "A"), _side(args.b.resolve(), root / "B")
    try:
        figures: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ka}
        for r in range(args.rounds):
            for kind in ka:
                for _ in range(20):  # warm both
                    ka[kind](), kb[kind]()
                sides = [(da, ka, 0), (db, kb, 1)]
                for daemon, kinds, i in sides if r % 2 == 0 else sides[::-1]:
                    figures[kind][i].append(
                        _cpu_per_request(daemon.process.pid, kinds[kind], args.requests)
                    )
        for kind, (a, b) in figures.items():
            diffs = [y - x for x, y in zip(a, b, strict=True)]
            fewer = sum(d < 0 for d in diffs)
            print(
                f"{kind:32s} A {statistics.median(a):5.0f} µs  B {statistics.median(b):5.0f} µs"
                f"  B - A median {statistics.median(diffs):+5.0f} µs ({fewer} of {len(diffs)} < 0)"
            )
    finally:
        da.stop(), db.stop()
        shutil.rmtree(root, ignore_errors=True)
        print(f"load after: {results.load_line()}  ({time.strftime('%H:%M')})")


if __name__ == "__main__":
    main()
