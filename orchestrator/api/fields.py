"""Request fields shared by the routers: path IDs with their documented rules, capped
names and descriptions, and numbers that are numbers.

Path IDs are documented with the rule they follow (pattern and length) but not
enforced here: an ID that breaks its rule names nothing that exists, so the
lookup answers 404 as for any other unknown ID, which is what clients (the
SDK's ``exists`` checks) expect. Names and descriptions are enforced here and
again in the domain (``ids.check_label``), the one cap for every entry point.

Every integer and float of a body is an ``Integer`` or a ``Number`` (with bounds: marked
``NOT_BOOLEAN``): pydantic's lax mode takes JSON's ``true`` as 1 (a batch's priority, a
switchback's units), which no client means. All else it took it still takes (``2.0`` and
``"2"`` for an integer); only booleans are refused, in the words of its own type errors (a
422 naming the field). A query needs no marker: its ``true`` is text, no integer already.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic.json_schema import JsonDict
from pydantic_core import PydanticCustomError, core_schema

from orchestrator.ids import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH

APP_ID_RULE: JsonDict = {
    "pattern": r"^[a-z0-9][a-z0-9.-]{1,28}[a-z0-9]$",
    "minLength": 3,
    "maxLength": 30,
}
CHILD_ID_RULE: JsonDict = {
    "pattern": r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$",
    "minLength": 1,
    "maxLength": 64,
}
PRIORITY: JsonDict = {"minimum": 1, "maximum": 9}
"""Documented, checked by the run service (a 400 that names the rule)."""
RUN_ID_RULE: JsonDict = {"pattern": r"^run-[0-9a-z]{16}$", "minLength": 20, "maxLength": 20}


def _path(description: str, rule: JsonDict) -> object:
    return Path(description=description, json_schema_extra=rule)


AppId = Annotated[
    str, _path("App ID: 3-30 of a-z 0-9 . -, not starting or ending with - or .", APP_ID_RULE)
]
VersionId = Annotated[str, _path("Version ID: 1-64 of letters, digits . - _", CHILD_ID_RULE)]
InstanceId = Annotated[
    str,
    _path(
        "Instance ID: 1-64 of letters, digits . - _ (devint, latest, default too)", CHILD_ID_RULE
    ),
]
InputId = Annotated[str, _path("Managed input ID: 1-64 of letters, digits . - _", CHILD_ID_RULE)]
InputSetId = Annotated[str, _path("Input set ID: 1-64 of letters, digits . - _", CHILD_ID_RULE)]
ExperimentId = Annotated[str, _path("Experiment ID: 1-64 of letters, digits . - _", CHILD_ID_RULE)]
SecretsCollectionId = Annotated[
    str, _path("Secrets collection ID: 1-64 of letters, digits . - _", CHILD_ID_RULE)
]
RunId = Annotated[str, _path("Run ID, as orch made it: run- and 16 characters", RUN_ID_RULE)]


class _NotBoolean:
    """The marker of a number that is no boolean: before pydantic's own check of an ``int``
    or a ``float``, ``true`` and ``false`` are refused in the words of its type errors."""

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        kind, what = ("int_type", "integer") if source is int else ("float_type", "number")

        def check(value: object) -> object:
            if isinstance(value, bool):
                given = {"what": what, "given": json.dumps(value)}
                raise PydanticCustomError(
                    kind, "Input should be a valid {what}, not {given}", given
                )
            return value

        return core_schema.no_info_before_validator_function(check, handler(source))


NOT_BOOLEAN = _NotBoolean()
"""Last in its ``Annotated``, after the bounds (``Annotated[int, Field(ge=1), NOT_BOOLEAN]``):
bounds given after it are checked by a validator of their own, which OpenAPI documents as
``ge`` where it reads ``minimum``."""
Integer = Annotated[int, NOT_BOOLEAN]
Number = Annotated[float, NOT_BOOLEAN]

Name = Annotated[str | None, Field(max_length=MAX_NAME_LENGTH)]
Description = Annotated[str | None, Field(max_length=MAX_DESCRIPTION_LENGTH)]


class LabelBody(BaseModel):
    """The body of every "rename or redescribe" update: a field left out keeps its value."""

    model_config = ConfigDict(extra="ignore")
    name: Name = None
    description: Description = None


RequiredName = Annotated[str, Field(max_length=MAX_NAME_LENGTH)]
