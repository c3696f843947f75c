"""What each app has been doing: run counts by status, last run, last push.

The console's apps page shows it next to every app; it is read in a handful of
indexed queries whatever the number of runs (counts come from an index alone).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.models import App
from orchestrator.store import Store


@dataclass(frozen=True)
class AppActivity:
    app: App
    counts: dict[str, int] = field(default_factory=dict)
    last_run_at: str | None = None
    last_push_at: str | None = None

    @property
    def runs(self) -> int:
        return sum(self.counts.values())


async def app_activity(store: Store) -> list[AppActivity]:
    read = store.read
    counts = await read.overview.status_counts()
    return [
        AppActivity(
            app=app,
            counts=counts.get(app.id, {}),
            last_run_at=await read.overview.last_run_at(app.id),
            last_push_at=await read.overview.last_push_at(app.id),
        )
        for app in await read.apps.list()
    ]


async def last_push_at(store: Store, app_id: str) -> str | None:
    return await store.read.overview.last_push_at(app_id)
