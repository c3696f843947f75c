"""The execution-backend interface: what the engine asks of whatever runs the models.

The scheduler and the executor own the run's life (queue, slots, state,
outcome); a backend owns *where and how* its process runs: ``prepare`` (all
that can be done before a slot frees: workspace, command, environment),
``start`` (spawn, and say where it runs: the ``placement`` recorded with the
run), the ``Execution`` it returns (``wait`` for the facts, ``cancel``),
``collect`` (bring outputs, statistics and the log into the daemon's run
folder, the one place the API reads them from), and ``recover`` (after a
daemon restart: reattach to what still runs, or clean it up).

``local`` (``backends/local.py``, the default) runs models in the sandbox on
this machine; ``dask`` (``backends/dask/``, an optional extra) runs them in the
same sandbox on the workers of a Dask cluster. Backend identity (pids,
cgroups, a cluster's task key) lives in ``placement``, never in the run's core
fields.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.models import Executable, Failure, Run, Secret
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.process import ProcessResult
from orchestrator.runs.workspace import Collected

__all__ = ["PROTECTIONS", "WORKER", "Backend", "Collected", "Execution", "Job", "StartFailed"]


PROTECTIONS = "protections"
"""The placement key naming the protections that applied to the run (e.g. ``landlock-fs``,
``uid``): the one part of a placement the API shows (run metadata ``isolation``)."""
WORKER = "worker"
"""The placement key naming the worker a run ran on (a Dask worker's address; local runs
have none): shown in run metadata as ``worker``."""


@dataclass(frozen=True)
class Job:
    """One run with the facts of its executable, read once by the executor."""

    run: Run
    executable: Executable
    manifest: Manifest
    secrets: tuple[Secret, ...] = ()
    """Its collection's values, read when it is staged; never persisted by a backend."""


class StartFailed(Exception):
    """The run cannot start, for a reason that is the run's (not orch's) problem."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.message)
        self.failure = failure


class Execution(Protocol):
    """A started run, as its backend supervises it."""

    @property
    def placement(self) -> dict[str, Any] | None:
        """Where it runs (JSON), recorded with the run so recovery can find it again."""
        ...

    async def wait(self, gone: Callable[[], None] | None = None) -> ProcessResult:
        """The facts once every process of the run is gone; a spawn failure is a fact too.

        ``gone`` may be called the moment the processes are, before the facts are
        gathered, so that the run's slot serves the next run meanwhile; the caller
        calls it again once ``wait`` returns (a backend that cannot tell sooner leaves
        it at that), so it must be idempotent.
        """
        ...

    def cancel(self, grace_seconds: float = 2.0) -> None:
        """Stop it: polite signal, then a kill after the grace (0: kill now). Idempotent."""
        ...


class Backend(Protocol):
    name: str

    @property
    def slots(self) -> int:
        """How many runs it executes at once."""
        ...

    @property
    def isolation(self) -> dict[str, Any]:
        """What protects the host from a model, for ``/healthz`` and run metadata."""
        ...

    @property
    def details(self) -> dict[str, Any]:
        """Anything else ``/healthz`` should say about it (a cluster's address, its workers)."""
        ...

    async def prepare(self, job: Job) -> Any:
        """Everything before the spawn; raises ``StartFailed`` when the run cannot start."""
        ...

    def discard(self, run_id: str, staging: asyncio.Future[Any]) -> None:
        """A run prepared ahead will not start (canceled while queued): undo ``prepare``."""
        ...

    async def start(self, job: Job, prepared: Any) -> Execution:
        """Spawn the model; its own failure to start is reported by ``Execution.wait``."""
        ...

    async def collect(self, job: Job, prepared: Any, result: ProcessResult) -> Collected:
        """Outputs, statistics and log into the daemon's run folder, once the run ended."""
        ...

    async def recover(
        self, running: list[Run], queued: list[Run], known: set[str]
    ) -> dict[str, Execution]:
        """At start: what a previous daemon left. Returns the running runs it reattached
        to (the engine supervises them again); everything else of theirs is stopped."""
        ...

    async def close(self) -> None:
        """Shut down (after the scheduler stopped): no process of ours stays behind."""
        ...
