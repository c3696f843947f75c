"""A/B of two orch source trees on this machine: run latency and throughput, interleaved.

The full benchmark's figures drift by several per cent between runs on a shared machine,
more than most single changes move them. This starts one daemon per tree side by side
(same interpreter, same machine minute) and alternates them run by run for latency and
pass by pass for throughput, so drift hits both alike, then reports the paired
differences. With the defaults it resolves ~0.1 ms of latency and ~2 % of throughput::

    git worktree add /tmp/orch-base HEAD~1          # the tree to compare against
    .venv/bin/python scripts/bench_ab.py /tmp/orch-base .
    .venv/bin/python scripts/bench_ab.py /tmp/orch-base . --quick   # smoke, ~20 s

Latency: the python echo model, submit → result (as ``bench``), one run on each tree
and one bare run per round, order rotated. Throughput: passes of the 20 ms model (or,
``--model cpu``, of the ~40 ms CPU-bound one) with concurrency = cores, A and B
alternating, and an ``xargs -P`` pass per round for scale; each pass also reads the
daemon's own CPU (user + system, all its threads) and its jail zygote's per run, paired
the same way.
Each tree's daemon imports the ``orchestrator`` package of its own tree (``python -m`` from
that folder), so both trees must work with this virtual environment's dependencies.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import common, results  # the sibling package: daemon, client, models, timings
from bench.harness import Daemon
from bench.throughput import calibrate, orch_pass, xargs_wall

SIDES = ("A", "B")
CPU_PARTS = ("daemon", "zygote")
"""CPU per run paired A/B: the daemon's own (all its threads), and its jail zygote's."""


@contextmanager
def daemons(trees: dict[str, Path], root: Path, cores: int) -> Iterator[dict[str, common.Bench]]:
    """One daemon per tree, each with the echo and sleep models pushed."""
    with ExitStack() as stack:
        sides = {}
        for name, tree in trees.items():
            home = root / name / "home"
            daemon = Daemon.start(home, config=f"concurrency = {cores}\n", source=tree)
            stack.callback(daemon.stop)
            b = common.Bench(root, home, common.FULL, cores, daemon, common.connect(daemon))
            stack.callback(b.api.close)
            for app in ("echo", "sleep", "cpu"):
                common.ensure_app(b, app, common.MODELS / app)
            sides[name] = b
        yield sides


def orch_latency(b: common.Bench, doc: dict[str, Any]) -> float:
    start = time.perf_counter()
    common.result(b.api, "echo", common.submit(b.api, "echo", {"input": doc}))
    return time.perf_counter() - start


def latency(sides: dict[str, common.Bench], root: Path, rounds: int) -> dict[str, Any]:
    doc = {"bench": "latency", "items": list(range(10))}
    stdin = root / "echo-input.json"
    stdin.write_text(json.dumps(doc))
    argv = [sides["B"].python, "main.py"]  # the tree under test's model interpreter
    for _ in range(3):  # warm-up: page cache, imports, standby shells
        for b in sides.values():
            orch_latency(b, doc)
    times: dict[str, list[float]] = {"A": [], "B": [], "bare": []}
    orders = (("A", "B", "bare"), ("B", "bare", "A"), ("bare", "A", "B"))
    for i in range(rounds):
        for k in orders[i % 3]:
            if k == "bare":
                took = common.bare(argv, common.MODELS / "echo", stdin, root / "echo-output.json")
            else:
                took = orch_latency(sides[k], doc)
            times[k].append(took)
    medians = {k: results.ms(results.median(v)) for k, v in times.items()}
    diffs = [results.ms(b - a) for a, b in zip(times["A"], times["B"], strict=True)]
    return {
        "rounds": rounds,
        "median_ms": medians,
        "ratio_to_bare": {k: medians[k] / medians["bare"] for k in SIDES},
        "b_minus_a_ms": {"median": statistics.median(diffs), "mean": statistics.mean(diffs)},
    }


def throughput(
    sides: dict[str, common.Bench], root: Path, passes: int, runs: int, cores: int, model: str
) -> dict[str, Any]:
    doc: dict[str, Any] = {"iterations": calibrate()} if model == "cpu" else {"seconds": 0.02}
    stdin = root / f"{model}-throughput.json"
    stdin.write_text(json.dumps(doc))
    for b in sides.values():
        orch_pass(b, model, 5, doc)
    rates: dict[str, list[float]] = {"A": [], "B": [], "xargs": []}
    cpu_ms: dict[str, dict[str, list[float]]] = {part: {"A": [], "B": []} for part in CPU_PARTS}
    for i in range(passes):
        for k in ("A", "B", "xargs") if i % 2 == 0 else ("B", "A", "xargs"):
            if k == "xargs":
                rates[k].append(
                    runs / xargs_wall(cores, runs, stdin, common.MODELS / model, sides["B"].python)
                )
            else:
                done = orch_pass(sides[k], model, runs, doc)
                rates[k].append(done.rate)
                for part in CPU_PARTS:
                    cpu_ms[part][k].append(results.ms(done.cpu[part]))
    per_pass = [b / a for a, b in zip(rates["A"], rates["B"], strict=True)]
    xargs = results.median(rates["xargs"])
    figures: dict[str, Any] = {
        "model": model,
        "passes": passes,
        "runs_per_pass": runs,
        "runs_per_s": {k: results.median(v) for k, v in rates.items()},
        "ratio_to_xargs": {k: results.median(rates[k]) / xargs for k in SIDES},
        "b_over_a": {"median": results.median(per_pass), "per_pass": per_pass},
    }
    for part, ms in cpu_ms.items():
        diffs = [b - a for a, b in zip(ms["A"], ms["B"], strict=True)]
        figures[f"{part}_cpu_ms_per_run"] = {k: results.median(v) for k, v in ms.items()}
        figures[f"{part}_cpu_b_minus_a_ms"] = {"median": results.median(diffs), "per_pass": diffs}
    return figures


def cpu_line(thr: dict[str, Any], part: str) -> str:
    cpu, diffs = thr[f"{part}_cpu_ms_per_run"], thr[f"{part}_cpu_b_minus_a_ms"]
    return (
        f"{part} CPU per run: A {cpu['A']:.2f} ms, B {cpu['B']:.2f} ms; B - A paired: "
        f"median {diffs['median']:+.2f} ms "
        f"(passes: {', '.join(f'{x:+.2f}' for x in diffs['per_pass'])})"
    )


def report(result: dict[str, Any]) -> str:
    lat, thr = result["latency"], result["throughput"]
    m, r = lat["median_ms"], lat["ratio_to_bare"]
    return "\n".join(
        [
            f"A = {result['trees']['A']}",
            f"B = {result['trees']['B']}",
            f"latency, {lat['rounds']} rounds: A {m['A']:.2f} ms ({r['A']:.3f}x bare), "
            f"B {m['B']:.2f} ms ({r['B']:.3f}x), bare {m['bare']:.2f} ms; "
            f"B - A paired: median {lat['b_minus_a_ms']['median']:+.3f} ms, "
            f"mean {lat['b_minus_a_ms']['mean']:+.3f} ms",
            f"throughput ({thr['model']} model), {thr['passes']} passes of "
            f"{thr['runs_per_pass']} runs: "
            f"A {thr['runs_per_s']['A']:.1f}/s ({thr['ratio_to_xargs']['A']:.3f}x xargs), "
            f"B {thr['runs_per_s']['B']:.1f}/s ({thr['ratio_to_xargs']['B']:.3f}x); "
            f"B/A median {thr['b_over_a']['median']:.3f} "
            f"(passes: {', '.join(f'{x:.3f}' for x in thr['b_over_a']['per_pass'])})",
            *(cpu_line(thr, part) for part in CPU_PARTS),
            f"load average before/after: {result['load'][0]} / {result['load'][1]}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    results.tree_arguments(parser)
    parser.add_argument("--latency-rounds", type=int, default=300)
    parser.add_argument("--throughput-passes", type=int, default=8)
    parser.add_argument("--throughput-runs", type=int, default=200)
    parser.add_argument(
        "--model",
        choices=("sleep", "cpu"),
        default="sleep",
        help="throughput model: the 20 ms sleep or the ~40 ms CPU-bound one",
    )
    parser.add_argument("--quick", action="store_true", help="a few rounds: a smoke test")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.latency_rounds, args.throughput_passes, args.throughput_runs = 6, 2, 10
    trees = {"A": args.a.resolve(), "B": args.b.resolve()}
    for name, tree in trees.items():
        if not (tree / "orchestrator" / "__init__.py").is_file():
            parser.error(f"tree {name} ({tree}) has no orchestrator package")
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="orch-bench-ab-") as tmp:
        root = Path(tmp)
        (root / "packages").mkdir()
        with daemons(trees, root, cores) as sides:
            load_before = results.load_line()
            result = {
                "trees": {k: str(v) for k, v in trees.items()},
                "latency": latency(sides, root, args.latency_rounds),
                "throughput": throughput(
                    sides, root, args.throughput_passes, args.throughput_runs, cores, args.model
                ),
                "load": [load_before, results.load_line()],
            }
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
