"""The sandbox against hostile models: real processes, every limit, nothing left behind.

Each model is a tiny script in ``tmp_path``; each run carries a unique marker in
its environment so the test can prove that no process of it survives. Every test
runs with a per-run cgroup (skipped where the host has none) and with sampling.
"""

from __future__ import annotations

import asyncio
import dataclasses
import marshal
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from orchestrator.models import Limits, Run, RunStatus
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs import disk, launch, running, workspace
from orchestrator.runs.cgroups import RunCgroup, detect
from orchestrator.runs.chores import Chores
from orchestrator.runs.disk import KEPT_LOG_BYTES, TooMany, cut_back, usage_bytes
from orchestrator.runs.outcome import outcome
from orchestrator.runs.proctree import MARKER_VAR
from orchestrator.runs.sandbox import (
    ProcessResult,
    ProcessSpec,
    RunningProcess,
    Sandbox,
    kill_leftovers,
)
from orchestrator.runs.spawner import Spawner

MARK = "ORCH_TEST_MARKER"
PY = sys.executable
HAS_CGROUP = detect() is not None


def verdict(result: ProcessResult, limits: Limits, tail: str = "") -> tuple[RunStatus, str | None]:
    """``outcome`` as a run's status and the error text the API shows for it."""
    status, failure = outcome(result, limits, lambda: tail)
    run = Run("run-x", "app", "devint", "exe", status=status, failure=failure)
    return status, run.error


@pytest.fixture(params=["cgroup", "cgroup-direct", "sampling"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    """cgroup: runs handed to standby jails prepared in their cgroup; cgroup-direct: a
    jail made for each run, which joins its cgroup on the run's path; sampling: no cgroup."""
    support = detect()
    if request.param != "sampling" and support is None:
        pytest.skip("no usable cgroup on this host")
    standby = 0 if request.param == "cgroup-direct" else 2
    sb = Sandbox(use_cgroups=request.param != "sampling", standby=standby)
    assert sb.containment == (
        support.kind if support and request.param != "sampling" else "sampling"
    )
    yield sb
    sb.close()


def _text(path: str) -> str:
    """The file's text, or "" while the jail has not made it yet."""
    return Path(path).read_text() if os.path.exists(path) else ""


class Model:
    """One hostile script, its spec, and the proof that it left nothing behind."""

    def __init__(self, tmp_path: Path, source: str, limits: Limits, stdin: str | None = None):
        self.dir, self.marker = tmp_path, uuid.uuid4().hex
        (tmp_path / "model.py").write_text(source)
        if stdin is not None:
            (tmp_path / "input").write_text(stdin)
        self.limits = limits
        self.spec = ProcessSpec(
            argv=[PY, "model.py", str(tmp_path / "pidfile")],
            cwd=str(tmp_path),
            env={"PATH": os.environ["PATH"], MARK: self.marker},
            stdin=str(tmp_path / "input") if stdin is not None else None,
            stdout=str(tmp_path / "stdout"),
            stderr=str(tmp_path / "stderr"),
            limits=limits,
            label=f"test-{self.marker[:8]}",
        )

    async def run(self, sandbox: Sandbox) -> tuple[ProcessResult, RunStatus, str | None]:
        proc = await sandbox.start(self.spec)
        assert bool(proc.cgroups) == (sandbox.containment != "sampling")
        result = await proc.wait()
        await self.assert_nothing_left(proc)
        return (result, *verdict(result, self.limits, self.stderr[-2000:]))

    @property
    def stdout(self) -> str:
        """The standby shell opens the output files a moment after ``start`` returns."""
        return _text(self.spec.stdout)

    @property
    def stderr(self) -> str:
        return _text(self.spec.stderr)

    async def assert_nothing_left(self, proc: RunningProcess) -> None:
        """No process at once; the emptied cgroup directories go a moment later."""
        assert survivors(self.marker) == []
        for _ in range(100):
            if all(not Path(d).exists() for d in proc.cgroups):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"cgroup directories left behind: {proc.cgroups}")


def survivors(marker: str) -> list[int]:
    alive = []
    for process in psutil.process_iter():
        try:
            if process.environ().get(MARK) == marker and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process.pid)
        except psutil.Error:
            continue
    return alive


def dead(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def detached(argv: list[str], marker: str) -> subprocess.Popen[bytes]:
    """A tree outside any sandbox, as a crashed daemon's run would be."""
    return subprocess.Popen(argv, env={**os.environ, MARK: marker}, start_new_session=True)


async def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


HOG = """
import time
chunks = []
for _ in range(20):  # 50 MiB at a time, up to 1 GiB, touched so it is resident
    chunks.append(b"x" * (50 << 20))
    time.sleep(0.02)
time.sleep(30)
"""

SETSID_GRANDCHILD = """
import os, sys, time
pidfile = sys.argv[1]
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        with open(pidfile + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.rename(pidfile + ".tmp", pidfile)
        time.sleep(300)
    os._exit(0)
while not os.path.exists(pidfile):
    time.sleep(0.001)
"""

FORK_BOMB = """
import os, time
for _ in range(200):
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
time.sleep(30)
"""


async def test_memory_hog_is_contained(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, HOG, Limits(memory_mb=100, timeout_seconds=20))
    result, status, message = await model.run(sandbox)
    assert (status, result.breach) == (RunStatus.FAILED, "memory")
    assert message is not None and message.startswith("memory limit 100 MiB exceeded: peak ")
    assert result.duration_seconds < 5


async def test_a_cgroup_run_is_sampled_only_past_the_first_sample(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel enforces a cgroup's limits: a run shorter than the first sample is never
    sampled (nor is the loop woken for it); a longer one is, at the regular pace after."""
    if sandbox.containment == "sampling":
        pytest.skip("without a cgroup, sampling starts at once")
    samples: list[float] = []
    sample = RunningProcess._sample

    def counted(self: RunningProcess) -> None:
        samples.append(time.monotonic())
        sample(self)

    monkeypatch.setattr(RunningProcess, "_sample", counted)
    limits = Limits(output_mb=10, timeout_seconds=20)
    (tmp_path / "short").mkdir(), (tmp_path / "long").mkdir()
    short = Model(tmp_path / "short", "import time\ntime.sleep(0.1)\n", limits)
    await short.run(sandbox)
    assert samples == []
    long = Model(tmp_path / "long", "import time\ntime.sleep(0.6)\n", limits)
    result, _, _ = await long.run(sandbox)
    assert result.duration_seconds > running.CGROUP_FIRST_SAMPLE_SECONDS
    assert len(samples) >= 3  # from 0.25 s on, every 50 ms


async def test_cpu_spinner_is_stopped_by_cpu_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    """The kernel's ``RLIMIT_CPU`` (SIGXCPU, checked at its ticks) or the run's own sample
    of the tree's CPU (SIGKILL), whichever sees the second first: under load the sample
    sometimes does (1 in ~15 at load 2)."""
    model = Model(tmp_path, "while True:\n    pass\n", Limits(cpu_seconds=1, timeout_seconds=20))
    result, status, message = await model.run(sandbox)
    assert status == RunStatus.FAILED
    assert result.signal == signal.SIGXCPU or result.breach == "cpu_seconds", result
    assert message is not None and message.startswith("cpu time limit 1 s exceeded: used 1.")


async def test_sleeper_is_killed_at_timeout(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, "import time\ntime.sleep(30)\n", Limits(timeout_seconds=1))
    result, status, message = await model.run(sandbox)
    assert (status, result.breach) == (RunStatus.FAILED, "timeout_seconds")
    assert message == "timeout of 1 s exceeded: ran 1.0 s"
    assert 1.0 <= result.duration_seconds < 1.5


async def test_output_flood_is_cut_at_output_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    source = "import sys\nfor _ in range(160):\n    sys.stdout.buffer.write(b'x' * 65536)\n"
    model = Model(tmp_path, source, Limits(output_mb=1, timeout_seconds=20))
    result, status, message = await model.run(sandbox)
    assert (status, result.breach) == (RunStatus.FAILED, "output_mb")
    assert message is not None and message.startswith("output limit 1 MiB exceeded: wrote 1.0 MiB")
    assert os.stat(model.spec.stdout).st_size <= (1 << 20) + 512  # rlimit: limit + a block


async def test_output_flood_from_a_tool_dies_of_sigxfsz(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, "", Limits(output_mb=1, timeout_seconds=20))
    spec = model.spec
    model.spec = ProcessSpec(
        ["/bin/sh", "-c", "head -c 10485760 /dev/zero"], spec.cwd, spec.env, None,
        spec.stdout, spec.stderr, spec.limits, spec.label,
    )  # fmt: skip
    _, status, message = await model.run(sandbox)
    assert status == RunStatus.FAILED
    assert message is not None and message.startswith("output limit 1 MiB exceeded")


async def test_setsid_grandchild_does_not_survive(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, SETSID_GRANDCHILD, Limits(timeout_seconds=20))
    result, status, _ = await model.run(sandbox)
    assert (status, result.exit_code) == (RunStatus.SUCCEEDED, 0)
    grandchild = int((tmp_path / "pidfile").read_text())
    assert dead(grandchild)


async def test_sigterm_ignoring_model_is_killed_after_grace(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\ntime.sleep(60)\n"
    )
    model = Model(tmp_path, source, Limits(timeout_seconds=30))
    proc = await sandbox.start(model.spec)
    await wait_for(lambda: "ready" in model.stdout)
    canceled_at = time.monotonic()
    proc.cancel(grace_seconds=0.5)
    proc.cancel(grace_seconds=0.5)  # idempotent
    result = await proc.wait()
    assert time.monotonic() - canceled_at >= 0.5
    assert (result.canceled, result.signal) == (True, signal.SIGKILL)
    assert verdict(result, model.limits) == (RunStatus.CANCELED, "canceled")
    await model.assert_nothing_left(proc)


async def test_cancelling_wait_kills_the_run(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, "import time\ntime.sleep(60)\n", Limits())
    proc = await sandbox.start(model.spec)
    waiter = asyncio.create_task(proc.wait())
    await asyncio.sleep(0.1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await model.assert_nothing_left(proc)


async def test_fork_bomb_is_bounded_by_process_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, FORK_BOMB, Limits(processes=20, timeout_seconds=20))
    result, status, message = await model.run(sandbox)
    assert (status, result.breach) == (RunStatus.FAILED, "processes")
    assert message is not None and message.startswith("process limit 20 exceeded: ")


async def test_gone_is_told_once_reaped_before_the_final_checks(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slot a run held serves the next one while the run's final checks are made:
    ``gone`` comes after the reap (no process left) and before the checks and the result."""
    events: list[str] = []
    checks = RunningProcess._final_checks

    def checked(self: RunningProcess, *args: Any) -> float:
        events.append("checks")
        return checks(self, *args)

    monkeypatch.setattr(RunningProcess, "_final_checks", checked)
    model = Model(tmp_path, "print('done')\n", Limits(timeout_seconds=20))
    proc = await sandbox.start(model.spec)

    def gone() -> None:
        events.append("gone")
        assert survivors(model.marker) == []
        with pytest.raises(ChildProcessError):  # reaped already: the pid is free
            os.waitpid(proc.pid or 0, os.WNOHANG)

    result = await proc.wait(gone)
    assert (result.exit_code, events) == (0, ["gone", "checks"])
    await model.assert_nothing_left(proc)


async def test_failing_model_reports_exit_code_and_trace(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, "raise ValueError('boom from the model')\n", Limits())
    result, status, message = await model.run(sandbox)
    assert (status, result.exit_code) == (RunStatus.FAILED, 1)
    assert message is not None and message.startswith("exited with code 1\nTraceback")
    assert message.endswith("ValueError: boom from the model\n")


async def test_echo_model_succeeds_and_is_measured(sandbox: Sandbox, tmp_path: Path) -> None:
    source = "import sys\nsys.stdout.write(sys.stdin.read())\n"
    limits = Limits(
        memory_mb=256, cpu_seconds=10, output_mb=8, open_files=64, processes=16, timeout_seconds=20
    )
    model = Model(tmp_path, source, limits, stdin="hello sandbox")
    result, status, message = await model.run(sandbox)
    assert (status, message, result.exit_code, result.signal) == (
        RunStatus.SUCCEEDED,
        None,
        0,
        None,
    )
    assert model.stdout == "hello sandbox"
    assert result.cpu_seconds > 0 and result.peak_memory_mb > 0 and result.duration_seconds > 0
    assert (result.breach, result.canceled, result.spawn_error) == (None, False, None)


async def test_relative_paths_mean_the_daemons_cwd(sandbox: Sandbox, tmp_path: Path) -> None:
    """As with Popen, paths in the spec are relative to the daemon, not to the run's cwd."""
    model = Model(tmp_path, "import sys\nsys.stdout.write(sys.stdin.read())\n", Limits(), "hi")
    rel = os.path.relpath(tmp_path)
    spec = model.spec
    model.spec = ProcessSpec(
        [PY, "model.py"], rel, spec.env, f"{rel}/input", f"{rel}/stdout", f"{rel}/stdout",
        spec.limits, spec.label,
    )  # fmt: skip
    _, status, _ = await model.run(sandbox)
    assert (status, model.stdout) == (RunStatus.SUCCEEDED, "hi")


async def test_missing_entrypoint_is_a_spawn_error(sandbox: Sandbox, tmp_path: Path) -> None:
    model = Model(tmp_path, "", Limits())
    spec = model.spec
    for argv, words in ((["./missing.py"], "not found"), (["./model.py"], "not executable")):
        bad = ProcessSpec(argv, spec.cwd, spec.env, None, spec.stdout, spec.stderr,
                          spec.limits, spec.label)  # fmt: skip
        proc = await sandbox.start(bad)
        result = await proc.wait()
        assert proc.pid is None and result.spawn_error is not None and words in result.spawn_error
        status, message = verdict(result, Limits())
        assert status == RunStatus.FAILED
        assert message == f"could not start the model: {result.spawn_error}"


async def test_an_entrypoint_that_cannot_be_executed_says_why(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The kernel answers a missing #! interpreter with ENOENT, as if the script were
    missing: the error names the interpreter; a file with no #! and no known format too."""
    model = Model(tmp_path, "", Limits())
    spec = model.spec
    scripts = {
        "lost.py": ("#!/nonexistent/python3 -u\nprint(1)\n", "its interpreter "
                    "/nonexistent/python3 (the #! line) does not exist here"),
        "plain.py": ("print(1)\n", "not a program this machine runs (a script needs a #! line)"),
    }  # fmt: skip
    for name, (text, words) in scripts.items():
        script = tmp_path / name
        script.write_text(text)
        script.chmod(0o755)
        bad = ProcessSpec([f"./{name}"], spec.cwd, spec.env, None, spec.stdout, spec.stderr,
                          spec.limits, spec.label)  # fmt: skip
        result = await (await sandbox.start(bad)).wait()
        assert result.spawn_error is not None and words in result.spawn_error, result


async def test_a_command_made_ahead_is_what_start_hands_over(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Sandbox.command`` does all of a launch that needs no process (a staged run's is made
    while the slots are busy): ``start`` with it resolves nothing more, and a command that
    could not be made is the same spawn error ``start`` alone reports."""
    model = Model(tmp_path, "print('ahead')\n", Limits(timeout_seconds=20))
    command = sandbox.command(model.spec)
    assert command.data is not None and command.error is None
    decoded = marshal.loads(command.data)
    assert decoded["argv"][0] == PY and decoded["env"][MARKER_VAR] == command.marker

    def resolved_again(spec: ProcessSpec) -> str:
        raise AssertionError("start resolved the entrypoint again")

    monkeypatch.setattr(launch, "resolve_entrypoint", resolved_again)
    proc = await sandbox.start(model.spec, command)
    assert (await proc.wait()).exit_code == 0 and model.stdout == "ahead\n"
    await model.assert_nothing_left(proc)
    monkeypatch.undo()
    bad = dataclasses.replace(model.spec, argv=["./missing.py"])
    failed = sandbox.command(bad)
    assert failed.data is None and failed.error is not None and "not found" in failed.error
    result = await (await sandbox.start(bad, failed)).wait()
    assert result.spawn_error == failed.error


async def test_an_input_gone_before_its_jail_binds_it_fails_the_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A path the model may only read that vanished after its run's command was made (its
    input, here) fails the run saying which: the jail used to make an empty file in its
    place, on the host too, and the model ran on an empty input."""
    source = "import sys\nprint(repr(sys.stdin.read()))\n"
    model = Model(tmp_path, source, Limits(timeout_seconds=20), stdin="{}")
    command = sandbox.command(model.spec)
    (tmp_path / "input").unlink()
    result = await (await sandbox.start(model.spec, command)).wait()
    assert result.spawn_error is not None, (result, model.stdout)
    assert result.spawn_error.startswith("the jail could not be set up: No such file")
    assert result.spawn_error.endswith(f"{tmp_path}/input"), result.spawn_error
    assert not (tmp_path / "input").exists() and model.stdout == ""


KEEPER_MODEL = """import os, sys, time
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 0)
children = open(f"/proc/self/task/{os.getpid()}/children").read().split()
try:
    waited = os.waitpid(-1, os.WNOHANG)
except ChildProcessError:
    waited = "none"
print(children, waited)
"""


@pytest.mark.parametrize("seconds", [0.0, 0.3])
async def test_the_jails_memory_keeper_is_not_the_models_child_and_is_reaped(
    sandbox: Sandbox, tmp_path: Path, seconds: float
) -> None:
    """The process that holds the jail's memory through ``exec`` (``MemoryKeeper``) is the
    daemon's child, not the model's: the model has no child to see or wait for. It is
    gone once the run is, whether it ended first (a long run) or was killed (a short one)."""
    model = Model(tmp_path, KEEPER_MODEL, Limits(timeout_seconds=20))
    spec = dataclasses.replace(model.spec, argv=[*model.spec.argv, str(seconds)])
    proc = await sandbox.start(spec)
    result = await proc.wait()
    assert result.exit_code == 0, model.stderr
    assert model.stdout == "[] none\n"
    keeper = proc.jail.keeper
    assert keeper > 0, proc.jail
    for _ in range(200):  # a killed keeper is reaped on the chores thread
        if not os.path.exists(f"/proc/{keeper}"):
            break
        await asyncio.sleep(0.01)
    assert not os.path.exists(f"/proc/{keeper}")  # neither alive nor a zombie
    await model.assert_nothing_left(proc)


async def test_fallback_without_pidfd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The waiter thread replaces the pidfd where it is missing; the jail's rlimits hold."""
    monkeypatch.delattr(os, "pidfd_open")
    sandbox = Sandbox(use_cgroups=False)
    model = Model(tmp_path, "while True:\n    pass\n", Limits(cpu_seconds=1, timeout_seconds=20))
    result, status, message = await model.run(sandbox)
    assert result.signal == signal.SIGXCPU and status == RunStatus.FAILED
    assert message is not None and message.startswith("cpu time limit 1 s exceeded")


async def test_kill_leftovers_kills_a_detached_tree(tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    script = tmp_path / "tree.py"
    script.write_text(
        "import os, sys, time\nif os.fork() == 0:\n    open(sys.argv[1], 'w').close()\n"
        "time.sleep(300)\n"
    )
    started = time.time()
    ready = tmp_path / "ready"
    leader = detached([PY, str(script), str(ready)], marker)
    try:
        await wait_for(ready.exists)
        assert len(survivors(marker)) == 2
        assert kill_leftovers(leader.pid, leader.pid, [], started) == 2
        await wait_for(lambda: survivors(marker) == [])
    finally:
        leader.kill()
        leader.wait()


async def test_kill_leftovers_spares_a_reused_pid() -> None:
    stranger = detached(["sleep", "30"], uuid.uuid4().hex)
    try:
        recorded_start = time.time() - 3600  # "our" run started an hour before this process
        assert kill_leftovers(stranger.pid, stranger.pid, [], recorded_start) == 0
        assert stranger.poll() is None
        assert kill_leftovers(stranger.pid, stranger.pid, [], None) == 0
    finally:
        stranger.kill()
        stranger.wait()


@pytest.mark.skipif(not HAS_CGROUP, reason="no usable cgroup on this host")
async def test_kill_leftovers_empties_and_removes_cgroups(tmp_path: Path) -> None:
    support = detect()
    assert support is not None
    group = RunCgroup.create(support, f"leftover-{uuid.uuid4().hex[:8]}", Limits(processes=8))
    marker = uuid.uuid4().hex
    script = "setsid sleep 300 & exec sleep 300"
    popen = detached([*group.join_prefix(), "/bin/sh", "-c", script], marker)
    try:
        await wait_for(lambda: len(survivors(marker)) == 2)
        paths = [str(d) for d in group.dirs]
        assert kill_leftovers(None, None, paths, None) == 2
        assert survivors(marker) == []
        assert not any(Path(p).exists() for p in paths)
    finally:
        popen.kill()
        popen.wait()


@pytest.mark.skipif(not HAS_CGROUP, reason="no usable cgroup on this host")
def test_a_reused_group_gets_exactly_the_next_runs_limits() -> None:
    """Standby groups are prepared with the previous run's limits; a run asking for
    more, less or none must find exactly its own in the files, never a leftover."""
    support = detect()
    assert support is not None
    group = RunCgroup.create(support, f"limits-{uuid.uuid4().hex[:8]}", Limits(memory_mb=64))
    mem = Path(group.memory_dir)
    limit_file = mem / ("memory.max" if support.v2 else "memory.limit_in_bytes")
    pids_file = Path(group.pids_dir or mem, "pids.max")

    def memory() -> int | None:
        text = limit_file.read_text().strip()
        return None if text == "max" or int(text) >= 2**60 else int(text) // (1024 * 1024)

    try:
        assert memory() == 64
        for limits in (
            Limits(memory_mb=256, processes=16),  # raised: v1 needs memsw raised first
            Limits(memory_mb=32, processes=16),  # lowered
            Limits(),  # none at all
            Limits(memory_mb=128),
        ):
            group.apply_limits(limits)
            assert memory() == limits.memory_mb
            if pids_file.exists():
                expected = "max" if limits.processes is None else str(limits.processes)
                assert pids_file.read_text().strip() == expected
    finally:
        group.remove()


def _result(**changes: object) -> ProcessResult:
    base = ProcessResult(0, None, 1.0, 0.5, 10.0, None, None, False, None)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "limits", "expected"),
    [
        (_result(), Limits(), (RunStatus.SUCCEEDED, None)),
        (_result(canceled=True, signal=9), Limits(), (RunStatus.CANCELED, "canceled")),
        (_result(exit_code=None, spawn_error="x: not found"), Limits(),
         (RunStatus.FAILED, "could not start the model: x: not found")),
        (_result(breach="memory", measured=301.2), Limits(memory_mb=256),
         (RunStatus.FAILED, "memory limit 256 MiB exceeded: peak 301 MiB")),
        (_result(exit_code=None, signal=24, cpu_seconds=2.04), Limits(cpu_seconds=2),
         (RunStatus.FAILED, "cpu time limit 2 s exceeded: used 2.0 s")),
        (_result(exit_code=None, signal=9, cpu_seconds=3.01), Limits(cpu_seconds=2),
         (RunStatus.FAILED, "cpu time limit 2 s exceeded: used 3.0 s")),
        # exit 0, but its processes used more than the run's limit together
        (_result(cpu_seconds=6.04), Limits(cpu_seconds=2),
         (RunStatus.FAILED, "cpu time limit 2 s exceeded: used 6.0 s")),
        (_result(cpu_seconds=1.99), Limits(cpu_seconds=2), (RunStatus.SUCCEEDED, None)),
        (_result(breach="timeout_seconds", measured=3.0), Limits(timeout_seconds=3),
         (RunStatus.FAILED, "timeout of 3 s exceeded: ran 3.0 s")),
        (_result(breach="output_mb", measured=1.2), Limits(output_mb=1),
         (RunStatus.FAILED, "output limit 1 MiB exceeded: wrote 1.2 MiB")),
        (_result(exit_code=None, signal=25), Limits(output_mb=1),
         (RunStatus.FAILED, "output limit 1 MiB exceeded")),
        (_result(breach="processes", measured=17), Limits(processes=16),
         (RunStatus.FAILED, "process limit 16 exceeded: 17 processes")),
        (_result(breach="open_files"), Limits(open_files=64),
         (RunStatus.FAILED, "open files limit 64 exceeded")),
        (_result(breach="disk_mb", measured=12.4), Limits(disk_mb=10),
         (RunStatus.FAILED, "disk limit 10 MiB exceeded: wrote 12 MiB (the run's files were "
                            "removed, the end of its log kept)")),
        (_result(exit_code=None, signal=11), Limits(),
         (RunStatus.FAILED, "killed by signal SIGSEGV (11)\ntail")),
        (_result(exit_code=2), Limits(), (RunStatus.FAILED, "exited with code 2\ntail")),
    ],
)  # fmt: skip
def test_outcome_rules(
    result: ProcessResult, limits: Limits, expected: tuple[RunStatus, str | None]
) -> None:
    assert verdict(result, limits, "tail") == expected


def test_outcome_reads_the_log_only_for_an_exit_or_a_signal() -> None:
    """Most runs succeed: their log is not opened on the way to their result."""

    def unread() -> str:
        raise AssertionError("the log was read")

    for result in (_result(), _result(canceled=True), _result(breach="memory", measured=9.0)):
        outcome(result, Limits(memory_mb=8), unread)


@pytest.mark.parametrize(
    ("result", "limits", "kind", "limit", "measured"),
    [
        (_result(breach="memory", measured=301.2), Limits(memory_mb=256), "memory", 256, 301.2),
        (_result(breach="timeout_seconds", measured=3.0), Limits(timeout_seconds=3),
         "timeout", 3, 3.0),
        (_result(exit_code=None, signal=24, cpu_seconds=2.04), Limits(cpu_seconds=2),
         "cpu", 2, 2.04),
        (_result(exit_code=None, signal=11), Limits(), "signal", None, 11),
        (_result(exit_code=2), Limits(), "exit", None, 2),
        (_result(exit_code=None, spawn_error="x: not found"), Limits(), "spawn", None, None),
    ],
)  # fmt: skip
def test_outcome_failures_are_typed(
    result: ProcessResult, limits: Limits, kind: str, limit: float | None, measured: float | None
) -> None:
    """Summaries and the CLI read the kind and the numbers, never the message."""
    _, failure = outcome(result, limits, lambda: "tail")
    assert failure is not None
    assert (failure.kind.value, failure.limit, failure.measured) == (kind, limit, measured)


def test_chores_run_in_order_off_the_caller_survive_a_failure_and_finish_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    chores = Chores()
    seen: list[tuple[str, bool]] = []
    main = threading.get_ident()

    def note(name: str) -> Callable[[], None]:
        return lambda: seen.append((name, threading.get_ident() == main))

    def broken() -> None:
        raise RuntimeError("boom")

    chores.later(note("first"))
    chores.later(broken)
    chores.later(note("second"))
    chores.close()  # runs what is pending before it returns
    chores.later(note("after close"))
    assert seen == [("first", False), ("second", False), ("after close", True)]
    assert "boom" in caplog.text


# -- disk_mb ---------------------------------------------------------------------------

DISK_FILLER = """
import os, sys, time
print("filling the disk", file=sys.stderr, flush=True)
chunk = b"x" * (1 << 20)
with open(os.path.join(os.environ["TMPDIR"], "big"), "wb") as fh:
    for _ in range(200):  # 200 MiB at most, 1 MiB every 5 ms
        fh.write(chunk)
        fh.flush()
        time.sleep(0.005)
"""


def disk_model(tmp_path: Path, source: str, limits: Limits) -> Model:
    (tmp_path / "tmp").mkdir()
    model = Model(tmp_path, source, limits)
    model.spec = dataclasses.replace(
        model.spec, env={**model.spec.env, "TMPDIR": str(tmp_path / "tmp")}
    )
    return model


def test_a_run_far_below_its_disk_limit_is_walked_seldom() -> None:
    """The next walk waits until the run could have filled its headroom at the fastest
    write rate: a default 10 GiB limit is looked at every 2 s, a small one at once."""
    mib = 1024 * 1024
    assert disk.next_check(10240 * mib, 0, 0.05) == disk.MAX_INTERVAL_SECONDS
    assert disk.next_check(8 * mib, 0, 0.05) == 0.05  # 2 ms of headroom: the floor
    assert 0.2 < disk.next_check(1024 * mib, 0, 0.05) < 0.3  # 1 GiB at 4 GiB/s
    assert disk.next_check(1024 * mib, 1000 * mib, 0.1) == 0.1  # nearly full: the floor


async def test_a_run_writing_past_its_disk_limit_is_stopped_and_cut_back(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    model = disk_model(tmp_path, DISK_FILLER, Limits(disk_mb=8, timeout_seconds=30))
    result, status, message = await model.run(sandbox)
    assert (status, result.breach, result.signal) == (RunStatus.FAILED, "disk_mb", signal.SIGKILL)
    assert result.measured is not None and 8 < result.measured < 100
    assert message is not None and message.startswith("disk limit 8 MiB exceeded: wrote ")
    assert result.duration_seconds < 5
    assert not (tmp_path / "tmp" / "big").exists()  # cut back
    assert (tmp_path / "model.py").exists() is False  # the working folder is emptied too
    assert model.stderr == "filling the disk\n"  # the log's end stays readable


async def test_a_run_that_wrote_too_much_before_a_sample_fails_at_its_end(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(disk, "FIRST_CHECK_SECONDS", 60)  # no sample before it ends
    source = "open('blob', 'wb').write(b'x' * (12 << 20))\n"
    model = disk_model(tmp_path, source, Limits(disk_mb=5))
    result, status, _ = await model.run(sandbox)
    assert (status, result.exit_code, result.breach) == (RunStatus.FAILED, 0, "disk_mb")
    assert result.measured is not None and result.measured >= 12
    assert not (tmp_path / "blob").exists()


async def test_a_run_within_its_disk_limit_keeps_its_files(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = "open('blob', 'wb').write(b'x' * (2 << 20))\n"
    model = disk_model(tmp_path, source, Limits(disk_mb=5))
    result, status, _ = await model.run(sandbox)
    assert (status, result.breach) == (RunStatus.SUCCEEDED, None)
    assert (tmp_path / "blob").stat().st_size == 2 << 20


def test_disk_usage_counts_blocks_once_and_follows_no_link(tmp_path: Path) -> None:
    (tmp_path / "dense").write_bytes(b"x" * (1 << 20))
    with open(tmp_path / "sparse", "wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB long, nothing written
    os.link(tmp_path / "dense", tmp_path / "again")
    (tmp_path / "elsewhere").symlink_to("/usr")
    used = usage_bytes([tmp_path])
    assert (1 << 20) <= used < (1 << 20) + 64 * 1024
    with pytest.raises(TooMany):
        usage_bytes([tmp_path], budget=2)


def test_cut_back_empties_folders_keeps_the_daemons_links_and_the_logs_end(
    tmp_path: Path,
) -> None:
    """The links ``prepare`` made stay, by name and target; every link of the model goes:
    one named like a package file it replaced, one to the package under another name,
    and those in its TMPDIR."""
    package, given = tmp_path / "package", tmp_path / "given"
    for folder in (package, given):
        folder.mkdir()
    (package / "main.py").write_text("")
    (package / "data.json").write_text("{}")
    manifest = Manifest.from_dict({"type": "python", "runtime": "r", "files": ["main.py"]})
    ws = workspace.prepare(tmp_path / "run", package, manifest, "multi-file", str(given))
    work, tmp = Path(ws.work), Path(ws.tmp)
    assert sorted(p.name for p in work.iterdir()) == ["data.json", "inputs", "main.py", "outputs"]
    (work / "outputs" / "big").write_bytes(b"x" * 1000)
    (work / "data.json").unlink()
    (work / "data.json").symlink_to("/nonexistent/data.json")  # named like the package's
    (work / "copy.py").symlink_to(package / "main.py")  # the package's, named otherwise
    (work / "L000001").symlink_to("/nonexistent/L000001")
    (tmp / "main.py").symlink_to(package / "main.py")
    (tmp / "scratch").write_bytes(b"y" * 1000)
    stdout, stderr = Path(ws.stdout), Path(ws.stderr)
    stdout.write_bytes(b"o" * 1000)
    stderr.write_bytes(b"a" * KEPT_LOG_BYTES + b"the last words\n")
    cut_back([work, tmp], [stdout, stderr], stderr)
    left = {p.name: os.readlink(p) for p in work.iterdir()}
    assert left == {"main.py": f"{package}/main.py", "inputs": str(given)}
    assert list(tmp.iterdir()) == [] and stdout.stat().st_size == 0
    assert stderr.stat().st_size == KEPT_LOG_BYTES
    assert stderr.read_bytes().endswith(b"the last words\n")


def test_cut_back_of_a_folder_the_daemon_made_no_links_in_removes_every_link(
    tmp_path: Path,
) -> None:
    """A folder ``prepare`` did not make (a tool's run, a run staged before a restart):
    no link in it is the daemon's."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "main.py").symlink_to("/usr/bin/env")
    cut_back([work], [], None)
    assert list(work.iterdir()) == []


# -- the jail's own fallbacks --------------------------------------------------------------

WHO = "import os\nprint(os.getuid(), os.getppid())\n"


async def test_without_the_zygote_each_standby_is_its_own_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Spawner, "_clone", lambda *_: None)  # as if CLONE_PARENT were refused
    sandbox = Sandbox(use_cgroups=False)
    try:
        model = Model(tmp_path, WHO, Limits(timeout_seconds=20))
        result, status, _ = await model.run(sandbox)
    finally:
        sandbox.close()
    assert (status, result.isolation) == (RunStatus.SUCCEEDED, sandbox.isolation.protections)
    uid, parent = map(int, model.stdout.split())
    assert parent == os.getpid()  # still the daemon's own child
    assert (uid != 0) == (os.geteuid() == 0)


async def test_a_killed_zygote_is_started_again(tmp_path: Path) -> None:
    sandbox = Sandbox(use_cgroups=False, standby=0)  # every run asks the zygote
    try:
        zygote = sandbox._launcher.spawner._zygote
        assert zygote is not None
        zygote.kill()
        zygote.wait()
        model = Model(tmp_path, WHO, Limits(timeout_seconds=20))
        result, status, _ = await model.run(sandbox)
        again = sandbox._launcher.spawner._zygote
    finally:
        sandbox.close()
    assert status == RunStatus.SUCCEEDED and result.exit_code == 0
    assert again is not None and again.pid != zygote.pid


def _drop(standby: tuple[Any, int, int]) -> None:
    """EOF on its command pipe: the standby exits without running anything."""
    child, commands, report = standby
    os.close(commands)
    os.close(report)
    child.wait()


def _minor_faults(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def test_the_zygote_is_told_each_shared_plan_once_and_standbys_bring_their_own_fields() -> None:
    sandbox = Sandbox(use_cgroups=False, standby=0)
    launcher = sandbox._launcher
    spawner = launcher.spawner
    try:
        plans = [launcher.plan, {**launcher.plan, "tmp_size_mb": 64}]
        for plan in (*plans, *plans):
            _drop(spawner.standby(plan, launcher._own(1, None)))
        assert sorted(spawner._numbers.values()) == [0, 1]
    finally:
        sandbox.close()


def test_the_zygote_runs_little_python_between_two_clones() -> None:
    """Each clone write-protects the zygote's memory: every page it writes before the
    next one costs a page fault (and a copy, while a standby shares it). Its JSON codec
    alone touched ~95 pages a request (~190 faults a standby in all, 0.8 ms of CPU);
    a standby's request is now split by hand (~70 faults, 0.45 ms on this project's VM)."""
    sandbox = Sandbox(use_cgroups=False, standby=0)
    launcher = sandbox._launcher
    spawner = launcher.spawner
    assert spawner._zygote is not None
    live = [spawner.standby(launcher.plan, launcher._own(1, None)) for _ in range(3)]
    try:
        before, count = _minor_faults(spawner._zygote.pid), 40
        for _ in range(count):  # two standbys stay alive, sharing its pages, as in the daemon
            live.append(spawner.standby(launcher.plan, launcher._own(1, None)))
            _drop(live.pop(0))
        per_standby = (_minor_faults(spawner._zygote.pid) - before) / count
    finally:
        for standby in live:
            _drop(standby)
        sandbox.close()
    assert per_standby < 130


async def test_a_jail_that_cannot_set_up_fails_the_run_and_says_why(tmp_path: Path) -> None:
    sandbox = Sandbox(use_cgroups=False, standby=0)
    plan = sandbox._launcher.plan
    sandbox._launcher.plan = {
        **plan,
        "read": [*plan["read"], ["/nonexistent/group", "/nonexistent/group"]],
    }
    try:
        model = Model(tmp_path, WHO, Limits())
        result, status, message = await model.run(sandbox)
    finally:
        sandbox.close()
    # 126 when the command reached it first, no exit code when it was seen dead before
    assert (status, result.exit_code in (126, None), result.isolation) == (
        RunStatus.FAILED,
        True,
        (),
    )
    assert message is not None
    assert message.startswith("could not start the model: the jail could not be set up: ")
    assert "/nonexistent/group" in message and model.stdout == ""


async def test_a_jail_asked_for_its_steps_accounts_for_its_cpu(tmp_path: Path) -> None:
    """``jail_steps`` (benchmarks) splits the jail's CPU by step; runs of the daemon
    leave it off and their report carries the total only."""
    measured = Sandbox(use_cgroups=None, standby=1, jail_steps=True)
    plain = Sandbox(use_cgroups=None, standby=1)
    try:
        reports = []
        for sandbox, folder in ((measured, tmp_path / "measured"), (plain, tmp_path / "plain")):
            folder.mkdir()
            model = Model(folder, WHO, Limits(timeout_seconds=20))
            proc = await sandbox.start(model.spec)
            result = await proc.wait()
            assert result.exit_code == 0, model.stderr
            reports.append(proc.jail)
    finally:
        measured.close()
        plain.close()
    steps, without = reports
    names = [name for name, _ in steps.steps]
    assert names[0] == "clone" and names[-3:] == ["files", "rules", "drop"] and "command" in names
    assert ("binds" in names) == ("seal" in names) == bool(measured._launcher.plan["mount"])
    assert all(cpu >= 0 for _, cpu in steps.steps)
    # the total is read just before exec, after the last step ends
    assert sum(cpu for _, cpu in steps.steps) <= steps.cpu_seconds + 1e-6
    assert sum(cpu for _, cpu in steps.steps) >= 0.5 * steps.cpu_seconds
    assert without.steps == () and without.cpu_seconds > 0


LINKED = """import os
os.listdir("/bin"), os.listdir("/dev"), os.listdir("/usr/bin")
with open("/bin/sh", "rb") as f:
    print(f.read(4) == b"\\x7fELF", os.path.realpath("/bin"))
"""


async def test_a_model_reads_the_system_through_its_links(tmp_path: Path) -> None:
    """Merged /usr: /bin is a link in the view too, and its rule the one of /usr."""
    sandbox = Sandbox(use_cgroups=False, standby=0)
    try:
        model = Model(tmp_path, LINKED, Limits(timeout_seconds=20))
        _, status, message = await model.run(sandbox)
    finally:
        sandbox.close()
    assert (status, message) == (RunStatus.SUCCEEDED, None)
    assert model.stdout.split()[0] == "True"


async def test_a_cancel_after_the_model_exited_leaves_its_exit_to_decide(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """The model has exited but the loop has not seen it yet (no await in between): a
    cancel then must not turn its success into a cancel."""
    model = Model(tmp_path, "print('done')\n", Limits())
    proc = await sandbox.start(model.spec)
    assert proc.pid is not None
    # Blocking on purpose: an await here would let the exit watch run.
    deadline = time.monotonic() + 10
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:  # noqa: ASYNC222
        assert time.monotonic() < deadline, "the model did not exit"
        time.sleep(0.001)  # noqa: ASYNC251
    proc.cancel()
    result = await proc.wait()
    assert (result.canceled, result.exit_code, result.signal) == (False, 0, None)
    assert verdict(result, Limits())[0] == RunStatus.SUCCEEDED
