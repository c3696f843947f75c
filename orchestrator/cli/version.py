"""``orch app version create|list|get|update|delete``: immutable snapshots of a push."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import require_label_change
from orchestrator.cli.output import emit, errors_to_exit, fail, record, say, table
from orchestrator.client.types import Executable, Version

app = typer.Typer(
    help="Versions: immutable snapshots of the app's current executable.", no_args_is_help=True
)

VersionIdOption = typer.Option(..., "--version-id", "-v", callback=an_id, help="Version ID.")

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("executable", "short_executable"),
    ("type", "executable.requirements.executable_type"),
    ("runtime", "executable.requirements.runtime"),
    ("size", "executable.size"),
    ("environment", "environment"),
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


def environment_line(exe: Executable) -> str:
    """``ready``, ``building``, or ``failed: <the installer's words>``; ``-`` when none is
    needed (no pip requirements, or the daemon runs apps on its own interpreter)."""
    env = exe["environment"]
    if env["status"] == "none":
        return "-"
    message = env["message"].strip()
    return (
        env["status"] if not message or message == env["status"] else f"{env['status']}: {message}"
    )


def _human(version: Version) -> dict[str, Any]:
    exe = version["executable"]
    return {**version, "short_executable": short(exe["id"]), "environment": environment_line(exe)}


def _show(data: Version, as_json: bool) -> None:
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
    with errors_to_exit(), client(home) as api:
        data = api.versions.create(app_id, version_id, name or version_id, description)
    _show(data, as_json)


@app.command("list")
def list_versions(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's versions."""
    with errors_to_exit(), client(home) as api:
        data = api.versions.list(app_id)
    emit(data, as_json, lambda rows: table([_human(v) for v in rows], COLUMNS))


@app.command("get")
def get(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one version, the executable it holds and its python environment's status."""
    with errors_to_exit(), client(home) as api:
        data = api.versions.get(app_id, version_id)
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
    require_label_change(name, description)
    with errors_to_exit(), client(home) as api:
        data = api.versions.update(app_id, version_id, name, description)
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    version_id: str = VersionIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a version (needs --confirm); refused while an instance points at it."""
    if not confirm:
        fail(f"add --confirm to delete version {version_id} of app {app_id}")
    with errors_to_exit(), client(home) as api:
        api.versions.delete(app_id, version_id)
    say(f"deleted version {version_id} of app {app_id}")
