"""The run create/result hot path answers exactly as FastAPI would.

What the hot path accepts must be what FastAPI accepts, with the same values; what it
does not take must reach FastAPI unchanged (same status, same error).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import Field, TypeAdapter, ValidationError

from orchestrator.api import hot_path, runs
from tests.helpers import SAMPLES, create_app, push_dir, wait_run

WAITS = ["0", "1", "30", "1.5", "300", "300.0", "030", "", "-1", "301", "1e1", " 5", "abc", "nan"]


def test_wait_is_taken_as_fastapi_takes_it() -> None:
    fastapi_wait = TypeAdapter(Annotated[float, Field(ge=0, le=runs.MAX_WAIT)])
    for text in WAITS:
        mine = hot_path._wait(text)
        if mine is None:
            continue  # handed to FastAPI
        assert fastapi_wait.validate_python(text) == mine, text
    assert hot_path._wait(None) == 0.0


def test_query_keeps_the_last_value_and_refuses_other_keys() -> None:
    allowed = frozenset({"instance_id"})
    scope = {"query_string": b"instance_id=a&instance_id=b%20c"}
    assert hot_path._query(scope, allowed) == {"instance_id": "b c"}
    assert hot_path._query({"query_string": b"other=1"}, allowed) is None
    assert hot_path._query({"query_string": b""}, allowed) == {}
    samples = ["wait=30", "wait=1&format=url", "wait", "wait=&wait=2", "&&wait=3&", "a=b=c",
               "format=u%72l", "format=a+b", "wait=1;format=x", "=1", "wait=%zz"]  # fmt: skip
    for text in samples:  # as Starlette reads a query (QueryParams)
        scope = {"query_string": text.encode()}
        expected = dict(parse_qsl(text, keep_blank_values=True))
        assert hot_path._query(scope, frozenset(expected) | {"wait"}) == expected, text


@pytest.fixture
def app_id(api: httpx.Client, tmp_path: Path) -> str:
    app = create_app(api)
    push_dir(api, app, SAMPLES / "knapsack", tmp_path)
    return app


def test_answers_match_fastapi(api: httpx.Client, app_id: str) -> None:
    base = f"/v1/applications/{app_id}/runs"
    doc = {"items": [], "capacity": 1}
    made = api.post(base, json={"input": doc, "name": "hot"}, params={"instance_id": "devint"})
    assert made.status_code == 201, made.text
    run_id = made.json()["run_id"]
    done = wait_run(api, app_id, run_id)
    again = api.get(f"{base}/{run_id}", params={"wait": "1.5"}).json()
    assert again == api.get(f"{base}/{run_id}", params={"wait": "1e0"}).json()  # FastAPI's
    assert again["metadata"] == done["metadata"] and again["name"] == "hot"
    for text in ("-1", "301", "abc", "nan"):  # the result route's errors are FastAPI's own:
        hot = api.get(f"{base}/{run_id}", params={"wait": text})  # same as the metadata route
        plain = api.get(f"{base}/{run_id}/metadata", params={"wait": text})
        assert (hot.status_code, hot.json()) == (plain.status_code, plain.json()), text
    # bodies it does not take reach FastAPI: its 4xx answers, not the hot path's
    long_name = api.post(base, json={"input": doc, "name": "x" * 10_000})
    assert long_name.status_code in (400, 422) and "name" in long_name.json()["error"]
    assert api.post(base, content=b"[]", headers={"Content-Type": "application/json"}).is_error
    text_body = api.post(base, content=b'{"input": {}}', headers={"Content-Type": "text/plain"})
    assert text_body.status_code >= 400
    with pytest.raises(ValidationError):
        runs.RunBody.model_validate({"name": "x" * 10_000})
