"""Request bodies read whole at the ASGI level, under the JSON cap, then handed on again.

The hot routes read a run's body before they decide to answer it themselves or pass it
down the stack; the gate reads a body that came without a ``Content-Length`` (chunked),
which its announced-size check cannot see, so it is held to the same cap
(``limits.MAX_JSON_BYTES``) as it arrives rather than after the daemon has grown by it.
"""

from __future__ import annotations

from starlette.types import Message, Receive

from orchestrator.api.limits import too_large


async def read_body(receive: Receive, limit: int, path: str) -> tuple[bytes, list[Message]]:
    """The whole body (sent to ``path``) and the messages it came in (for ``replay``);
    ``TooLarge`` as soon as more than ``limit`` bytes have arrived."""
    messages, size = [], 0
    while True:
        message = await receive()
        messages.append(message)
        size += len(message.get("body", b""))
        if size > limit:
            raise too_large(limit, path)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return body, messages


def replay(messages: list[Message], receive: Receive) -> Receive:
    """A ``receive`` that hands the messages already read over again, then the real one."""
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed
