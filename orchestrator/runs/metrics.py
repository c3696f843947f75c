"""A run's metrics as Nextmv shows them: one flat object of named scalar values.

Nextmv's newer output convention puts a top-level ``metrics`` object in the output
(``outputs/metrics.json`` for folder formats); older apps only write ``statistics``,
from which the platform derives the metrics. Either way the run's metadata carries
``metrics`` flattened into dotted keys with scalar leaves, because that is what the
SDK's ``compare_runs`` puts in a set per key: a nested dict there is a crash
(``unhashable type: 'dict'``).

Runs store what the model (or a tracked run) reported; the flat form is computed on
read, so runs recorded before metrics existed get them too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orchestrator.models import Run

Scalar = str | int | float | bool
STATISTICS_PARTS = ("run", "result")
"""The parts of ``statistics`` the platform derives metrics from (``schema`` is not one)."""


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Scalar]]:
    """Scalar leaves of nested objects, named with dots; lists and nulls are left out."""
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from flatten(value, f"{key}.")
        elif isinstance(value, str | int | float | bool):
            yield key, value


def from_statistics(statistics: dict[str, Any] | None) -> dict[str, Scalar]:
    """What the platform shows as metrics for an app that only writes ``statistics``:
    its ``run`` and ``result`` parts, e.g. ``result.value``, ``result.custom.gap``."""
    stats = statistics or {}
    return dict(
        item
        for part in STATISTICS_PARTS
        if isinstance(stats.get(part), dict)
        for item in flatten(stats[part], f"{part}.")
    )


def reported(doc: Any, whole: bool = False) -> dict[str, Any] | None:
    """The ``metrics`` object of an output document (``whole``: the document is the
    metrics file itself, possibly wrapped as ``{"metrics": {...}}``)."""
    if not isinstance(doc, dict):
        return None
    if whole and not (len(doc) == 1 and "metrics" in doc):
        return doc
    value = doc.get("metrics")
    return value if isinstance(value, dict) else None


def run_metrics(run: Run) -> dict[str, Scalar]:
    """The metrics of a run's metadata: its own if it reported any, else its statistics'."""
    if run.metrics:
        return dict(flatten(run.metrics))
    return from_statistics(run.statistics)
