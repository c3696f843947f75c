"""Experiment: 100 managed inputs x 2 instances of a 50 ms model, the batch's wall time
against the ideal (the bare run time of the 200 runs / cores)."""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from .common import MODELS, Bench, bare, call, ensure_app, upload
from .results import Row, Target


def experiment_setup(b: Bench, n_inputs: int, doc: dict[str, Any]) -> None:
    app = "exp"
    ensure_app(b, app, MODELS / "sleep")
    call(b.api, "POST", f"/v1/applications/{app}/versions", 201, json_body={"id": "v1"})
    for inst in ("inst-a", "inst-b"):
        body = {"id": inst, "version_id": "v1"}
        call(b.api, "POST", f"/v1/applications/{app}/instances", 201, json_body=body)
    ids = []
    for i in range(n_inputs):
        upload_id = upload(b.api, app, json.dumps(doc).encode())
        body = {"id": f"input-{i}", "name": f"input {i}", "upload_id": upload_id}
        made = call(b.api, "POST", f"/v1/applications/{app}/inputs", 201, json_body=body)
        ids.append(made["id"])
    input_set = {"id": "set", "name": "bench set", "input_ids": ids}
    path = f"/v1/applications/{app}/experiments/inputsets"
    call(b.api, "POST", path, 201, json_body=input_set)


def experiment_wall(b: Bench, runs: int) -> float:
    base = "/v1/applications/exp/experiments/batch"
    body = {"id": "bench", "input_set_id": "set", "instance_ids": ["inst-a", "inst-b"]}
    start = time.perf_counter()
    call(b.api, "POST", base, 201, json_body=body)
    while (meta := call(b.api, "GET", f"{base}/bench/metadata"))["status"] == "started":
        time.sleep(0.02)
    took = time.perf_counter() - start
    done = meta.get("run_counts", {}).get("succeeded", 0)
    if meta["status"] != "completed" or done != runs:
        raise RuntimeError(f"experiment ended {meta['status']} with {meta.get('run_counts')}")
    return took


def scenario_experiment(b: Bench) -> list[Row]:
    n = b.sizes.experiment_inputs
    doc = {"seconds": 0.05}
    experiment_setup(b, n, doc)
    stdin = b.tmp / "sleep-50ms.json"
    stdin.write_text(json.dumps(doc))
    samples = [
        bare([b.python, "main.py"], MODELS / "sleep", stdin, None) for _ in range(min(20, n))
    ]
    ideal = statistics.mean(samples) * 2 * n / b.cores
    wall = experiment_wall(b, 2 * n)
    cmd = f"bare run time of the {2 * n} runs / {b.cores} cores"
    return [
        Row(
            f"experiment {n} inputs x 2 instances",
            wall,
            ideal,
            "s",
            Target("ratio", "<=", 1.15),
            cmd,
        )
    ]
