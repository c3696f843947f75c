"""The daemon's JSON, typed: what the client returns and the CLI reads.

``TypedDict``s rather than classes: the objects stay the API's own dicts (``--json``
prints them whole, fields the CLI does not know included) and cost nothing to build,
while mypy checks every key the CLI reads. They mirror ``api/wire.py``,
``api/run_wire.py`` and ``api/experiment_wire.py``; fields this side never reads are
left out. Timestamps are RFC 3339 text in UTC.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

RunState = Literal["queued", "running", "succeeded", "failed", "canceled"]
"""A run's ``status_v2`` on the wire (the daemon's ``models.RunStatus``)."""
FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "canceled"})
"""States a run never leaves. The client reads the wire, not the daemon's models: a
client that imported the domain would pay for it on every command, and could drift
towards calling it."""

# --- apps, executables, versions, instances ------------------------------------------------


class App(TypedDict):
    id: str
    name: str
    description: str
    default_instance: str | None
    executable_id: str | None
    created_at: str
    updated_at: str


class Environment(TypedDict):
    status: str  # "none" | "building" | "ready" | "failed"
    message: str


class IoConfiguration(TypedDict):
    format: str


class Requirements(TypedDict):
    executable_type: str
    runtime: str
    io_configuration: IoConfiguration


class Executable(TypedDict):
    id: str
    uploaded_at: str
    requirements: Requirements
    size: int
    environment: Environment


class Pushed(TypedDict):
    executable: Executable
    unchanged: NotRequired[bool]
    """orch's own: devint ran this package already (no move, no history row)."""


class UndeclaredOption(TypedDict):
    """orch's own: an option the version's app.yaml does not declare (passed as given)."""

    name: str
    did_you_mean: str | None
    note: str


class Version(TypedDict):
    id: str
    application_id: str
    name: str
    description: str
    executable: Executable
    created_at: str
    updated_at: str


class InstanceConfiguration(TypedDict):
    options: dict[str, str]
    execution_class: NotRequired[str]
    limits: NotRequired[dict[str, float]]
    secrets_collection_id: NotRequired[str]


class Instance(TypedDict):
    id: str
    application_id: str
    version_id: str
    name: str
    description: str
    configuration: InstanceConfiguration
    locked: bool
    created_at: str
    updated_at: str
    undeclared_options: NotRequired[list[UndeclaredOption]]
    """In the answer to a create or an update only."""


class SecretsCollectionSummary(TypedDict):
    id: str
    application_id: str
    name: str
    description: str
    created_at: str
    updated_at: str


class SecretEntry(TypedDict):
    type: str  # env | file
    location: str
    value: str  # always masked by the daemon


class SecretsCollection(SecretsCollectionSummary):
    secrets: list[SecretEntry]


class SecretsPage(TypedDict):
    items: list[SecretsCollectionSummary]
    next_page_token: str


PointerMove = TypedDict(
    "PointerMove",
    {"id": int, "pointer": str, "from": str | None, "to": str | None, "action": str, "at": str},
)
"""One move of a pointer (devint, an instance, the default instance); ``from`` is a keyword."""


class History(TypedDict):
    items: list[PointerMove]


class Promotion(TypedDict):
    application: App
    version: Version
    instance: Instance
    created_instance: bool
    created_version: NotRequired[bool]
    """False: an existing version was promoted (a daemon before 12-08: always new)."""
    moved_instance: NotRequired[bool]
    undeclared_options: NotRequired[list[UndeclaredOption]]


class Upload(TypedDict):
    upload_id: str
    upload_url: str


# --- runs ----------------------------------------------------------------------------------


class Format(TypedDict):
    input: dict[str, str]
    output: dict[str, str]


class OptionSource(TypedDict):
    name: str
    value: str
    source: str


class RunOptions(TypedDict):
    options_summary: list[OptionSource]


class RunMetadata(TypedDict):
    application_instance_id: str
    application_version_id: str
    status_v2: RunState
    created_at: str
    started_at: str | None
    ended_at: str | None
    duration: float
    error: str
    format: Format
    options: RunOptions
    limits: dict[str, float]
    executable_id: str | None
    exit_code: int | None
    signal: int | None
    cpu_seconds: float | None
    peak_memory_mb: float | None
    statistics: NotRequired[dict[str, Any]]
    metrics: NotRequired[dict[str, Any]]
    run_type: NotRequired[dict[str, str]]
    parent_run_id: NotRequired[str]
    """Set on an ensemble run's children: the ensemble run."""


class RunInfo(TypedDict):
    """``GET .../runs/{id}/metadata``; ``GET .../runs/{id}`` adds the output."""

    id: str
    name: str
    description: str
    metadata: RunMetadata
    output: NotRequired[Any]


class RunCreated(TypedDict):
    run_id: str
    undeclared_options: NotRequired[list[UndeclaredOption]]


class RunItem(TypedDict):
    id: str
    name: str
    status_v2: RunState
    application_instance_id: str
    application_version_id: str
    created_at: str
    duration: float
    error: str
    executable_id: str | None


class RunPage(TypedDict):
    runs: list[RunItem]
    next_page_token: str


class QueuedRun(TypedDict):
    """The SDK's ``QueuedRun``: one entry of the account's queue."""

    id: str
    name: str
    application_id: str
    application_instance_id: str
    status_v2: RunState
    queuing_priority: int
    created_at: str


class Queue(TypedDict):
    runs: list[QueuedRun]


class LogLine(TypedDict):
    log: str


class LiveLog(TypedDict):
    items: list[LogLine]
    next_page_token: str
    status_v2: RunState
    next_available_in_seconds: float


class SignedUrl(TypedDict):
    url: str


class RunAsset(TypedDict):
    """``GET .../runs/{id}/assets``: one item (the SDK's ``RunAsset``)."""

    id: str
    name: str
    content_type: str
    created_at: str
    size: int
    description: str
    visual: NotRequired[dict[str, Any]]


class AssetList(TypedDict):
    items: list[RunAsset]


class AssetDownload(RunAsset):
    """``GET .../runs/{id}/assets/{asset}``: the asset plus where to fetch its content."""

    download_url: str
    type: str


# --- inputs, input sets, experiments -------------------------------------------------------


class ManagedInput(TypedDict):
    id: str
    name: str
    size: int
    run_id: str | None


class InputSet(TypedDict):
    id: str
    name: str
    description: str
    input_ids: list[str]
    inputs: list[ManagedInput]
    created_at: str
    updated_at: str


class ExperimentMetadata(TypedDict):
    id: str
    name: str
    status: str  # "started" | "completed" | "failed" | "canceled"
    created_at: str
    ended_at: str | None
    number_of_requested_runs: int
    number_of_completed_runs: int
    run_counts: dict[str, int]
    type: str  # "batch" | "scenario" | "acceptance"
    grouped_distributional_summaries: NotRequired[list[dict[str, Any]]]  # get, not list


class Experiment(ExperimentMetadata):
    input_set_id: str
    targets: list[str]
    baseline: str | None
    objective: str
    option_sets: dict[str, dict[str, str]] | None
    seed: NotRequired[int | None]  # of the queue order; absent from older daemons


class ExperimentRun(RunItem):
    target: str
    input_id: str
    input_name: str
    repetition: int
    result_value: float | None
    option_set: NotRequired[str]
    scenario_id: NotRequired[str]


class ExperimentRuns(TypedDict):
    runs: list[ExperimentRun]


class Summary(TypedDict):
    """Computed by the daemon (``experiments/summary.py``); the CLI only renders it."""

    objective: str
    baseline: str | None
    targets: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]


class Gate(TypedDict):
    failed: bool
    description: str


class Health(TypedDict):
    status: str
    version: str
    runs: dict[str, int]


class AcceptanceResults(TypedDict):
    passed: bool
    metric_results: list[dict[str, Any]]
    error: NotRequired[str]


class AcceptanceTest(TypedDict):
    id: str
    name: str
    description: str
    app_id: str
    experiment_id: str
    control: dict[str, str]
    candidate: dict[str, str]
    metrics: list[dict[str, Any]]
    status: str
    results: AcceptanceResults | None
    created_at: str
    updated_at: str


# --- ensembles ----------------------------------------------------------------------------


class RunGroup(TypedDict):
    id: str
    instance_id: str
    options: dict[str, str]
    repetitions: int


class RuleTolerance(TypedDict):
    value: float
    type: str


class EvaluationRule(TypedDict):
    id: str
    statistics_path: str
    objective: str
    tolerance: RuleTolerance
    index: int


class EnsembleDefinition(TypedDict):
    id: str
    application_id: str
    name: str
    description: str
    run_groups: list[RunGroup]
    rules: list[EvaluationRule]
    created_at: str
    updated_at: str


class EnsembleChild(TypedDict):
    id: str
    run_group_id: str
    repetition: int
    status: RunState
    values: dict[str, float]
    """Each rule's value read from the child's statistics (rule id → value)."""


class EnsembleResult(TypedDict):
    """``GET .../runs/{id}/ensemble``: what the SDK keeps as ``RunResult.ensemble``."""

    id: str
    ensemble_definition_id: str
    status_v2: RunState
    selected_run_id: str | None
    run_groups: list[RunGroup]
    rules: list[EvaluationRule]
    child_runs: list[EnsembleChild]


# --- switchback tests ------------------------------------------------------------------------


class SwitchbackUnit(TypedDict):
    index: int
    instance_id: str
    duration_minutes: float
    arm: str  # "baseline" | "candidate"


class SwitchbackPlan(TypedDict):
    start: str | None
    unit_duration_minutes: float
    number_of_units: int
    units: NotRequired[list[SwitchbackUnit]]  # drawn when the test starts
    seed: NotRequired[int]


class SwitchbackComparison(TypedDict):
    baseline_instance_id: str
    candidate_instance_id: str


class SwitchbackTest(TypedDict):
    id: str
    name: str
    description: str
    app_id: str
    status: str  # "draft" | "started" | "completed" | "canceled"
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    comparison: SwitchbackComparison
    plan: SwitchbackPlan


class SwitchbackServed(TypedDict, total=False):
    unit_index: int
    arm: str


class SwitchbackRun(RunItem):
    switchback: SwitchbackServed


class SwitchbackRuns(TypedDict):
    runs: list[SwitchbackRun]


class SwitchbackArm(TypedDict):
    """One arm of ``GET .../switchback/{id}/summary`` (``experiments/summary.TargetSummary``)."""

    arm: str
    target: str  # its instance
    runs: int
    succeeded: int
    failed: int
    canceled: int
    unfinished: int
    metrics: dict[str, dict[str, float]]  # name → count, min, max, mean, median, p90, std


class SwitchbackSummary(TypedDict):
    arms: list[SwitchbackArm]


# --- shadow tests ----------------------------------------------------------------------------


class ShadowComparison(TypedDict):
    baseline_instance_id: str
    candidate_instance_ids: list[str]


class ShadowTermination(TypedDict):
    maximum_runs: int
    time: str | None


class CandidateError(TypedDict):
    baseline_run_id: str
    candidate_instance_id: str
    error: str


class ShadowTest(TypedDict):
    id: str
    name: str
    description: str
    app_id: str
    status: str  # draft | started | completed | canceled
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    comparisons: list[ShadowComparison]
    start_events: dict[str, str | None] | None
    termination_events: ShadowTermination
    shadowed_runs: int
    candidate_errors: list[CandidateError]


class ShadowRun(RunItem):
    shadow_role: Literal["baseline", "candidate"]
    result_value: float | None
    baseline_run_id: NotRequired[str]


class ShadowRuns(TypedDict):
    runs: list[ShadowRun]
