"""The two requests every run makes, answered before FastAPI's stack.

A run costs a client two requests: ``POST .../runs`` and ``GET .../runs/{id}?wait=``.
FastAPI spends more CPU on each than the work behind it: seven ASGI layers (Starlette's
error and exception middlewares, FastAPI's telemetry, body-limit and exit-stack ones,
orch's gate), the router, a ``Request``, and ``solve_dependencies`` validating every
query parameter and the body through pydantic one field at a time. On 2 cores that CPU
is taken from the models.

So ``HotRoutes``, the outermost ASGI app, recognises exactly those two requests (method,
and the path by the routes' own compiled regexes: FastAPI's grammar, whatever it is),
applies the checks the stack's gate applies (``gate.RequestChecks``, the same object)
and calls the same functions the endpoints call (``runs.submit``, ``runs.result``) with
what FastAPI would have given them: the path parameters, the query read the way
Starlette reads it (the last value of a repeated key), the body validated by the same
pydantic model. Anything else (another content type, JSON that does not parse or
validate, an unexpected or unusual query) goes down the whole stack unchanged, with the
body replayed, so every error answer stays FastAPI's. Errors raised by the work become
the answers FastAPI's exception handlers give (``errors.answer``, the same table).
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
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator import standard_json
from orchestrator.api import errors, runs
from orchestrator.api.bodies import read_body, replay
from orchestrator.api.gate import RequestChecks
from orchestrator.errors import TooLarge
from orchestrator.services import Services

Params = dict[str, str]

_WAIT = re.compile(r"\d{1,3}(\.\d{1,6})?")
"""A plain decimal ``wait``; anything else (exponents, signs, spaces) goes to FastAPI."""

_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""What ``JSONResponse.render`` produces, without building an encoder per call."""


def route_regex(app: FastAPI, endpoint: Callable[..., Any], method: str) -> re.Pattern[str]:
    """The compiled path regex of the app's route for ``endpoint``: FastAPI's own grammar."""
    for route in app.router.routes:
        if (
            isinstance(route, APIRoute)
            and route.endpoint is endpoint
            and method in (route.methods or ())
        ):
            return route.path_regex
    raise LookupError(f"no {method} route for {endpoint.__name__}")


class HotRoutes:
    """The outermost ASGI app: the two hot requests here, everything else to ``app``."""

    def __init__(self, app: FastAPI, checks: RequestChecks) -> None:
        self.app, self.checks = app, checks
        self.stack: ASGIApp = app
        """Where everything else goes: the app (tests put a witness in between)."""
        self.svc: Services = app.state.services
        self.create = route_regex(app, runs.create_run, "POST")
        self.result = route_regex(app, runs.run_result, "GET")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            method = scope["method"]
            if method == "GET" and (match := self.result.match(scope["path"])):
                await self._answer(self._run_result, match.groupdict(), scope, receive, send)
                return
            if method == "POST" and (match := self.create.match(scope["path"])):
                await self._answer(self._create_run, match.groupdict(), scope, receive, send)
                return
        await self.stack(scope, receive, send)

    async def _answer(
        self,
        handler: Callable[[Params, Scope, Receive, Send], Awaitable[None]],
        params: Params,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        refused = self.checks.refusal(scope)
        if refused is not None:
            await errors.error_response(refused.status, refused.message)(scope, receive, send)
            return
        scope["app"] = self.app  # as Starlette sets it: a Request reads the app's state
        await handler(params, scope, receive, send)

    async def _create_run(self, params: Params, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body, messages = await read_body(receive, self.checks.max_body, scope["path"])
        except TooLarge as exc:  # chunked: no length for the checks to refuse
            await errors.error_response(exc.status, exc.message)(scope, receive, send)
            return
        query = _query(scope, _CREATE_QUERY)
        whole = messages[-1]["type"] == "http.request"  # else the client went away mid-body
        parsed = _run_body(scope, body) if query is not None and whole else None
        if query is None or parsed is None:
            await self.stack(scope, replay(messages, receive), send)
            return
        work = runs.submit(self.svc, params["app_id"], parsed, query.get("instance_id"))
        await _respond(scope, receive, send, 201, work)

    async def _run_result(self, params: Params, scope: Scope, receive: Receive, send: Send) -> None:
        query = _query(scope, _RESULT_QUERY)
        wait = _wait(query.get("wait")) if query is not None else None
        if query is None or wait is None:
            await self.stack(scope, receive, send)
            return
        as_url = query.get("format") == "url"
        work = runs.result(self.svc, params["app_id"], params["run_id"], wait, as_url, scope)
        await _respond(scope, receive, send, 200, work)


async def _respond(
    scope: Scope, receive: Receive, send: Send, status: int, work: Awaitable[Any]
) -> None:
    """The work's content as JSON, or what the exception handlers make of its error (an
    unexpected one is logged there and answered 500, as the stack does)."""
    try:
        body = _render(await work)
    except Exception as exc:
        response = await errors.answer(Request(scope, receive), exc)
        await response(scope, receive, send)
        return
    await _send_json(send, status, body)


def _render(content: Any) -> bytes:
    return _ENCODER.encode(content).encode()


async def _send_json(send: Send, status: int, body: bytes) -> None:
    """The two messages ``JSONResponse`` sends, with its headers in its order."""
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _query(scope: Scope, allowed: frozenset[str]) -> dict[str, str] | None:
    """The query as FastAPI reads single values (last one wins); None when it holds a key
    the endpoint does not take (FastAPI ignores those, but they are rare: let it)."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    text = raw.decode("latin-1")
    if "%" in text or "+" in text:
        query = dict(parse_qsl(text, keep_blank_values=True))
    else:  # nothing to unquote (``?wait=30``): parse_qsl's split, without its per-pair work
        query = dict(pair.partition("=")[::2] for pair in text.split("&") if pair)
    return query if query.keys() <= allowed else None


_CREATE_QUERY = frozenset({"instance_id"})
_RESULT_QUERY = frozenset({"format", "wait"})


def _run_body(scope: Scope, body: bytes) -> runs.RunBody | None:
    """The body as FastAPI validates it, or None for anything it might answer otherwise."""
    content_type = next((v for k, v in scope["headers"] if k == b"content-type"), None)
    if content_type != b"application/json" or not body:
        return None
    try:
        value = standard_json.loads(body)
    except ValueError:  # NaN, a RecursionError: FastAPI's own answer
        return None
    if not isinstance(value, dict):
        return None
    try:
        return runs.RunBody.model_validate(value, from_attributes=True)
    except ValidationError:
        return None


def _wait(text: str | None) -> float | None:
    """``wait`` as FastAPI's ``Query(0, ge=0, le=MAX_WAIT)`` takes it; None: let FastAPI."""
    if text is None:
        return 0.0
    if not _WAIT.fullmatch(text):
        return None
    value = float(text)
    return value if value <= runs.MAX_WAIT else None
