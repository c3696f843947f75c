"""Shadow tests and their runs → the JSON of the SDK's ``ShadowTest``,
``ShadowTestMetadata`` and ``Run`` models (extra keys, which the SDK ignores, say what
only orch records: how many baseline runs were shadowed, candidates that failed)."""

from __future__ import annotations

from typing import Any

from orchestrator.api import run_wire
from orchestrator.api.wire import live_test_metadata
from orchestrator.experiments.shadow import ShadowView
from orchestrator.shadow_models import ShadowLink, ShadowTest


def shadow_test(t: ShadowTest, links: list[ShadowLink] | None = None) -> dict[str, Any]:
    return live_test_metadata(t) | {
        "started_at": t.started_at,
        "completed_at": t.ended_at,
        "comparisons": [
            {
                "baseline_instance_id": c.baseline_instance_id,
                "candidate_instance_ids": list(c.candidate_instance_ids),
            }
            for c in t.comparisons
        ],
        "start_events": {"time": t.start_time} if t.start_time else None,
        "termination_events": {"maximum_runs": t.maximum_runs, "time": t.end_time},
        "grouped_distributional_summaries": [],
        "shadowed_runs": t.shadowed_runs,
        "candidate_errors": [
            {
                "baseline_run_id": k.baseline_run_id,
                "candidate_instance_id": k.candidate_instance_id,
                "error": k.error,
            }
            for k in links or []
            if k.candidate_run_id is None
        ],
    }


def runs(view: ShadowView) -> dict[str, Any]:
    """Baseline and candidate runs, oldest first; each candidate names its baseline run,
    and each run its ``result.value`` (what a comparison reads first)."""
    baseline_of = {k.candidate_run_id: k.baseline_run_id for k in view.links}
    items = []
    for run in view.runs:
        result = (run.statistics or {}).get("result")
        value = result.get("value") if isinstance(result, dict) else None
        item = run_wire.list_item(run) | {"result_value": value}
        if run.id in baseline_of:
            item |= {"shadow_role": "candidate", "baseline_run_id": baseline_of[run.id]}
        else:
            item |= {"shadow_role": "baseline"}
        items.append(item)
    return {"runs": items}
