"""``orch app secrets create|list|get|update|delete``: an app's secrets collections.

Values never travel on the command line (where ``ps`` and shell history see them):
``--env NAME=SOURCE`` and ``--file LOCATION=SOURCE`` read each value from the file
SOURCE, or from stdin for ``-``; ``--secrets SOURCE`` reads a JSON list in the SDK's
shape (``[{"type", "location", "value"}]``). The daemon never shows a value again.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, an_id, client
from orchestrator.cli.output import emit, errors_to_exit, fail, record, say, table
from orchestrator.client.types import SecretsCollection, SecretsCollectionSummary

app = typer.Typer(
    help="Secrets collections: licence keys and tokens delivered to runs, kept out of "
    "app.yaml and inputs.",
    no_args_is_help=True,
)

CollectionIdOption = typer.Option(
    None, "--secrets-collection-id", "--id", callback=an_id, help="Secrets collection ID."
)
RequiredCollectionIdOption = typer.Option(
    ..., "--secrets-collection-id", "--id", callback=an_id, help="Secrets collection ID."
)
EnvOption = typer.Option(
    None,
    "--env",
    metavar="NAME=SOURCE",
    help="An env secret: variable NAME, value read from the file SOURCE (- for stdin; one "
    "trailing newline dropped). Repeatable.",
)
FileOption = typer.Option(
    None,
    "--file",
    metavar="LOCATION=SOURCE",
    help="A file secret: written at LOCATION in the run's working folder, content read from "
    "the file SOURCE (- for stdin), byte for byte. Repeatable.",
)
SecretsOption = typer.Option(
    None,
    "--secrets",
    metavar="SOURCE",
    help='A JSON file (- for stdin) holding [{"type": "env"|"file", "location", "value"}].',
)

FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("secrets", "listing"),
    ("created", "created_at"),
    ("updated", "updated_at"),
]
COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("description", "description"),
    ("updated", "updated_at"),
]


class _Stdin:
    """stdin may feed one value only: a second ``-`` would read nothing."""

    used = False

    @classmethod
    def read(cls) -> str:
        if cls.used:
            fail("only one value can come from stdin (-)", code=2)
        cls.used = True
        return sys.stdin.read()


def _read(source: str) -> str:
    if source == "-":
        return _Stdin.read()
    try:
        return Path(source).expanduser().read_text()
    except OSError as exc:
        fail(f"cannot read the secret's value from {source}: {exc.strerror or exc}", code=2)
    except UnicodeDecodeError:
        fail(f"cannot read the secret's value from {source}: it is not UTF-8 text", code=2)


def _pair(given: str, flag: str) -> tuple[str, str]:
    location, sep, source = given.partition("=")
    if not sep or not location or not source:
        fail(f"{flag} takes LOCATION=SOURCE (a file holding the value, or - for stdin)", code=2)
    return location, source


SHAPE = '[{"type": "env"|"file", "location": ..., "value": ...}]'
SECRET_KEYS = ("type", "location", "value")


def _check_secret(item: object, n: int) -> None:
    """Each item of ``--secrets`` in the SDK's shape, checked before the request: the
    daemon's answer named its own fields (``secrets.0.type: Field required``), not the
    flag, and counted from 0."""
    if not isinstance(item, dict):
        fail(f"--secrets: secret {n} is not an object; expected {SHAPE}", code=2)
    missing = [key for key in SECRET_KEYS if key not in item]
    if missing:
        fail(f"--secrets: secret {n} has no {', '.join(missing)}; expected {SHAPE}", code=2)
    if item["type"] not in ("env", "file"):
        fail(f"--secrets: secret {n} has type {item['type']!r}; expected env or file", code=2)


def gather(
    env: list[str] | None, files: list[str] | None, bulk: str | None
) -> list[dict[str, str]]:
    """The secrets the flags name, values read from their sources."""
    secrets: list[dict[str, str]] = []
    if bulk:
        try:
            loaded = json.loads(_read(bulk))
        except ValueError as exc:
            fail(f"--secrets: not JSON: {exc}", code=2)
        items = loaded if isinstance(loaded, list) else [loaded]
        for n, item in enumerate(items, 1):
            _check_secret(item, n)
        secrets += [{str(k): str(v) for k, v in i.items()} for i in items]
    for given in env or []:
        name, source = _pair(given, "--env")
        value = _read(source)
        secrets.append({"type": "env", "location": name, "value": value.removesuffix("\n")})
    for given in files or []:
        location, source = _pair(given, "--file")
        secrets.append({"type": "file", "location": location, "value": _read(source)})
    return secrets


def _human(data: SecretsCollection) -> dict[str, Any]:
    listing = ", ".join(f"{s['type']}:{s['location']}" for s in data["secrets"])
    return {**data, "listing": listing}


def _done(data: SecretsCollectionSummary, as_json: bool, verb: str) -> None:
    emit(data, as_json, lambda d: say(f"{verb} secrets collection {d['id']}"))


@app.command("create")
def create(
    app_id: str = AppOption,
    collection_id: str | None = CollectionIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="Name (default: the ID)."),
    description: str = typer.Option("", "--description", "-d", help="Description."),
    env: list[str] | None = EnvOption,
    files: list[str] | None = FileOption,
    bulk: str | None = SecretsOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Create a collection (an ID is generated when none is given)."""
    secrets = gather(env, files, bulk)
    if not secrets:
        fail("give at least one secret: --env, --file or --secrets", code=2)
    with errors_to_exit(), client(home) as api:
        data = api.secrets.create(app_id, collection_id, name, description, secrets)
    _done(data, as_json, "created")


@app.command("list")
def list_collections(
    app_id: str = AppOption, home: Path | None = HomeOption, as_json: bool = JsonOption
) -> None:
    """List the app's secrets collections."""
    with errors_to_exit(), client(home) as api:
        data = api.secrets.list(app_id)
    emit(data, as_json, lambda rows: table(rows, COLUMNS))


@app.command("get")
def get(
    app_id: str = AppOption,
    collection_id: str = RequiredCollectionIdOption,
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Show a collection: each secret's type and location (values are never shown)."""
    with errors_to_exit(), client(home) as api:
        data = api.secrets.get(app_id, collection_id)
    emit(data, as_json, lambda d: record(_human(d), FIELDS))


@app.command("update")
def update(
    app_id: str = AppOption,
    collection_id: str = RequiredCollectionIdOption,
    name: str | None = typer.Option(None, "--name", "-n", help="New name."),
    description: str | None = typer.Option(None, "--description", "-d", help="New description."),
    env: list[str] | None = EnvOption,
    files: list[str] | None = FileOption,
    bulk: str | None = SecretsOption,
    remove: list[str] | None = typer.Option(
        None, "--remove", metavar="TYPE:LOCATION", help="Delete a secret (repeatable)."
    ),
    replace: bool = typer.Option(
        False, "--replace", help="The secrets given replace all the others (else they add up)."
    ),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Rename, add or change secrets, or remove some; all or nothing."""
    secrets = gather(env, files, bulk)
    removed = [_key(r) for r in remove or []]
    if name is None and description is None and not secrets and not removed:
        fail("nothing to update: give -n, -d, --env, --file, --secrets or --remove", code=2)
    with errors_to_exit(), client(home) as api:
        existing: set[tuple[str, str]] = set()
        if secrets or removed or replace:
            current = api.secrets.get(app_id, collection_id)
            existing = {(s["type"], s["location"]) for s in current["secrets"]}
        ops = operations(secrets, removed, existing, replace)
        data = api.secrets.update(app_id, collection_id, name, description, ops)
    _done(data, as_json, "updated")


def _key(given: str) -> tuple[str, str]:
    kind, sep, location = given.partition(":")
    if not sep or not location:
        fail("--remove takes TYPE:LOCATION, e.g. env:API_KEY or file:licences/key.lic", code=2)
    return kind, location


def operations(
    secrets: list[dict[str, str]],
    removed: list[tuple[str, str]],
    existing: set[tuple[str, str]],
    replace: bool,
) -> list[dict[str, str]]:
    """The PATCH operations, as the SDK builds them: update what exists, create the rest."""
    ops: list[dict[str, str]] = []
    given: set[tuple[str, str]] = set()
    for secret in secrets:
        key = (secret.get("type", ""), secret.get("location", ""))
        given.add(key)
        ops.append({"op": "update" if key in existing else "create", **secret})
    gone = set(removed) | ((existing - given) if replace else set())
    ops += [{"op": "delete", "type": t, "location": loc} for t, loc in sorted(gone)]
    return ops


@app.command("delete")
def delete(
    app_id: str = AppOption,
    collection_id: str = RequiredCollectionIdOption,
    confirm: bool = typer.Option(False, "--confirm", help="Yes, delete it and its values."),
    home: Path | None = HomeOption,
) -> None:
    """Delete a collection with its values (needs --confirm; refused while an instance
    names it)."""
    if not confirm:
        fail(f"add --confirm to delete secrets collection {collection_id} of app {app_id}")
    with errors_to_exit(), client(home) as api:
        api.secrets.delete(app_id, collection_id)
    say(f"deleted secrets collection {collection_id} of app {app_id}")
