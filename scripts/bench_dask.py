"""The dask backend on this machine: a real scheduler and two workers, next to the local one.

Run it from the repository root (needs the dask extra, which ``scripts/setup`` installs)::

    .venv/bin/python scripts/bench_dask.py            # a few minutes
    .venv/bin/python scripts/bench_dask.py --quick    # smoke, < 1 minute

It starts a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 (each with
``--nthreads S --resources orch=S``, S = cores / 2, so the cluster has as many slots as
the local daemon's concurrency), one daemon with ``executor = "dask://..."`` and one
local daemon (``concurrency = cores``), pushes ``scripts/bench_models/`` to both, and
measures, every figure next to a baseline taken in the same run:

1. ``dispatch``: submit → result of the python echo model (as ``scripts/bench``'s latency),
   runs alternating between the dask daemon and the local daemon; the median difference
   is what dispatching a run to the cluster costs (shipping its input, the task's
   round trips, the result coming back).
2. ``throughput``: runs/s of the 20 ms model through the dask daemon against the local
   daemon, passes alternating (back-to-back pairs; the median pair is shown).
3. ``experiment``: 2 instances x N inputs of the 50 ms model on the cluster against the
   ideal (bare run time of the runs / the cluster's slots).

Both daemons and all the workers share this machine's cores, so the dask figures include
the cost of a scheduler and two worker processes competing with the models; on a real
cluster the models get machines of their own. The machine, its load before and after,
and the figures go to stdout and ``--json`` (default ``bench-dask-results.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from bench import common, experiment, harness, results  # noqa: E402 - the sibling package

from tests.dask_cluster import DaskCluster  # noqa: E402 - real scheduler and workers


@dataclass(frozen=True)
class Sizes:
    dispatch_runs: int
    warmup_runs: int
    throughput_runs: int
    throughput_pairs: int
    experiment_inputs: int


FULL = Sizes(60, 5, 300, 3, 100)
QUICK = Sizes(8, 2, 30, 1, 8)


@dataclass
class Sides:
    dask: common.Bench
    local: common.Bench
    cluster: DaskCluster
    slots: int


@contextmanager
def sides(sizes: Sizes, cores: int) -> Iterator[Sides]:
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-dask-"))
    per_worker = max(1, cores // 2)
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, tmp, True)
        cluster = DaskCluster.start(tmp / "cluster", workers=2, slots=per_worker)
        stack.callback(cluster.stop)
        made = {}
        for name, config in (
            ("dask", f'executor = "{cluster.executor}"\n'),
            ("local", f"concurrency = {cores}\n"),
        ):
            home = tmp / name / "home"
            home.mkdir(parents=True)
            (home / "config.toml").write_text(config)
            (tmp / name / "packages").mkdir()
            daemon = harness.Daemon.start(home)
            stack.callback(daemon.stop)
            b = common.Bench(tmp / name, home, common.FULL, cores, daemon, common.connect(daemon))
            stack.callback(b.api.close)
            for app in ("echo", "sleep"):
                common.ensure_app(b, app, common.MODELS / app)
            made[name] = b
        yield Sides(made["dask"], made["local"], cluster, 2 * per_worker)


def one_run(b: common.Bench, app: str, doc: dict[str, Any]) -> float:
    start = time.perf_counter()
    body = common.result(b.api, app, common.submit(b.api, app, {"input": doc}))
    took = time.perf_counter() - start
    if app == "echo" and body.get("output") != doc:
        raise RuntimeError(f"unexpected output {body.get('output')!r}")
    return took


def scenario_dispatch(s: Sides, sizes: Sizes) -> list[results.Row]:
    on_dask: list[float] = []
    on_local: list[float] = []
    for i in range(sizes.warmup_runs + sizes.dispatch_runs):
        doc = {"bench": "dispatch", "n": i}
        pair = [("dask", s.dask), ("local", s.local)]
        for name, b in pair if i % 2 else reversed(pair):
            took = one_run(b, "echo", doc)
            if i >= sizes.warmup_runs:
                (on_dask if name == "dask" else on_local).append(took)
    base = "the same run on the local backend, alternating"
    overhead = results.ms(results.median(on_dask) - results.median(on_local))
    return [
        results.Row(
            "python echo on dask: median",
            results.ms(results.median(on_dask)),
            results.ms(results.median(on_local)),
            "ms",
            None,
            base,
        ),
        results.Row(
            "python echo on dask: p90",
            results.ms(results.p90(on_dask)),
            results.ms(results.p90(on_local)),
            "ms",
            None,
            base,
        ),
        results.Row("dispatch overhead per run (median, dask - local)", overhead, None, "ms"),
    ]


def batch_wall(b: common.Bench, n: int, doc: dict[str, Any]) -> float:
    """Submit ``n`` runs, then collect each result (as ``scripts/bench``'s throughput)."""
    start = time.perf_counter()
    ids = [common.submit(b.api, "sleep", {"input": doc}) for _ in range(n)]
    for run_id in ids:
        common.result(b.api, "sleep", run_id, wait=300)
    return time.perf_counter() - start


def scenario_throughput(s: Sides, sizes: Sizes) -> list[results.Row]:
    n, doc = sizes.throughput_runs, {"seconds": 0.02}
    pairs = []
    for i in range(sizes.throughput_pairs):
        first, second = (s.dask, s.local) if i % 2 == 0 else (s.local, s.dask)
        walls = {id(first): batch_wall(first, n, doc), id(second): batch_wall(second, n, doc)}
        pairs.append((n / walls[id(s.dask)], n / walls[id(s.local)]))
    rate, local_rate, spread = results.median_pair(pairs)
    return [
        results.Row(
            "throughput 20 ms model on dask",
            rate,
            local_rate,
            "runs/s",
            None,
            f"the local backend, concurrency {s.local.cores}; {len(pairs)} pairs ({spread})",
        )
    ]


def scenario_experiment(s: Sides, sizes: Sizes) -> list[results.Row]:
    n, doc = sizes.experiment_inputs, {"seconds": 0.05}
    experiment.experiment_setup(s.dask, n, doc)
    stdin = s.dask.tmp / "sleep-50ms.json"
    stdin.write_text(json.dumps(doc))
    argv = [sys.executable, "main.py"]
    samples = [common.bare(argv, common.MODELS / "sleep", stdin, None) for _ in range(min(20, n))]
    ideal = statistics.mean(samples) * 2 * n / s.slots
    wall = experiment.experiment_wall(s.dask, 2 * n)
    return [
        results.Row(
            f"experiment on dask: {n} inputs x 2 instances",
            wall,
            ideal,
            "s",
            None,
            f"bare run time of the {2 * n} runs / the cluster's {s.slots} slots",
        )
    ]


SCENARIOS = {
    "dispatch": scenario_dispatch,
    "throughput": scenario_throughput,
    "experiment": scenario_experiment,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few iterations (smoke)")
    parser.add_argument("--json", type=Path, default=Path("bench-dask-results.json"))
    parser.add_argument("--only", nargs="+", choices=list(SCENARIOS), help="run only these")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    info = results.machine()
    started, clock = datetime.now(UTC), time.perf_counter()
    rows: list[results.Row] = []
    with sides(sizes, info["cores"]) as s:
        for name, scenario in SCENARIOS.items():
            if args.only and name not in args.only:
                continue
            print(f"scenario {name}...", file=sys.stderr, flush=True)
            rows.extend(scenario(s, sizes))
        slots = s.slots
    report = {
        "machine": info,
        "cluster": {"workers": 2, "slots": slots, "on": "this machine, 127.0.0.1"},
        "quick": args.quick,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "scenarios": [r.to_json() for r in rows],
        "started_at": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "duration_s": round(time.perf_counter() - clock, 1),
    }
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    results.print_table(rows, enforced=True)  # no targets here: nothing is enforced
    load = " ".join(f"{x:.2f}" for x in info["load_average"])
    after = " ".join(f"{x:.2f}" for x in report["load_average_after"])
    print(f"machine: {info['cpu']}, {info['cores']} cores, load average {load} -> {after}")
    print(f"cluster: 1 scheduler + 2 workers on this machine, {slots} orch slots in all")
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
