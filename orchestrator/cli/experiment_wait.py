"""Waiting at the CLI for an experiment to end: a batch experiment, an acceptance test's,
a scenario test. One loop and one Ctrl-C for the three commands that wait.

The runs belong to the daemon: Ctrl-C stops the waiting, never the experiment, and says
how to follow (and, where the command has one, cancel) it. The hold starts as soon as
the experiment exists, not only once the waiting does: a Ctrl-C in between had ended the
command with typer's own exit 130 and nothing said.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from orchestrator.cli import experiment_view as view
from orchestrator.cli.output import say
from orchestrator.client import OrchClient
from orchestrator.client.types import ExperimentMetadata

POLL_SECONDS = 0.2


@contextmanager
def keeps_running(what: str, follow: str, cancel: str | None = None) -> Iterator[None]:
    """Ctrl-C inside: ``what`` (``experiment nap``) keeps running; exit 130."""
    try:
        yield
    except KeyboardInterrupt:
        lines = [f"stopped waiting; {what} keeps running.", f"  follow it: {follow}"]
        if cancel is not None:
            lines.append(f"  cancel it: {cancel}")
        say("\n".join(lines))
        raise typer.Exit(130) from None


def until_ended(api: OrchClient, app_id: str, exp_id: str) -> ExperimentMetadata:
    """Poll the experiment's metadata until it has ended, with a progress bar on stderr."""
    with view.progress() as bar:
        task = bar.add_task(exp_id, total=None)
        while True:
            meta = api.batches.metadata(app_id, exp_id)
            bar.update(
                task,
                completed=meta["number_of_completed_runs"],
                total=meta["number_of_requested_runs"],
                description=view.progress_label(meta),
            )
            if meta["status"] != "started":
                return meta
            time.sleep(POLL_SECONDS)
