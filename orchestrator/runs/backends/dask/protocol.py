"""What travels between the daemon, the Dask scheduler and the workers: plain data.

Everything here is pickled by Dask, so the daemon, the scheduler and every
worker must run the same orch (``orch[dask]``), as Dask itself requires of the
code in its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from orchestrator.config import DEFAULT_LIMITS
from orchestrator.models import Run, Secret
from orchestrator.runs.process import ProcessResult

TOPIC = "orch-runs"
"""Dask event topic on which the scheduler announces which worker accepted a run."""
PLUGIN_NAME = "orch-runner"
RESOURCE = "orch"
"""The Dask worker resource a run takes one of: ``dask worker --resources orch=N``."""


def task_key(run_id: str, attempt: int) -> str:
    """The Dask key of one attempt of a run; a retry is a new key, never a rerun of one."""
    return f"orch-run-{run_id}-{attempt}"


def blob_key(sha256: str) -> str:
    """The Dask key of shipped content: the same bytes are shipped once, whatever needs them."""
    return f"orch-blob-{sha256}"


def dataset_name(tenant: str, run_id: str) -> str:
    """The published dataset that keeps a run's task alive if the daemon goes away."""
    return f"{dataset_prefix(tenant)}{run_id}"


def dataset_prefix(tenant: str) -> str:
    return f"orch-{tenant}-"


@dataclass(frozen=True)
class Blob:
    """Content the daemon ships to the workers, named by its sha256."""

    sha256: str
    size: int
    folder: bool
    """A folder input (multi-file, csv-archive), shipped as a tar archive of it."""
    inline: bytes | None = field(default=None, repr=False, compare=False)
    """Small content travels inside the task itself (no scatter, no fetch); still cached
    by its hash on the worker."""

    @property
    def key(self) -> str:
        return blob_key(self.sha256)


@dataclass(frozen=True)
class UnpackCaps:
    """Caps on what a worker accepts to unpack (the daemon's own settings)."""

    package_bytes: int
    package_files: int
    input_bytes: int


@dataclass(frozen=True)
class Builds:
    """How a worker builds a run's environment: as the daemon builds its pushes' (its
    ``[isolation] read_paths``, its runs' default memory), in a cache and envs of the
    run's app alone (``app``: the daemon's tenant and the app's id, for an app of one
    daemon is not another daemon's app of the same id on a shared cluster)."""

    app: str = ""
    """"": a spec of an orch before it (the worker keys by the run's app id then)."""
    memory_mb: int | None = DEFAULT_LIMITS.memory_mb
    read_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskSpec:
    """One attempt of one run, everything the worker needs and nothing of the daemon's
    paths: ``run.input_path`` is rewritten on the worker to its cached copy."""

    run: Run
    manifest: dict[str, object]
    package: Blob
    input: Blob | None
    requirements: list[str] | None
    """Pip requirements of a python app; None runs it on the worker's interpreter."""
    caps: UnpackCaps
    dataset: str
    """The run's published record, through which the worker reaches the shipped blobs."""
    attempt: int = 1
    shared_env: bool = False
    """Without requirements: run in the worker's shared environment (``pyenv.shared_env``)."""
    secrets: tuple[Secret, ...] = field(default=(), repr=False, compare=False)
    """The run's secrets: they travel with the task only, never in its published record
    (``published``), and go with the worker's run folder when the attempt ends."""
    builds: Builds = Builds()
    """How its environment is built there (with ``requirements``)."""

    @property
    def key(self) -> str:
        return task_key(self.run.id, self.attempt)

    def next_attempt(self) -> TaskSpec:
        return replace(self, attempt=self.attempt + 1)

    @property
    def published(self) -> TaskSpec:
        """What the run's dataset keeps for a restarted daemon: no secret values."""
        return replace(self, secrets=())

    @property
    def complete(self) -> bool:
        """Whether it can start again: a spec read back from a dataset lost its secrets."""
        return bool(self.secrets) or not self.run.secrets_collection_id


@dataclass(frozen=True)
class TaskResult:
    """What a finished attempt brings back: the facts and the run's files."""

    facts: ProcessResult
    worker: str
    stdout: bytes
    stderr: bytes
    outputs: bytes | None
    """A tar of the files the daemon reads from the run's work folder (folder formats)."""
    restartable: bool = False
    """Nothing of the run started (what it reads was lost with a worker): starting it
    again is no rerun."""


class RunLost(Exception):
    """Dask restarted a task whose worker was lost: the run already started there once,
    so this attempt refuses to run it again (the daemon decides: fail, or retry)."""

    def __init__(self, key: str, first_worker: str) -> None:
        super().__init__(key, first_worker)
        self.key, self.first_worker = key, first_worker

    def __str__(self) -> str:
        return f"{self.key} already started on {self.first_worker}, which was lost"
