"""``orch app run result|metadata|input|logs|list|cancel|delete``: read and manage runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import WaitOption, tail_option
from orchestrator.cli.output import (
    ShownSink,
    at_terminal,
    command_line,
    emit,
    errors_to_exit,
    fail,
    open_output,
    print_json,
    record,
    say,
    shown,
    table,
)
from orchestrator.cli.run import OutputFileOption
from orchestrator.cli.run_output import (
    ARCHIVE_FORMATS,
    EXIT_CODES,
    archive_hint,
    deliver,
    summary,
)
from orchestrator.cli.run_wait import Waiter
from orchestrator.cli.version import short
from orchestrator.client import OrchClient
from orchestrator.client.types import FINISHED, RunInfo, RunItem, RunPage, RunState
from orchestrator.formatting import limits

app = typer.Typer()

RunIdOption = typer.Option(..., "--run-id", "-r", callback=an_id, help="Run ID.")
RUN_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("status", "status_v2"),
    ("instance", "application_instance_id"),
    ("version", "version"),
    ("created", "created_at"),
    ("duration ms", "duration_ms"),
    ("error", "error_line"),
]


@app.command("result")
def result(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    output: Path | None = OutputFileOption,
    wait: bool = WaitOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the output of a finished run (--json: the whole result object).

    Exits with 0 if the run succeeded, 1 if it failed, 2 if it was canceled.
    """
    with errors_to_exit(), client(home) as api:
        if wait:
            info = Waiter(api, app_id, run_id, tail=False, home_flag=_home_flag(home)).wait()
        else:
            info = api.runs.metadata(app_id, run_id)
        status = info["metadata"]["status_v2"]
        if status not in FINISHED:
            fail(f"run {run_id} is {status}; add --wait to wait for it")
        code = deliver(api, app_id, info, output, as_json, logs=False, home=home)
    raise typer.Exit(code)


def _home_flag(home: Path | None) -> str:
    return f" --home {home}" if home else ""


@app.command("metadata")
def metadata(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a run's status, timings, resources, options (with their sources) and limits."""
    with errors_to_exit(), client(home) as api:
        data = api.runs.metadata(app_id, run_id)
        is_ensemble = (data["metadata"].get("run_type") or {}).get("type") == "ensemble"
        ensemble = api.ensembles.result(app_id, run_id) if is_ensemble and not as_json else None

    def human(d: RunInfo) -> None:
        view = _metadata_view(d)
        if ensemble is not None:
            view["ensemble"] = f"definition {ensemble['ensemble_definition_id']}"
        record(view, [(k, k) for k in view])
        if ensemble is not None:
            from orchestrator.cli import ensemble_view

            ensemble_view.show_children(ensemble)
            ensemble_view.say_winner(ensemble)

    emit(data, as_json, human)


def _metadata_view(info: RunInfo) -> dict[str, Any]:
    m = info["metadata"]
    chosen = m["options"]["options_summary"]
    cpu, peak = m.get("cpu_seconds"), m.get("peak_memory_mb")
    return {
        "id": info["id"],
        "name": info.get("name"),
        "status": m["status_v2"],
        "instance": m["application_instance_id"],
        "version": m["application_version_id"],
        "executable": short(m.get("executable_id")),
        "format": m["format"]["input"]["type"],
        "created": m["created_at"],
        "started": m.get("started_at"),
        "ended": m.get("ended_at"),
        "duration": f"{m['duration']:.0f} ms" if m.get("ended_at") else None,
        "exit code": m.get("exit_code"),
        "signal": m.get("signal"),
        "cpu": f"{cpu:.3f} s" if cpu is not None else None,
        "peak memory": f"{peak:.1f} MiB" if peak is not None else None,
        "options": ", ".join(f"{o['name']}={o['value']} ({o['source']})" for o in chosen),
        "limits": ", ".join(f"{name} {value}" for name, value in limits(m.get("limits"))),
        "value": (m.get("metrics") or {}).get("result.value"),
        "tracked": "yes: ran elsewhere"
        if (m.get("run_type") or {}).get("type") == "external"
        else None,
        "ensemble": f"child of run {m['parent_run_id']}" if m.get("parent_run_id") else None,
        "error": m.get("error"),
    }


@app.command("input")
def run_input(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    output: Path | None = OutputFileOption,
    home: Path | None = HomeOption,
) -> None:
    """Print the input a run received, byte for byte (a tar.gz for folder inputs)."""
    with errors_to_exit(), client(home) as api:
        if output is not None:
            with open_output(output) as fh:
                api.runs.download_input(app_id, run_id, fh)
            say(f"wrote {output}")
            return
        if sys.stdout.isatty():
            _refuse_an_archive(api, app_id, run_id, home)
        sys.stdout.flush()
        api.runs.download_input(app_id, run_id, sys.stdout.buffer)
        sys.stdout.buffer.flush()


def _refuse_an_archive(api: OrchClient, app_id: str, run_id: str, home: Path | None) -> None:
    """A folder input is a tar.gz: at a terminal it would only garble the screen, so it
    is refused there, with the command that saves it, as ``result`` does for an output."""
    info = api.runs.metadata(app_id, run_id)
    if info["metadata"]["format"]["input"]["type"] in ARCHIVE_FORMATS:
        fail(archive_hint("input", "input", app_id, run_id, home))


@app.command("logs")
def run_logs(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    tail: bool = tail_option("Print lines as they come, until the run ends."),
    home: Path | None = HomeOption,
) -> None:
    """Print a run's log (what the model wrote on stderr).

    With --tail: then the run's summary on stderr, and the exit code of its status, as
    ``orch app run --tail`` gives: 0 if it succeeded, 1 if it failed, 2 if canceled.
    """
    with errors_to_exit(), client(home) as api:
        if not tail:
            _print_log(api, app_id, run_id)
            return
        try:
            info = _follow(api, app_id, run_id)
        except KeyboardInterrupt:
            where = (("-a", app_id), ("-r", run_id))
            say(
                f"\nstopped following; run {run_id} goes on unless it has ended.\n"
                f"  cancel it: {command_line('app run cancel', *where, home=home)}"
            )
            raise typer.Exit(130) from None
    say(summary(info, full_error=False))  # the log is on the screen: its first line will do
    raise typer.Exit(EXIT_CODES[info["metadata"]["status_v2"]])


def _print_log(api: OrchClient, app_id: str, run_id: str) -> None:
    """The whole log, streamed: into a pipe or a file byte for byte (``logs > file`` is the
    log), at a terminal made harmless. Not the API's ``/logs``: that answer is JSON, cut
    to the log's last 5 MiB with a note that would land in the file."""
    sys.stdout.flush()
    if not at_terminal(sys.stdout):
        api.runs.download_log(app_id, run_id, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return
    sink = ShownSink(sys.stdout)
    api.runs.download_log(app_id, run_id, sink)
    sink.close()


def _follow(api: OrchClient, app_id: str, run_id: str) -> RunInfo:
    """Print the log's lines as they come until the run ends; the run as it ended."""
    since: str | None = None
    while True:
        page = api.runs.live_logs(app_id, run_id, since)
        for item in page["items"]:
            sys.stdout.write(shown(item["log"], sys.stdout) + "\n")
        sys.stdout.flush()
        since = page["next_page_token"]
        if page["status_v2"] in FINISHED and not page["items"]:
            return api.runs.metadata(app_id, run_id)
        time.sleep(float(page.get("next_available_in_seconds") or 0))


@app.command("list")
def list_runs(
    app_id: str = AppOption,
    status: RunState | None = typer.Option(None, "--status", help="Only runs in this status."),
    instance: str | None = typer.Option(
        None, "--instance-id", "--instance", callback=an_id, help="Only runs of this instance."
    ),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many runs."),
    page_token: str | None = typer.Option(None, "--page-token", help="Continue a listing."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List an app's runs, newest first."""
    with errors_to_exit(), client(home) as api:
        data = api.runs.list(app_id, status, instance, limit, page_token)

    def human(d: RunPage) -> None:
        table([_run_row(r) for r in d["runs"]], RUN_COLUMNS)

    emit(data, as_json, human)
    if data.get("next_page_token"):
        say(
            f"more runs: orch app run list -a {app_id} --limit {limit} "
            f"--page-token '{data['next_page_token']}'"
        )


def _run_row(run: RunItem) -> dict[str, Any]:
    error = (run.get("error") or "").split("\n", 1)[0]
    duration = round(run.get("duration") or 0) or None
    return {**run, "duration_ms": duration, "error_line": error, "version": version_of(run)}


def version_of(run: RunItem) -> str | None:
    """The run's version, or for a run without one (devint's) the push it ran, as
    ``@<executable>``: runs of a day of pushes told apart without a column more."""
    if run["application_version_id"]:
        return run["application_version_id"]
    executable = short(run.get("executable_id"))
    return f"@{executable}" if executable else None


@app.command("cancel")
def cancel(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel a queued or running run (its processes are stopped)."""
    with errors_to_exit(), client(home) as api:
        data = api.runs.cancel(app_id, run_id)
    if as_json:
        print_json(data)
    say(f"run {run_id} is {data['metadata']['status_v2']}")


@app.command("delete")
def delete(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete its input, output and log."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a finished run with its input, output and log (needs --confirm)."""
    if not confirm:
        fail(
            f"deleting run {run_id} also deletes its input, output and log; "
            "add --confirm to go ahead"
        )
    with errors_to_exit(), client(home) as api:
        api.runs.delete(app_id, run_id)
    say(f"deleted run {run_id}")
