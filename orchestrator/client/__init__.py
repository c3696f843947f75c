"""The typed HTTP client of the daemon, used by the CLI (and by anything scripting orch).

It finds the daemon the way the CLI documents: ``ORCH_URL`` + ``ORCH_API_KEY``
when set, else ``daemon.json`` and ``api-key`` in the home. It owns every URL of
the API; each call returns the daemon's JSON typed (``client.types``) and every
non-2xx answer raises a ``ClientError`` carrying the daemon's own message.
Standard library only (``http11``, a socket): the CLI pays its imports on every command.
"""

from __future__ import annotations

import os
from typing import cast

from orchestrator.client.acceptance import AcceptanceTests
from orchestrator.client.apps import Apps, Instances, Versions
from orchestrator.client.ensembles import Ensembles
from orchestrator.client.experiments import Batches, Inputs, InputSets
from orchestrator.client.runs import Runs
from orchestrator.client.secrets import Secrets
from orchestrator.client.shadow import ShadowTests
from orchestrator.client.switchback import SwitchbackTests
from orchestrator.client.transport import ClientError, Transport
from orchestrator.client.types import Health, Queue
from orchestrator.daemon_info import DaemonInfo
from orchestrator.home import Home

__all__ = ["ClientError", "OrchClient", "ca_of", "discover"]


def discover(home: Home, environment: bool = True) -> tuple[str, str]:
    """(url, key) of the daemon to talk to. ``environment=False``: the home's own daemon,
    whatever ``ORCH_URL`` and ``ORCH_API_KEY`` say (a ``--home`` typed on the command line
    names the daemon meant; they may have been exported for another home)."""
    url, key = (
        (os.environ.get("ORCH_URL"), os.environ.get("ORCH_API_KEY"))
        if environment
        else (None, None)
    )
    if url and key:
        return url.rstrip("/"), key
    info = DaemonInfo.read(home)
    if info is None:
        raise ClientError(
            f"no orch daemon is running for {home.root}; start one with: orch daemon start"
        )
    try:
        key = key or home.api_key_file.read_text().strip()
    except OSError as exc:
        raise ClientError(f"cannot read the API key in {home.api_key_file}: {exc}") from None
    return (url or info.url).rstrip("/"), key


def ca_of(home: Home) -> str | None:
    """orch's CA when the home has one (a ``--tls`` daemon made it): https to the daemon
    is verified with it, and nothing else is trusted for it."""
    return str(home.ca_file) if home.ca_file.is_file() else None


class OrchClient:
    """One daemon, one keep-alive connection, one attribute per resource family."""

    def __init__(
        self, url: str, api_key: str, timeout: float = 60.0, ca_file: str | None = None
    ) -> None:
        self.http = Transport(url, api_key, timeout, ca_file)
        self.apps = Apps(self.http)
        self.versions = Versions(self.http)
        self.instances = Instances(self.http)
        self.runs = Runs(self.http)
        self.inputs = Inputs(self.http, self.runs)
        self.input_sets = InputSets(self.http)
        self.batches = Batches(self.http)
        self.acceptance = AcceptanceTests(self.http)
        self.secrets = Secrets(self.http)
        self.ensembles = Ensembles(self.http)
        self.switchback = SwitchbackTests(self.http)
        self.shadow = ShadowTests(self.http)

    @property
    def url(self) -> str:
        return self.http.url

    @classmethod
    def for_home(cls, home: Home, environment: bool = True) -> OrchClient:
        return cls(*discover(home, environment), ca_file=ca_of(home))

    def health(self) -> Health:
        """``/healthz`` (no key needed): liveness and how busy the queue is."""
        return cast(Health, self.http.request("GET", "/healthz", timeout=2).json())

    def queue(self) -> Queue:
        """The queued and running runs of every app, oldest first."""
        return cast(Queue, self.http.request("GET", "/v1/account/queue").json())

    def console_link(self) -> str:
        """A one-time login link to the web console (works once, for 2 minutes)."""
        answer = self.http.request("POST", "/v1/console/login-link").json()
        return str(answer["url"])

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> OrchClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
