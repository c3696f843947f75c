"""``HEAD`` wherever ``GET`` is allowed, as HTTP says (RFC 9110, 9.3.2).

FastAPI's routes answer only the methods they declare, so a ``HEAD`` (a client checking
that a download URL is still good, a link checker, ``curl -I``) got 405. Declaring it
on every route would double the OpenAPI document; instead the request goes in as the
``GET`` it mirrors. The server (uvicorn) keeps the headers, the ``Content-Length``
included, and sends no body: it reads the method from its own copy of the scope.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "HEAD":
            scope = {**scope, "method": "GET"}
        await self.app(scope, receive, send)
