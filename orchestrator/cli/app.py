"""``orch app ...``: apps, promote and pointer history.

Mounts the rest lazily: ``orch app push`` and the entity sub-groups
``orch app version|instance|run ...``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import OldInstanceIdOption, renamed
from orchestrator.cli.lazy import Lazy, lazy_group
from orchestrator.cli.output import (
    emit,
    errors_to_exit,
    fail,
    note_undeclared,
    record,
    say,
    table,
)
from orchestrator.cli.version import environment_line, short
from orchestrator.client.types import App, Executable, History, Promotion

app = typer.Typer(
    help="Apps: create them, push models to them, promote, run.",
    no_args_is_help=True,
    cls=lazy_group(
        {
            "push": Lazy("orchestrator.cli.push"),
            "version": Lazy("orchestrator.cli.version"),
            "instance": Lazy("orchestrator.cli.instance"),
            "run": Lazy("orchestrator.cli.run"),
            "secrets": Lazy("orchestrator.cli.secrets"),
        }
    ),
)

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("default instance", "default_instance"),
    ("executable", "short_executable"),
    ("environment", "environment"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("default instance", "default_instance"),
    ("executable", "short_executable"),
    ("updated", "updated_at"),
]
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _human(data: App, exe: Executable | None = None) -> dict[str, Any]:
    view: dict[str, Any] = {**data, "short_executable": short(data.get("executable_id"))}
    if exe is not None:
        view["environment"] = environment_line(exe)
    return view


def _show(data: App, as_json: bool, exe: Executable | None = None) -> None:
    emit(data, as_json, lambda d: record(_human(d, exe), FIELDS))


@app.command("create")
def create(
    app_id: str = AppOption,
    name: str = typer.Option(..., "--name", "-n", help="Name."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an app (ID: 3-30 of a-z 0-9 . -, not starting or ending with - or .)."""
    with errors_to_exit(), client(home) as api:
        data = api.apps.create(app_id, name, description)
    _show(data, as_json)


@app.command("list")
def list_apps(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """List the apps."""
    with errors_to_exit(), client(home) as api:
        data = api.apps.list()
    emit(data, as_json, lambda rows: table([_human(a) for a in rows], COLUMNS))


@app.command("get")
def get(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Show one app, and whether the python environment of its latest push built."""
    with errors_to_exit(), client(home) as api:
        data = api.apps.get(app_id)
        exe = api.apps.executable(app_id) if data["executable_id"] and not as_json else None
    _show(data, as_json, exe)


@app.command("update")
def update(
    app_id: str = AppOption,
    name: str | None = typer.Option(None, "--name", "-n", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    default_instance: str | None = typer.Option(
        None, "--default-instance-id", help='Instance runs use by default ("" clears it).'
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename an app, or change which instance its runs use by default."""
    if name is None and description is None and default_instance is None:
        fail("nothing to update: give -n, -d or --default-instance-id", code=2)
    with errors_to_exit(), client(home) as api:
        current = api.apps.get(app_id)
        data = api.apps.update(
            app_id,
            current["name"] if name is None else name,
            current["description"] if description is None else description,
            default_instance,
        )
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and everything in it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an app and its versions, instances and runs (--confirm; no run queued or running).

    Refused while any of its runs is queued or running: cancel them first."""
    if not confirm:
        fail(
            f"deleting app {app_id} also deletes its versions, instances and runs; "
            "add --confirm to go ahead"
        )
    with errors_to_exit(), client(home) as api:
        api.apps.delete(app_id)
    say(f"deleted app {app_id}")


@app.command("history")
def history(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Every pointer move of the app (devint, instances, default instance), newest first."""
    with errors_to_exit(), client(home) as api:
        data = api.apps.history(app_id)

    def human(d: History) -> None:
        rows = [m | {"from": _short_sha(m["from"]), "to": _short_sha(m["to"])} for m in d["items"]]
        columns = [
            ("at", "at"),
            ("pointer", "pointer"),
            ("from", "from"),
            ("to", "to"),
            ("action", "action"),
        ]
        table(rows, columns)

    emit(data, as_json, human)


def _short_sha(value: str | None) -> str | None:
    return short(value) if value and _SHA256.fullmatch(value) else value


@app.command("promote")
def promote(
    app_id: str = AppOption,
    version_id: str = typer.Option(
        ...,
        "--version-id",
        "-v",
        callback=an_id,
        help="ID of the new version; an existing version is promoted as it is.",
    ),
    name: str | None = typer.Option(
        None, "--name", "-n", help="Name of the new version (default: its ID)."
    ),
    description: str = typer.Option("", "--description", "-d", help="Its description."),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        callback=an_id,
        help="Instance to point at it (created if missing); default: the app's default "
        "instance, else the one named production (created if missing).",
    ),
    old_instance_id: str | None = OldInstanceIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Snapshot the current executable as a version and make an instance (the default) run it.

    An existing version is promoted as it is: no new version, the instance runs it."""
    instance_id = renamed(instance_id, old_instance_id, "-i", "--instance-id")
    with errors_to_exit(), client(home) as api:
        data = api.apps.promote(app_id, version_id, name, description, instance_id)
    note_undeclared(data)

    def human(d: Promotion) -> None:
        existing = d.get("created_version") is False
        flat = {
            "version": d["version"]["id"] + (" (existing: no new version)" if existing else ""),
            "executable": short(d["version"]["executable"]["id"]),
            "instance": d["instance"]["id"] + _instance_change(d),
            "default instance": d["application"]["default_instance"],
        }
        record(flat, [(k, k) for k in flat])

    emit(data, as_json, human)


def _instance_change(d: Promotion) -> str:
    if d.get("created_instance"):
        return " (created)"
    if d.get("moved_instance", True):  # a daemon before 12-08 says nothing: it moved it
        return " (moved)"
    return " (already runs it)"
