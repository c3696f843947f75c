"""Shared fixtures: one real daemon for the session, fresh daemons where a test needs one."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from tests.dask_cluster import ClusterPool, DaskCluster
from tests.helpers import Daemon
from tests.old_databases import write_old

MakeDaemon = Callable[..., Daemon]
OldDatabase = Callable[[Path, int], None]


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


@pytest.fixture(scope="module")
def dask_clusters(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterPool]:
    """Dask clusters lent to a module's tests that leave them as they found them, one per
    shape, checked after each test and replaced if not (``tests/dask_cluster.py``). Not
    kept for the session: an idle scheduler and worker still burn ~5 % of a core."""
    pool = ClusterPool(tmp_path_factory.mktemp("dask-pool"))
    yield pool
    pool.close()


@pytest.fixture
def api(daemon: Daemon) -> Iterator[httpx.Client]:
    with daemon.client() as client:
        yield client


@pytest.fixture
def make_daemon(tmp_path: Path) -> Iterator[MakeDaemon]:
    """Start daemons of their own (config, env, home), for tests that restart or kill them;
    ``launcher`` as ``Daemon.start`` takes it (``tests.helpers.with_constants``)."""
    started: list[Daemon] = []

    def make(
        config: str = "",
        env: dict[str, str] | None = None,
        home: Path | None = None,
        launcher: Sequence[str] = ("-m", "orchestrator"),
    ) -> Daemon:
        d = Daemon.start(
            home or tmp_path / f"home{len(started)}", env=env, config=config, launcher=launcher
        )
        started.append(d)
        return d

    yield make
    for d in started:
        if d.process.poll() is None:
            d.stop()


@pytest.fixture
def fresh_daemon(make_daemon: MakeDaemon) -> Daemon:
    return make_daemon()


@pytest.fixture
def listener() -> Iterator[int]:
    """A local TCP port to connect to (what environment builds reach, and models do not)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.listen(8)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="session")
def old_database(tmp_path_factory: pytest.TempPathFactory) -> OldDatabase:
    """``write_old(path, version)`` at the cost of a file copy. ``write_old`` commits each
    statement on its own (as those orchs did), a few hundred fsyncs a file: the contract
    tests asked for it ~700 times, ~1 s each on a busy disk. Each version is written once a
    session here and copied byte for byte for every test, which then migrates its own copy
    as before."""
    folder = tmp_path_factory.mktemp("old-databases")

    def copy(path: Path, version: int) -> None:
        template = folder / f"v{version}.db"
        if not template.exists():
            partial = folder / f"v{version}.db.partial"
            partial.unlink(missing_ok=True)
            write_old(partial, version)
            partial.rename(template)
        shutil.copyfile(template, path)

    return copy
