"""The containment's own ceiling: runs through ``Sandbox`` alone against ``xargs -P``.

No daemon, HTTP, database or workspace: one task per core starts the 20 ms bench model
through ``orchestrator.runs.sandbox.Sandbox`` (its jail included; ``--use`` picks the jail's
mechanisms) and waits for it, in a loop. Whatever this reaches is the most the whole daemon
can reach in ``bench``'s throughput scenario with
the same containment, so the gap between the two is the daemon's share and the gap between
this and 1.0x is the containment's. Each pass is interleaved with an ``xargs`` pass, and the
pair with the median ratio is shown (one pass swings by several per cent here).

    .venv/bin/python scripts/bench_sandbox.py            # ~2 minutes
    .venv/bin/python scripts/bench_sandbox.py --quick    # a few seconds, for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.common import MODELS
from bench.results import median_pair
from bench.throughput import xargs_wall

from orchestrator.config import DEFAULT_LIMITS, IsolationSettings
from orchestrator.runs.cgroups import detect
from orchestrator.runs.process import ProcessSpec
from orchestrator.runs.sandbox import Sandbox


async def sandbox_wall(sandbox: Sandbox, slots: int, runs: int, stdin: Path, out: Path) -> float:
    """Seconds for ``runs`` runs of the sleep model, ``slots`` at a time, every one checked.

    Each run writes new output files, as in the daemon: reusing one pair would truncate it
    every run, and on this project's VM (ext4 mounted ``discard``, no journal) freeing
    blocks waits for the disk. All of them stay until the end, since deleting files slows
    later creations there (``bench.results.file_create_us``).
    """
    todo = iter(range(runs))

    async def slot(k: int) -> None:
        for i in todo:
            spec = ProcessSpec(
                argv=[sys.executable, "main.py"],
                cwd=MODELS / "sleep",
                env={"PATH": os.environ.get("PATH", os.defpath)},
                stdin=stdin,
                stdout=out / f"stdout-{i}",
                stderr=out / f"stderr-{i}",
                limits=DEFAULT_LIMITS,  # what a daemon run gets: every cgroup limit is written
                label=f"bench-sandbox-{k}-{i}",
            )
            result = await (await sandbox.start(spec)).wait()
            if result.exit_code != 0:
                raise RuntimeError(f"run {i} failed: {result}")

    start = time.perf_counter()
    await asyncio.gather(*(slot(k) for k in range(slots)))
    return time.perf_counter() - start


def measure(
    mode: str, slots: int, runs: int, stdin: Path, out: Path, use: tuple[str, ...] | None = None
) -> float:
    """runs/s through a fresh ``Sandbox`` in ``mode`` ("cgroup" or "sampling"), its jail
    using ``use`` (None: every protection the host offers)."""
    isolation = IsolationSettings(use=use, require=())
    sandbox = Sandbox(use_cgroups=mode == "cgroup", standby=slots, isolation=isolation)
    folder = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=out))
    try:
        return runs / asyncio.run(sandbox_wall(sandbox, slots, runs, stdin, folder))
    finally:
        sandbox.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs, one pair")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--use", help='the jail\'s mechanisms, e.g. "mount-ns" (default: all the host offers)'
    )
    args = parser.parse_args(argv)
    use = tuple(args.use.split(",")) if args.use else None
    runs, pairs = (10, 1) if args.quick else (args.runs, args.pairs)
    slots = os.cpu_count() or 1
    modes = ["cgroup", "sampling"] if detect() is not None else ["sampling"]
    ratios: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="orch-bench-sandbox-") as tmp:
        out = Path(tmp)
        stdin = out / "input.json"
        stdin.write_text(json.dumps({"seconds": 0.02}))
        for _ in range(pairs):
            for mode in modes:
                rate = measure(mode, slots, runs, stdin, out, use)
                ratios[mode].append((rate, runs / xargs_wall(slots, runs, stdin)))
    report = {}
    print(f"{runs} runs of the 20 ms model, {slots} at a time; Sandbox alone vs xargs -P {slots}"
          f" (jail: {args.use or 'every protection the host offers'})")  # fmt: skip
    for mode, pairs_seen in ratios.items():
        rate, base, spread = median_pair(pairs_seen)
        print(f"  {mode:9s} {rate:6.1f} runs/s  xargs {base:6.1f} runs/s  {rate / base:.2f}x"
              f"  (pairs: {spread})")  # fmt: skip
        report[mode] = {"runs_per_s": rate, "xargs_runs_per_s": base, "ratio": rate / base}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
