"""``orch experiment input-set ...``: the fixed inputs an experiment runs every target on.

Inputs are uploaded and kept by the daemon (by content hash), then grouped into a
set; a set can also be taken from past runs or from an instance's recent runs.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Literal

import typer

from orchestrator.cli import experiment_view as view
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import a_time, require_label_change
from orchestrator.cli.output import emit, errors_to_exit, fail, say
from orchestrator.cli.run_input import kept_input_format
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import InputSet
from orchestrator.errors import OrchError

app = typer.Typer(
    help="Input sets: the fixed inputs an experiment runs every target on.",
    no_args_is_help=True,
)

InputFormat = Literal["json", "text"]
InputSetIdOption = typer.Option(..., "--input-set-id", "-s", callback=an_id, help="Input set ID.")
NameOption = typer.Option(None, "--name", "-n", help="New name.")
DescriptionOption = typer.Option(None, "--description", "-d", help="New description.")


def split_ids(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` → ``["a", "b", "c"]``: a flag takes a comma list, or repeats."""
    return [part.strip() for v in values or [] for part in v.split(",") if part.strip()]


DirOption = typer.Option(
    None, "--dir", exists=True, file_okay=False, help="Keep every file of this folder."
)
FileOption = typer.Option(
    None, "--file", exists=True, dir_okay=False, help="Keep this file (repeatable)."
)
RunIdsOption = typer.Option(
    None, "--run-ids", callback=an_id, help="Keep the inputs of these runs (comma-separated)."
)
FromInstanceOption = typer.Option(
    None,
    "--instance-id",
    callback=an_id,
    help="Keep the inputs of this instance's latest succeeded runs.",
)
MaximumRunsOption = typer.Option(
    None, "--maximum-runs", min=1, help="With --instance-id: at most this many (default 20)."
)
StartTimeOption = typer.Option(
    None,
    "--start-time",
    callback=a_time,
    help="With --instance-id: runs created after (ISO 8601; no offset: UTC).",
)
EndTimeOption = typer.Option(
    None,
    "--end-time",
    callback=a_time,
    help="With --instance-id: runs created before (ISO 8601; no offset: UTC).",
)
FormatOption = typer.Option(
    None, "--format", help="Format of the files (default: json if they parse, else text)."
)


@app.command("create")
def create_input_set(
    app_id: str = AppOption,
    set_id: str = InputSetIdOption,
    name: str = typer.Option(..., "--name", "-n", help="Name."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    directory: Path | None = DirOption,
    files: list[Path] | None = FileOption,
    run_ids: list[str] | None = RunIdsOption,
    instance_id: str | None = FromInstanceOption,
    maximum_runs: int | None = MaximumRunsOption,
    start_time: str | None = StartTimeOption,
    end_time: str | None = EndTimeOption,
    fmt: InputFormat | None = FormatOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an input set from files (--dir or --file), past runs, or an instance's runs.

    Files are uploaded and kept by the daemon as inputs named after the file.

    Runs' inputs are copied, so deleting the runs later does not empty the set.
    """
    _check_sources(
        {"--dir": directory, "--file": files, "--run-ids": run_ids, "--instance-id": instance_id},
        window=bool(maximum_runs or start_time or end_time),
    )
    body: dict[str, Any] = {"id": set_id, "name": name, "description": description}
    with errors_to_exit(), client(home) as api:
        if directory or files:
            paths = _folder_files(directory) if directory else _once_each(files or [])
            data = _create_from_files(api, app_id, body, paths, fmt)
        elif run_ids:
            data = api.input_sets.create(app_id, body | {"run_ids": split_ids(run_ids)})
        else:
            window = {"maximum_runs": maximum_runs, "start_time": start_time, "end_time": end_time}
            body |= {"instance_id": instance_id} | {k: v for k, v in window.items() if v}
            data = api.input_sets.create(app_id, body)
    emit(data, as_json, view.input_set)
    say(f"created input set {data['id']} with {view.count_of(len(data['input_ids']), 'input')}")


def _check_sources(given: dict[str, Any], window: bool) -> None:
    """One source of inputs per set: mixing them would hide which one a typo came from."""
    chosen = [flag for flag, value in given.items() if value]
    if len(chosen) != 1:
        got = f" (got {', '.join(chosen)})" if chosen else ""
        fail(f"give exactly one source of inputs: {', '.join(given)}{got}", code=2)
    if window and chosen != ["--instance-id"]:
        fail("--maximum-runs, --start-time and --end-time only go with --instance-id", code=2)


def _once_each(files: list[Path]) -> list[Path]:
    """A file given twice is kept once, as the daemon keeps a run or an input given twice."""
    first: dict[Path, Path] = {}
    for path in files:
        if first.setdefault(path.resolve(), path) is not path:
            say(f"{path} is given more than once: it is kept once")
    return list(first.values())


def _folder_files(folder: Path) -> list[Path]:
    """The folder's own files, sorted by name; dot files (.DS_Store, .gitkeep) are not inputs."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not paths:
        fail(f"{folder} holds no input files")
    return paths


def _create_from_files(
    api: OrchClient, app_id: str, body: dict[str, Any], paths: list[Path], fmt: str | None
) -> InputSet:
    """Keep each file as an input, then make the set; on failure the kept inputs go again,
    so a bad set ID or a typo does not leave orphan inputs behind."""
    formats = [kept_input_format(path, fmt) for path in paths]  # all checked, then any sent
    _ensure_new_set(api, app_id, body["id"])
    kept: list[str] = []
    try:
        for path, path_format in zip(paths, formats, strict=True):
            kept.append(api.inputs.keep_file(app_id, path, path_format)["id"])
        return api.input_sets.create(app_id, body | {"input_ids": kept})
    except (ClientError, OrchError, KeyboardInterrupt):
        for input_id in kept:
            # Best effort: the original error is the one worth showing.
            with contextlib.suppress(ClientError):
                api.inputs.delete(app_id, input_id)
        raise


def _ensure_new_set(api: OrchClient, app_id: str, set_id: str) -> None:
    """Fail before uploading anything if the set exists (the daemon would answer 409 after)."""
    try:
        api.input_sets.get(app_id, set_id)
    except ClientError as exc:
        if exc.status == 404 and "input set" in exc.message:
            return
        raise
    fail(f"input set {set_id!r} already exists in app {app_id!r}")


@app.command("list")
def list_input_sets(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's input sets."""
    with errors_to_exit(), client(home) as api:
        data = api.input_sets.list(app_id)
    emit(data, as_json, view.input_sets)


@app.command("get")
def get_input_set(
    app_id: str = AppOption,
    set_id: str = InputSetIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show an input set and its inputs."""
    with errors_to_exit(), client(home) as api:
        data = api.input_sets.get(app_id, set_id)
    emit(data, as_json, view.input_set)


@app.command("update")
def update_input_set(
    app_id: str = AppOption,
    set_id: str = InputSetIdOption,
    name: str | None = NameOption,
    description: str | None = DescriptionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename an input set or change its description (its inputs stay)."""
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        data = api.input_sets.update(app_id, set_id, name, description)
    emit(data, as_json, view.input_set)


@app.command("delete")
def delete_input_set(
    app_id: str = AppOption,
    set_id: str = InputSetIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an input set (needs --confirm); its inputs and past experiments stay."""
    if not confirm:
        fail(f"add --confirm to delete input set {set_id}")
    with errors_to_exit(), client(home) as api:
        api.input_sets.delete(app_id, set_id)
    say(f"deleted input set {set_id}")
