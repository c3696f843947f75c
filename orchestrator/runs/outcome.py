"""The one place that turns how a process ended into a run status and a typed failure.

The sandbox only reports facts (exit code, signal, which limit it saw broken);
deciding what they mean lives here so every path (API, CLI, recovery,
summaries) agrees, the way pueue keeps it in one ``finish`` function. The
failure is data (``models.Failure``); its text is derived from it.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from orchestrator.models import LIMIT_KINDS, Failure, FailureKind, Limits, RunStatus
from orchestrator.runs.process import ProcessResult


def outcome(
    result: ProcessResult, limits: Limits, log_tail: Callable[[], str] = str
) -> tuple[RunStatus, Failure | None]:
    """``(status, failure)`` for a finished process; ``None`` on success and cancel.

    ``log_tail()`` gives the end of the run's log, the detail of an exit or a signal;
    it is only read for those (most runs succeed, and reading it is a file's open)."""
    if result.canceled:
        return RunStatus.CANCELED, None
    if result.failure is not None:
        return RunStatus.FAILED, result.failure
    if result.spawn_error is not None:
        return RunStatus.FAILED, Failure(FailureKind.SPAWN, detail=result.spawn_error)
    breach, measured = _breach(result, limits)
    if breach is not None:
        return RunStatus.FAILED, limit_failure(breach, measured, limits)
    if result.signal is not None:
        return RunStatus.FAILED, Failure(
            FailureKind.SIGNAL, measured=result.signal, detail=log_tail()
        )
    if result.exit_code == 0:
        return RunStatus.SUCCEEDED, None
    return RunStatus.FAILED, Failure(FailureKind.EXIT, measured=result.exit_code, detail=log_tail())


def limit_failure(breach: str, measured: float | None, limits: Limits) -> Failure:
    """The failure of a broken limit: its kind, the limit's value and what was measured."""
    field = _canonical(breach)
    kind = LIMIT_KINDS.get(field, FailureKind.CRASH)
    limit = getattr(limits, field, None)
    return Failure(kind, limit=None if limit is None else float(limit), measured=measured)


def _breach(result: ProcessResult, limits: Limits) -> tuple[str | None, float | None]:
    """The breach the sandbox saw, else one the kernel's signal implies.

    SIGXCPU / SIGXFSZ are only sent for RLIMIT_CPU / RLIMIT_FSIZE, so they mean
    the limit even when no sample caught it; SIGKILL after the CPU limit is the
    hard RLIMIT_CPU (a model that handled SIGXCPU and kept spinning).
    """
    if result.breach is not None:
        return result.breach, result.measured
    if result.signal == signal.SIGXCPU and limits.cpu_seconds is not None:
        # the kernel only sends it at the limit; rusage can lag that a little under load
        return "cpu_seconds", max(result.cpu_seconds, limits.cpu_seconds)
    if result.signal == signal.SIGXFSZ and limits.output_mb is not None:
        return "output_mb", None
    if (
        result.signal == signal.SIGKILL
        and limits.cpu_seconds is not None
        and result.cpu_seconds >= limits.cpu_seconds
    ):
        return "cpu_seconds", result.cpu_seconds
    if limits.cpu_seconds is not None and result.cpu_seconds > limits.cpu_seconds:
        # the whole tree's CPU (waited-for children included) past the run's limit, in a
        # run that ended before a sample caught it
        return "cpu_seconds", result.cpu_seconds
    return None, None


def _canonical(breach: str) -> str:
    """The sandbox says "memory"; the Limits field is ``memory_mb``."""
    return "memory_mb" if breach == "memory" else breach
