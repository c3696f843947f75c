"""Apps the browser tests look at, made through the real API (and the CLI where it matters)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.helpers import SAMPLES, create_app, push_dir, run_and_wait, unique, write_app

VISUALS = {
    "plotly": {
        "name": "progress",
        "content_type": "json",
        "visual": {"schema": "plotly", "type": "custom-tab", "label": "Plotly chart"},
        "content": [{"data": [{"type": "scatter", "x": [1, 2, 3], "y": [9, 7, 6]}],
                     "layout": {"title": {"text": "objective by iteration"}}}],
    },
    "chartjs": {
        "name": "bars",
        "content_type": "json",
        "visual": {"schema": "chartjs", "type": "custom-tab", "label": "Chart.js chart"},
        "content": [{"type": "bar", "data": {"labels": ["a", "b"],
                     "datasets": [{"label": "weight", "data": [3, 5]}]}}],
    },
    "geojson": {
        "name": "routes",
        "content_type": "json",
        "visual": {"schema": "geojson", "type": "custom-tab", "label": "Route map"},
        "content": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": "route-1",
             "geometry": {"type": "LineString",
                          "coordinates": [[-96.66, 33.12], [-96.75, 33.21], [-96.80, 33.10]]},
             "properties": {"style": {"color": "#d9480f", "weight": 4},
                            "metadata": [{"key": "Distance (m)", "value": 91206}]}},
            {"type": "Feature", "id": "depot",
             "geometry": {"type": "Point", "coordinates": [-96.66, 33.12]},
             "properties": {}},
        ]},
    },
}  # fmt: skip

STEPPER = f"""
import json, sys, time
data = json.load(sys.stdin)
for step in range(int(data.get("steps", 3))):
    print(f"step {{step}} of the solve", file=sys.stderr, flush=True)
    time.sleep(float(data.get("pause", 0.4)))
print(json.dumps({{
    "solutions": [{{"item": "apple", "weight": 3, "take": True}},
                  {{"item": "pear", "weight": 5, "take": False}}],
    "statistics": {{"result": {{"value": 42, "custom": {{"gap": 0.01}}}},
                    "run": {{"duration": 1.2}}}},
    "assets": {json.dumps(list(VISUALS.values()))},
}}))
"""
"""A model that logs while it works, then answers with a table, statistics and visuals."""

SLEEPER = """
import sys, time
print("about to sleep", file=sys.stderr, flush=True)
time.sleep(30)
"""

LONG_KEY = "very." + "long_statistic_name_" * 10
"""A ~200-character statistics key, with no space to break at."""

QUIRKY = f"""
import json, sys
print("\\x1b[1;31mred alert\\x1b[0m then \\x1b]0;a title\\x07plain", file=sys.stderr, flush=True)
print(json.dumps({{
    "solutions": [{{"city": {{"name": "Zürich", "note": "naïve ☃"}}, "stops": 1}}],
    "statistics": {{"result": {{"value": 7, "custom": {{"{LONG_KEY}": 3.5, "tags": ["é"]}}}}}},
}}))
"""
"""A model with awkward output: a coloured log, nested unicode, a very long statistic name."""


@dataclass
class World:
    knapsack: str
    """knapsack sample: v1 on production (the default), candidate (scale=4) on v1 too;
    three runs on production, one on candidate."""
    stepper: str
    sleeper: str
    quirky: str
    """one succeeded run of QUIRKY; an ensemble definition of two run groups on devint"""


KNAPSACK_ITEMS = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


def production_runs(api: httpx.Client, knapsack: str) -> None:
    """Three runs of the sample's items on production (capacity 40, 50 and 60), waited for:
    the last runs there, as an input set "from the 3 latest runs" expects to find them."""
    for capacity in (40, 50, 60):
        run_and_wait(api, knapsack, {"input": {**KNAPSACK_ITEMS, "weight_capacity": capacity}},
                     instance="production")  # fmt: skip


def build_world(api: httpx.Client, tmp: Path) -> World:
    knapsack = create_app(api, unique("knap"), name="Knapsack")
    push_dir(api, knapsack, SAMPLES / "knapsack", tmp)
    r = api.post(f"/v1/applications/{knapsack}/promote", json={"version_id": "v1",
                 "name": "First version", "instance_id": "production"})  # fmt: skip
    assert r.status_code == 200, r.text
    r = api.post(
        f"/v1/applications/{knapsack}/instances",
        json={"id": "candidate", "version_id": "v1", "configuration": {"options": {"scale": 4}}},
    )
    assert r.status_code == 201, r.text
    production_runs(api, knapsack)
    run_and_wait(api, knapsack, {"input": KNAPSACK_ITEMS}, instance="candidate")

    stepper = create_app(api, unique("steps"), name="Stepper")
    push_dir(api, stepper, write_app(tmp / "stepper", STEPPER), tmp)
    run_and_wait(api, stepper, {"input": {"steps": 2, "pause": 0}})
    sleeper = create_app(api, unique("sleep"), name="Sleeper")
    push_dir(api, sleeper, write_app(tmp / "sleeper", SLEEPER), tmp)
    quirky = create_app(api, unique("quirky"), name="Quirky")
    push_dir(api, quirky, write_app(tmp / "quirky", QUIRKY), tmp)
    run_and_wait(api, quirky, {"input": {}})
    ensemble = {"id": "twice", "run_groups": [{"id": "one", "instance_id": "devint"},
                {"id": "two", "instance_id": "devint", "options": {"seed": "2"}}],
                "rules": [{"id": "value", "statistics_path": "$.result.value",
                           "objective": "maximize", "index": 0}]}  # fmt: skip
    r = api.post(f"/v1/applications/{quirky}/ensembles", json=ensemble)
    assert r.status_code == 201, r.text
    return World(knapsack, stepper, sleeper, quirky)
