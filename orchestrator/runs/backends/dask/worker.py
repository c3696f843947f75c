"""What the daemon calls on the workers: the run task, the side channels, the plugin.

- ``run_task``: the Dask task of one attempt (in a worker thread, holding one
  ``orch`` resource for as long as the model runs).
- ``cancel_run``, ``read_logs``, ``describe``: called with ``Client.run`` on the
  worker's event loop, outside the task system, so they answer while a task
  runs (a task cannot be interrupted; its process tree can).
- ``RunnerPlugin``: registered by the daemon (idempotent: a restarted daemon does
  not replace it), it starts the worker's ``WorkerRunner`` when the worker starts
  (sweeping what a dead predecessor left) and stops its models when it closes.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from distributed import WorkerPlugin, get_client, get_worker
from distributed.core import Status

from orchestrator.runs.backends.dask.cache import default_root
from orchestrator.runs.backends.dask.protocol import PLUGIN_NAME, TaskResult, TaskSpec
from orchestrator.runs.backends.dask.runner import WorkerRunner

_runners: dict[int, WorkerRunner] = {}
_lock = threading.Lock()
_CLOSING = frozenset({Status.closing, Status.closed, Status.closing_gracefully, Status.failed})


def runner_for(worker: Any) -> WorkerRunner:
    """The worker process's runner, started on first use."""
    with _lock:
        runner = _runners.get(id(worker))
        if runner is None:
            runner = _runners[id(worker)] = WorkerRunner(worker.address, default_root())
        return runner


def run_task(spec: TaskSpec) -> TaskResult:
    worker = get_worker()
    return runner_for(worker).run(spec, get_client())


def cancel_run(run_id: str, grace: float, dask_worker: Any = None) -> bool:
    runner = _runners.get(id(dask_worker))
    if runner is not None:
        runner.cancel(run_id, grace)
    return runner is not None


def read_logs(offsets: dict[str, int], dask_worker: Any = None) -> dict[str, bytes]:
    """New log bytes of the given runs that run here, from the daemon's offsets."""
    runner = _runners.get(id(dask_worker))
    if runner is None:
        return {}
    chunks = {run_id: runner.read_log(run_id, offset) for run_id, offset in offsets.items()}
    return {run_id: chunk for run_id, chunk in chunks.items() if chunk}


def describe(dask_worker: Any = None) -> dict[str, Any]:
    """What isolation this worker gives runs (for the daemon's /healthz)."""
    return runner_for(dask_worker).describe


def _quiet_side_channels(record: logging.LogRecord) -> bool:
    """Dask logs every ``Client.run`` call; the log pulls come 4 times a second."""
    return not (record.getMessage().startswith("Run out-of-band function 'read_logs'"))


class RunnerPlugin(WorkerPlugin):
    idempotent = True
    name = PLUGIN_NAME

    def setup(self, worker: Any) -> None:
        logging.getLogger("distributed.worker").addFilter(_quiet_side_channels)
        runner_for(worker)

    def teardown(self, worker: Any) -> None:
        """On close, stop the models; on a mere re-registration, keep them running."""
        if worker.status in _CLOSING:
            with _lock:
                runner = _runners.pop(id(worker), None)
            if runner is not None:
                runner.close()
