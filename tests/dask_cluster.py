"""A real Dask cluster for tests: one ``dask scheduler`` and ``dask worker`` processes.

Each is a separate process on 127.0.0.1 (free ports, no dashboard, no nanny, so a
test can SIGKILL a worker and mean it), started from this interpreter with orch
importable, as a real deployment must be. Each worker gets a cache folder of its
own; ``stop`` tears everything down and reports what the processes logged.

A cluster costs three interpreters that import Dask (~2 s of CPU): a module's tests that
leave it as they found it borrow one from a ``ClusterPool`` (``conftest.dask_clusters``),
which checks it after each test and replaces it when the test failed or left it
otherwise. Tests that kill a worker or the scheduler start their own.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_for


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class DaskWorker:
    name: str
    cache: Path
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL: the worker vanishes mid-task, as a lost machine would."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@dataclass
class DaskCluster:
    root: Path
    port: int
    scheduler: subprocess.Popen[bytes]
    workers: list[DaskWorker] = field(default_factory=list)

    @property
    def executor(self) -> str:
        return f"dask://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, root: Path, workers: int = 2, slots: int = 2) -> DaskCluster:
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cluster = cls(root, port, _scheduler(root, port))
        for n in range(workers):
            cluster.add_worker(f"w{n}", slots)
        return cluster

    def kill_scheduler(self) -> None:
        """SIGKILL the scheduler, and its workers with it (as they would exit, in time)."""
        self.scheduler.send_signal(signal.SIGKILL)
        self.scheduler.wait(10)
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.kill()

    def restart_scheduler(self) -> None:
        """A new scheduler at the same address (its workers must be added again)."""
        self.scheduler = _scheduler(self.root, self.port)

    def add_worker(self, name: str, slots: int = 2, cache: Path | None = None) -> DaskWorker:
        """Start a worker and wait until the scheduler lists it."""
        cache = cache or self.root / f"cache-{name}"
        log = self.root / f"{name}-{len(self.workers)}.log"
        argv = [sys.executable, "-m", "distributed.cli.dask_worker", f"tcp://127.0.0.1:{self.port}"]
        argv += ["--host", "127.0.0.1", "--name", name, "--nthreads", str(slots)]
        argv += ["--resources", f"orch={slots}", "--no-nanny", "--no-dashboard"]
        argv += ["--local-directory", str(self.root / f"scratch-{name}")]
        process = _spawn(argv, log, {"ORCH_WORKER_CACHE": str(cache)})
        worker = DaskWorker(name, cache, process, log)
        self.workers.append(worker)
        wait_for(lambda: _registered(worker), timeout=30)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGTERM)
            try:
                self.scheduler.wait(20)
            except subprocess.TimeoutExpired:
                self.scheduler.kill()
                self.scheduler.wait(10)

    def idle(self, timeout: float = 15) -> bool:
        """As a test must leave a cluster it shares: every process alive, the scheduler
        lists every worker, no run's task is left and no published dataset (waited for up
        to ``timeout``: a test's last run may still be ending on its worker)."""
        from distributed import Client  # Dask only in the tests that use it

        if self.scheduler.poll() is not None or any(
            w.process.poll() is not None for w in self.workers
        ):
            return False
        try:
            with Client(f"tcp://127.0.0.1:{self.port}", timeout=10) as client:
                wanted = (len(self.workers), 0, 0)
                deadline = time.monotonic() + timeout
                while client.run_on_scheduler(_load) != wanted:
                    if time.monotonic() > deadline:
                        return False
                    time.sleep(0.1)
        except OSError:
            return False
        return True

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.root.glob("*.log"))
        )


def _load(dask_scheduler: Any = None) -> tuple[int, int, int]:
    """On the scheduler: its workers, its runs' tasks and the tasks its workers process
    (content a daemon shipped may stay: a daemon still running holds it, and shares it
    with any other by its hash), and its published datasets (one per run on the cluster)."""
    runs = [key for key in dask_scheduler.tasks if str(key).startswith("orch-run-")]
    busy = len(runs) + sum(len(w.processing) for w in dask_scheduler.workers.values())
    datasets = dask_scheduler.extensions["publish"].datasets
    return len(dask_scheduler.workers), busy, len(datasets)


class ClusterPool:
    """Clusters lent to tests, one per shape (a name and how to start it), until ``close``.
    Each is checked after every test that borrowed it (``DaskCluster.idle``); one
    that the test failed with, or left busy or short of a process, is stopped, and the next
    test of that shape gets a new one: a test cannot pass its damage on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.clusters: dict[str, DaskCluster] = {}
        self.started = 0

    @contextmanager
    def lend(
        self, request: pytest.FixtureRequest, shape: str, start: Callable[[Path], DaskCluster]
    ) -> Iterator[DaskCluster]:
        """The cluster of ``shape`` for the duration of a fixture of any scope."""
        cluster = self.clusters.get(shape)
        if cluster is None:
            self.started += 1
            cluster = self.clusters[shape] = start(self.root / f"{shape}-{self.started}")
        failed, keep = request.session.testsfailed, False
        try:
            yield cluster
            keep = request.session.testsfailed == failed and cluster.idle()
        finally:
            if not keep:
                del self.clusters[shape]
                cluster.stop()

    def close(self) -> None:
        for cluster in self.clusters.values():
            cluster.stop()
        self.clusters.clear()


def _scheduler(root: Path, port: int) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    scheduler = _spawn(argv, root / "scheduler.log")
    wait_for(lambda: _listening(port, scheduler, root / "scheduler.log"), timeout=30)
    return scheduler


def _spawn(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )


def _listening(port: int, process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"dask scheduler exited:\n{log.read_text()}")
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _registered(worker: DaskWorker) -> bool:
    if worker.process.poll() is not None:
        raise AssertionError(f"dask worker {worker.name} exited:\n{worker.log.read_text()}")
    time.sleep(0.05)
    return "Registered to" in worker.log.read_text(errors="replace")
