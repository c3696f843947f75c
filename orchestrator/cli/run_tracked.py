"""``orch app run track|compare|assets``: tracked runs, comparing runs, a run's assets.

What ``compare`` compares, and how, is ``runs.compare``'s (the console's compare page
shows the same table); this module fetches the runs and prints it."""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import finite
from orchestrator.cli.output import (
    emit,
    errors_to_exit,
    fail,
    open_output,
    print_json,
    say,
    table,
    writable_file,
)
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import AssetList, RunInfo
from orchestrator.runs.compare import (
    MAX_RUNS,
    MIN_RUNS,
    cell_text,
    comparison,
    enough,
    input_digest,
    reads_input,
    table_rows,
)

app = typer.Typer()

RunIdOption = typer.Option(..., "--run-id", "-r", callback=an_id, help="Run ID.")


@app.command("track")
def track(
    app_id: str = AppOption,
    input_file: Path = typer.Option(
        ..., "--input", "-i", exists=True, dir_okay=False, help="The input the run had."
    ),
    output_file: Path | None = typer.Option(
        None, "--output", "-u", exists=True, dir_okay=False, help="The output it gave."
    ),
    failed: bool = typer.Option(False, "--failed", help="It failed (default: it succeeded)."),
    error: str = typer.Option("", "--error", help="Why it failed (implies --failed)."),
    duration: float | None = typer.Option(
        None, "--duration", min=0, callback=finite, help="Seconds it ran."
    ),
    log_file: Path | None = typer.Option(
        None, "--log", exists=True, dir_okay=False, help="Its log."
    ),
    instance: str | None = typer.Option(
        None, "--instance-id", callback=an_id, help="Instance to file it under."
    ),
    name: str = typer.Option("", "--name", "-n", help="Run name."),
    description: str = typer.Option("", "--description", "-d", help="Run description."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Record a run that happened elsewhere (a tracked run); prints its ID.

    Nothing executes: the run is finished at once, with the given output, status,
    duration and log."""
    # An error message belongs to a failed run: a succeeded one would drop it.
    result: dict[str, Any] = {"status": "failed" if failed or error else "succeeded"}
    if duration is not None:
        result["execution_duration"] = duration * 1000
    if error:
        result["error_message"] = error
    files = {"input": input_file}
    if output_file is not None:
        files["output_upload_id"] = output_file
    if log_file is not None:
        files["error_upload_id"] = log_file
    body = {"name": name, "description": description}
    with errors_to_exit(), client(home) as api:
        created = api.runs.track(app_id, body, result, files, instance)
    emit(created, as_json, lambda d: typer.echo(d["run_id"]))


@app.command("compare")
def compare(
    app_id: str = AppOption,
    run_ids: list[str] = typer.Option(
        ..., "--run-id", "-r", callback=an_id, help="A run to compare (give it 2 to 20 times)."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Compare runs side by side: status, type, timings, metrics and options.

    A * marks the rows where they differ (--json: {field: {run: value}})."""
    if not enough(run_ids):
        fail(f"give {MIN_RUNS} to {MAX_RUNS} different runs to compare (-r RUN -r RUN ...)", code=2)
    with errors_to_exit(), client(home) as api:
        infos = [api.runs.metadata(app_id, run_id) for run_id in run_ids]
        inputs = {info["id"]: fingerprint(api, app_id, info) for info in infos}
    compared = comparison(infos, inputs)
    if as_json:
        print_json(compared)
        return
    columns = [("", "mark"), ("field", "field")]
    columns += [(run_id, f"r{n}") for n, run_id in enumerate(run_ids)]
    cells = [
        {f"r{n}": cell_text(v) for n, v in enumerate(row.values)}  # as the console writes it
        | {"field": row.field, "mark": "*" if row.differ else " "}
        for row in table_rows(compared, run_ids)
    ]
    table(cells, columns)


def fingerprint(api: OrchClient, app_id: str, info: RunInfo) -> str | None:
    """The run's input digest (``input_digest``), from its input downloaded byte for byte."""
    meta = info["metadata"]
    return input_digest(meta, _input(api, app_id, info["id"]) if reads_input(meta) else None)


def _input(api: OrchClient, app_id: str, run_id: str) -> bytes | None:
    buffer = io.BytesIO()
    try:
        api.runs.download_input(app_id, run_id, buffer)
    except ClientError:  # a tracked run without an input, an input deleted since
        return None
    return buffer.getvalue()


@app.command("assets")
def assets(
    app_id: str = AppOption,
    run_id: str = RunIdOption,
    asset_id: str | None = typer.Option(
        None,
        "--asset-id",
        callback=an_id,
        help="Download this asset's content (to stdout, or -u FILE).",
    ),
    output: Path | None = typer.Option(
        None,
        "--output",
        "-u",
        dir_okay=False,
        callback=writable_file,
        help="Write the downloaded asset here.",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """List a run's assets, or download one with --asset-id."""
    if output is not None and asset_id is None:  # it would be ignored: the listing is no file
        fail("--output writes a downloaded asset: give --asset-id too", code=2)
    with errors_to_exit(), client(home) as api:
        if asset_id is None:
            listed = api.runs.assets(app_id, run_id)
        elif output is not None:
            with open_output(output) as fh:
                api.runs.download_asset(app_id, run_id, asset_id, fh)
            say(f"wrote {output}")
            return
        else:
            sys.stdout.flush()
            api.runs.download_asset(app_id, run_id, asset_id, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return

    def human(d: AssetList) -> None:
        rows = [a | {"label": (a.get("visual") or {}).get("label")} for a in d["items"]]
        columns = [("id", "id"), ("name", "name"), ("type", "content_type"), ("size", "size")]
        table(rows, [*columns, ("visual", "label")])

    emit(listed, as_json, human)
