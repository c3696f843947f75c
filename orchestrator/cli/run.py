"""``orch app run``: start a run (optionally wait for it), and ``orch app run <action>``.

``orch app run -a APP ...`` is both a command and a group, as in the nextmv CLI:
without a sub-command it creates a run; with one it reads or manages runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, client
from orchestrator.cli.flags import (
    CpuOption,
    DiskMbOption,
    MemoryOption,
    OptionsOption,
    OutputMbOption,
    TimeoutOption,
    limits_body,
    pairs,
    parse_options,
)
from orchestrator.cli.output import emit, errors_to_exit, fail, print_json, record, say, table
from orchestrator.cli.run_io import (
    configuration_body,
    deliver,
    download,
    prepare_input,
    runs_path,
    wait_finished,
)
from orchestrator.cli.version import short
from orchestrator.models import RunStatus

InputFormat = Literal["json", "text", "multi-file", "csv-archive"]
RUN_COLUMNS = [
    ("id", "id"),
    ("status", "status_v2"),
    ("instance", "application_instance_id"),
    ("version", "application_version_id"),
    ("created", "created_at"),
    ("duration ms", "duration_ms"),
    ("error", "error_line"),
]

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=True,
)

RunIdOption = typer.Option(..., "--run-id", "-r", help="Run ID.")
OutputFileOption = typer.Option(
    None, "--output", dir_okay=False, help="Write the output to this file instead of stdout."
)


@app.callback()
def create(
    ctx: typer.Context,
    app_id: str | None = typer.Option(None, "--app-id", "-a", help="Application ID."),
    source: str | None = typer.Option(
        None,
        "--input",
        "-i",
        metavar="FILE|DIR|-",
        help="Input: a JSON or text file, a folder (sent as tar.gz), or - for stdin "
        "(default: stdin when it is not a terminal).",
    ),
    instance: str | None = typer.Option(
        None, "--instance", help="Instance to run (default: devint; 'default' = the app's)."
    ),
    options: list[str] | None = OptionsOption,
    name: str = typer.Option("", "--name", "-n", help="Run name."),
    description: str = typer.Option("", "--description", "-d", help="Run description."),
    priority: int | None = typer.Option(None, "--priority", min=1, max=9, help="1 (first) to 9."),
    timeout: float | None = TimeoutOption,
    memory_mb: int | None = MemoryOption,
    cpu_seconds: float | None = CpuOption,
    output_mb: int | None = OutputMbOption,
    disk_mb: int | None = DiskMbOption,
    fmt: InputFormat | None = typer.Option(
        None, "--format", help="Input format (default: the app's; multi-file for a folder)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the end and print the output."),
    output: Path | None = OutputFileOption,
    logs: bool = typer.Option(False, "--logs", help="With --wait: print the run's log on stderr."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Run an app (on devint by default), or read and manage its runs with an action.

    Without --wait: prints the run ID, so RUN=$(orch app run -a APP -i in.json) works.

    With --wait: prints the output (--json: the whole result), a summary on stderr.

    Exit code with --wait: 0 if the run succeeded, 1 if it failed, 2 if canceled.
    """
    if ctx.invoked_subcommand is not None:
        return
    if app_id is None:
        fail("missing option -a/--app-id")
    limits = limits_body(memory_mb, cpu_seconds, timeout, output_mb, disk_mb)
    configuration = configuration_body(priority, limits)
    body = {"options": parse_options(options), "name": name, "description": description}
    with errors_to_exit(), client(home) as api, tempfile.TemporaryDirectory() as tmp:
        payload, kind = prepare_input(api, app_id, source, fmt, Path(tmp))
        if kind:
            configuration["format"] = {"input": {"type": kind}}
        params = {"instance_id": instance or "devint"}
        created = api.post(
            runs_path(app_id), payload | body | {"configuration": configuration}, params=params
        )
        if not wait:
            emit(created, as_json, lambda d: typer.echo(d["run_id"]))
            return
        say(f"run {created['run_id']} started, waiting for it to finish")
        code = deliver(
            api, app_id, wait_finished(api, app_id, created["run_id"]), output, as_json, logs
        )
    raise typer.Exit(code)


@app.command("result")
def result(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    output: Path | None = OutputFileOption,
    wait: bool = typer.Option(False, "--wait", help="Wait if the run has not finished yet."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Print the output of a finished run (--json: the whole result object).

    Exits with 0 if the run succeeded, 1 if it failed, 2 if it was canceled.
    """
    with errors_to_exit(), client(home) as api:
        info = (
            wait_finished(api, app_id, run_id)
            if wait
            else api.get(runs_path(app_id, run_id, "/metadata"))
        )
        status = info["metadata"]["status_v2"]
        if not RunStatus(status).finished:
            fail(f"run {run_id} is {status}; add --wait to wait for it")
        code = deliver(api, app_id, info, output, as_json, logs=False)
    raise typer.Exit(code)


@app.command("metadata")
def metadata(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a run's status, timings, resources, options (with their sources) and limits."""
    with errors_to_exit(), client(home) as api:
        data = api.get(runs_path(app_id, run_id, "/metadata"))

    def human(d: dict[str, Any]) -> None:
        view = _metadata_view(d)
        record(view, [(k, k) for k in view])

    emit(data, as_json, human)


def _metadata_view(info: dict[str, Any]) -> dict[str, Any]:
    m = info["metadata"]
    summary = (m.get("options") or {}).get("options_summary") or []
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
        "options": ", ".join(f"{o['name']}={o['value']} ({o['source']})" for o in summary),
        "limits": pairs(m.get("limits")),
        "value": ((m.get("statistics") or {}).get("result") or {}).get("value"),
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
        # The signed URL serves the raw bytes; .../input answers text as a JSON string (SDK).
        url = httpx.URL(
            api.get(runs_path(app_id, run_id, "/input"), params={"format": "url"})["url"]
        )
        # Passed apart: the client's params would otherwise replace the URL's own query.
        download(api, str(url.copy_with(query=None)), output, dict(url.params))


@app.command("logs")
def run_logs(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Print lines as they come, until the run ends."
    ),
    home: Path | None = HomeOption,
) -> None:
    """Print a run's log (what the model wrote on stderr)."""
    with errors_to_exit(), client(home) as api:
        if not follow:
            sys.stdout.write(api.get(runs_path(app_id, run_id, "/logs"))["log"])
            return
        since: str | None = None
        while True:
            page = api.get(
                runs_path(app_id, run_id, "/logs/live"), params={"since": since} if since else {}
            )
            for item in page["items"]:
                sys.stdout.write(item["log"] + "\n")
            sys.stdout.flush()
            since = page["next_page_token"]
            if RunStatus(page["status_v2"]).finished:
                return
            time.sleep(float(page.get("next_available_in_seconds") or 0))


@app.command("list")
def listruns_path(
    app_id: str = AppOption,
    status: RunStatus | None = typer.Option(None, "--status", help="Only runs in this status."),
    instance: str | None = typer.Option(None, "--instance", help="Only runs of this instance."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many runs."),
    page_token: str | None = typer.Option(None, "--page-token", help="Continue a listing."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List an app's runs, newest first."""
    params = {"status": status, "instance_id": instance, "limit": limit, "pagetoken": page_token}
    with errors_to_exit(), client(home) as api:
        data = api.get(runs_path(app_id), params={k: v for k, v in params.items() if v is not None})

    emit(data, as_json, lambda d: table([_run_row(r) for r in d["runs"]], RUN_COLUMNS))
    if data.get("next_page_token"):
        say(
            f"more runs: orch app run list -a {app_id} --limit {limit} "
            f"--page-token '{data['next_page_token']}'"
        )


def _run_row(run: dict[str, Any]) -> dict[str, Any]:
    error = (run.get("error") or "").split("\n", 1)[0]
    return run | {"duration_ms": round(run.get("duration") or 0) or None, "error_line": error}


@app.command("cancel")
def cancel(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Cancel a queued or running run (its processes are stopped)."""
    with errors_to_exit(), client(home) as api:
        data = api.patch(runs_path(app_id, run_id, "/cancel"))
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
        api.delete(runs_path(app_id, run_id))
    say(f"deleted run {run_id}")
