"""Secret values are read when a run starts, not when it reaches the head of the queue:
an update or a delete of its collection while it waits reaches it. (The run next in line
is staged ahead of its slot; a user found it kept the values of that moment.)"""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import MakeDaemon
from tests.helpers import create_app, push_dir, wait_run, write_app

ENV_PROBE = """\
import json, os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
time.sleep(float(args.get("-sleep", 0)))
json.dump({"token": os.environ.get("TOKEN"), "tz": os.environ.get("TZ")}, sys.stdout)
"""


def _collection(api: httpx.Client, app_id: str, cid: str, **env: str) -> None:
    secrets = [{"type": "env", "location": k, "value": v} for k, v in env.items()]
    body = {"id": cid, "name": cid, "secrets": secrets}
    r = api.post(f"/v1/applications/{app_id}/secrets", json=body)
    assert r.status_code == 201, r.text


def _queue_behind_a_sleeper(api: httpx.Client, app_id: str, cid: str) -> str:
    """A run that sleeps holds the only slot; the run with ``cid`` waits at the head."""
    runs = f"/v1/applications/{app_id}/runs"
    assert api.post(runs, json={"input": {}, "options": {"sleep": "1.0"}}).status_code == 201
    body = {"input": {}, "configuration": {"secrets_collection_id": cid}}
    r = api.post(runs, json=body)
    assert r.status_code == 201, r.text
    run_id: str = r.json()["id"]
    meta = api.get(f"{runs}/{run_id}/metadata").json()["metadata"]
    assert meta["status_v2"] == "queued"
    return run_id


def test_a_waiting_run_gets_its_collections_values_of_when_it_starts(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon("concurrency = 1\n", env={"TZ": "UTC"})  # orch passes TZ on to models
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "probe", ENV_PROBE), tmp_path)
        secrets = f"/v1/applications/{app_id}/secrets"

        _collection(api, app_id, "changing", TOKEN="old", TZ="Europe/Berlin")
        waiting = _queue_behind_a_sleeper(api, app_id, "changing")
        change = {"op": "update", "type": "env", "location": "TOKEN", "value": "new"}
        assert api.patch(f"{secrets}/changing", json={"operations": [change]}).is_success
        result = wait_run(api, app_id, waiting)
        assert result["metadata"]["status_v2"] == "succeeded", result["metadata"]
        # the update reached it; TZ, which orch only passes on, is the secret's
        assert result["output"] == {"token": "new", "tz": "Europe/Berlin"}

        _collection(api, app_id, "doomed", TOKEN="gone")
        waiting = _queue_behind_a_sleeper(api, app_id, "doomed")
        assert api.delete(f"{secrets}/doomed").status_code == 204
        result = wait_run(api, app_id, waiting)
        assert result["metadata"]["status_v2"] == "failed"
        assert "secrets collection 'doomed' is gone" in result["metadata"]["error"]
