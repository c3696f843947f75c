"""A cap on JSON request bodies, checked before anything is read.

Bulk bytes travel through upload URLs, which stream to disk; a JSON body is
parsed in memory, so a client that inlines a huge input gets a 413 that says
where to send it instead of growing the daemon. Checked before routing by
``api/gate.py`` (and the hot routes, ``api/hot_path.py``) on the announced
``Content-Length``.
"""

from __future__ import annotations

from orchestrator.errors import TooLarge

MAX_JSON_BYTES = 64 * 1024 * 1024

UPLOADS = "/uploads/"
"""Upload URLs stream to disk: no cap (the disk gate still applies)."""


def body_refusal(path: str, announced: int, limit: int = MAX_JSON_BYTES) -> TooLarge | None:
    if announced <= limit or path.startswith(UPLOADS):
        return None
    return TooLarge(
        f"request body over {limit // (1024 * 1024)} MiB: send large inputs "
        "through an upload URL (POST .../runs/uploadurl)"
    )
