"""Throughput: runs/s with concurrency = cores against ``xargs -P <cores>``, and the CPU
each run costs: the daemon's own, the model's (with everything orch starts for it), and
the client's.

Two models: one that sleeps 20 ms (the CPU stays free for the daemon, which hides its
cost) and one that computes for ~40 ms (the daemon's CPU competes with the models').
Runs are submitted all at once, then awaited one by one, as a script with a batch would.
Passes of orch and ``xargs`` alternate, and the pair with the median ratio is shown: one
pass of each swings by ±4 % on a shared machine, more than the effects being tracked.

CPU is read from ``/proc`` (psutil) around each pass: the daemon's own user + system
time; its children's (every model process, with the jail it started in, counted when the
daemon reaps it); the jail's zygote (which clones the standby jails, and whose CPU is in
no other figure); the bench process's own (the client). For ``xargs``, the bench's
children (``xargs``, its shells, the models), run in a person's environment
(``common.USER_ENV``): bytecode cached, stdout buffered.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from .common import MODELS, USER_ENV, Bench, ensure_app, result, submit
from .results import Row, Target, median, median_pair, ms

CPU_WORK_SECONDS = 0.040


@dataclass(frozen=True)
class Pass:
    rate: float
    """Runs per second."""
    cpu: dict[str, float]
    """CPU seconds per run: "daemon" (and its "daemon user" and "daemon system" parts,
    and "thread <name>" for each of its threads), "model", "zygote", "client" (orch) or
    "model" (xargs)."""


def orch_pass(b: Bench, app: str, n: int, doc: dict[str, Any]) -> Pass:
    """Submit all ``n`` runs, then collect each result."""
    daemon = psutil.Process(b.daemon.process.pid)
    zygote = zygote_of(daemon)
    before, client_before = daemon.cpu_times(), time.process_time()
    zygote_before, threads_before = on_cpu(zygote), threads_on_cpu(daemon.pid)
    start = time.perf_counter()
    ids = [submit(b.api, app, {"input": doc}) for _ in range(n)]
    for run_id in ids:
        result(b.api, app, run_id, wait=120)
    took = time.perf_counter() - start
    after, client_after = daemon.cpu_times(), time.process_time()
    own = (after.user + after.system) - (before.user + before.system)
    kids = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    cpu = {
        "daemon": own / n,
        "daemon user": (after.user - before.user) / n,
        "daemon system": (after.system - before.system) / n,
        "model": kids / n,
        "zygote": (on_cpu(zygote) - zygote_before) / n,
        "client": (client_after - client_before) / n,
    }
    for name, seconds in threads_on_cpu(daemon.pid).items():
        cpu[f"thread {name}"] = (seconds - threads_before.get(name, 0.0)) / n
    return Pass(n / took, cpu)


def zygote_of(daemon: psutil.Process) -> int | None:
    """The pid of the daemon's jail zygote (``python ... zygote <fd>``): its oldest child
    with that command line, since the standbys it clones are the daemon's children too."""
    found = []
    for child in daemon.children():
        with contextlib.suppress(psutil.Error):  # a standby that ended meanwhile
            if "zygote" in child.cmdline():
                found.append((child.create_time(), child.pid))
    return min(found)[1] if found else None


def on_cpu(pid: int | None) -> float:
    """Seconds the single-threaded process ``pid`` has run, from ``/proc/<pid>/schedstat``
    (nanoseconds: ``cpu_times`` counts 10 ms ticks, and a short pass of the zygote reads 0)."""
    if pid is None:
        return 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    return 0.0


def threads_on_cpu(pid: int) -> dict[str, float]:
    """Seconds each thread of process ``pid`` has run (``schedstat``), by name: the main
    thread is "loop", the helpers the daemon names are theirs, and the rest (worker
    threads, which keep the process's name) "unnamed"."""
    tasks = Path(f"/proc/{pid}/task")
    seconds: dict[str, float] = {}
    with contextlib.suppress(OSError):
        process = (tasks / str(pid) / "comm").read_text().strip()
        for tid in tasks.iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):  # one that just ended
                name = (tid / "comm").read_text().strip()
                name = "loop" if tid.name == str(pid) else "unnamed" if name == process else name
                ran = int((tid / "schedstat").read_text().split()[0]) / 1e9
                seconds[name] = seconds.get(name, 0.0) + ran
    return seconds


def xargs_pass(cores: int, n: int, stdin: Path, cwd: Path, python: str = sys.executable) -> Pass:
    script = 'exec "$0" main.py < "$1" > /dev/null'
    argv = ["xargs", "-P", str(cores), "-I{}", "sh", "-c", script, python, str(stdin)]
    ticks = "".join(f"{i}\n" for i in range(n))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, input=ticks, text=True, cwd=cwd, env=USER_ENV, check=True)
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Pass(n / took, {"model": used / n})


def xargs_wall(
    cores: int, n: int, stdin: Path, cwd: Path = MODELS / "sleep", python: str = sys.executable
) -> float:
    """Seconds for ``n`` runs of ``python main.py < stdin`` through ``xargs -P cores``."""
    return n / xargs_pass(cores, n, stdin, cwd, python).rate


def orch_wall(b: Bench, n: int, doc: dict[str, Any], app: str = "sleep") -> float:
    return n / orch_pass(b, app, n, doc).rate


def passes(
    b: Bench, app: str, doc: dict[str, Any], runs: int
) -> tuple[list[tuple[Pass, Pass]], str]:
    """(orch, xargs) pairs back to back, and the ``xargs`` command line."""
    ensure_app(b, app, MODELS / app)
    stdin = b.tmp / f"{app}-throughput.json"
    stdin.write_text(json.dumps(doc))
    pairs = []
    for _ in range(b.sizes.throughput_pairs):
        mine = orch_pass(b, app, runs, doc)
        pairs.append((mine, xargs_pass(b.cores, runs, stdin, MODELS / app, b.python)))
    return pairs, f"xargs -P {b.cores} sh -c 'python main.py < input > /dev/null'"


def throughput_row(name: str, pairs: list[tuple[Pass, Pass]], cmd: str) -> Row:
    rate, base, spread = median_pair([(o.rate, x.rate) for o, x in pairs])
    note = f"{cmd}; median of {len(pairs)} back-to-back pairs ({spread})"
    return Row(name, rate, base, "runs/s", Target("ratio", ">=", 0.9), note)


def cpu(pairs: list[tuple[Pass, Pass]], side: int, part: str) -> float:
    """Milliseconds of CPU per run, the median over the passes."""
    return ms(median([pair[side].cpu.get(part, 0.0) for pair in pairs]))


def daemon_row(name: str, pairs: list[tuple[Pass, Pass]], target: Target | None = None) -> Row:
    """The daemon's CPU per run, and its two parts: what its own code did (user time: the
    Python, SQLite) and what the kernel did for it (system time: the run's folders and
    files, the cgroups, the sockets); then by thread (the event loop, the chores thread
    with the cgroups' mkdir and rmdir, ...). Medians over the passes, each part on its own."""
    user, system = cpu(pairs, 0, "daemon user"), cpu(pairs, 0, "daemon system")
    split = f"user {user:.2f} ms (Python, SQLite) + system {system:.2f} ms (the kernel)"
    threads = {part for o, _ in pairs for part in o.cpu if part.startswith("thread ")}
    by_thread = sorted(((cpu(pairs, 0, part), part[7:]) for part in threads), reverse=True)
    shown = ", ".join(f"{thread} {t:.2f}" for t, thread in by_thread if t >= 0.005)
    return Row(name, cpu(pairs, 0, "daemon"), None, "ms", target, f"{split}; by thread: {shown}")


def scenario_throughput(b: Bench) -> list[Row]:
    n = b.sizes.throughput_runs
    pairs, cmd = passes(b, "sleep", {"seconds": 0.02}, n)
    return [
        throughput_row(f"throughput {n} runs of a 20 ms sleeping model", pairs, cmd),
        daemon_row("CPU per run, sleeping model: daemon", pairs),
    ]


def calibrate(seconds: float = CPU_WORK_SECONDS) -> int:
    """Iterations of the cpu model's loop that take ``seconds`` of CPU in this interpreter."""
    probe, x = 300_000, 1
    start = time.thread_time()
    for _ in range(probe):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
    return max(1, int(probe * seconds / max(time.thread_time() - start, 1e-6)))


def scenario_cpu(b: Bench) -> list[Row]:
    n = b.sizes.cpu_runs
    pairs, cmd = passes(b, "cpu", {"iterations": calibrate()}, n)
    name = f"{n} runs of a ~{ms(CPU_WORK_SECONDS):.0f} ms CPU-bound model"
    model = "the model's process (with the jail it started in), per run"
    return [
        throughput_row(f"throughput {name}", pairs, cmd),
        daemon_row("CPU per run, CPU-bound model: daemon", pairs, Target("orch", "<=", 3, "ms")),
        Row(
            "CPU per run, CPU-bound model: the model",
            cpu(pairs, 0, "model"),
            cpu(pairs, 1, "model"),
            "ms",
            None,
            f"{model}, against xargs + sh + the model under xargs",
        ),
        Row(
            "CPU per run, CPU-bound model: the jail's zygote",
            cpu(pairs, 0, "zygote"),
            None,
            "ms",
            None,
            "clones each standby jail; in no other row",
        ),
        Row("CPU per run, CPU-bound model: client", cpu(pairs, 0, "client"), None, "ms"),
    ]
