"""What the executor hands the sandbox (``ProcessSpec``) and gets back (``ProcessResult``).

Plain data at the bottom of ``runs``, so the sandbox, the launcher and ``outcome``
share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.models import Failure, Limits


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and under which limits; ``label`` (the run id) names the cgroups."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    stdin: Path | None
    stdout: Path
    stderr: Path
    limits: Limits
    label: str


@dataclass(frozen=True)
class ProcessResult:
    """Facts about a finished tree; ``outcome.outcome`` decides what they mean.

    ``breach`` names the ``Limits`` field seen exceeded ("memory" for memory_mb)
    and ``measured`` is the value that broke it, in that limit's unit.
    ``failure`` is a reason a backend established around the process, not from it
    (the worker running it was lost, its environment did not build on the worker).
    """

    exit_code: int | None
    signal: int | None
    duration_seconds: float
    cpu_seconds: float
    peak_memory_mb: float
    breach: str | None
    measured: float | None
    canceled: bool
    spawn_error: str | None
    failure: Failure | None = None
