"""The checks every request meets before routing, in one ASGI layer and one header pass.

Three rules, each kept in its own module with its reasons: the bearer key
(``auth.bearer_refusal``, 401), the body's size (``limits.body_refusal``, 413) and the
disk (``disk_gate.disk_refusal``, 507), applied in that order: nothing is said to a
caller without the key, and a body that can never fit is told so before it is told to
wait for space. They used to be three middlewares, each walking the headers and adding
a layer to every request; ``RequestChecks`` reads the headers once and is shared by the
stack's ``Gate`` and the hot routes (``api/hot_path.py``), which answer the two requests
of every run before the stack. A chunked body, whose size no header announces, is read
under the cap here before it is routed (``streamed``).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.api.auth import V1, bearer_refusal
from orchestrator.api.bodies import read_body, replay
from orchestrator.api.disk_gate import disk_refusal
from orchestrator.api.errors import error_response
from orchestrator.api.limits import MAX_JSON_BYTES, body_refusal, capped
from orchestrator.disk import DiskMonitor
from orchestrator.errors import OrchError, TooLarge


class RequestChecks:
    def __init__(
        self,
        key: str,
        disk: DiskMonitor,
        max_body: int = MAX_JSON_BYTES,
        max_upload: int | None = None,
    ) -> None:
        self.key, self.disk = key.encode(), disk
        self.max_body = max_body
        self.max_upload = max_upload
        """The larger of the package and input caps (None: uploads are not capped here)."""

    def refusal(self, scope: Scope) -> OrchError | None:
        """Why this HTTP request is refused before it is routed, or None."""
        authorization = length = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value if authorization is None else authorization
            elif name == b"content-length":
                length = value if length is None else length
        path: str = scope["path"]
        if path.startswith(V1):
            unauthorized = bearer_refusal(authorization, self.key)
            if unauthorized is not None:
                return unauthorized
        announced = int(length) if length is not None and length.isdigit() else 0
        too_big = body_refusal(path, announced, self.max_body, self.max_upload)
        if too_big is not None:
            return too_big
        return disk_refusal(self.disk, scope["method"], path, announced)

    def streamed(self, scope: Scope) -> bool:
        """A body of unannounced length (``Transfer-Encoding: chunked``) on a capped path:
        ``refusal`` could not size it, so it is read under the cap before routing."""
        return capped(scope["path"]) and any(
            name == b"transfer-encoding" and b"chunked" in value.lower()
            for name, value in scope["headers"]
        )


class Gate:
    """The middleware: a refused request is answered here, the rest goes on unchanged."""

    def __init__(self, app: ASGIApp, checks: RequestChecks) -> None:
        self.app, self.checks = app, checks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = self.checks.refusal(scope)
            if refused is None and self.checks.streamed(scope):
                try:
                    read = await read_body(receive, self.checks.max_body, scope["path"])
                    receive = replay(read[1], receive)
                except TooLarge as exc:
                    refused = exc
            if refused is not None:
                await error_response(refused.status, refused.message)(scope, receive, send)
                return
        await self.app(scope, receive, send)
