"""Shadow tests across a daemon restart: times that passed while it was down take effect
as it starts, and a started test keeps shadowing."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.conftest import MakeDaemon
from tests.helpers import SAMPLES, create_app, push_dir


def test_a_start_time_passed_while_down_starts_the_test_at_restart(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        for inst in ("base", "cand"):
            body = {"id": inst, "version_id": "v1"}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).is_success
        soon = datetime.now(UTC) + timedelta(seconds=1)
        shadow: dict[str, object] = {
            "id": "later",
            "comparisons": {"base": ["cand"]},
            "start_events": {"time": soon.isoformat()},
            "termination_events": {"maximum_runs": 5},
        }
        made = api.post(f"/v1/applications/{app_id}/experiments/shadow", json=shadow)
        assert made.status_code == 201 and made.json()["status"] == "draft", made.text
    assert d.stop() == 0  # pending timers do not hold the daemon up
    time.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.2)

    again = make_daemon(home=d.home)
    with again.client() as api:
        got = api.get(f"/v1/applications/{app_id}/experiments/shadow/later").json()
        assert got["status"] == "started" and got["started_at"]
        r = api.post(f"/v1/applications/{app_id}/runs?instance_id=base", json={"input": {}})
        assert r.status_code == 201
        runs = api.get(f"/v1/applications/{app_id}/experiments/shadow/later/runs").json()
        assert [x["application_instance_id"] for x in runs["runs"]] == ["base", "cand"]
