"""``orch app instance create|list|get|update|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.flags import (
    CpuOption,
    DiskMbOption,
    ExecutionClassOption,
    InstanceIdOption,
    MemoryOption,
    OldInstanceIdOption,
    OptionsOption,
    OutputMbOption,
    RetriesOption,
    SecretsCollectionOption,
    TimeoutOption,
    bad_value,
    limits_body,
    limits_named_as_flags,
    name_value_pairs,
    pairs,
    parse_options,
    renamed,
    required,
)
from orchestrator.cli.output import (
    emit,
    errors_to_exit,
    fail,
    note_undeclared,
    record,
    say,
    table,
)
from orchestrator.client.types import Instance

app = typer.Typer(
    help="Instances: named pointers to a version, with options and limits.", no_args_is_help=True
)

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("version", "version_id"),
    ("options", "options"),
    ("execution class", "configuration.execution_class"),
    ("limits", "limits"),
    ("secrets collection", "configuration.secrets_collection_id"),
    ("locked", "locked"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("version", "version_id"),
    ("default", "default"),
    ("options", "options"),
    ("limits", "limits"),
    ("locked", "locked"),
    ("updated", "updated_at"),
]
"""``default``: "yes" on the app's default instance, as ``winner`` marks an ensemble's;
``locked``: "yes" on a locked one."""


def _human(data: Instance, unlocked: str = "no") -> dict[str, Any]:
    config = data["configuration"]
    return {
        **data,
        "options": pairs(config.get("options")),
        "limits": pairs(config.get("limits")),
        "locked": "yes" if data.get("locked") else unlocked,
    }


def _show(data: Instance, as_json: bool) -> None:
    emit(data, as_json, lambda d: record(_human(d), FIELDS))


def _replacing_options(
    ctx: typer.Context, param: typer.CallbackParam, values: list[str] | None
) -> list[str] | None:
    """``-o NAME=VALUE`` of ``update``; ``-o ""`` (meaning "none") says how to clear them."""
    if any(not v.strip() for v in values or []):
        raise bad_value(
            param, "'' must look like NAME=VALUE; --clear-options removes all the options"
        )
    return name_value_pairs(ctx, param, values)


def _instance_id(value: str | None, old_value: str | None) -> str:
    return required(renamed(value, old_value, "-i", "--instance-id"), "--instance-id")


@app.command("create")
def create(
    app_id: str = AppOption,
    instance_id: str | None = InstanceIdOption,
    old_instance_id: str | None = OldInstanceIdOption,
    version_id: str = typer.Option(
        ..., "--version-id", "-v", callback=an_id, help="Version it runs."
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    options: list[str] | None = OptionsOption,
    execution_class: str | None = ExecutionClassOption,
    memory_mb: int | None = MemoryOption,
    cpu_seconds: float | None = CpuOption,
    timeout: float | None = TimeoutOption,
    output_mb: int | None = OutputMbOption,
    disk_mb: int | None = DiskMbOption,
    retries: int | None = RetriesOption,
    secrets_collection_id: str | None = SecretsCollectionOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create an instance; runs sent to it use its version, options and limits."""
    instance_id = _instance_id(instance_id, old_instance_id)
    configuration: dict[str, Any] = {
        "options": parse_options(options),
        "limits": limits_body(memory_mb, cpu_seconds, timeout, output_mb, disk_mb, retries),
    }
    if execution_class:
        configuration["execution_class"] = execution_class
    if secrets_collection_id:
        configuration["secrets_collection_id"] = secrets_collection_id
    with errors_to_exit(), client(home) as api, limits_named_as_flags():
        data = api.instances.create(
            app_id, instance_id, version_id, name or instance_id, description, configuration
        )
    note_undeclared(data)
    _show(data, as_json)


@app.command("list")
def list_instances(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's instances (devint, the reserved one, comes first)."""
    with errors_to_exit(), client(home) as api:
        data = api.instances.list(app_id)
        # the table marks the default instance, which only the app knows; --json prints
        # the list as the API returns it, so it asks for nothing more
        default = None if as_json else api.apps.get(app_id)["default_instance"]

    def human(rows: list[Instance]) -> None:
        marked = [_human(i, "") | {"default": "yes" if i["id"] == default else ""} for i in rows]
        table(marked, COLUMNS)

    emit(data, as_json, human)


@app.command("get")
def get(
    app_id: str = AppOption,
    instance_id: str | None = InstanceIdOption,
    old_instance_id: str | None = OldInstanceIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show one instance."""
    instance_id = _instance_id(instance_id, old_instance_id)
    with errors_to_exit(), client(home) as api:
        data = api.instances.get(app_id, instance_id)
    _show(data, as_json)


@app.command("update")
def update(
    app_id: str = AppOption,
    instance_id: str | None = InstanceIdOption,
    old_instance_id: str | None = OldInstanceIdOption,
    version_id: str | None = typer.Option(
        None, "--version-id", "-v", callback=an_id, help="Point at a version."
    ),
    name: str | None = typer.Option(None, "--name", "-n", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    options: list[str] | None = typer.Option(
        None,
        "--options",
        "-o",
        metavar="NAME=VALUE",
        callback=_replacing_options,
        help="Options (repeatable); when given, they replace all the instance's options.",
    ),
    clear_options: bool = typer.Option(
        False,
        "--clear-options",
        help="Remove all the instance's options (its runs get the app.yaml defaults).",
    ),
    execution_class: str | None = ExecutionClassOption,
    memory_mb: int | None = MemoryOption,
    cpu_seconds: float | None = CpuOption,
    timeout: float | None = TimeoutOption,
    output_mb: int | None = OutputMbOption,
    disk_mb: int | None = DiskMbOption,
    retries: int | None = RetriesOption,
    secrets_collection_id: str | None = SecretsCollectionOption,
    lock: bool | None = typer.Option(
        None,
        "--lock/--unlock",
        help="Lock the instance (no update, promote or delete moves it) or unlock it. "
        "--unlock is done before the other changes, --lock after them; a change refused "
        "leaves the lock as it was.",
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Change an instance; only the fields given change (limits merge with the current ones).

    Options are checked against the version's app.yaml, as its runs check them."""
    instance_id = _instance_id(instance_id, old_instance_id)
    if options and clear_options:
        fail("give -o or --clear-options, not both", code=2)
    configuration: dict[str, Any] = {}
    if options or clear_options:
        configuration["options"] = parse_options(options)
    if execution_class is not None:
        configuration["execution_class"] = execution_class
    if secrets_collection_id is not None:
        configuration["secrets_collection_id"] = secrets_collection_id
    limits = limits_body(memory_mb, cpu_seconds, timeout, output_mb, disk_mb, retries)
    given = {"version_id": version_id, "name": name, "description": description}
    body: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if not (body or configuration or limits or lock is not None):
        fail(
            "nothing to update: give at least one of -v, -n, -d, -o, --clear-options, "
            "--secrets-collection-id, a limit flag, --lock or --unlock",
            code=2,
        )
    with errors_to_exit(), client(home) as api:
        if limits:
            # The API replaces the limits object whole; merging keeps the ones not named here.
            current = api.instances.get(app_id, instance_id)
            configuration["limits"] = (current["configuration"].get("limits") or {}) | limits
        if configuration:
            body["configuration"] = configuration
        if body:  # one write: a change refused leaves the lock as it was
            with limits_named_as_flags():
                data = api.instances.update(app_id, instance_id, body, locked=lock)
        else:
            data = api.instances.set_lock(app_id, instance_id, bool(lock))
    if options or version_id:  # what this update set: its options on their version
        note_undeclared(data)
    _show(data, as_json)


@app.command("delete")
def delete(
    app_id: str = AppOption,
    instance_id: str | None = InstanceIdOption,
    old_instance_id: str | None = OldInstanceIdOption,
    force: bool = typer.Option(
        False, "--force", help="Also delete the app's default instance (clears the default)."
    ),
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it."),
    home: Path | None = HomeOption,
) -> None:
    """Delete an instance (needs --confirm; the default instance needs --force too).

    Refused while a draft or started switchback or shadow test, or an ensemble
    definition, uses it."""
    instance_id = _instance_id(instance_id, old_instance_id)
    if not confirm:
        fail(f"add --confirm to delete instance {instance_id} of app {app_id}")
    with errors_to_exit(), client(home) as api:
        api.instances.delete(app_id, instance_id, force)
    say(f"deleted instance {instance_id} of app {app_id}")
