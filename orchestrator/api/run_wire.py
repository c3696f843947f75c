"""Runs → the JSON of the SDK's ``RunInformation``, ``RunResult`` and ``Run`` models.

``metrics`` (flat, scalar values: ``runs/metrics``) is in every run's metadata;
``statistics`` only in a run *result*: the SDK's ``compare_runs`` reads the
metadata (``GET .../metadata``) and puts every field's value in a set, and a
nested ``statistics`` object there is ``TypeError: unhashable type: 'dict'``.
Nextmv itself has moved from statistics to metrics.
"""

from __future__ import annotations

from typing import Any

from orchestrator.api.wire import LOCAL_USER
from orchestrator.models import Failure, Run, RunStatus
from orchestrator.runs.backend import PROTECTIONS, WORKER
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.metrics import run_metrics

SDK_INLINE_BYTES = 5 * 1024 * 1024
"""The SDK's ``_MAX_RUN_SIZE``: above it the SDK fetches an output by its URL as JSON."""


def output_format(run: Run, text_output: bool = False) -> str:
    """Folder formats keep theirs; else ``json``, or ``text`` when the output is text
    (``RunService.output_is_text``): the SDK then reads it as a tar.gz from its URL."""
    if run.input_format in DIRECTORY_FORMATS:
        return run.input_format
    return "text" if text_output else "json"


def _common(run: Run, definition_id: str | None = None) -> dict[str, Any]:
    run_type = {"type": run.run_type.value}
    if definition_id:  # an ensemble run's: the SDK's clone_run sends it back
        run_type["definition_id"] = definition_id
    return {
        "application_id": run.app_id,
        "application_instance_id": run.instance_id,
        "application_version_id": run.version_id or "",
        "created_at": run.created_at,
        "run_type": run_type,
        "execution_class": run.execution_class or "local",
        "runtime": "local",
        "status_v2": run.status.value,
        "queuing_priority": run.priority,
        "queuing_disabled": run.queuing_disabled,
    }


def result_size(run: Run) -> int:
    """The output's size as the SDK reads it. A run that did not succeed has no result to
    fetch: its stray stdout above the SDK's inline size (a model cut off by its output
    limit) reads as none, where the SDK downloaded it and failed to parse it as JSON.
    The file itself stays at ``/output``, for the CLI and the console."""
    if run.status == RunStatus.SUCCEEDED or run.output_size <= SDK_INLINE_BYTES:
        return run.output_size
    return 0


def metadata(
    run: Run,
    statistics: bool = True,
    definition_id: str | None = None,
    text_output: bool = False,
) -> dict[str, Any]:
    out_type = output_format(run, text_output)
    meta = _common(run, definition_id) | {
        "duration": run.duration_ms or 0.0,
        "error": run.error or "",
        "format": {"input": {"type": run.input_format}, "output": {"type": out_type}},
        "input_size": run.input_size,
        "output_size": result_size(run),
        "options": {
            "active_options": dict(run.options),
            "options_summary": [
                {"name": k, "value": v, "source": run.option_sources.get(k, "run")}
                for k, v in run.options.items()
            ],
            "request_options": request_options(run),
        },
        "limits": run.limits.to_dict(),
        "executable_id": run.executable_id,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "exit_code": run.exit_code,
        "signal": run.signal,
        "cpu_seconds": run.cpu_seconds,
        "peak_memory_mb": run.peak_memory_mb,
        "metrics": run_metrics(run),
    }
    if statistics and run.statistics is not None:
        meta["statistics"] = run.statistics
    if run.failure is not None:
        meta["failure"] = failure(run.failure)
    if run.placement is not None and PROTECTIONS in run.placement:
        meta["isolation"] = run.placement[PROTECTIONS]
    if run.placement is not None and WORKER in run.placement:
        meta["worker"] = run.placement[WORKER]  # orch's own: the Dask worker that ran it
    if run.secrets_collection_id:
        meta["secrets_collection_id"] = run.secrets_collection_id  # the ID, never values
    if run.parent_run_id:
        meta["parent_run_id"] = run.parent_run_id  # an ensemble run's child
    if run.experiment_id:
        meta["experiment_id"] = run.experiment_id
        meta["experiment_type"] = run.experiment_type or "batch"
    if run.cloned_run_id or run.input_id:  # the SDK's clone reuses input_id, not uploading
        meta["tracking"] = tracking(run)
    return meta


def request_options(run: Run) -> dict[str, str]:
    """The options as the request sent them: "2" where the model was given "2.0". A run
    recorded before they were kept has the normalised ones its request set."""
    if run.request_options is not None:
        return dict(run.request_options)
    return {k: v for k, v in run.options.items() if run.option_sources.get(k) == "run"}


def tracking(run: Run) -> dict[str, Any]:
    """The SDK's ``RunTrackingMetadata``: the run it was cloned from, the managed input it
    was made from (each only when there is one)."""
    out: dict[str, Any] = {}
    if run.cloned_run_id:
        out["cloned_run_id"] = run.cloned_run_id
    if run.input_id:
        out["input_id"] = run.input_id
    return out


def failure(f: Failure) -> dict[str, Any]:
    """Why a run failed, as data: scripts and summaries read ``kind``, never the text."""
    return {"kind": f.kind.value, "limit": f.limit, "measured": f.measured}


def information(
    run: Run,
    statistics: bool = True,
    definition_id: str | None = None,
    text_output: bool = False,
) -> dict[str, Any]:
    """A run's information; ``statistics=False`` for ``GET .../metadata`` (see above);
    ``definition_id``: an ensemble run's definition; ``text_output``: its output is text."""
    return {
        "id": run.id,
        "name": run.name,
        "description": run.description,
        "user_email": LOCAL_USER,
        "metadata": metadata(run, statistics, definition_id, text_output),
    }


def list_item(run: Run) -> dict[str, Any]:
    """A ``Run`` list entry; statistics stay out (the SDK types them differently here)."""
    item = _common(run) | {
        "id": run.id,
        "user_email": LOCAL_USER,
        "name": run.name,
        "description": run.description,
        "error": run.error or "",
        "duration": run.duration_ms or 0.0,
        "executable_id": run.executable_id,  # orch's own: which push a devint run ran
    }
    if run.experiment_id:
        item["experiment_id"] = run.experiment_id
    if run.input_id:
        item["input_id"] = run.input_id
    return item
