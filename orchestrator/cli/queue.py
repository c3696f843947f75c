"""``orch queue``: what waits and what runs, across every app (the account's queue)."""

from __future__ import annotations

from pathlib import Path

import typer

from orchestrator.cli.context import HomeOption, JsonOption, client
from orchestrator.cli.output import emit, errors_to_exit, say, table
from orchestrator.client.types import Queue

app = typer.Typer(add_completion=False)  # completion is the root command's

QUEUE_COLUMNS = [
    ("id", "id"),
    ("app", "application_id"),
    ("instance", "application_instance_id"),
    ("name", "name"),
    ("status", "status_v2"),
    ("priority", "queuing_priority"),
    ("created", "created_at"),
]


@app.command("queue")
def show_queue(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """List the queued and running runs of every app, oldest first."""
    with errors_to_exit(), client(home) as api:
        data = api.queue()

    def human(d: Queue) -> None:
        if not d["runs"]:
            say("nothing queued or running")
            return
        table(d["runs"], QUEUE_COLUMNS)

    emit(data, as_json, human)
