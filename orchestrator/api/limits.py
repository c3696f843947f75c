"""A cap on JSON request bodies, checked before anything is read.

Bulk bytes travel through upload URLs, which stream to disk; a JSON body is
parsed in memory, so a client that inlines a huge input gets a 413 that says
where to send it instead of growing the daemon.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Receive, Scope, Send

MAX_JSON_BYTES = 64 * 1024 * 1024


class BodyCap:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_JSON_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/uploads/"):
            for name, value in scope.get("headers", ()):
                if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                    await _too_large(send, self.max_bytes)
                    return
        await self.app(scope, receive, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": f"request body over {limit // (1024 * 1024)} MiB: send large inputs "
            "through an upload URL (POST .../runs/uploadurl)"
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
