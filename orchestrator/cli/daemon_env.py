"""What ``orch daemon env`` exports: the official ``nextmv`` SDK and CLI, and orch's own CLI,
pointed at one daemon.

The nextmv CLI (1.13.0) speaks ``https://`` only: it turns a ``NEXTMV_ENDPOINT`` without a
scheme into ``https://HOST:PORT`` (and trips over one that has a scheme), so a ``--tls``
daemon is given as ``127.0.0.1:PORT``. ``requests`` verifies the certificate against
``REQUESTS_CA_BUNDLE``: a bundle in the home with the system's CAs plus orch's, so that
other https sites keep working in the same shell. The SDK alone also works against a
plain-http daemon, given its full ``http://`` URL.
"""

from __future__ import annotations

import shlex
from urllib.parse import urlsplit

from orchestrator.home import Home

PLAIN_HTTP_NOTE = (
    "note: the official nextmv CLI speaks https only; for it, restart the daemon with "
    "TLS: orch daemon stop && orch daemon start --tls (the SDK works either way)"
)


def env_vars(home: Home, url: str, key: str) -> dict[str, str]:
    """The variables, in the order printed: orch's CLI reads ``ORCH_URL``, ``ORCH_API_KEY``
    (and ``ORCH_HOME`` for daemon commands), the SDK and CLI ``NEXTMV_*``."""
    exports = {
        "ORCH_HOME": str(home.root),
        "ORCH_URL": url,
        "ORCH_API_KEY": key,
        "NEXTMV_ENDPOINT": url,
        "NEXTMV_API_KEY": key,
    }
    if is_tls(url):
        exports["NEXTMV_ENDPOINT"] = urlsplit(url).netloc
        exports["REQUESTS_CA_BUNDLE"] = str(home.ca_bundle)
    return exports


def is_tls(url: str) -> bool:
    return url.startswith("https://")


def shell_exports(exports: dict[str, str]) -> str:
    """POSIX ``export`` lines, every value quoted for the shell."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in exports.items())
