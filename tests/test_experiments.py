"""Input sets and batch experiments against a real daemon."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import SAMPLES, create_app, push_dir, wait_for, wait_run


def knapsack_input(seed: int) -> dict:
    rng = random.Random(seed)
    items = [
        {"id": f"i{k}", "value": rng.randint(1, 100), "weight": rng.randint(3, 40)}
        for k in range(25)
    ]
    return {"weight_capacity": 150, "items": items}


def keep_input(api: httpx.Client, app_id: str, data: bytes, name: str) -> str:
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=data).status_code == 200
    r = api.post(
        f"/v1/applications/{app_id}/inputs", json={"name": name, "upload_id": up["upload_id"]}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


@pytest.fixture
def app_with_instances(api: httpx.Client, tmp_path: Path) -> str:
    """knapsack with 'good' (exact) and 'worse' (weights scaled by 8: approximate) instances."""
    app_id = create_app(api)
    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    for inst, scale in (("good", "1"), ("worse", "8")):
        r = api.post(
            f"/v1/applications/{app_id}/instances",
            json={"id": inst, "version_id": "v1", "configuration": {"options": {"scale": scale}}},
        )
        assert r.status_code == 201, r.text
    return app_id


def wait_experiment(api: httpx.Client, app_id: str, exp_id: str) -> dict:
    url = f"/v1/applications/{app_id}/experiments/batch/{exp_id}/metadata"
    return wait_for(
        lambda: (m := api.get(url).json())["status"] != "started" and m, timeout=90, interval=0.1
    )


def test_input_set_from_files_and_from_runs(api: httpx.Client, app_with_instances: str) -> None:
    app_id = app_with_instances
    ids = [
        keep_input(api, app_id, json.dumps(knapsack_input(s)).encode(), f"case-{s}") for s in (1, 2)
    ]
    again = keep_input(api, app_id, json.dumps(knapsack_input(1)).encode(), "same-bytes")
    shas = {i["id"]: i["sha256"] for i in api.get(f"/v1/applications/{app_id}/inputs").json()}
    assert shas[again] == shas[ids[0]]  # stored once by content hash, named twice
    base = f"/v1/applications/{app_id}/experiments/inputsets"
    files = api.post(base, json={"id": "files", "name": "From files", "input_ids": ids}).json()
    assert files["input_ids"] == ids and [i["name"] for i in files["inputs"]] == [
        "case-1",
        "case-2",
    ]
    runs = []
    for seed in (3, 4):
        r = api.post(
            f"/v1/applications/{app_id}/runs",
            json={"input": knapsack_input(seed)},
            params={"instance_id": "good"},
        )
        runs.append(wait_run(api, app_id, r.json()["run_id"])["id"])
    from_runs = api.post(base, json={"id": "from-runs", "name": "R", "run_ids": runs}).json()
    assert [i["run_id"] for i in from_runs["inputs"]] == runs
    recent = api.post(
        base, json={"id": "recent", "name": "N", "instance_id": "good", "maximum_runs": 1}
    ).json()
    assert [i["run_id"] for i in recent["inputs"]] == [runs[-1]]
    upd = api.put(f"{base}/files", json={"name": "Renamed"}).json()
    assert upd["name"] == "Renamed" and upd["input_ids"] == ids
    assert {s["id"] for s in api.get(base).json()} == {"files", "from-runs", "recent"}
    assert api.post(base, json={"id": "files", "name": "dup", "input_ids": ids}).status_code == 409
    assert api.post(base, json={"id": "none", "name": "x"}).status_code == 400
    assert api.delete(f"{base}/recent").status_code == 204
    assert api.get(f"{base}/recent").status_code == 404


def test_experiment_shows_the_worse_instance_and_gates_it(
    api: httpx.Client, app_with_instances: str
) -> None:
    app_id = app_with_instances
    ids = [
        keep_input(api, app_id, json.dumps(knapsack_input(s)).encode(), f"case-{s}")
        for s in range(10)
    ]
    base = f"/v1/applications/{app_id}/experiments"
    api.post(f"{base}/inputsets", json={"id": "ten", "name": "Ten", "input_ids": ids})
    r = api.post(
        f"{base}/batch",
        json={
            "id": "good-vs-worse",
            "name": "Good vs worse",
            "input_set_id": "ten",
            "instance_ids": ["good", "worse"],
            "baseline": "good",
            "objective": "max",
        },
    )
    assert r.status_code == 201, r.text
    meta = wait_experiment(api, app_id, "good-vs-worse")
    assert meta["status"] == "completed" and meta["number_of_runs"] == 20
    runs = api.get(f"{base}/batch/good-vs-worse/runs").json()["runs"]
    assert len(runs) == 20 and all(r["experiment_id"] == "good-vs-worse" for r in runs)
    assert all(r["queuing_priority"] == 8 for r in runs)
    summary = api.get(f"{base}/batch/good-vs-worse/summary").json()
    text = json.dumps(summary)
    assert "good" in text and "worse" in text and "result.value" in text
    gate = api.get(
        f"{base}/batch/good-vs-worse/gate", params={"expr": "result.value < baseline * 0.99"}
    ).json()
    assert gate["failed"] and gate["violations"]
    assert {v["target"] for v in gate["violations"]} == {"worse"}
    csv = api.get(f"{base}/batch/good-vs-worse/summary", params={"format": "csv"}).text
    assert csv.splitlines()[0].startswith("target,metric")
    html = api.get(f"{base}/batch/good-vs-worse/report").text
    assert "<svg" in html and "worse" in html


def test_failed_run_counts_without_failing_the_others(
    api: httpx.Client, app_with_instances: str
) -> None:
    app_id = app_with_instances
    ids = [
        keep_input(api, app_id, json.dumps(knapsack_input(1)).encode(), "fine"),
        keep_input(api, app_id, b'{"no_items": true}', "broken"),
    ]
    base = f"/v1/applications/{app_id}/experiments"
    api.post(f"{base}/inputsets", json={"id": "mixed", "name": "Mixed", "input_ids": ids})
    api.post(
        f"{base}/batch", json={"id": "mixed-run", "input_set_id": "mixed", "instance_ids": ["good"]}
    )
    meta = wait_experiment(api, app_id, "mixed-run")
    assert meta["status"] == "completed"
    assert meta["run_counts"] == {"succeeded": 1, "failed": 1}


def test_cancel_mid_way(api: httpx.Client, app_with_instances: str) -> None:
    app_id = app_with_instances
    ids = [
        keep_input(api, app_id, json.dumps(knapsack_input(s)).encode(), f"c{s}") for s in range(6)
    ]
    base = f"/v1/applications/{app_id}/experiments"
    api.post(f"{base}/inputsets", json={"id": "slow", "name": "Slow", "input_ids": ids})
    r = api.post(
        f"{base}/batch",
        json={
            "id": "slow-run",
            "input_set_id": "slow",
            "instance_ids": ["good"],
            "option_sets": {"nap": {"sleep": "20"}},
        },
    )
    assert r.status_code == 201, r.text
    wait_for(lambda: api.get(f"{base}/batch/slow-run/metadata").json()["run_counts"].get("running"))
    canceled = api.patch(f"{base}/batch/slow-run/cancel").json()
    assert canceled["status"] == "canceled"
    counts = wait_for(
        lambda: (
            (c := api.get(f"{base}/batch/slow-run/metadata").json()["run_counts"])
            and not c.get("running")
            and not c.get("queued")
            and c
        ),
        timeout=30,
    )
    assert counts == {"canceled": 6}
    assert api.delete(f"{base}/batch/slow-run").status_code == 204
    assert api.get(f"{base}/batch/slow-run").status_code == 404


def test_bad_experiment_requests(api: httpx.Client, app_with_instances: str) -> None:
    app_id = app_with_instances
    base = f"/v1/applications/{app_id}/experiments/batch"
    assert (
        api.post(base, json={"input_set_id": "missing", "instance_ids": ["good"]}).status_code
        == 404
    )
    ids = [keep_input(api, app_id, b"{}", "x")]
    api.post(f"{base[:-6]}/inputsets", json={"id": "one", "name": "One", "input_ids": ids})
    no_target = api.post(base, json={"input_set_id": "one"})
    assert no_target.status_code == 400 and "instance" in no_target.json()["error"]
    bad_instance = api.post(base, json={"input_set_id": "one", "instance_ids": ["ghost"]})
    assert bad_instance.status_code == 404
    bad_baseline = api.post(
        base, json={"input_set_id": "one", "instance_ids": ["good"], "baseline": "worse"}
    )
    assert bad_baseline.status_code == 400 and "baseline" in bad_baseline.json()["error"]
    huge = {"input_set_id": "one", "instance_ids": ["good"], "repetitions": 100_000_000}
    started = time.monotonic()
    too_many = api.post(base, json=huge)  # planned in memory, it took the daemon down (OOM)
    assert too_many.status_code == 400, too_many.text
    assert "would make 100000000 runs (at most 100000)" in too_many.json()["error"]
    assert time.monotonic() - started < 5
    unnamed = {"input_set_id": "one", "instance_ids": ["good"], "option_sets": {"": {"a": "1"}}}
    no_name = api.post(base, json=unnamed)  # it showed as "-", the same as no option set
    assert no_name.status_code == 400 and "needs a name" in no_name.json()["error"]
    ghost = api.post(f"{base[:-6]}/inputsets", json={"id": "g", "name": "G", "instance_id": "nope"})
    assert ghost.status_code == 404, ghost.text  # an unknown instance, not "no runs"
    assert api.get(f"{base}?pagereturn=true").json()["items"] == []
