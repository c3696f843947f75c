"""Shared fixtures: one real daemon for the session, fresh daemons where a test needs one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon

MakeDaemon = Callable[..., Daemon]


TEST_EXECUTOR = os.environ.get("ORCH_TEST_EXECUTOR", "local")
"""``dask``: the session daemon runs its models on a real Dask cluster started for the
session (``scripts/test`` runs ``tests/compat`` a second time that way)."""


@pytest.fixture(scope="session")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    if TEST_EXECUTOR not in ("local", "dask"):
        raise pytest.UsageError(f"ORCH_TEST_EXECUTOR={TEST_EXECUTOR!r}: use local or dask")
    cluster = (
        DaskCluster.start(tmp_path_factory.mktemp("dask")) if TEST_EXECUTOR == "dask" else None
    )
    env = {"ORCH_EXECUTOR": cluster.executor} if cluster else None
    try:
        d = Daemon.start(tmp_path_factory.mktemp("home"), env=env)
        backend = httpx.get(f"{d.url}/healthz").json()["backend"]["name"]
        assert backend == TEST_EXECUTOR, f"the session daemon runs on {backend}"
        yield d
        d.stop()
    finally:
        if cluster is not None:
            cluster.stop()


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
