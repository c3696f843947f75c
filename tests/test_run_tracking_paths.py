"""A run's ``tracking`` (the SDK's ``RunTrackingMetadata``) is taken and shown the same way
by the hot path (``api/hot_path.py``) and by FastAPI's stack: both call ``runs.submit`` and
``runs.result`` with the same ``RunBody``, and these tests keep it that way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator.models import Run
from orchestrator.runs.service import RunRequest
from tests.helpers import SAMPLES, create_app, push_dir, wait_run
from tests.test_hot_routes import AUTH, CREATE, JSON, RESULT, RUN_ID, _hot, _same

CLONED = "run-00000000000000aa"


async def test_both_paths_take_the_same_tracking(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    asked: list[RunRequest] = []
    fake = hot.svc.runs
    made = fake.create

    async def create(req: RunRequest) -> Run:
        asked.append(req)
        return await made(req)

    fake.create = create  # type: ignore[method-assign]
    body = b'{"input": {}, "tracking": {"cloned_run_id": "%s", "input_id": "x"}}' % CLONED.encode()
    status, _, kept = await _same(hot, "POST", CREATE, AUTH + JSON, body)
    assert (status, kept) == (201, True)
    hot_req, stack_req = asked
    assert hot_req == stack_req and hot_req.cloned_run_id == CLONED
    assert hot_req.input_id is None  # a client's tracking.input_id claims nothing


async def test_both_paths_show_the_same_tracking(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    run = Run(RUN_ID, "app", "devint", "e", cloned_run_id=CLONED, input_id="kept")

    async def wait(app_id: str, run_id: str, seconds: float) -> Run:
        return run

    hot.svc.runs.wait = wait  # type: ignore[method-assign]
    status, body, kept = await _same(hot, "GET", f"{RESULT}?wait=1.5", AUTH)
    assert (status, kept) == (200, True)
    assert body["metadata"]["tracking"] == {"cloned_run_id": CLONED, "input_id": "kept"}
    status, meta, kept = await _same(hot, "GET", f"{RESULT}/metadata", AUTH)
    assert (status, kept) == (200, False) and meta["metadata"] == body["metadata"]


@pytest.fixture
def app_id(api: httpx.Client, tmp_path: Path) -> str:
    app = create_app(api)
    push_dir(api, app, SAMPLES / "knapsack", tmp_path)
    return app


def _tracking(api: httpx.Client, base: str, run_id: str) -> tuple[Any, Any]:
    """A run's tracking as the hot path (``wait=1.5``) and FastAPI (``wait=1e0``) show it."""
    hot = api.get(f"{base}/{run_id}", params={"wait": "1.5"}).json()["metadata"]
    plain = api.get(f"{base}/{run_id}", params={"wait": "1e0"}).json()["metadata"]
    return hot.get("tracking"), plain.get("tracking")


def test_a_daemon_keeps_tracking_whichever_path_took_the_run(
    api: httpx.Client, app_id: str
) -> None:
    base = f"/v1/applications/{app_id}/runs"
    doc = {"items": [], "capacity": 1}
    first = api.post(base, json={"input": doc}).json()["run_id"]
    wait_run(api, app_id, first)
    assert _tracking(api, base, first) == (None, None)
    body = {"input": doc, "tracking": {"cloned_run_id": first}}
    # the hot path takes the first; an extra query key sends the second through FastAPI
    by_hot = api.post(base, json=body).json()["run_id"]
    by_stack = api.post(base, json=body, params={"via": "stack"}).json()["run_id"]
    for run_id in (by_hot, by_stack):
        wait_run(api, app_id, run_id)
        assert _tracking(api, base, run_id) == ({"cloned_run_id": first},) * 2
    ghost = {"input": doc, "tracking": {"cloned_run_id": "run-0000000000000000"}}
    refused = [api.post(base, json=ghost, params=p) for p in ({}, {"via": "stack"})]
    assert [r.status_code for r in refused] == [404, 404]
    assert refused[0].json() == refused[1].json()
