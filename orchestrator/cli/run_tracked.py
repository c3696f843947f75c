"""``orch app run track|compare|assets``: tracked runs, comparing runs, a run's assets."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import finite
from orchestrator.cli.output import (
    cell,
    emit,
    errors_to_exit,
    fail,
    open_output,
    print_json,
    say,
    table,
    writable_file,
)
from orchestrator.cli.version import short
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import AssetList, RunInfo

app = typer.Typer()

RunIdOption = typer.Option(..., "--run-id", "-r", callback=an_id, help="Run ID.")
COMPARED = (
    ("status", "status_v2"),
    ("type", "run_type"),
    ("instance", "application_instance_id"),
    ("version", "application_version_id"),
    ("executable", "executable_id"),
    ("input", "input"),
    ("duration ms", "duration"),
    ("error", "error"),
)
"""Metadata fields compared, as (label, field); metrics and options follow. ``input`` is no
field: it is the input's fingerprint (``fingerprint``)."""
HASHED_INPUT_BYTES = 64 * 1024 * 1024
"""Inputs up to this size are read to tell whether two runs had the same one; a bigger
one is told by its size alone (a compare should not download gigabytes)."""


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
    if not 2 <= len(set(run_ids)) == len(run_ids) <= 20:
        fail("give 2 to 20 different runs to compare (-r RUN -r RUN ...)", code=2)
    with errors_to_exit(), client(home) as api:
        infos = [api.runs.metadata(app_id, run_id) for run_id in run_ids]
        inputs = {info["id"]: fingerprint(api, app_id, info) for info in infos}
    rows = comparison(infos, inputs)
    if as_json:
        print_json(rows)
        return
    columns = [("", "mark"), ("field", "field")]
    columns += [(run_id, f"r{n}") for n, run_id in enumerate(run_ids)]
    cells = []
    for field, values in rows.items():
        row = [values.get(run_id) for run_id in run_ids]  # missing on one side: a difference
        differ = len({_same(v) for v in row}) > 1
        shown = distinct(row) if differ else row
        cells.append(
            {f"r{n}": v for n, v in enumerate(shown)}
            | {"field": field, "mark": "*" if differ else " "}
        )
    table(cells, columns)


def _same(value: Any) -> Any:
    """What two cells must share to be the same: a number's value (a metric reported as 4
    by one run and 4.0 by another is no difference), anything else as it is written."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return ("as written", repr(value))
    return "nan" if value != value else value  # NaN equals nothing, itself included


def distinct(values: list[Any]) -> list[Any]:
    """The numbers of a row that differs, with as many decimals as it takes for different
    values to look different: ``0.0042`` and ``0.0038`` both read ``0.004`` at the table's 3
    decimals, under a ``*`` that says they differ. The other cells stay as they are."""
    numbers = {v for v in values if isinstance(v, float) and math.isfinite(v)}
    numbers |= {v for v in values if isinstance(v, int) and not isinstance(v, bool)}
    if len({cell(v) for v in numbers}) >= len(numbers):
        return values  # as the table prints them, they already look different
    texts: dict[Any, str] = {}
    for decimals in range(4, 13):
        texts = {v: f"{v:.{decimals}f}".rstrip("0").rstrip(".") for v in numbers}
        if len({*texts.values()}) >= len(numbers):
            break
    else:  # the shortest text that reads back as the same float: different for each
        texts = {v: repr(v) for v in numbers}
    return [texts[v] if v in numbers and not isinstance(v, bool) else v for v in values]


def comparison(
    infos: list[RunInfo], inputs: dict[str, str | None] | None = None
) -> dict[str, dict[str, Any]]:
    """{field: {run id: value}}: the compared metadata, then ``metric.*``, ``option.*``.
    ``inputs``: each run's input fingerprint, by run id."""
    rows: dict[str, dict[str, Any]] = {}
    for info in infos:
        meta: dict[str, Any] = dict(info["metadata"])
        meta["executable_id"] = short(meta.get("executable_id"))
        meta["input"] = (inputs or {}).get(info["id"])
        values = {label: meta.get(key) for label, key in COMPARED}
        values["type"] = (meta.get("run_type") or {}).get("type")
        values |= {f"metric.{k}": v for k, v in (meta.get("metrics") or {}).items()}
        active = (meta.get("options") or {}).get("active_options") or {}
        values |= {f"option.{k}": v for k, v in active.items()}
        for field, value in values.items():
            rows.setdefault(field, {})[info["id"]] = value
    return rows


def fingerprint(api: OrchClient, app_id: str, info: RunInfo) -> str | None:
    """What tells two runs' inputs apart: the start of a sha256 of the input, of its JSON
    document for a JSON input (the same document sent compact by one client and indented
    by another is the same input), its size alone above ``HASHED_INPUT_BYTES``; None
    when the run has no input to read."""
    import hashlib  # only compare reads inputs

    meta = info["metadata"]
    size = meta.get("input_size")
    if not isinstance(size, int):
        return None
    if size > HASHED_INPUT_BYTES:
        return f"{size:,} bytes (not read)"
    buffer = io.BytesIO()
    try:
        api.runs.download_input(app_id, info["id"], buffer)
    except ClientError:  # a tracked run without an input, an input deleted since
        return None
    data = buffer.getvalue()
    if meta["format"]["input"]["type"] == "json":
        with contextlib.suppress(ValueError):
            doc = json.loads(data)
            data = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:12]


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
