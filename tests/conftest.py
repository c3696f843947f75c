"""Shared fixtures: one real daemon for the session, fresh daemons where a test needs one."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import Daemon

MakeDaemon = Callable[..., Daemon]


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
def make_daemon(tmp_path: Path) -> Iterator[MakeDaemon]:
    """Start daemons of their own (config, env, home), for tests that restart or kill them."""
    started: list[Daemon] = []

    def make(
        config: str = "", env: dict[str, str] | None = None, home: Path | None = None
    ) -> Daemon:
        d = Daemon.start(home or tmp_path / f"home{len(started)}", env=env, config=config)
        started.append(d)
        return d

    yield make
    for d in started:
        if d.process.poll() is None:
            d.stop()


@pytest.fixture
def fresh_daemon(make_daemon: MakeDaemon) -> Daemon:
    return make_daemon()
