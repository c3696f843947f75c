"""Where everything lives under the data directory (``ORCH_HOME``).

The daemon is the only writer of these paths; clients only read ``api-key``
and ``daemon.json`` to find and authenticate to it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path


def default_home() -> Path:
    """``$ORCH_HOME``, else ``$XDG_DATA_HOME/orch``, else ``~/.local/share/orch``."""
    if env := os.environ.get("ORCH_HOME"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg) / "orch"


SCRATCH = {
    "unpack": "packages being checked and unpacked (a push, the SDK's, the inbox's)",
    "inbox": "holds (hard links) on packages taken from the push directory, and their copies",
    "inputs": "run inputs being copied into the blob store (input sets)",
}
"""The kinds of temporary files, each in ``tmp/<kind>/``. Uploads have their own folder,
``uploads/``, because a received upload waits there for its consumer."""


@dataclass(frozen=True)
class Home:
    root: Path

    @cached_property
    def db(self) -> Path:
        return self.root / "orch.db"

    @cached_property
    def daemon_file(self) -> Path:
        return self.root / "daemon.json"

    @cached_property
    def lock_file(self) -> Path:
        """Held (``flock``) by the home's daemon for its whole life: one daemon per home,
        and the kernel lets go of it when the daemon dies, however it dies."""
        return self.root / "daemon.lock"

    @cached_property
    def api_key_file(self) -> Path:
        return self.root / "api-key"

    @cached_property
    def port_file(self) -> Path:
        """The port the daemon listened on last, reused by the next start (``ports``)."""
        return self.root / "port"

    @cached_property
    def scheme_file(self) -> Path:
        """Whether the daemon served HTTPS last, kept by the next start unless told (``ports``)."""
        return self.root / "scheme"

    @cached_property
    def config_file(self) -> Path:
        return self.root / "config.toml"

    @cached_property
    def push(self) -> Path:
        return self.root / "push"

    @cached_property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @cached_property
    def executables(self) -> Path:
        return self.root / "executables"

    @cached_property
    def envs(self) -> Path:
        return self.root / "envs"

    @cached_property
    def runs(self) -> Path:
        return self.root / "runs"

    @cached_property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @cached_property
    def tmp(self) -> Path:
        """Work in progress, one folder per kind (``SCRATCH``): emptied at every start,
        since nothing is in progress then (a killed daemon leaves its halves here)."""
        return self.root / "tmp"

    def scratch(self, kind: str) -> Path:
        assert kind in SCRATCH, kind
        return self.tmp / kind

    @cached_property
    def tls(self) -> Path:
        """The local CA and the daemon's certificate of a ``--tls`` daemon (``tls.py``)."""
        return self.root / "tls"

    @cached_property
    def ca_file(self) -> Path:
        """orch's CA certificate: what clients of a ``--tls`` daemon verify it with."""
        return self.tls / "ca.pem"

    @cached_property
    def ca_bundle(self) -> Path:
        """The system's CAs plus orch's, for ``REQUESTS_CA_BUNDLE`` (``orch daemon env``)."""
        return self.tls / "ca-bundle.pem"

    @cached_property
    def log_file(self) -> Path:
        return self.root / "daemon.log"

    def run_dir(self, run_id: str) -> Path:
        return Path(self.run_path(run_id))

    def run_path(self, run_id: str) -> str:
        """``run_dir`` as a string, for the run path (made, joined, handed to the jail on
        every run, where ``pathlib`` was a third of the daemon's Python calls)."""
        return f"{self._runs}/{run_id}"

    def package_path(self, executable_id: str) -> str:
        """The unpacked package of an executable, as a string (see ``run_path``)."""
        return f"{self._executables}/{executable_id}"

    @cached_property
    def _runs(self) -> str:
        return str(self.runs)

    @cached_property
    def _executables(self) -> str:
        return str(self.executables)

    def create(self) -> None:
        """Make the layout; the root is private to the user (it holds the key)."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        for path in (self.push, self.blobs, self.executables, self.envs, self.runs, self.uploads):
            path.mkdir(exist_ok=True)
        self.tmp.mkdir(exist_ok=True)
        for kind in SCRATCH:
            self.scratch(kind).mkdir(exist_ok=True)
