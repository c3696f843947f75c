"""Secrets collections: licence keys and tokens a model needs, kept out of app.yaml and
out of its input.

A collection belongs to an app and holds secrets of two types (the SDK's
``SecretType``): ``env`` (an environment variable named by its location) and
``file`` (a file at its location, relative to the run's working folder). An
instance or a run names a collection by ID; its values are delivered when the
run starts (``runs/secrets.py``) and never shown again: reads give each secret's
type and location only.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from orchestrator import utf8
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.ids import check_label, new_id, validate_child_id
from orchestrator.models import Secret, SecretsCollection, SecretType
from orchestrator.registry.lookup import rename, require_app
from orchestrator.store import Repos, Store

MAX_SECRETS = 100
MAX_LOCATION = 255
MAX_VALUE_BYTES = 1024 * 1024
"""One secret's value: a licence file fits; a data set does not belong here."""
MAX_ENV_BYTES = 128 * 1024 - 1
"""One env secret as ``NAME=value``: the kernel's ``MAX_ARG_STRLEN`` (128 KiB with its NUL)."""
MAX_ENV_TOTAL_BYTES = 1024 * 1024
"""A collection's env secrets together: the environment and the model's arguments share
the kernel's ``ARG_MAX`` (2 MiB here), and options take up to the other half."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR", "PYTHONDONTWRITEBYTECODE", "PYTHONIOENCODING"})
"""Variables orch sets for every model: a secret may not replace them (nor ``ORCH_*``)."""
RESERVED_FOLDERS = frozenset({"input", "inputs", "output", "outputs"})
"""Where inputs arrive and outputs are collected: a secret written there could leave
with the output."""

_OPS = ("create", "update", "delete")


@dataclass(frozen=True)
class SecretChange:
    """One operation of a partial update (the SDK's PATCH ``operations``)."""

    op: str
    type: SecretType
    location: str
    value: str | None = None


def secret_type(value: str) -> SecretType:
    try:
        return SecretType(value)
    except ValueError:
        raise Invalid(f"secret type must be 'env' or 'file', got {value!r}") from None


def check_location(kind: SecretType, location: str) -> str:
    """An env secret names a variable; a file secret a relative path inside the run's
    working folder (no absolute path, no ``..``, not where inputs or outputs go)."""
    if not location or len(location) > MAX_LOCATION:
        raise Invalid(f"secret location must be 1-{MAX_LOCATION} characters")
    if kind == SecretType.ENV:
        if not _ENV_NAME.fullmatch(location):
            raise Invalid(f"env secret location {location!r} is not a variable name")
        if location in RESERVED_ENV or location.startswith("ORCH_"):
            raise Invalid(f"env secret location {location!r} is a variable orch sets itself")
        return location
    if "\0" in location or "\\" in location:
        raise Invalid(f"file secret location {location!r} has a forbidden character")
    path = PurePosixPath(location)
    if path.is_absolute():
        raise Invalid(
            f"file secret location {location!r} must be relative to the run's working folder"
        )
    parts = location.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise Invalid(f"file secret location {location!r} may not contain '..', '.' or '//'")
    if parts[0] in RESERVED_FOLDERS:
        raise Invalid(f"file secret location {location!r} is in the {parts[0]!r} folder")
    return location


def make_secret(kind: str, location: str, value: str) -> Secret:
    """A checked secret, or ``Invalid`` naming the broken rule (never the value)."""
    typed = secret_type(kind)
    check_location(typed, location)
    utf8.encode(location, f"secret location {location!r}")
    if typed == SecretType.ENV and "\0" in value:
        raise Invalid(f"env secret {location!r}: an environment variable cannot hold a NUL")
    if len(utf8.encode(value, f"secret {location!r}")) > MAX_VALUE_BYTES:
        raise Invalid(f"secret {location!r} is over {MAX_VALUE_BYTES // 1024} KiB")
    if typed == SecretType.ENV and _env_bytes(location, value) > MAX_ENV_BYTES:
        raise Invalid(
            f"env secret {location!r} is over 128 KiB, more than an environment variable"
            " holds: make it a file secret"
        )
    return Secret(typed, location, value)


def _env_bytes(location: str, value: str) -> int:
    return len(location.encode()) + 1 + len(value.encode())


def _unique(secrets: builtins.list[Secret]) -> None:
    seen: set[tuple[SecretType, str]] = set()
    for s in secrets:
        if (s.type, s.location) in seen:
            raise Invalid(f"secret ({s.type.value}, {s.location!r}) is given twice")
        seen.add((s.type, s.location))
    if len(seen) > MAX_SECRETS:
        raise Invalid(f"a collection holds at most {MAX_SECRETS} secrets")
    _env_fits(secrets)


def _env_fits(secrets: builtins.list[Secret]) -> None:
    env = [s for s in secrets if s.type == SecretType.ENV]
    if sum(_env_bytes(s.location, s.value) for s in env) > MAX_ENV_TOTAL_BYTES:
        raise Invalid(
            "a collection's env secrets hold at most 1 MiB together (a process's environment"
            " is small): make the large ones file secrets"
        )


async def require_collection(repos: Repos, app_id: str, collection_id: str) -> SecretsCollection:
    found = await repos.secrets.get(app_id, collection_id)
    if found is None:
        raise NotFound(f"secrets collection {collection_id!r} not found in app {app_id!r}")
    return found


class SecretsService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(
        self,
        app_id: str,
        collection_id: str | None,
        name: str | None,
        description: str,
        secrets: builtins.list[Secret],
    ) -> SecretsCollection:
        cid = validate_child_id(collection_id or new_id("secrets"), "secrets collection")
        check_label("secrets collection", name, description)
        if not secrets:
            raise Invalid("a secrets collection needs at least one secret")
        _unique(secrets)
        collection = SecretsCollection(cid, app_id, name or cid, description)
        async with self.store.write() as w:
            await require_app(w, app_id)
            if await w.secrets.get(app_id, cid) is not None:
                raise Conflict(f"secrets collection {cid!r} already exists in app {app_id!r}")
            await w.secrets.insert(collection)
            for secret in secrets:
                await w.secrets.put(app_id, cid, secret)
        return collection

    async def get(
        self, app_id: str, collection_id: str
    ) -> tuple[SecretsCollection, builtins.list[tuple[SecretType, str]]]:
        """The collection and the (type, location) of its secrets: values stay stored."""
        read = self.store.read
        await require_app(read, app_id)
        collection = await require_collection(read, app_id, collection_id)
        return collection, await read.secrets.keys(app_id, collection_id)

    async def list(self, app_id: str) -> builtins.list[SecretsCollection]:
        await require_app(self.store.read, app_id)
        return await self.store.read.secrets.list(app_id)

    async def update(
        self,
        app_id: str,
        collection_id: str,
        name: str | None,
        description: str | None,
        changes: builtins.list[SecretChange],
    ) -> SecretsCollection:
        """Rename and/or apply operations, all or nothing: ``create`` of an existing
        secret is a conflict, ``update``/``delete`` of a missing one not found."""
        async with self.store.write() as w:
            await require_app(w, app_id)
            collection = await require_collection(w, app_id, collection_id)
            rename(collection, name, description, "secrets collection")
            keys = set(await w.secrets.keys(app_id, collection_id))
            for change in changes:
                keys = await _apply(w, collection, keys, change)
            if not keys:
                raise Invalid("a secrets collection needs at least one secret")
            if len(keys) > MAX_SECRETS:
                raise Invalid(f"a collection holds at most {MAX_SECRETS} secrets")
            if any(c.type == SecretType.ENV and c.op != "delete" for c in changes):
                _env_fits(await w.secrets.values(app_id, collection_id))
            await w.secrets.update(collection)
        return collection

    async def delete(self, app_id: str, collection_id: str) -> None:
        async with self.store.write() as w:
            await require_app(w, app_id)
            await require_collection(w, app_id, collection_id)
            if users := await w.secrets.used_by(app_id, collection_id):
                raise Conflict(
                    f"secrets collection {collection_id!r} is used by instance(s) "
                    f"{', '.join(users)}; point them elsewhere first"
                )
            await w.secrets.delete(app_id, collection_id)


async def _apply(
    w: Repos,
    collection: SecretsCollection,
    keys: set[tuple[SecretType, str]],
    change: SecretChange,
) -> set[tuple[SecretType, str]]:
    if change.op not in _OPS:
        raise Invalid(f"operation must be one of {', '.join(_OPS)}, got {change.op!r}")
    key = (change.type, change.location)
    shown = f"({change.type.value}, {change.location!r})"
    if change.op == "create" and key in keys:
        raise Conflict(f"secret {shown} already exists in collection {collection.id!r}")
    if change.op != "create" and key not in keys:
        raise NotFound(f"secret {shown} not found in collection {collection.id!r}")
    if change.op == "delete":
        await w.secrets.remove(collection.app_id, collection.id, change.type, change.location)
        return keys - {key}
    if change.value is None:
        raise Invalid(f"operation {change.op!r} of secret {shown} needs a value")
    secret = make_secret(change.type.value, change.location, change.value)
    await w.secrets.put(collection.app_id, collection.id, secret)
    return keys | {key}
