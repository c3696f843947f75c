"""Plain data shared by every layer: store rows, API payloads and CLI tables.

Nothing here does I/O. ``RunStatus`` and its transition table are the single
source of truth for the run lifecycle.
"""

from __future__ import annotations

import enum
import math
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.errors import Invalid

DEVINT = "devint"
RESERVED_INSTANCES = frozenset({"devint", "latest"})
"""devint is the reserved instance that follows the latest push; newer clients say ``latest``."""
DEFAULT_INSTANCE_ALIAS = "default"
"""Asking for instance ``default`` resolves to the app's default instance explicitly."""
DEFAULT_PRIORITY = 6
"""A run's queue priority when neither it nor its instance sets one (Nextmv's default)."""


TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def now() -> str:
    """UTC timestamp as RFC 3339 text; fixed width so text order is time order.

    ``TIMESTAMP_FORMAT``'s text, made by ``isoformat`` (which ends in ``+00:00``, cut):
    ``strftime`` goes through libc and the locale, and every run stamps three times."""
    return datetime.now(UTC).isoformat(timespec="microseconds")[:26] + "Z"


def epoch(stamp: str | None) -> float | None:
    """A timestamp written by ``now`` as seconds since the epoch."""
    if not stamp:
        return None
    return datetime.strptime(stamp, TIMESTAMP_FORMAT).replace(tzinfo=UTC).timestamp()


class RunStatus(enum.StrEnum):
    """Nextmv's ``status_v2`` values (``none`` exists in the SDK's enum, never stored)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in FINISHED

    @property
    def v1(self) -> str:
        """The legacy ``status`` field the SDK still reads."""
        return {"canceled": "failed"}.get(self.value, self.value)


FINISHED = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED})

RUN_TRANSITIONS: dict[RunStatus | None, frozenset[RunStatus]] = {
    # Creation: queued; running when spawned at once into a free slot; finished when
    # the run happened elsewhere and is only recorded (a tracked run).
    None: frozenset({RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED}),
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.CANCELED: frozenset(),
}
"""Every legal move of a run (``None``: the run does not exist yet); nothing else is written."""

RUN_TIMESTAMP = {RunStatus.RUNNING: "started_at"} | {s: "ended_at" for s in FINISHED}
"""Which timestamp column a transition into a status sets (and nothing else sets)."""


class FailureKind(enum.StrEnum):
    """Why a run failed, as data: summaries, gates and the CLI read this, never the text."""

    EXIT = "exit"  # the model exited non-zero (measured: the code)
    SIGNAL = "signal"  # killed by a signal orch did not send (measured: the signal)
    TIMEOUT = "timeout"
    MEMORY = "memory"
    CPU = "cpu"
    OUTPUT = "output"
    DISK = "disk"
    PROCESSES = "processes"
    OPEN_FILES = "open_files"
    SPAWN = "spawn"  # the model could not be started
    ENVIRONMENT = "environment"  # its Python environment did not build
    ISOLATION = "isolation"  # the required isolation is not available on this host
    CRASH = "crash"  # orch itself failed while running it
    WORKER_LOST = "worker_lost"  # the machine running it went away
    DAEMON_STOPPED = "daemon_stopped"
    DISK_FULL = "disk_full"  # the disk under the home filled up while it ran
    EXTERNAL = "external"  # a tracked run that reported a failure of its own


LIMIT_KINDS: dict[str, FailureKind] = {
    "memory_mb": FailureKind.MEMORY,
    "cpu_seconds": FailureKind.CPU,
    "timeout_seconds": FailureKind.TIMEOUT,
    "output_mb": FailureKind.OUTPUT,
    "disk_mb": FailureKind.DISK,
    "processes": FailureKind.PROCESSES,
    "open_files": FailureKind.OPEN_FILES,
}
"""The failure kind of each ``Limits`` field a run can break."""

_LIMIT_TEXT: dict[FailureKind, tuple[str, str]] = {
    FailureKind.MEMORY: ("memory limit {} MiB exceeded", "peak {:.0f} MiB"),
    FailureKind.CPU: ("cpu time limit {} s exceeded", "used {} s"),
    FailureKind.TIMEOUT: ("timeout of {} s exceeded", "ran {} s"),
    FailureKind.OUTPUT: ("output limit {} MiB exceeded", "wrote {} MiB"),
    FailureKind.DISK: (
        "disk limit {} MiB exceeded",
        "wrote {:.0f} MiB (the run's files were removed, the end of its log kept)",
    ),
    FailureKind.PROCESSES: ("process limit {} exceeded", "{:.0f} processes"),
    FailureKind.OPEN_FILES: ("open files limit {} exceeded", ""),
}
_FINE_MEASURES = frozenset({FailureKind.CPU, FailureKind.TIMEOUT, FailureKind.OUTPUT})
"""Limits that may be fractional (or measured below 1): their measure is printed by
``_at_least``, never rounded below the limit it broke."""
_FIXED_TEXT: dict[FailureKind, str] = {
    FailureKind.SPAWN: "could not start the model: {}",
    FailureKind.ENVIRONMENT: "python environment failed to build:\n{}",
    FailureKind.ISOLATION: "refused to run the model: {}",
    FailureKind.CRASH: "orch could not execute the run: {}",
    FailureKind.WORKER_LOST: "the worker running the run was lost: {}",
    FailureKind.DAEMON_STOPPED: "daemon stopped while the run was running",
    FailureKind.DISK_FULL: "the disk under orch's home was full while the run was running: {}",
    FailureKind.EXTERNAL: "{}",
}


@dataclass(frozen=True)
class Failure:
    """A failed run's reason: ``kind`` plus, for limits, the limit and what was measured.

    ``measured`` is what was observed (peak MiB, seconds, the exit code, the signal);
    ``detail`` is free text that helps a person (the log's tail, the installer's output).
    ``message`` is the one place that turns all this into the run's ``error`` text.
    """

    kind: FailureKind
    limit: float | None = None
    measured: float | None = None
    detail: str = ""

    @property
    def message(self) -> str:
        if self.kind in _LIMIT_TEXT:
            if self.limit is None and self.measured is None and self.detail:
                return self.detail  # recorded before limits were stored apart (schema < 4)
            head, tail = _LIMIT_TEXT[self.kind]
            text = head.format("?" if self.limit is None else f"{self.limit:g}")
            if self.measured is None or not tail:
                return text
            measured: float | str = self.measured
            if self.kind in _FINE_MEASURES:
                measured = _at_least(self.measured, self.limit)
            return f"{text}: {tail.format(measured)}"
        if self.kind in _FIXED_TEXT:
            return _FIXED_TEXT[self.kind].format(self.detail).rstrip(": \n")
        extra = f"\n{self.detail}" if self.detail else ""
        if self.kind == FailureKind.SIGNAL:
            return f"killed by signal {_signal_name(self.measured)}{extra}"
        code = "?" if self.measured is None else f"{self.measured:g}"
        return f"exited with code {code}{extra}"


def _at_least(measured: float, limit: float | None) -> str:
    """``measured`` with one decimal from 1 on, 3 significant digits below 1, and more
    decimals when those would print it under the limit as the message prints it (``:g``):
    a breach must not read ``cpu time limit 0.01 s exceeded: used 0.0 s``, nor ``limit
    2.25 s exceeded: used 2.2 s``."""
    if not math.isfinite(measured):
        return f"{measured}"
    decimals = 1
    if 0 < abs(measured) < 1:
        decimals = 2 - math.floor(math.log10(abs(measured)))
    text = f"{measured:.{decimals}f}"
    if limit is not None and measured >= limit:
        floor = float(f"{limit:g}")
        while float(text) < floor and decimals < 15:
            decimals += 1
            text = f"{measured:.{decimals}f}"
    return text


def _signal_name(number: float | None) -> str:
    if number is None:
        return "?"
    try:
        return f"{signal.Signals(int(number)).name} ({int(number)})"
    except ValueError:
        return f"{int(number)}"


class RunType(enum.StrEnum):
    """The SDK's ``RunType``: how a run came to be."""

    STANDARD = "standard"  # executed by orch
    EXTERNAL = "external"  # ran elsewhere, recorded here (a tracked run)
    ENSEMBLE = "ensemble"  # fans out to child runs and returns the winner
    ENSEMBLE_CHILD = "ensemble-child"


class EnvStatus(enum.StrEnum):
    """State of an executable's Python environment (built at push time)."""

    NONE = "none"  # nothing to build: daemon interpreter or not a python app
    BUILDING = "building"
    READY = "ready"
    FAILED = "failed"


class ExperimentStatus(enum.StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class ExperimentType(enum.StrEnum):
    """What an experiment is for; the SDK lists each kind apart (``GET .../batch?type=``).

    ``scenario``: a scenario test (its runs carry their scenario and repetition);
    ``acceptance``: the experiment an acceptance test of the same id was made on.
    """

    BATCH = "batch"
    SCENARIO = "scenario"
    ACCEPTANCE = "acceptance"


LIMIT_FIELDS = (
    "memory_mb",
    "cpu_seconds",
    "timeout_seconds",
    "output_mb",
    "open_files",
    "processes",
    "disk_mb",
    "retries",
)
MAX_RETRIES = 3
MAX_LIMITS: dict[str, float] = {
    "memory_mb": 2**24,  # 16 TiB; the cgroup's counter misreads far above (2**44 MiB)
    "cpu_seconds": 1e9,  # ~31 years; RLIMIT_CPU takes a C long
    "timeout_seconds": 1e9,
    "output_mb": 2**24,  # RLIMIT_FSIZE takes a C long of bytes
    "open_files": 2**20,  # the kernel's default fs.nr_open: RLIMIT_NOFILE cannot go higher
    "processes": 2**22,  # the kernel's PID_MAX_LIMIT: pids.max refuses more
    "disk_mb": 2**24,
    "retries": MAX_RETRIES,
}
"""The largest value of each limit: a larger one the kernel cannot apply, so it is
refused when the instance or run is made, not when every run of it fails to start."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one run; ``None`` means "not set at this level"."""

    memory_mb: int | None = None
    cpu_seconds: float | None = None
    timeout_seconds: float | None = None
    output_mb: int | None = None
    open_files: int | None = None
    processes: int | None = None
    disk_mb: int | None = None
    """Everything the run writes (its working folder, TMPDIR, stdout and log) together."""
    retries: int | None = None
    """How often a run is started again after the worker running it was lost (a cluster
    backend); never silently: the run's log says so. A cap like the others: a run may ask
    for fewer than its instance allows, never more."""

    def over(self, base: Limits) -> Limits:
        """These limits layered on top of ``base`` (fields set here win). Either side is
        mostly empty (a run asks for none, an instance sets none): then it is the other."""
        mine = self.to_dict()
        if not mine:
            return base
        theirs = base.to_dict()
        return Limits(**(theirs | mine)) if theirs else self

    def exceeding(self, caps: Limits) -> list[str]:
        """Names of the fields set here that are above the matching cap."""
        out = []
        for name, mine in self.to_dict().items():
            cap = getattr(caps, name)
            if cap is not None and mine > cap:
                out.append(f"{name}={mine} exceeds the instance cap {cap}")
        return out

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies, and this runs on every run's read
        return {k: v for k in LIMIT_FIELDS if (v := getattr(self, k)) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Limits:
        data = data or {}
        unknown = set(data) - set(LIMIT_FIELDS)
        if unknown:
            raise Invalid(
                f"unknown limit(s) {', '.join(sorted(unknown))}; known: {', '.join(LIMIT_FIELDS)}"
            )
        values: dict[str, Any] = {}
        for name, raw in data.items():
            if raw is None:
                continue
            if isinstance(raw, bool):  # float(True) is 1.0: JSON's true is no number
                raise Invalid(f"limit {name} must be a number, got {raw!r}")
            try:
                number = float(raw) if name in ("cpu_seconds", "timeout_seconds") else int(raw)
            except (TypeError, ValueError, OverflowError):  # int(1e999): OverflowError
                raise Invalid(f"limit {name} must be a number, got {raw!r}") from None
            if not math.isfinite(number):  # float("nan") compares false with every cap
                raise Invalid(f"limit {name} must be a finite number, got {raw!r}")
            if name == "retries":
                if not 0 <= number <= MAX_RETRIES:
                    raise Invalid(f"limit retries must be 0 to {MAX_RETRIES}, got {raw!r}")
            elif number <= 0:
                raise Invalid(f"limit {name} must be positive, got {raw!r}")
            elif number > MAX_LIMITS[name]:
                raise Invalid(f"limit {name} must be at most {MAX_LIMITS[name]:g}, got {raw!r}")
            values[name] = number
        return cls(**values)


@dataclass
class App:
    id: str
    name: str
    description: str = ""
    default_instance_id: str | None = None
    executable_id: str | None = None
    default_experiment_instance_id: str | None = None
    """The SDK's ``default_experiment_instance``: kept and echoed for clients that read it;
    orch's experiments always name their instances, so nothing here uses it."""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class Executable:
    """A pushed package, identified by the sha256 of its bytes."""

    id: str
    size: int
    manifest: dict[str, Any]
    type: str
    runtime: str
    env_status: EnvStatus = EnvStatus.NONE
    env_message: str = ""
    env_path: str | None = None
    created_at: str = field(default_factory=now)


@dataclass
class Version:
    id: str
    app_id: str
    name: str
    executable_id: str
    description: str = ""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass(frozen=True)
class Queuing:
    """An instance's queuing defaults for its runs (the SDK's ``RunQueuing``); ``None``
    means "not set here": a run's own value wins, else its instance's, else the default."""

    priority: int | None = None
    disabled: bool | None = None

    def __post_init__(self) -> None:
        if self.priority is not None and (
            isinstance(self.priority, bool) or not 1 <= self.priority <= 9
        ):
            raise Invalid(f"queuing priority must be between 1 and 9, got {self.priority!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set: what the store keeps and the API echoes."""
        out: dict[str, Any] = {}
        if self.priority is not None:
            out["priority"] = self.priority
        if self.disabled is not None:
            out["disabled"] = self.disabled
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Queuing:
        data = data or {}
        return cls(data.get("priority"), data.get("disabled"))


@dataclass
class Instance:
    id: str
    app_id: str
    version_id: str
    name: str
    description: str = ""
    options: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    execution_class: str | None = None
    locked: bool = False
    """A locked instance refuses changes and deletion until it is unlocked."""
    secrets_collection_id: str | None = None
    """The app's secrets collection its runs receive (unless a run names its own)."""
    queuing: Queuing = field(default_factory=Queuing)
    """Priority and ``disabled`` for its runs that do not set their own."""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


class SecretType(enum.StrEnum):
    """The SDK's ``SecretType``: how a secret reaches the model."""

    ENV = "env"  # an environment variable named by its location
    FILE = "file"  # a file at its location, relative to the run's working folder


@dataclass(frozen=True)
class Secret:
    type: SecretType
    location: str
    value: str

    def __repr__(self) -> str:  # a value must never reach a log through a repr
        return f"Secret({self.type.value}, {self.location!r}, value=<hidden>)"


@dataclass
class SecretsCollection:
    """A named set of secrets of one app; runs receive it through their instance or their
    own configuration (``secrets_collection_id``)."""

    id: str
    app_id: str
    name: str
    description: str = ""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class PointerMove:
    """One row of the audit trail: a pointer changed what it points to."""

    app_id: str
    pointer: str  # "devint", "instance:<id>" or "default_instance"
    from_target: str | None
    to_target: str | None
    action: str  # push, promote, update, create, delete
    at: str = field(default_factory=now)
    id: int | None = None


@dataclass
class Run:
    id: str
    app_id: str
    instance_id: str
    executable_id: str
    version_id: str | None = None
    name: str = ""
    description: str = ""
    status: RunStatus = RunStatus.QUEUED
    priority: int = DEFAULT_PRIORITY
    options: dict[str, str] = field(default_factory=dict)
    option_sources: dict[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    execution_class: str | None = None
    input_format: str = "json"
    input_path: str | None = None
    input_size: int = 0
    output_size: int = 0
    statistics: dict[str, Any] | None = None
    failure: Failure | None = None
    exit_code: int | None = None
    signal: int | None = None
    duration_ms: float | None = None
    cpu_seconds: float | None = None
    peak_memory_mb: float | None = None
    placement: dict[str, Any] | None = None
    """Where the run executes, as its backend records it (a local pid and cgroup, a Dask
    key and worker); opaque to everything but that backend."""
    run_type: RunType = RunType.STANDARD
    parent_run_id: str | None = None
    metrics: dict[str, Any] | None = None
    experiment_id: str | None = None
    experiment_type: str | None = None
    """What ``experiment_id`` names: an ``ExperimentType`` value (batch, scenario,
    acceptance), ``shadow`` or ``switchback``; what the SDK reads as the run's
    ``experiment_type``."""
    input_id: str | None = None
    option_set: str | None = None
    repetition: int = 0
    scenario_id: str | None = None
    """The scenario of a scenario test this run belongs to (None outside scenario tests)."""
    input_set_id: str | None = None
    """The input set its input came from, when the experiment named one per run."""
    queuing_disabled: bool = False
    secrets_collection_id: str | None = None
    """The secrets collection delivered to the model (its ID only: values stay in the store)."""
    cloned_run_id: str | None = None
    """The run this one was cloned from (the SDK's ``tracking.cloned_run_id``)."""
    request_options: dict[str, str] | None = None
    """The options as the request gave them (the SDK's ``request_options``), before the
    manifest's types made ``options`` of them ("2" stays "2" here, "2.0" there); None for a
    run recorded before they were kept (schema 14): then they are read off ``options``."""
    created_at: str = field(default_factory=now)
    started_at: str | None = None
    ended_at: str | None = None

    @property
    def error(self) -> str | None:
        """The text the API shows: derived from the status and the typed failure."""
        if self.status == RunStatus.CANCELED:
            return "canceled"
        return self.failure.message if self.failure is not None else None


@dataclass
class ManagedInput:
    """An input kept for reuse (input sets, experiments), stored once by content hash."""

    id: str
    app_id: str
    name: str
    sha256: str
    size: int
    format: str = "json"
    description: str = ""
    run_id: str | None = None
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class InputSet:
    id: str
    app_id: str
    name: str
    description: str = ""
    input_ids: list[str] = field(default_factory=list)
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)


@dataclass
class Experiment:
    """A batch experiment: inputs x targets x option sets x repetitions."""

    id: str
    app_id: str
    name: str
    input_set_id: str | None
    requested_runs: int
    description: str = ""
    status: ExperimentStatus = ExperimentStatus.STARTED
    option_sets: dict[str, dict[str, str]] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    baseline: str | None = None
    objective: str = "min"
    type: ExperimentType = ExperimentType.BATCH
    seed: int | None = None
    """Of the runs' queue order (``experiments/queue_order``); None before it was stored."""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    ended_at: str | None = None


@dataclass
class AcceptanceTest:
    """A go/no-go view on a batch experiment with the same id: candidate vs control.

    ``metrics`` keeps each metric as Nextmv's ``Metric`` JSON (field, metric_type, params,
    statistic), checked when the test is made; the verdicts are computed from the
    experiment's runs when it has ended, never stored, so they cannot go stale.
    """

    id: str
    app_id: str
    name: str
    control_instance_id: str
    control_version_id: str
    candidate_instance_id: str
    candidate_version_id: str
    metrics: list[dict[str, Any]]
    description: str = ""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
