"""Runs across apps, newest first, filtered, one page at a time (the console's runs list).

A page is found by keyset: the cursor is the (created_at, id) of the last row shown,
so the next page starts right after it in the index instead of skipping N rows, and
costs the same on page 1 and page 2,000. Filters arrive as text from a form or a
bookmarked URL and are checked here, once, with messages that say what to type.
"""

from __future__ import annotations

import base64
import binascii
import builtins
from dataclasses import dataclass

from orchestrator.errors import Invalid
from orchestrator.experiments.inputs import parse_time
from orchestrator.formatting import in_local_zone
from orchestrator.models import Run, RunStatus
from orchestrator.store import Store
from orchestrator.store.overview import RunQuery

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class RunPage:
    runs: builtins.list[Run]
    next_cursor: str | None
    """Opaque text for the page after this one; ``None`` on the last page."""


def run_query(
    app_id: str | None = None,
    instance_id: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> RunQuery:
    """A query from filter text; blank means "any". Times are ISO 8601; one without a zone
    (a form's ``datetime-local``) is the daemon's local time, the time the console shows."""
    if status:
        try:
            checked: RunStatus | None = RunStatus(status)
        except ValueError:
            known = ", ".join(s.value for s in RunStatus)
            raise Invalid(f"unknown status {status!r}; pick one of {known}") from None
    else:
        checked = None
    after, before = parse_time(in_local_zone(since)), _end_of(until)
    if after is not None and before is not None and after > before:
        raise Invalid(f"since ({since}) is after until ({until}): no run can match")
    return RunQuery(
        app_id=app_id or None,
        instance_id=instance_id or None,
        status=checked,
        created_after=after,
        created_before=before,
    )


def _end_of(until: str | None) -> str | None:
    """An upper bound given to the minute (a form's datetime-local) includes that minute."""
    stamp = parse_time(in_local_zone(until))
    if stamp is not None and until is not None and len(until.strip()) <= 16:
        stamp = stamp[:17] + "59.999999Z"
    return stamp


def encode_cursor(run: Run) -> str:
    raw = f"{run.created_at}|{run.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    created, _, run_id = raw.partition("|")
    if not created or not run_id:
        raise Invalid("malformed page cursor: follow the 'Older' link of a previous page")
    return created, run_id


class RunSearch:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def page(
        self, query: RunQuery, cursor: str | None = None, limit: int = PAGE_SIZE
    ) -> RunPage:
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise Invalid(f"page size must be between 1 and {MAX_PAGE_SIZE}, got {limit}")
        before = decode_cursor(cursor) if cursor else None
        runs = await self.store.read.overview.runs(query, before, limit + 1)
        more = len(runs) > limit
        runs = runs[:limit]
        return RunPage(runs, encode_cursor(runs[-1]) if more and runs else None)

    async def matches(self, query: RunQuery, run_id: str) -> bool:
        return await self.store.read.overview.matches(query, run_id)
