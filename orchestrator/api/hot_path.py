"""The two requests every run makes, answered without FastAPI's per-request machinery.

A run costs a client two requests: ``POST .../runs`` and ``GET .../runs/{id}?wait=``.
FastAPI spends more CPU on each than the work behind it: a ``Request``, two exit
stacks, an exception wrapper, and ``solve_dependencies`` validating every query
parameter and the body through pydantic one field at a time (measured with cProfile on
the loop, ~40 % of the daemon's HTTP time per run). On 2 cores that CPU is taken from
the models.

So the routes' ASGI apps are wrapped (the routes themselves stay: matching, order and the
OpenAPI document are FastAPI's). A well-formed request is answered by calling the same
endpoint function with what FastAPI would have given it: the path parameters the route
matched, the query read the way Starlette reads it (the last value of a repeated key),
the body validated by the same pydantic model. Anything else (another content type, JSON
that does not parse or validate, an unexpected or unusual query) is handed to FastAPI's
own app unchanged, with the body replayed, so every error answer stays FastAPI's. Errors
raised by the endpoint go through the app's exception handlers as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.api import runs
from orchestrator.services import Services

Handler = Callable[[Scope, Receive, Send, ASGIApp], Awaitable[None]]

_WAIT = re.compile(r"\d{1,3}(\.\d{1,6})?")
"""A plain decimal ``wait``; anything else (exponents, signs, spaces) goes to FastAPI."""


def install(app: FastAPI) -> None:
    """Wrap the create and result routes' apps (call after the routes are added)."""
    handlers: dict[Any, Handler] = {runs.create_run: _create_run, runs.run_result: _run_result}
    for route in app.router.routes:
        if isinstance(route, APIRoute) and route.endpoint in handlers:
            route.app = _HotApp(route.app, handlers[route.endpoint])


class _HotApp:
    def __init__(self, fastapi_app: ASGIApp, handler: Handler) -> None:
        self.fastapi_app, self.handler = fastapi_app, handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(scope, receive, send, self.fastapi_app)


def _query(scope: Scope, allowed: frozenset[str]) -> dict[str, str] | None:
    """The query as FastAPI reads single values (last one wins); None when it holds a key
    the endpoint does not take (FastAPI ignores those, but they are rare: let it)."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    query = dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))
    return query if query.keys() <= allowed else None


def _services(scope: Scope) -> Services:
    svc: Services = scope["app"].state.services
    return svc


_CREATE_QUERY = frozenset({"instance_id"})


async def _create_run(scope: Scope, receive: Receive, send: Send, fastapi_app: ASGIApp) -> None:
    body, messages = await _read_body(receive)
    query = _query(scope, _CREATE_QUERY)
    whole = messages[-1]["type"] == "http.request"  # else the client went away mid-body
    parsed = _run_body(scope, body) if query is not None and whole else None
    if parsed is None:
        await fastapi_app(scope, _replay(messages, receive), send)
        return
    response = await runs.create_run(
        app_id=scope["path_params"]["app_id"],
        body=parsed,
        instance_id=query.get("instance_id") if query else None,
        svc=_services(scope),
    )
    await response(scope, receive, send)


def _run_body(scope: Scope, body: bytes) -> runs.RunBody | None:
    """The body as FastAPI validates it, or None for anything it might answer otherwise."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    if content_type != b"application/json" or not body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    try:
        return runs.RunBody.model_validate(value, from_attributes=True)
    except ValidationError:
        return None


_RESULT_QUERY = frozenset({"format", "wait"})


async def _run_result(scope: Scope, receive: Receive, send: Send, fastapi_app: ASGIApp) -> None:
    query = _query(scope, _RESULT_QUERY)
    wait = _wait(query.get("wait")) if query is not None else None
    if query is None or wait is None:
        await fastapi_app(scope, receive, send)
        return
    params = scope["path_params"]
    response = await runs.run_result(
        app_id=params["app_id"],
        run_id=params["run_id"],
        request=Request(scope, receive, send),
        format=query.get("format"),
        wait=wait,
        svc=_services(scope),
    )
    await response(scope, receive, send)


def _wait(text: str | None) -> float | None:
    """``wait`` as FastAPI's ``Query(0, ge=0, le=MAX_WAIT)`` takes it; None: let FastAPI."""
    if text is None:
        return 0.0
    if not _WAIT.fullmatch(text):
        return None
    value = float(text)
    return value if value <= runs.MAX_WAIT else None


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    """The whole body, and the messages it came in (for a replay)."""
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return body, messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the messages already read over again, then the real one."""
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
