"""Ensemble definitions and ensemble runs → the JSON the SDK reads."""

from __future__ import annotations

from typing import Any

from orchestrator.experiments.ensemble_runs import EnsembleView


def ensemble_result(view: EnsembleView) -> dict[str, Any]:
    """``GET /runs/{id}/ensemble`` (the SDK keeps it as ``RunResult.ensemble``): the
    definition the run used, the chosen child, and every child with the values read."""
    record, run = view.record, view.run
    settled = {item["id"]: item for item in record.evaluation or []}
    children = [
        settled.get(c.id)
        or {
            "id": c.id,
            "run_group_id": c.option_set,
            "repetition": c.repetition,
            "status": c.status.value,
            "values": {},
        }
        for c in view.children
    ]
    return {
        "id": run.id,
        "ensemble_definition_id": record.definition.id,
        "status_v2": run.status.value,
        "selected_run_id": record.winner_run_id,
        "run_groups": [g.to_dict() for g in record.definition.run_groups],
        "rules": [r.to_dict() for r in record.definition.rules],
        "child_runs": children,
    }
