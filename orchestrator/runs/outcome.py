"""The one place that turns how a process ended into a run status and message.

The sandbox only reports facts (exit code, signal, which limit it saw broken);
deciding what they mean lives here so every path (API, CLI, recovery) agrees,
the way pueue keeps it in one ``finish`` function.
"""

from __future__ import annotations

import signal

from orchestrator.models import Limits, RunStatus
from orchestrator.runs.process import ProcessResult


def outcome(
    result: ProcessResult, limits: Limits, stderr_tail: str = ""
) -> tuple[RunStatus, str | None]:
    """``(status, error message)`` for a finished process; message ``None`` on success."""
    if result.canceled:
        return RunStatus.CANCELED, "canceled"
    if result.spawn_error is not None:
        return RunStatus.FAILED, f"could not start the model: {result.spawn_error}"
    breach, measured = _breach(result, limits)
    if breach is not None:
        return RunStatus.FAILED, breach_message(breach, measured, limits)
    tail = "\n" + stderr_tail if stderr_tail else ""
    if result.signal is not None:
        return RunStatus.FAILED, f"killed by signal {_signal_name(result.signal)}{tail}"
    if result.exit_code == 0:
        return RunStatus.SUCCEEDED, None
    return RunStatus.FAILED, f"exited with code {result.exit_code}{tail}"


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
    return None, None


def breach_message(breach: str, measured: float | None, limits: Limits) -> str:
    """Name the limit and what was measured, e.g. "memory limit 256 MiB exceeded: peak 301 MiB"."""
    field = _canonical(breach)
    limit = getattr(limits, field, None)
    shown = "?" if limit is None else f"{limit:g}"
    heads = {
        "memory_mb": (f"memory limit {shown} MiB exceeded", "peak {:.0f} MiB"),
        "cpu_seconds": (f"cpu time limit {shown} s exceeded", "used {:.1f} s"),
        "timeout_seconds": (f"timeout of {shown} s exceeded", "ran {:.1f} s"),
        "output_mb": (f"output limit {shown} MiB exceeded", "wrote {:.1f} MiB"),
        "processes": (f"process limit {shown} exceeded", "{:.0f} processes"),
        "open_files": (f"open files limit {shown} exceeded", ""),
        "disk_mb": (
            f"disk limit {shown} MiB exceeded",
            "wrote {:.0f} MiB (the run's files were removed, the end of its log kept)",
        ),
    }
    head, detail = heads.get(field, (f"{breach} limit exceeded", ""))
    if measured is None or not detail:
        return head
    return f"{head}: {detail.format(measured)}"


def _canonical(breach: str) -> str:
    """The sandbox says "memory"; the Limits field is ``memory_mb``."""
    return "memory_mb" if breach == "memory" else breach


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} ({number})"
    except ValueError:
        return f"{number}"
