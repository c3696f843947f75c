"""Domain objects → the JSON the nextmv SDK (1.13.0) validates.

Field names, required keys and nullability follow the SDK's pydantic models:
strings the SDK requires are never ``null`` (``""`` instead), and list items
carry only the fields the SDK types as free-form.
"""

from __future__ import annotations

import enum
from typing import Any, Protocol

from orchestrator.models import App, Executable, Instance, PointerMove, Version

LOCAL_USER = "local@localhost"


def application(app: App) -> dict[str, Any]:
    return {
        "id": app.id,
        "name": app.name,
        "description": app.description,
        "type": "custom",
        "default_instance": app.default_instance_id,
        "default_experiment_instance": app.default_experiment_instance_id,
        "locked": False,
        "created_at": app.created_at,
        "updated_at": app.updated_at,
        "executable_id": app.executable_id,
    }


def requirements(exe: Executable) -> dict[str, Any]:
    manifest = exe.manifest
    execution = manifest.get("execution") or {}
    out: dict[str, Any] = {
        "executable_type": exe.type,
        "runtime": exe.runtime,
        "io_configuration": {
            "format": ((manifest.get("configuration") or {}).get("content") or {}).get(
                "format", "json"
            )
        },
    }
    if execution.get("entrypoint"):
        out["entrypoint"] = execution["entrypoint"]
    if execution.get("cwd"):
        out["working_directory"] = execution["cwd"]
    return out


def executable(exe: Executable) -> dict[str, Any]:
    return {
        "id": exe.id,
        "user_email": LOCAL_USER,
        "uploaded_at": exe.created_at,
        "requirements": requirements(exe),
        "size": exe.size,
        "environment": {"status": exe.env_status.value, "message": exe.env_message},
    }


def version(v: Version, exe: Executable) -> dict[str, Any]:
    return {
        "id": v.id,
        "application_id": v.app_id,
        "name": v.name,
        "description": v.description,
        "executable": executable(exe),
        "created_at": v.created_at,
        "updated_at": v.updated_at,
    }


def instance(i: Instance) -> dict[str, Any]:
    configuration: dict[str, Any] = {"options": dict(i.options)}
    if i.execution_class:
        configuration["execution_class"] = i.execution_class
    limits = i.limits.to_dict()
    if limits:
        configuration["limits"] = limits
    if i.secrets_collection_id:
        configuration["secrets_collection_id"] = i.secrets_collection_id  # the ID, no values
    queuing = i.queuing.to_dict()
    if queuing:
        configuration["queuing"] = queuing
    return {
        "id": i.id,
        "application_id": i.app_id,
        "version_id": i.version_id,
        "name": i.name,
        "description": i.description,
        "configuration": configuration,
        "locked": i.locked,
        "created_at": i.created_at,
        "updated_at": i.updated_at,
    }


def pointer_move(m: PointerMove) -> dict[str, Any]:
    return {
        "id": m.id,
        "pointer": m.pointer,
        "from": m.from_target,
        "to": m.to_target,
        "action": m.action,
        "at": m.at,
    }


class LiveTest(Protocol):
    """A shadow or switchback test, as their shared metadata reads it."""

    id: str
    name: str
    description: str
    app_id: str
    created_at: str
    updated_at: str

    @property
    def status(self) -> enum.Enum: ...


def live_test_metadata(t: LiveTest) -> dict[str, Any]:
    """The SDK's ``ShadowTestMetadata`` and ``SwitchbackTestMetadata`` (the same fields)."""
    return {
        "id": t.id,
        "name": t.name,
        "description": t.description,
        "app_id": t.app_id,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
        "status": t.status.value,
    }


def page(items: list[Any], paginated: bool) -> Any:
    """The SDK asks ``?pagereturn=true`` for ``{"items": ..., "next_page_token": ""}``."""
    return {"items": items, "next_page_token": ""} if paginated else items
