"""``HEAD`` wherever ``GET`` is allowed, as HTTP says (RFC 9110, 9.3.2).

FastAPI's routes answer only the methods they declare, so a ``HEAD`` (a client checking
that a download URL is still good, a link checker, ``curl -I``) got 405. Declaring it
on every route would double the OpenAPI document; instead the request goes in as the
``GET`` it mirrors. The server (uvicorn) keeps the headers, the ``Content-Length``
included, and sends no body: it reads the method from its own copy of the scope.

A response that streams a file reads it only for a real ``GET``: the scope says the
request was a ``HEAD`` (``was_head``), so ``curl -I`` on a download URL costs a ``stat``,
not a read of the whole file for the server to drop.
"""

from __future__ import annotations

from starlette import responses
from starlette.types import ASGIApp, Receive, Scope, Send

HEAD = "orch.head"
"""The scope's key saying the request was a ``HEAD``, routed as the ``GET`` it mirrors."""


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET", HEAD: True}
        await self.app(scope, receive, send)


def was_head(scope: Scope) -> bool:
    return bool(scope.get(HEAD))


class FileResponse(responses.FileResponse):
    """Starlette's, which sends only the headers for a ``HEAD``: it reads the method from
    the scope, which ``HeadAsGet`` made a ``GET``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if was_head(scope):
            scope = {**scope, "method": "HEAD"}
        await super().__call__(scope, receive, send)
