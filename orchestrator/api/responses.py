"""What the OpenAPI document says each operation can answer besides success.

Every error is ``{"error": "..."}`` (``Error``). Routers declare the answers
common to their routes (``errors(401, 404)``); a route adds its own by what
its code can raise, using the sets below. ``finish_openapi`` then makes the
document true to the one error handler: FastAPI's own 422 schema is replaced
by ``Error``, and every ``/v1`` operation says it needs the bearer key.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from orchestrator.api.auth import V1


class Error(BaseModel):
    """Every error answer: one readable message, never internals."""

    error: str


WHY = {
    400: "A rule is broken (an ID, a name's length, an option, a limit), or the JSON body "
    "does not parse.",
    401: "Missing or invalid bearer key (or an expired upload URL, a bad download signature).",
    404: "No such app, or nothing with that ID in it (IDs that break the ID rules included).",
    409: "Clashes with the current state: exists already, not finished yet, locked, in use.",
    410: "Was there and is gone: the run's folder (its log, output, input) was deleted "
    "outside orch. Its metadata is kept; asking again will not bring the files back.",
    413: "Too large: a JSON body over 64 MiB (send inputs through an upload URL), an upload "
    "or a package over its cap.",
    422: "Well-formed but unusable: a body or parameter of the wrong shape, or a package "
    "that cannot be used.",
    507: "The disk under orch's home is (nearly) full: nothing was written. The message "
    "names the free space needed; the same request succeeds once space returns.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses; ``finish_openapi`` gives each the
    ``Error`` body. Not as ``"model": Error``: FastAPI would build a pydantic field for every
    one of them on every route (~560, a sixth of the daemon's start-up) for a schema that
    ``finish_openapi`` writes anyway."""
    return {code: {"description": WHY[code]} for code in codes}


CREATE = errors(400, 409, 413, 422, 507)
"""A POST that makes something from a JSON body."""
CHANGE = errors(400, 409, 413, 422, 507)
"""A PUT or PATCH with a JSON body."""
REMOVE = errors(409, 507)
"""A DELETE (or a cancel): it writes, so a full disk can refuse it; in use is a 409."""

_BYTES = {"schema": {"type": "string", "format": "binary"}}
OUTPUT_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The output: JSON (json and text apps), a tar.gz (folder formats), "
        'or {"url": ...} with format=url.',
        "content": {"application/json": {"schema": {}}, "application/gzip": _BYTES},
    }
}
INPUT_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The input, byte for byte (a tar.gz for folder inputs; text as a JSON "
        'string), or {"url": ...} with format=url.',
        "content": {
            "application/json": {"schema": {}},
            "application/octet-stream": _BYTES,
            "application/gzip": _BYTES,
        },
    }
}

LOG_FILE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The whole log, byte for byte as the model wrote it (its stderr); a "
        "log still being written, as far as it went.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}

SUMMARY: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The summary: JSON, or CSV with format=csv.",
        "content": {"application/json": {"schema": {}}, "text/csv": {"schema": {"type": "string"}}},
    }
}


def finish_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, generated once: errors as ``Error``, the bearer key on ``/v1``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    error_ref = {"$ref": "#/components/schemas/Error"}
    schemas.setdefault("Error", Error.model_json_schema())
    doc["components"]["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The key in <home>/api-key (orch daemon status names the file).",
        }
    }
    for path, item in doc["paths"].items():
        for op in item.values():
            for code, answer in op["responses"].items():
                if int(code) >= 400:
                    answer["content"] = {"application/json": {"schema": error_ref}}
                    answer["description"] = WHY.get(int(code), answer.get("description", ""))
            if path.startswith(V1):
                op["security"] = [{"bearer": []}]
    app.openapi_schema = doc
    return doc
