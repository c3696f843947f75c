"""Acceptance tests → the JSON of the SDK's ``AcceptanceTest``."""

from __future__ import annotations

from typing import Any

from orchestrator.experiments.acceptance import AcceptanceView


def acceptance_test(view: AcceptanceView) -> dict[str, Any]:
    t = view.test
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "app_id": t.app_id,
        "experiment_id": t.id,
        "control": {"instance_id": t.control_instance_id, "version_id": t.control_version_id},
        "candidate": {
            "instance_id": t.candidate_instance_id,
            "version_id": t.candidate_version_id,
        },
        "metrics": t.metrics,
        "status": view.status.value,
        "results": view.results,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    }
