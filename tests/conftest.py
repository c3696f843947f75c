"""Shared fixtures: one real daemon for the session, fresh daemons where a test needs one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Daemon


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d = Daemon.start(tmp_path_factory.mktemp("home"))
    yield d
    d.stop()


@pytest.fixture
def api(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


@pytest.fixture
def fresh_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon of its own, for tests that restart, kill or configure it."""
    d = Daemon.start(tmp_path / "home")
    yield d
    if d.process.poll() is None:
        d.stop()
