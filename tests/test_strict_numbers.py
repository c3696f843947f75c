"""A number in a request is a number: JSON's ``true`` is refused (422, naming the field)
where an integer or a float is asked for, and nothing is made, where pydantic's lax mode
took it as 1 (a batch's priority, a switchback's units, an ensemble's repetitions...).
Also two HTTP leftovers: a pipelined head counts toward the 64 KiB head limit from its
first byte, and a client that makes the daemon refuse heads in a loop does not fill
daemon.log with one line each. Against a real daemon, over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import httpx
import pytest

from orchestrator.daemon_log import Repeated
from tests.helpers import (
    Daemon,
    create_app,
    push_dir,
    raw_connection,
    read_to_end,
    run_and_wait,
    unique,
    write_app,
)
from tests.test_experiments import keep_input

RULE = {"id": "best", "statistics_path": "$.result.value", "objective": "maximize"}


@pytest.fixture(scope="module")
def app(daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An app with instances ``base`` and ``rough``, a kept input, an input set holding
    it, and one succeeded run of ``base`` (what an input set from an instance takes)."""
    with daemon.client() as api:
        app_id = create_app(api)
        tmp = tmp_path_factory.mktemp("strict")
        push_dir(api, app_id, write_app(tmp / "app", "print('{}')\n"), tmp)
        assert api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"}).is_success
        for instance_id in ("base", "rough"):
            body = {"id": instance_id, "version_id": "v1"}
            assert api.post(f"/v1/applications/{app_id}/instances", json=body).is_success
        input_id = keep_input(api, app_id, b"{}", "empty")
        body = {"id": "one", "input_ids": [input_id]}
        assert api.post(f"/v1/applications/{app_id}/experiments/inputsets", json=body).is_success
        run = run_and_wait(api, app_id, {"input": {}}, instance="base")
        assert run["metadata"]["status_v2"] == "succeeded", run
    return {"id": app_id, "input": input_id}


def _batch(app: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"input_set_id": "one", "instance_ids": ["base"]} | extra


def _batch_run(app: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"runs": [{"input_id": app["input"], "instance_id": "base"} | extra]}


def _ensemble(group: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    return {"run_groups": [{"id": "g", "instance_id": "base"} | group], "rules": [RULE | rule]}


def _switchback(**plan: Any) -> dict[str, Any]:
    return {
        "comparison": {"baseline_instance_id": "base", "candidate_instance_id": "rough"},
        "generate_random_plan": {"unit_duration_minutes": 60, "units": 2} | plan,
    }


def _shadow(maximum_runs: Any) -> dict[str, Any]:
    return {
        "comparisons": {"base": ["rough"]},
        "termination_events": {"maximum_runs": maximum_runs},
    }


CASES: list[tuple[str, str, Any]] = [
    # (collection under the app, field as the error names it, body with that field true)
    (
        "instances",
        "configuration.queuing.priority",
        {"version_id": "v1", "configuration": {"queuing": {"priority": True}}},
    ),
    ("experiments/batch", "repetitions", lambda a: _batch(a, repetitions=True)),
    ("experiments/batch", "priority", lambda a: _batch(a, priority=True)),
    ("experiments/batch", "seed", lambda a: _batch(a, seed=False)),
    ("experiments/batch", "runs.0.repetition", lambda a: _batch_run(a, repetition=True)),
    ("experiments/inputsets", "maximum_runs", {"instance_id": "base", "maximum_runs": True}),
    ("ensembles", "run_groups.0.repetitions", _ensemble({"repetitions": True}, {})),
    ("ensembles", "rules.0.index", _ensemble({}, {"index": True})),
    ("ensembles", "rules.0.tolerance.value", _ensemble({}, {"tolerance": {"value": True}})),
    ("experiments/shadow", "termination_events.maximum_runs", _shadow(True)),
    ("experiments/switchback", "generate_random_plan.units", _switchback(units=True)),
    (
        "experiments/switchback",
        "generate_random_plan.unit_duration_minutes",
        _switchback(unit_duration_minutes=True),
    ),
]


@pytest.mark.parametrize(("collection", "field", "body"), CASES, ids=[c[1] for c in CASES])
def test_true_is_no_number_and_nothing_is_made(
    api: httpx.Client, app: dict[str, str], collection: str, field: str, body: Any
) -> None:
    url = f"/v1/applications/{app['id']}/{collection}"
    made_id = unique("strict")
    given = (body(app) if callable(body) else body) | {"id": made_id}
    r = api.post(url, json=given)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith(f"invalid request: {field}: Input should be a valid "), error
    assert error.endswith((", not true", ", not false")), error
    assert api.get(f"{url}/{made_id}").status_code == 404


def test_a_run_priority_and_duration_of_true_make_no_run(
    api: httpx.Client, app: dict[str, str]
) -> None:
    """A run's queuing priority (on the hot path, answered before FastAPI's stack) and a
    tracked run's duration: refused in the same words, and the app has no new run."""
    runs = f"/v1/applications/{app['id']}/runs"
    before = len(api.get(runs).json()["runs"])
    for body, field in [
        ({"input": {}, "configuration": {"queuing": {"priority": True}}}, "priority"),
        ({"result": {"status": "succeeded", "execution_duration": False}}, "execution_duration"),
    ]:
        r = api.post(runs, json=body)
        assert r.status_code == 422, r.text
        assert f"{field}: Input should be a valid " in r.json()["error"], r.text
    assert len(api.get(runs).json()["runs"]) == before


def test_numbers_as_the_sdk_and_lax_clients_send_them_still_work(
    api: httpx.Client, app: dict[str, str]
) -> None:
    """Only booleans are new refusals: an integer given as ``2.0`` or ``"2"`` is taken as
    before, a fraction is still refused, and a query's ``true`` is no number either."""
    url = f"/v1/applications/{app['id']}/experiments/switchback"
    for plan, units in [({"units": 2.0}, 2), ({"units": "3", "unit_duration_minutes": "30"}, 3)]:
        made = api.post(url, json=_switchback(**plan) | {"id": unique("swb")})
        assert made.status_code == 201, made.text
        assert api.get(f"{url}/{made.json()['id']}").json()["plan"]["number_of_units"] == units
    fraction = api.post(url, json=_switchback(units=2.5))
    assert fraction.status_code == 422 and "fractional part" in fraction.text, fraction.text
    runs = f"/v1/applications/{app['id']}/runs"
    for params in ({"limit": "true"}, {"limit": "1.5"}):
        assert api.get(runs, params=params).status_code == 422
    assert api.get(runs, params={"limit": "1"}).status_code == 200


GET = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
BIG_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "


def test_a_pipelined_head_counts_from_its_first_byte(daemon: Daemon) -> None:
    """30 KiB of a head read together with the request before it, then 50 KiB more: 80 KiB
    in all, over the limit, where only the 50 KiB read after were counted."""
    with raw_connection(daemon) as sock:
        sock.sendall(GET + BIG_HEAD + b"a" * 30_000)
        time.sleep(0.3)
        with contextlib.suppress(OSError):  # the daemon closed the connection: the point
            sock.sendall(b"a" * 50_000 + b"\r\n\r\n")
        answers = read_to_end(sock)
    assert answers.startswith(b"HTTP/1.1 200 "), answers[:300]
    assert answers.count(b"HTTP/1.1 200 ") == 1, answers[:600]
    _, refused, rest = answers.partition(b"HTTP/1.1 431 ")
    assert refused and b'{"error": "request line and headers over 64 KiB"}' in rest, answers


def test_pipelined_heads_under_the_limit_still_work(daemon: Daemon) -> None:
    """Counting a pipelined head charges it its own bytes, not the ones before it: a 60 KiB
    head read with the body before it, and 200 small requests in one read, all pass."""
    post = b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n" + b"b" * 60_000
    near = BIG_HEAD + b"c" * 60_000 + b"\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with raw_connection(daemon) as sock:
        sock.sendall(post + near + GET * 199 + last)
        answers = read_to_end(sock)
    assert answers.startswith(b"HTTP/1.1 405 "), answers[:300]  # POST /healthz: no such method
    assert answers.count(b"HTTP/1.1 200 ") == 201, answers[-300:]


def test_many_refused_heads_log_one_line(make_daemon: Any) -> None:
    """Each 431 logged a line: a client sending big heads in a loop filled daemon.log."""
    daemon = make_daemon()
    for _ in range(12):
        with raw_connection(daemon) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(BIG_HEAD + b"a" * 70_000)
            assert read_to_end(sock).startswith(b"HTTP/1.1 431 ")
    assert daemon.log().count("request refused: request line and headers over 64 KiB") == 1


def test_a_repeated_line_is_summed_up_once_a_window(caplog: pytest.LogCaptureFixture) -> None:
    """The summary is written when the window ends, whether or not another one follows;
    a window with no repeat writes nothing, and the next line is written in full."""
    log = logging.getLogger("test.repeated")

    async def scene() -> None:
        repeated = Repeated(log, "request refused: too big", every=0.2)
        for _ in range(5):
            repeated.note()
        await asyncio.sleep(0.3)
        repeated.note()
        await asyncio.sleep(0.5)
        repeated.note()

    with caplog.at_level(logging.WARNING, "test.repeated"):
        asyncio.run(scene())
    assert [r.getMessage() for r in caplog.records] == [
        "request refused: too big",
        "request refused: too big (4 more in the last 0.2 s)",
        "request refused: too big (1 more in the last 0.2 s)",
        "request refused: too big",
    ]
