"""What the executor hands the sandbox (``ProcessSpec``) and gets back (``ProcessResult``).

Plain data at the bottom of ``runs``, so the sandbox, the launcher and ``outcome``
share it without importing each other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from orchestrator.models import Failure, Limits

StrPath = str | os.PathLike[str]
"""What the run path's functions take; they hand on strings (see ``ProcessSpec``)."""


@dataclass(frozen=True)
class Access:
    """What one model may touch (decided by ``access.run_access``, applied by the jail).

    ``folder`` is the run's own folder, bound whole into its view; inside it the
    model writes only ``write`` (its folders) and ``write_files`` (its stdout and
    log), which are also what ``disk_mb`` measures. ``read`` are trees it may read
    and execute; ``env`` are variables the jail sets (e.g. ``HOME``). Every path is
    absolute and normalized (``os.path.abspath``): the jail compares them as text, and
    opens them after its ``chdir``.
    """

    folder: str
    read: tuple[str, ...] = ()
    write: tuple[str, ...] = ()
    write_files: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    @property
    def disk(self) -> tuple[str, ...]:
        return self.write + self.write_files


@dataclass(frozen=True)
class ProcessSpec:
    """What to run and under which limits; ``label`` (the run id) names the cgroups.

    Without ``access`` the model may write its ``cwd`` and ``TMPDIR`` and read its
    interpreter (see ``access.spec_access``). Paths are strings, as the jail takes them
    (see ``workspace.Workspace``).
    """

    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdin: str | None
    stdout: str
    stderr: str
    limits: Limits
    label: str
    access: Access | None = None


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
    isolation: tuple[str, ...] = ()
    """The protections the model ran under (empty if it never started)."""
    failure: Failure | None = None
