"""Crash recovery, a named start-up step (pueue's ``restore_state``).

A daemon that died (even by SIGKILL) leaves runs marked ``running`` and maybe
their processes still alive. Before the scheduler starts, every such process
is killed (identified by the pid, process group and cgroup persisted at
spawn) and the run ends ``failed``; queued runs keep their order.

Runs are spawned a moment before the write that says so (see ``scheduler``),
so a daemon killed in that window leaves a process that no row names: a run
folder no row names (a new run), or a run still ``queued``. Their processes are
killed by their marker and their cgroups; the folder of an unwritten run goes,
and a queued run's half-made workspace is cleared so it starts afresh.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime

from orchestrator.home import Home
from orchestrator.models import Run, RunStatus
from orchestrator.runs.cgroups import run_groups
from orchestrator.runs.proctree import kill_marked
from orchestrator.runs.sandbox import kill_leftovers
from orchestrator.runs.scheduler import DAEMON_STOPPED
from orchestrator.runs.workspace import clear_attempt
from orchestrator.store import Store

log = logging.getLogger("orch.recovery")


@dataclass
class Recovery:
    failed: list[str] = field(default_factory=list)
    killed_processes: int = 0
    queued: list[Run] = field(default_factory=list)


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()


async def recover(store: Store, home: Home) -> Recovery:
    report = Recovery()
    unfinished = await store.read.runs.unfinished()
    report.queued = [run for run in unfinished if run.status == RunStatus.QUEUED]
    report.killed_processes += await _sweep_unwritten(store, home, report.queued)
    for run in unfinished:
        if run.status == RunStatus.QUEUED:
            continue
        cgroups = run.cgroup.split(",") if run.cgroup else []
        try:
            report.killed_processes += kill_leftovers(
                run.pid, run.pgid, cgroups, _epoch(run.started_at), label=run.id
            )
        except Exception:  # a failed sweep must not keep the daemon from starting
            log.exception("could not sweep the processes of run %s", run.id)
        async with store.write() as w:
            await w.runs.transition(
                run.id, RunStatus.FAILED, [RunStatus.RUNNING], error=DAEMON_STOPPED
            )
        report.failed.append(run.id)
    if report.failed:
        log.warning(
            "recovered %d run(s) left running by a stopped daemon (%d process(es) killed)",
            len(report.failed),
            report.killed_processes,
        )
    return report


async def _sweep_unwritten(store: Store, home: Home, queued: list[Run]) -> int:
    """Kill what may have been spawned just before the daemon died, unrecorded."""
    unwritten = set(os.listdir(home.runs)) - await store.read.runs.ids()
    suspects = unwritten | {run.id for run in queued}
    if not suspects:
        return 0
    killed = kill_marked(suspects)
    for run_id in suspects:
        kill_leftovers(None, None, [str(g) for g in run_groups(run_id)], None)
    for run in queued:
        clear_attempt(home.run_dir(run.id))
    for run_id in unwritten:
        shutil.rmtree(home.run_dir(run_id), ignore_errors=True)
    if unwritten or killed:
        log.warning(
            "removed %d run folder(s) no run names; %d unrecorded process(es) killed",
            len(unwritten),
            killed,
        )
    return killed
