"""Shadow tests: runs on a baseline instance trigger runs on candidate instances.

Plain data shared by the store, the domain and the API (the SDK's ``ShadowTest``,
``TestComparison``, ``StartEvents`` and ``TerminationEvents``). A test's status only
moves along ``SHADOW_TRANSITIONS``; the store refuses any other move.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime

from orchestrator.errors import Invalid
from orchestrator.models import TIMESTAMP_FORMAT, now

MAX_RUNS = 300
"""The SDK's bound on ``termination_events.maximum_runs`` (1 to 300)."""
MAX_CANDIDATES = 20
"""Candidate instances one test may name in all: each baseline run fans out to its own."""


class ShadowStatus(enum.StrEnum):
    """The SDK's ``ExperimentStatus`` values a shadow test takes."""

    DRAFT = "draft"
    STARTED = "started"
    COMPLETED = "completed"
    CANCELED = "canceled"

    @property
    def ended(self) -> bool:
        return self in (ShadowStatus.COMPLETED, ShadowStatus.CANCELED)


SHADOW_TRANSITIONS: dict[ShadowStatus, frozenset[ShadowStatus]] = {
    # started: by hand or at the start time; completed: maximum_runs, the end time or
    # a stop meant to complete; canceled: a stop meant to cancel.
    ShadowStatus.DRAFT: frozenset({ShadowStatus.STARTED}),
    ShadowStatus.STARTED: frozenset({ShadowStatus.COMPLETED, ShadowStatus.CANCELED}),
    ShadowStatus.COMPLETED: frozenset(),
    ShadowStatus.CANCELED: frozenset(),
}


class StopIntent(enum.StrEnum):
    """The SDK's ``StopIntent``: how a stopped test ends."""

    COMPLETE = "complete"
    CANCEL = "cancel"

    @property
    def status(self) -> ShadowStatus:
        return ShadowStatus.COMPLETED if self == StopIntent.COMPLETE else ShadowStatus.CANCELED


@dataclass(frozen=True)
class Comparison:
    """Runs on ``baseline_instance_id`` are shadowed on each candidate instance."""

    baseline_instance_id: str
    candidate_instance_ids: tuple[str, ...]

    @property
    def instance_ids(self) -> tuple[str, ...]:
        return (self.baseline_instance_id, *self.candidate_instance_ids)


@dataclass
class ShadowTest:
    id: str
    app_id: str
    name: str
    comparisons: list[Comparison]
    maximum_runs: int
    description: str = ""
    status: ShadowStatus = ShadowStatus.DRAFT
    start_time: str | None = None
    """When a draft starts by itself (``start_events.time``); ``None``: by hand."""
    end_time: str | None = None
    """When a started test completes (``termination_events.time``); ``None``: no limit."""
    shadowed_runs: int = 0
    """Baseline runs shadowed so far; the test completes when it reaches ``maximum_runs``."""
    created_at: str = field(default_factory=now)
    updated_at: str = field(default_factory=now)
    started_at: str | None = None
    ended_at: str | None = None

    def candidates_of(self, instance_id: str) -> tuple[str, ...]:
        """The candidate instances a run on ``instance_id`` triggers (none: not a baseline)."""
        found: tuple[str, ...] = ()
        for c in self.comparisons:
            if c.baseline_instance_id == instance_id:
                found += c.candidate_instance_ids
        return found


@dataclass(frozen=True)
class ShadowLink:
    """One candidate of one shadowed baseline run: the run made, or why none was."""

    test_id: str
    baseline_run_id: str
    candidate_instance_id: str
    candidate_run_id: str | None
    error: str = ""
    created_at: str = field(default_factory=now)


def timestamp(value: str | None, what: str) -> str | None:
    """An RFC 3339 time from a client as orch stores times (UTC, fixed width), or ``None``.

    A time without an offset is the laptop's local time (``datetime.now()`` in a
    script); Go's zero time (year 1), which Nextmv sends for "no limit", is ``None``.
    """
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{what} must be an RFC 3339 time, got {value!r}") from None
    if parsed.year <= 1:
        return None
    return parsed.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
