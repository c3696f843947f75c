"""``orch app ...``: apps, push (with ``--watch``), promote and pointer history.

Mounts the entity sub-groups too: ``orch app version|instance|run ...``.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import watchfiles
from rich.markup import escape

from orchestrator.cli import instance, run, version
from orchestrator.cli.context import AppOption, HomeOption, JsonOption, client
from orchestrator.cli.output import (
    emit,
    errors_to_exit,
    fail,
    print_json,
    record,
    say,
    table,
)
from orchestrator.cli.version import short
from orchestrator.client import ClientError, OrchClient
from orchestrator.errors import OrchError
from orchestrator.packaging.build import SKIPPED_DIRS, BuildResult, build_package
from orchestrator.packaging.manifest import MANIFEST_FILE, Manifest

app = typer.Typer(
    help="Apps: create them, push models to them, promote, run.", no_args_is_help=True
)
app.add_typer(version.app, name="version")
app.add_typer(instance.app, name="instance")
app.add_typer(run.app, name="run")

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("default instance", "default_instance"),
    ("executable", "short_executable"),
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
EXECUTABLE_FIELDS = [
    ("executable", "short_id"),
    ("type", "requirements.executable_type"),
    ("runtime", "requirements.runtime"),
    ("size", "size"),
    ("environment", "environment.status"),
    ("message", "environment.message"),
]
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _path(app_id: str | None = None) -> str:
    return f"/v1/applications/{app_id}" if app_id else "/v1/applications"


def _human(data: dict[str, Any]) -> dict[str, Any]:
    return data | {"short_executable": short(data.get("executable_id"))}


def _show(data: dict[str, Any], as_json: bool) -> None:
    emit(data, as_json, lambda d: record(_human(d), FIELDS))


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
        data = api.post(_path(), {"id": app_id, "name": name, "description": description})
    _show(data, as_json)


@app.command("list")
def list_apps(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """List the apps."""
    with errors_to_exit(), client(home) as api:
        data = api.get(_path())
    emit(data, as_json, lambda rows: table([_human(a) for a in rows], COLUMNS))


@app.command("get")
def get(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Show one app."""
    with errors_to_exit(), client(home) as api:
        data = api.get(_path(app_id))
    _show(data, as_json)


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
        fail("nothing to update: give -n, -d or --default-instance-id")
    with errors_to_exit(), client(home) as api:
        current = api.get(_path(app_id))
        body: dict[str, Any] = {
            "name": current["name"] if name is None else name,
            "description": current["description"] if description is None else description,
        }
        # Sent only when asked for: the daemon records every default change in the history.
        if default_instance is not None:
            body["default_instance"] = default_instance or None
        data = api.put(_path(app_id), body)
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and everything in it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an app with its versions, instances and runs (needs --confirm)."""
    if not confirm:
        fail(
            f"deleting app {app_id} also deletes its versions, instances and runs; "
            "add --confirm to go ahead"
        )
    with errors_to_exit(), client(home) as api:
        api.delete(_path(app_id))
    say(f"deleted app {app_id}")


@app.command("history")
def history(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """Every pointer move of the app (devint, instances, default instance), newest first."""
    with errors_to_exit(), client(home) as api:
        data = api.get(f"{_path(app_id)}/history")

    def human(d: dict[str, Any]) -> None:
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
    version_id: str = typer.Option(..., "--version-id", "-v", help="ID of the new version."),
    name: str = typer.Option(..., "--name", "-n", help="Name of the new version."),
    description: str = typer.Option("", "--description", "-d", help="Its description."),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        "-i",
        help="Instance to point at it (created if missing); default: the default instance.",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Snapshot the current executable as a version and make an instance (the default) run it."""
    body = {
        "version_id": version_id,
        "name": name,
        "description": description,
        "instance_id": instance_id,
    }
    with errors_to_exit(), client(home) as api:
        data = api.post(f"{_path(app_id)}/promote", body)

    def human(d: dict[str, Any]) -> None:
        flat = {
            "version": d["version"]["id"],
            "executable": short(d["version"]["executable"]["id"]),
            "instance": d["instance"]["id"] + (" (created)" if d.get("created_instance") else ""),
            "default instance": d["application"]["default_instance"],
        }
        record(flat, [(k, k) for k in flat])

    emit(data, as_json, human)


@app.command("push")
def push(
    app_id: str = AppOption,
    app_dir: Path = typer.Option(
        Path("."), "--app-dir", file_okay=False, exists=True, help="Folder holding app.yaml."
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Keep watching the folder and push again on every change."
    ),
    max_pushes: int | None = typer.Option(None, "--max-pushes", hidden=True, min=1),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Build the package from app.yaml's files and push it: devint runs it right away."""
    with errors_to_exit(), client(home) as api, tempfile.TemporaryDirectory() as tmp:
        built, data, seconds = _push_once(api, app_id, app_dir, Path(tmp))
        _report_push(app_id, data, seconds, as_json, brief=watch)
        if watch and max_pushes != 1:
            _watch(api, app_id, app_dir, Path(tmp), built.sha256, as_json, max_pushes)


def _build(app_dir: Path, workdir: Path) -> tuple[BuildResult, Manifest]:
    built = build_package(app_dir, workdir / "package.tar.gz")
    return built, Manifest.load(app_dir / MANIFEST_FILE)


def _upload(api: OrchClient, app_id: str, built: BuildResult, manifest: Manifest) -> Any:
    """The SDK's three steps: ask for an upload URL, PUT the bytes, commit with requirements."""
    upload_url = api.get(f"{_path(app_id)}/binary")["upload_url"]
    api.upload(upload_url, built.path)
    requirements = {"executable_type": manifest.type, "runtime": manifest.runtime}
    return api.put(f"{_path(app_id)}/binary", {"requirements": requirements})


def _push_once(
    api: OrchClient, app_id: str, app_dir: Path, workdir: Path
) -> tuple[BuildResult, Any, float]:
    started = time.monotonic()
    built, manifest = _build(app_dir, workdir)
    data = _upload(api, app_id, built, manifest)
    return built, data, time.monotonic() - started


def _report_push(app_id: str, data: Any, seconds: float, as_json: bool, brief: bool) -> None:
    exe = data["executable"]
    if as_json:
        print_json(data)
    elif not brief:
        record(exe | {"short_id": short(exe["id"])}, EXECUTABLE_FIELDS)
    say(f"pushed {short(exe['id'])} to app {app_id} (devint now runs it) in {seconds:.2f} s")


def _watch(
    api: OrchClient,
    app_id: str,
    app_dir: Path,
    workdir: Path,
    last: str,
    as_json: bool,
    max_pushes: int | None,
) -> None:
    """Re-push on every saved change that alters the package; Ctrl-C ends it with exit 0."""
    say(f"watching {app_dir} for changes (Ctrl-C to stop)")
    pushes = 1
    try:
        for _changes in watchfiles.watch(app_dir, watch_filter=_watch_filter(app_dir)):
            try:
                started = time.monotonic()
                built, manifest = _build(app_dir, workdir)
                if built.sha256 == last:
                    continue  # saved, but nothing the package holds changed
                data = _upload(api, app_id, built, manifest)
            except (ClientError, OrchError) as exc:
                say(f"[bold red]error:[/] {escape(exc.message)} (still watching)")
                continue
            last, pushes = built.sha256, pushes + 1
            _report_push(app_id, data, time.monotonic() - started, as_json, brief=True)
            if max_pushes is not None and pushes >= max_pushes:
                return
    except KeyboardInterrupt:
        pass
    say("stopped watching")


def _watch_filter(app_dir: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Ignore tooling state and dot files: editors and git touch them without changing the app."""
    root = app_dir.resolve()

    def keep(_change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).resolve().relative_to(root).parts
        except ValueError:
            return False
        return not any(p.startswith(".") or p in SKIPPED_DIRS for p in parts)

    return keep
