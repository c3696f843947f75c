"""``orch app version create|list|get|update|delete``: immutable snapshots of a push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, client
from orchestrator.cli.output import emit, errors_to_exit, fail, record, say, table

app = typer.Typer(
    help="Versions: immutable snapshots of the app's current executable.", no_args_is_help=True
)

VersionIdOption = typer.Option(..., "--version-id", "-v", help="Version ID.")

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("executable", "short_executable"),
    ("type", "executable.requirements.executable_type"),
    ("runtime", "executable.requirements.runtime"),
    ("size", "executable.size"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("executable", "short_executable"),
    ("description", "description"),
    ("created", "created_at"),
]


def short(sha: str | None) -> str | None:
    """Executable IDs are sha256 hex: 12 characters identify one in a table."""
    return sha[:12] if sha else sha


def _human(version: dict[str, Any]) -> dict[str, Any]:
    return version | {"short_executable": short((version.get("executable") or {}).get("id"))}


def _path(app_id: str, version_id: str | None = None) -> str:
    base = f"/v1/applications/{app_id}/versions"
    return f"{base}/{version_id}" if version_id else base


def _show(data: dict[str, Any], as_json: bool) -> None:
    emit(data, as_json, lambda d: record(_human(d), FIELDS))


@app.command("create")
def create(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Snapshot the app's current executable (the last push) as a version."""
    body = {"id": version_id, "name": name or version_id, "description": description}
    with errors_to_exit(), client(home) as api:
        data = api.post(_path(app_id), body)
    _show(data, as_json)


@app.command("list")
def list_versions(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's versions."""
    with errors_to_exit(), client(home) as api:
        data = api.get(_path(app_id))
    emit(data, as_json, lambda rows: table([_human(v) for v in rows], COLUMNS))


@app.command("get")
def get(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one version and the executable it holds."""
    with errors_to_exit(), client(home) as api:
        data = api.get(_path(app_id, version_id))
    _show(data, as_json)


@app.command("update")
def update(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename or re-describe a version (its executable never changes)."""
    if name is None and description is None:
        fail("nothing to update: give -n and/or -d")
    body = {k: v for k, v in {"name": name, "description": description}.items() if v is not None}
    with errors_to_exit(), client(home) as api:
        data = api.put(_path(app_id, version_id), body)
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    home: Path | None = HomeOption,
) -> None:
    """Delete a version; refused while an instance points at it."""
    with errors_to_exit(), client(home) as api:
        api.delete(_path(app_id, version_id))
    say(f"deleted version {version_id} of app {app_id}")
