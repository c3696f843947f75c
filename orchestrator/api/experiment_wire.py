"""Inputs, input sets and experiments → the JSON of the SDK's models."""

from __future__ import annotations

from typing import Any

from orchestrator.api import run_wire
from orchestrator.experiments.analysis import target_of
from orchestrator.models import Experiment, InputSet, ManagedInput, Run


def managed_input(i: ManagedInput) -> dict[str, Any]:
    return {
        "id": i.id,
        "name": i.name,
        "description": i.description,
        "run_id": i.run_id,
        "format": {"input": {"type": i.format}, "output": {"type": "json"}},
        "size": i.size,
        "sha256": i.sha256,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
    }


def input_set(s: InputSet, members: list[ManagedInput]) -> dict[str, Any]:
    return {
        "app_id": s.app_id,
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "input_ids": list(s.input_ids),
        "inputs": [managed_input(i) for i in members],
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    }


def experiment_metadata(
    e: Experiment, counts: dict[str, int], grouped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """``grouped``: the grouped distributional summaries (lists leave them out: they cost
    a read of every run)."""
    finished = sum(counts.get(s, 0) for s in ("succeeded", "failed", "canceled"))
    data: dict[str, Any] = {
        "id": e.id,
        "app_id": e.app_id,
        "name": e.name,
        "description": e.description,
        "type": e.type.value,
        "status": e.status.value,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "ended_at": e.ended_at,
        "number_of_requested_runs": e.requested_runs,
        "number_of_runs": sum(counts.values()),
        "number_of_completed_runs": finished,
        "run_counts": counts,
        "option_sets": e.option_sets,
    }
    if grouped is not None:
        data["grouped_distributional_summaries"] = grouped
    return data


def experiment(
    e: Experiment, counts: dict[str, int], grouped: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    instance_ids = [t for t in e.targets if not t.startswith("version:")]
    version_ids = [t.split(":", 1)[1] for t in e.targets if t.startswith("version:")]
    return experiment_metadata(e, counts, grouped) | {
        "input_set_id": e.input_set_id or "",
        "instance_ids": instance_ids,
        "version_ids": version_ids,
        "targets": e.targets,
        "baseline": e.baseline,
        "objective": e.objective,
        "seed": e.seed,
    }


def experiment_run(run: Run, input_set_id: str | None, input_name: str) -> dict[str, Any]:
    """An SDK ``Run`` plus what a comparison table needs (the SDK ignores extra keys)."""
    result = (run.statistics or {}).get("result")
    item = run_wire.list_item(run) | {
        "experiment_id": run.experiment_id,
        "input_id": run.input_id or "",
        "input_name": input_name,
        "repetition": run.repetition,
        "input_set_id": run.input_set_id or input_set_id or "",
        "target": target_of(run),
        "result_value": result.get("value") if isinstance(result, dict) else None,
    }
    if run.option_set:
        item["option_set"] = run.option_set
    if run.scenario_id:
        item["scenario_id"] = run.scenario_id
    return item
