"""The hot routes (``api/hot_path.HotRoutes``) answer as the whole stack does, in process.

Each request goes once to ``HotRoutes`` in front of the real app and once to the app
alone (its gate, FastAPI's routing, validation and exception handlers); the answers must
be byte for byte the same. A witness between ``HotRoutes`` and the app tells which
requests the hot path answered itself and which it handed down.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api import runs
from orchestrator.api.app import create_app
from orchestrator.api.hot_path import HotRoutes
from orchestrator.disk import DiskMonitor
from orchestrator.errors import NotFound
from orchestrator.models import Run

KEY = "the-key"
AUTH = [(b"authorization", f"Bearer {KEY}".encode())]
JSON = [(b"content-type", b"application/json")]
RUN_ID = "run-0123456789abcdef"
RESULT = f"/v1/applications/app/runs/{RUN_ID}"
CREATE = "/v1/applications/app/runs"


class FakeRuns:
    """The run service as the two routes use it; ``error`` is raised instead of answering."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
        self.events = SimpleNamespace(subscribe=lambda _listener: None)

    async def wait(self, app_id: str, run_id: str, wait: float) -> Run:
        if self.error is not None:
            raise self.error
        return Run(RUN_ID, "app", "devint", "e", name="n", created_at="2026-12-05T12:00:00Z")

    async def create(self, req: Any) -> Run:
        if self.error is not None:
            raise self.error
        return await self.wait(req.app_id, RUN_ID, 0)

    async def undeclared(self, run: Run) -> list[dict[str, str | None]]:
        return []  # the routes' answer names undeclared options: none here


@dataclass
class Witness:
    """Between the hot routes and the app: counts what was handed down."""

    app: ASGIApp
    calls: list[str] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append(scope["path"])
        await self.app(scope, receive, send)


async def _no_definition(run: Run) -> None:
    return None


def _hot(tmp_path: Path, low_disk: bool = False, error: Exception | None = None) -> HotRoutes:
    disk = DiskMonitor(tmp_path, low_bytes=1 << 60 if low_disk else 0)
    settings = SimpleNamespace(max_upload_mb=500, max_package_mb=200)
    svc = SimpleNamespace(
        store=SimpleNamespace(disk=disk),
        runs=FakeRuns(error),
        settings=settings,
        ensemble_runs=SimpleNamespace(definition_id=_no_definition),  # standard runs only
    )
    app = create_app(svc, KEY)  # type: ignore[arg-type]
    hot = HotRoutes(app, app.state.checks)
    hot.stack = Witness(hot.app)
    return hot


async def _call(
    app: ASGIApp, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One request through an ASGI app: status, headers, body."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
        "path": path.partition("?")[0],
        "raw_path": path.partition("?")[0].encode(),
        "query_string": path.partition("?")[2].encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
    }
    sent: list[Message] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    with contextlib.suppress(RuntimeError, OSError):  # Starlette re-raises after its 500
        await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], list(start["headers"]), content


def _steady(answer: Any) -> Any:
    """An answer with the free space a 507 names masked: other processes write to the same
    disk between the two calls."""
    status, headers, content = answer
    masked = re.sub(rb"[0-9.]+ [KMGT]?i?B free", b"N free", content)
    return status, [h for h in headers if h[0] != b"content-length"], masked


async def _same(hot: HotRoutes, method: str, path: str, headers: Any, body: bytes = b"") -> Any:
    """The hot answer, asserted equal to the stack's; and whether the hot path kept it."""
    before = len(hot.stack.calls)  # type: ignore[attr-defined]
    mine = await _call(hot, method, path, headers, body)
    kept = len(hot.stack.calls) == before  # type: ignore[attr-defined]
    stack = await _call(hot.app, method, path, headers, body)
    assert _steady(mine) == _steady(stack), (method, path)
    status, _, content = mine
    return status, json.loads(content), kept


async def test_a_hot_route_without_the_key_is_401_as_before(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    for headers in ([], [(b"authorization", b"Bearer wrong")], [(b"authorization", b"Basic x")]):
        status, body, kept = await _same(hot, "GET", RESULT, headers)
        assert (status, kept) == (401, True) and "bearer key" in body["error"]
        status, body, kept = await _same(hot, "POST", CREATE, headers + JSON, b'{"input": {}}')
        assert (status, kept) == (401, True)


async def test_a_low_disk_refuses_a_new_run_with_the_same_507(tmp_path: Path) -> None:
    hot = _hot(tmp_path, low_disk=True)
    status, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON, b'{"input": {}}')
    assert (status, kept) == (507, True) and "disk under orch's home is low" in body["error"]
    status, body, kept = await _same(hot, "GET", RESULT, AUTH)  # reads pass
    assert (status, kept) == (200, True) and body["id"] == RUN_ID


async def test_an_oversize_body_is_the_same_413(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    big = [(b"content-length", str(65 * 1024 * 1024).encode())]
    status, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON + big, b"{}")
    assert (status, kept) == (413, True) and "upload URL" in body["error"]


async def test_bodies_it_does_not_take_get_fastapis_own_answers(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    status, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON, b'{"input": ')
    assert (status, kept) == (400, False) and "malformed JSON body" in body["error"]
    status, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON, b'{"name": 5}')
    assert (status, kept) == (422, False) and "name" in body["error"]
    status, body, kept = await _same(hot, "GET", f"{RESULT}?wait=-1", AUTH)
    assert (status, kept) == (422, False) and "wait" in body["error"]


async def test_good_requests_are_answered_by_the_hot_path(tmp_path: Path) -> None:
    hot = _hot(tmp_path)
    status, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON, b'{"input": {"a": 1}}')
    assert (status, body, kept) == (201, {"run_id": RUN_ID, "id": RUN_ID}, True)
    status, body, kept = await _same(hot, "GET", f"{RESULT}?wait=1.5", AUTH)
    assert (status, kept) == (200, True) and body["name"] == "n"


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (NotFound("no run 'x'"), 404, "no run 'x'"),
        (OSError(errno.ENOSPC, "No space left on device"), 507, "disk under orch's home"),
        (OSError(errno.EACCES, "denied"), 500, "internal error: PermissionError"),
        (RuntimeError("bug"), 500, "internal error: RuntimeError"),
    ],
)
async def test_errors_become_the_exception_handlers_answers(
    tmp_path: Path, error: Exception, status: int, words: str
) -> None:
    hot = _hot(tmp_path, error=error)
    got, body, kept = await _same(hot, "GET", RESULT, AUTH)
    assert (got, kept) == (status, True) and words in body["error"]
    got, body, kept = await _same(hot, "POST", CREATE, AUTH + JSON, b'{"input": {}}')
    assert (got, kept) == (status, True) and words in body["error"]


PATHS = [
    ("POST", CREATE),
    ("POST", CREATE + "/"),
    ("GET", CREATE),
    ("GET", RESULT),
    ("GET", RESULT + "/"),
    ("GET", RESULT + "/metadata"),
    ("GET", CREATE + "/uploadurl"),
    ("POST", CREATE + "/uploadurl"),
    ("PATCH", RESULT),
    ("HEAD", RESULT),
    ("GET", "/v1/applications//runs/x"),
    ("GET", "/v1/applications/a.b-c/runs/anything-at-all"),
    ("GET", "/v2/applications/app/runs/" + RUN_ID),
]


def test_it_takes_exactly_the_requests_fastapi_routes_to_the_two_endpoints(
    tmp_path: Path,
) -> None:
    """Same grammar: the hot path takes a request iff the app's first full route match is
    one of the two endpoints (the routes' own regexes, so a new route in front would show)."""
    hot = _hot(tmp_path)
    for method, path in PATHS:
        scope = {"type": "http", "method": method, "path": path, "root_path": ""}
        first = next((r for r in hot.app.router.routes if r.matches(scope)[0] == Match.FULL), None)
        routed = getattr(first, "endpoint", None) in (runs.create_run, runs.run_result)
        regex = hot.create if method == "POST" else hot.result if method == "GET" else None
        assert routed == bool(regex and regex.match(path)), (method, path)
