"""A scenario test's scenarios in a ``POST .../experiments/batch`` body: the SDK's
``Scenario`` JSON (``scenario_input``, ``instance_id``, ``scenario_id``, ``configuration``).

The SDK itself sends expanded runs; orch's CLI sends scenarios and the daemon expands
them (``experiments.scenarios``). ``new`` data is uploaded as managed inputs first (the
SDK does so on the client), so a body names inputs by id only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import Invalid
from orchestrator.experiments.scenarios import ScenarioSpec


class ScenarioInputBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    scenario_input_type: Literal["input_set", "input", "new"]
    scenario_input_data: str | list[str] | list[dict[str, Any]]


class ScenarioOptionBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(min_length=1)
    values: list[str] = Field(min_length=1)


class ScenarioBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    scenario_input: ScenarioInputBody
    instance_id: str
    scenario_id: str | None = None
    configuration: list[ScenarioOptionBody] | None = None


def scenario_spec(body: ScenarioBody) -> ScenarioSpec:
    kind, data = body.scenario_input.scenario_input_type, body.scenario_input.scenario_input_data
    config = tuple((c.name, tuple(c.values)) for c in body.configuration or [])
    if kind == "input_set" and isinstance(data, str):
        return ScenarioSpec(body.instance_id, body.scenario_id, data, (), config)
    if kind == "input" and isinstance(data, list) and all(isinstance(i, str) for i in data):
        ids = tuple(str(i) for i in data)
        return ScenarioSpec(body.instance_id, body.scenario_id, None, ids, config)
    if kind == "new":
        raise Invalid("scenario input 'new': upload the data as managed inputs, then list them")
    raise Invalid(f"scenario input {kind!r} takes {'an id' if kind == 'input_set' else 'ids'}")
