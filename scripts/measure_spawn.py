"""Measure what the sandbox costs per run: median wall time of N spawns of a
trivial model, bare vs through ``Sandbox`` (a standby jail in its cgroup with
every protection, with fewer protections, a jail made for each run, and the
sampling fallback). The budget is 5 ms per run.

Usage: python scripts/measure_spawn.py [-n 50] [--gap 0.05] [--python /usr/bin/python3] [--true]

``--gap`` idles between spawns: joining a cgroup waits for an RCU grace period
unless another migration happened moments before, so back-to-back spawns
(gap 0) flatter the "no standby" variant; a daemon's runs are rarely that dense.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from orchestrator import trees
from orchestrator.config import IsolationSettings
from orchestrator.models import Limits
from orchestrator.runs.cgroups import detect
from orchestrator.runs.sandbox import ProcessSpec, Sandbox

LIMITS = Limits(
    memory_mb=512, cpu_seconds=60, timeout_seconds=60, output_mb=64, open_files=256, processes=64
)


def bare(argv: list[str], out: Path) -> Callable[[], Awaitable[None] | None]:
    """The floor: what the executor would pay with no containment at all."""

    def run() -> None:
        with open(out, "wb") as f:
            subprocess.Popen(argv, stdout=f, stderr=f, process_group=0).wait()

    return run


def sandboxed(
    sandbox: Sandbox, argv: list[str], tmp: Path, limits: Limits
) -> Callable[[], Awaitable[None] | None]:
    spec = ProcessSpec(
        argv, str(tmp), {"PATH": "/usr/bin:/bin"}, None, f"{tmp}/out", f"{tmp}/err", limits,
        "measure",
    )  # fmt: skip

    async def run() -> None:
        result = await (await sandbox.start(spec)).wait()
        if result.exit_code != 0:
            raise SystemExit(f"model failed under the sandbox: {result}")

    return run


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.05, help="seconds idle between spawns")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--true", action="store_true", help="run /bin/true instead of python")
    args = parser.parse_args()
    argv = ["/bin/true"] if args.true else [args.python, "-c", "pass"]
    tmp = Path(tempfile.mkdtemp(prefix="orch-measure-"))
    try:
        await _measure(args, argv, tmp)
    finally:
        trees.remove(tmp)  # the jail's files in it belong to the models' uid


async def _measure(args: argparse.Namespace, argv: list[str], tmp: Path) -> None:
    variants = {"bare Popen": bare(argv, tmp / "bare")}
    sampling = Sandbox(use_cgroups=False)
    sandboxes = [sampling]
    if detect() is not None:
        cg = Sandbox(use_cgroups=True)
        cold = Sandbox(use_cgroups=True, standby=0)  # every run's jail is made on its path
        fewer = Sandbox(use_cgroups=True, isolation=IsolationSettings(use=("mount-ns",)))
        sandboxes += [cg, cold, fewer]
        kind = cg.containment
        variants[f"{kind}, standby jail, all limits"] = sandboxed(cg, argv, tmp, LIMITS)
        variants[f"{kind}, standby jail, memory+processes"] = sandboxed(
            cg, argv, tmp, Limits(memory_mb=512, processes=64)
        )
        variants[f"{kind}, standby jail, view+uid only"] = sandboxed(fewer, argv, tmp, LIMITS)
        variants[f"{kind}, jail made per run, all limits"] = sandboxed(cold, argv, tmp, LIMITS)
    variants["sampling, standby jail, all limits"] = sandboxed(sampling, argv, tmp, LIMITS)
    variants["sampling, standby jail, no limits"] = sandboxed(sampling, argv, tmp, Limits())
    for sandbox in sandboxes:
        print("protections:", ", ".join(sandbox.isolation.protections))
    times: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm-up: page cache, imports
        await _call(run)
    for _ in range(args.n):  # interleaved so drift hits every variant alike
        for name, run in variants.items():
            await asyncio.sleep(args.gap)
            start = time.perf_counter()
            await _call(run)
            times[name].append(time.perf_counter() - start)
    for sandbox in sandboxes:
        sandbox.close()
    base = statistics.median(times["bare Popen"])
    print(f"{args.n} spawns of {' '.join(argv)}, {args.gap * 1000:.0f} ms apart")
    for name, values in times.items():
        median = statistics.median(values)
        extra = (median - base) * 1000
        print(f"  {name:46s} median {median * 1000:7.2f} ms  overhead {extra:+6.2f} ms")


async def _call(run: Callable[[], Awaitable[None] | None]) -> None:
    pending = run()
    if pending is not None:
        await pending


if __name__ == "__main__":
    asyncio.run(main())
