"""The containment's own ceiling: runs through ``Sandbox`` alone against ``xargs -P``.

No daemon, HTTP, database or workspace: one task per core starts the 20 ms bench model
through ``orchestrator.runs.sandbox.Sandbox`` (its jail included; ``--use`` picks the jail's
mechanisms) and waits for it, in a loop. Whatever this reaches is the most the whole daemon
can reach in ``bench``'s throughput scenario with
the same containment, so the gap between the two is the daemon's share and the gap between
this and 1.0x is the containment's. Each pass is interleaved with an ``xargs`` pass, and the
pair with the median ratio is shown (one pass swings by several per cent here).

Then where a run's own CPU goes: the ~40 ms CPU-bound model, one run at a time, each
jail reporting the CPU of its steps (``Sandbox(jail_steps=True)``) up to ``exec``, the
zygote's CPU for cloning it, and the model after it, against the same model started bare.

    .venv/bin/python scripts/bench_sandbox.py            # ~2 minutes
    .venv/bin/python scripts/bench_sandbox.py --quick    # a few seconds, for the test suite
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import MODELS, USER_ENV
from bench.results import median_pair
from bench.throughput import CPU_WORK_SECONDS, calibrate, on_cpu, xargs_wall

from orchestrator.config import DEFAULT_LIMITS, IsolationSettings
from orchestrator.runs.access import interpreter_roots
from orchestrator.runs.backends.local import process_env
from orchestrator.runs.cgroups import detect
from orchestrator.runs.process import Access, ProcessSpec
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
                cwd=str(MODELS / "sleep"),
                env={"PATH": os.environ.get("PATH", os.defpath)},
                stdin=str(stdin),
                stdout=f"{out}/stdout-{i}",
                stderr=f"{out}/stderr-{i}",
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


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def bare_cpu(stdin: Path, cwd: Path) -> float:
    """CPU seconds of one ``python main.py < stdin > /dev/null``, started by Python."""
    before = children_cpu()
    with stdin.open() as source:
        argv = [sys.executable, "main.py"]
        subprocess.run(argv, stdin=source, stdout=subprocess.DEVNULL, cwd=cwd, env=USER_ENV,
                       check=True)  # fmt: skip
    return children_cpu() - before


async def jail_steps(
    sandbox: Sandbox, runs: int, stdin: Path, cwd: Path, out: Path
) -> dict[str, Any]:
    """Per run, in seconds: each jail step, the model after ``exec``, and the model bare.

    A bare run follows each jailed one, so the host's drift (±15 % in an hour on this
    project's VM) hits both alike. Each jailed run gets what the daemon gives one: a
    folder of its own (its cwd, holding its output files), its package and interpreter
    to read, its input (see ``run_access``).
    """
    steps: dict[str, list[float]] = {}
    model, bare = [], []
    for i in range(runs):
        folder = out / f"run-{i}"
        folder.mkdir()
        where = str(folder)
        access = Access(  # HOME as the daemon sets it: without, Python looks the uid up
            folder=where,
            read=(str(cwd), *interpreter_roots(sys.executable), str(stdin)),
            write=(where,),
            write_files=(f"{where}/stdout", f"{where}/stderr"),
            env=(("HOME", where),),
        )
        spec = ProcessSpec(
            argv=[sys.executable, str(cwd / "main.py")], cwd=where,
            env=process_env(where, sys.executable),
            stdin=str(stdin), stdout=f"{where}/stdout", stderr=f"{where}/stderr",
            limits=DEFAULT_LIMITS, label=f"bench-steps-{i}", access=access,
        )  # fmt: skip
        proc = await sandbox.start(spec)
        result = await proc.wait()
        if result.exit_code != 0 or not proc.jail.steps:
            raise RuntimeError(f"run {i}: {result}, jail {proc.jail}")
        for step, cpu in proc.jail.steps:
            steps.setdefault(step, []).append(cpu)
        model.append(result.cpu_seconds)
        bare.append(bare_cpu(stdin, cwd))
    return {
        "steps": {step: statistics.mean(values) for step, values in steps.items()},
        "model": statistics.mean(model),
        "bare": statistics.mean(bare),
    }


def measure_steps(runs: int, out: Path, use: tuple[str, ...] | None) -> dict[str, Any]:
    """The jail's CPU by step and the model's, against the bare model, in microseconds."""
    cwd = MODELS / "cpu"
    stdin = out / "cpu-input.json"
    stdin.write_text(json.dumps({"iterations": calibrate()}))
    isolation = IsolationSettings(use=use, require=())
    sandbox = Sandbox(use_cgroups=None, standby=1, isolation=isolation, jail_steps=True)
    zygote = sandbox._launcher.spawner._zygote
    zygote_pid = zygote.pid if zygote is not None else None
    try:
        before = on_cpu(zygote_pid)
        jail = asyncio.run(jail_steps(sandbox, runs, stdin, cwd, out))
        zygote_cpu = on_cpu(zygote_pid) - before
    finally:
        sandbox.close()
    us = 1e6
    return {
        "steps_us": {step: cpu * us for step, cpu in jail["steps"].items()},
        "jail_us": sum(jail["steps"].values()) * us,
        "zygote_us": zygote_cpu / runs * us,
        "model_after_exec_us": jail["model"] * us,
        "bare_us": jail["bare"] * us,
    }


def print_steps(figures: dict[str, Any], runs: int) -> None:
    print(f"\nCPU per run, {runs} runs of the ~{CPU_WORK_SECONDS * 1000:.0f} ms CPU-bound model,"
          " one at a time (µs):")  # fmt: skip
    for step, us in figures["steps_us"].items():
        print(f"  jail: {step:9s} {us:8.0f}  {STEPS.get(step, '')}")
    print(f"  jail, all steps {figures['jail_us']:8.0f}")
    print(f"  the zygote      {figures['zygote_us']:8.0f}  cloning the standby (its own process)")
    model, bare = figures["model_after_exec_us"], figures["bare_us"]
    print(f"  model after exec {model:7.0f}  (bare {bare:.0f}, {model - bare:+.0f}: exec from the"
          " standby, the jail's file system)")  # fmt: skip
    total = figures["jail_us"] + model
    print(f"  the run's processes {total:6.0f}  ({total / bare:.3f}x the bare model)")


STEPS = {
    "clone": "the standby's first steps in its copy of the zygote (page faults)",
    "cgroup": "joining the run's cgroup(s)",
    "view": "its copy of the template mount namespace, private /tmp, /dev/shm, home",
    "landlock": "the ruleset and the run-independent rules",
    "seccomp": "checking the filter the zygote installed (installing it if it could not)",
    "warm": "touching the command's codec and friends ahead of the run",
    "command": "reading and decoding the run's command",
    "binds": "binding the run's folder, package and input into the view",
    "seal": "detaching the host's tree, the view's root read-only",
    "files": "owning the run's files, creating and opening its outputs, chdir",
    "rules": "the run's own Landlock rules",
    "drop": "peak reset, closing descriptors, rlimits, uid, no_new_privs, restrict",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs, one pair")
    parser.add_argument("--runs", type=int, default=400)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--step-runs", type=int, default=60, help="runs for the jail's steps")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--use", help='the jail\'s mechanisms, e.g. "mount-ns" (default: all the host offers)'
    )
    args = parser.parse_args(argv)
    use = tuple(args.use.split(",")) if args.use else None
    runs, pairs = (10, 1) if args.quick else (args.runs, args.pairs)
    step_runs = 3 if args.quick else args.step_runs
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
    with tempfile.TemporaryDirectory(prefix="orch-bench-steps-") as tmp:
        report["cpu_per_run"] = measure_steps(step_runs, Path(tmp), use)
    print_steps(report["cpu_per_run"], step_runs)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
