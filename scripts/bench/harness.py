"""A real daemon in a subprocess, on a home of its own: the one harness of the tests and
the benchmarks.

``python -m orchestrator daemon run`` is started from ``source`` (so that ``bench_ab``
can run another tree's daemon), and the harness waits until ``daemon.json`` names the
new process: from then on its URL answers. The tests add an httpx client on top
(``tests/helpers.py``); the benchmarks use orch's own transport (``client/http11``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


@dataclass
class Daemon:
    home: Path
    process: subprocess.Popen[bytes]
    url: str
    key: str

    @classmethod
    def start(
        cls,
        home: Path,
        *,
        config: str = "",
        env: dict[str, str] | None = None,
        port: int | None = 0,
        source: Path = ROOT,
        timeout: float = 30,
        launcher: Sequence[str] = ("-m", "orchestrator"),
    ) -> Any:
        """A daemon on ``home`` (made if missing); ``port=None`` takes the stable port.
        ``launcher``: what python runs instead of ``-m orchestrator`` (a script that
        alters the daemon first, then runs it with the same arguments).

        Returns an instance of ``cls`` (tests subclass this class)."""
        home.mkdir(parents=True, exist_ok=True)
        if config:
            (home / "config.toml").write_text(config)
        (home / "daemon.json").unlink(missing_ok=True)
        argv = [sys.executable, *launcher, "daemon", "run", "--home", str(home)]
        if port is not None:
            argv += ["--port", str(port)]
        with (home / "daemon.log").open("ab") as log:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=log, cwd=source, env={**os.environ, **(env or {})}
            )
        deadline = time.monotonic() + timeout
        while (info := published_info(home, proc)) is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"the daemon did not start within {timeout} s")
            time.sleep(0.02)
        return cls(home, proc, info["url"], (home / "api-key").read_text().strip())

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then SIGKILL if it has not ended within ``timeout``; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)

    def log(self) -> str:
        return (self.home / "daemon.log").read_text(errors="replace")

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / MIB


def published_info(home: Path, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    if proc.poll() is not None:
        log = (home / "daemon.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"the daemon exited with code {proc.returncode}:\n{log}")
    try:
        info: dict[str, Any] = json.loads((home / "daemon.json").read_text())
    except (OSError, ValueError):
        return None
    return info if info.get("pid") == proc.pid else None
