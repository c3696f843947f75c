"""Crash recovery, a named start-up step (pueue's ``restore_state``).

A daemon that died (even by SIGKILL) leaves runs marked ``running`` and maybe
their processes still alive. Before the scheduler starts, the backend is asked
to settle them: the local backend kills whatever survived (found by the
placement recorded at spawn, markers and cgroups) and reattaches to nothing; a
cluster backend may reattach to runs still alive there. Every running run not
reattached ends ``failed`` (``daemon_stopped``), its duration counted from its start
until recovery ended it (an upper bound: ``RunStates.end_lost``); queued runs keep
their order.

An experiment's cancel writes its end first, then cancels its runs: a daemon stopped
in between leaves an ended experiment whose runs are still queued. Those are canceled
here, before the queue is handed back, and the log says why; a run reattached to goes
on only if its experiment has not ended.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from orchestrator.models import FailureKind, Run, RunStatus
from orchestrator.runs.backend import Backend, Execution
from orchestrator.runs.states import RunStates
from orchestrator.store import Store

log = logging.getLogger("orch.recovery")


@dataclass
class Recovery:
    failed: list[str] = field(default_factory=list)
    queued: list[Run] = field(default_factory=list)
    reattached: list[tuple[Run, Execution]] = field(default_factory=list)


async def recover(store: Store, states: RunStates, backend: Backend) -> Recovery:
    unfinished = await store.read.runs.unfinished()
    queued = [run for run in unfinished if run.status == RunStatus.QUEUED]
    running = [run for run in unfinished if run.status == RunStatus.RUNNING]
    alive = await backend.recover(running, queued, await store.read.runs.ids())
    report = Recovery(
        queued=queued, reattached=[(run, alive[run.id]) for run in running if run.id in alive]
    )
    report.failed = await states.end_lost(
        [run for run in running if run.id not in alive], FailureKind.DAEMON_STOPPED
    )
    await _cancel_runs_of_ended_experiments(store, states, report)
    if report.failed or report.reattached:
        log.warning(
            "recovered runs left running by a stopped daemon: %d ended, %d reattached",
            len(report.failed),
            len(report.reattached),
        )
    return report


async def _cancel_runs_of_ended_experiments(
    store: Store, states: RunStates, report: Recovery
) -> None:
    """Cancel the queued runs of every experiment that has ended, and stop the ones a
    backend reattached to: their experiment's cancel was cut short (``recovery``)."""
    ended = {
        (a, e): status for a, e, status in await store.read.experiments.ended_with_unfinished_runs()
    }
    if not ended:
        return
    report.queued = [r for r in report.queued if (r.app_id, r.experiment_id) not in ended]
    for run, execution in report.reattached:
        if (run.app_id, run.experiment_id) in ended:
            execution.cancel()  # it ends canceled, as its experiment's cancel would have
    for (app_id, exp_id), status in ended.items():
        if not (canceled := await states.cancel_queued_of_experiment(app_id, exp_id)):
            continue
        log.warning(
            "canceled %d queued run(s) of experiment %s of app %s: it had ended (%s) before"
            " they started, and the daemon stopped before it canceled them",
            len(canceled),
            exp_id,
            app_id,
            status,
        )
