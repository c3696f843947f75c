"""The dask backend, daemon side: the ``Backend`` the engine talks to.

``prepare`` ships what the run reads (its package, its input) into the cluster
by content and builds its ``TaskSpec``; ``start`` submits one task; the
``DaskExecution`` supervises it; ``collect`` writes what came back into the
daemon's run folder, where the API reads it; ``recover`` picks up the runs a
crashed daemon left on the cluster. The daemon keeps every run's state: the
cluster only ever sees tasks.

The connection to the scheduler is a ``Link`` (``link.py``): when the scheduler goes,
the cluster has no slot, so queued runs wait; a run staged ahead waits for the link
and ships its files again on the next connection (what was shipped on the lost one is
gone with it); once a new connection is up, the worker plugin and the event topic are
set up on it again, with a fresh shipper. A cluster with no worker left has no slot
either: a run staged meanwhile (or a retry) waits for a worker to ship its files to
(``shipping.py``).

A run that ended without its worker's result (the outage failed it; a cancel while the
scheduler was away) may still run on a worker that outlived the outage: on every tick of
the link, the runs kept in the context's ``Leftovers`` are settled on the cluster (their
claims withdrawn, killed on every worker, their records dropped; ``execution.settle``).
A tick, not the reconnection: Dask's client may reconnect by itself to the same scheduler
(a brief break) before the link sees it go, and the runs failed all the same.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
from distributed import Client, Future

from orchestrator.config import Settings
from orchestrator.errors import OrchError
from orchestrator.models import Failure, FailureKind, Run
from orchestrator.packaging.pyenv import requirements_of
from orchestrator.runs.backend import Collected, Execution, Job, StartFailed
from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.cluster import Cluster
from orchestrator.runs.backends.dask.execution import Context, DaskExecution, submit
from orchestrator.runs.backends.dask.link import Link
from orchestrator.runs.backends.dask.logs import LogPuller
from orchestrator.runs.backends.dask.outputs import write_back
from orchestrator.runs.backends.dask.protocol import (
    PLUGIN_NAME,
    TOPIC,
    Blob,
    Builds,
    TaskSpec,
    UnpackCaps,
    dataset_name,
)
from orchestrator.runs.backends.dask.recovery import reattach
from orchestrator.runs.backends.dask.shipping import Shipper, archive
from orchestrator.runs.backends.dask.worker import RunnerPlugin
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.process import ProcessResult
from orchestrator.runs.workspace import Workspace, collect, small_output

log = logging.getLogger("orch.dask")

MIB = 1024 * 1024
UNCOLLECTED_SECONDS = 600.0


@dataclass(frozen=True)
class Shipped:
    """A prepared run: its spec, and the blobs held for it until it is collected."""

    spec: TaskSpec
    blobs: list[Blob]
    generation: int
    """The connection its blobs were shipped on (``Link.generation``)."""


class DaskBackend:
    name = "dask"

    def __init__(self, settings: Settings, link: Link) -> None:
        self.settings, self.link, self.address = settings, link, link.address
        self.background = link.background
        self.shipper = Shipper(link.client)
        self.ctx = Context(
            link,
            tenant(settings),
            link.address,
            settings.home.runs,
            self.background,
            self._reship,
            protections_of=lambda worker: self.cluster.protections_of(worker),
        )
        link.on_connect(self._attach)  # before the cluster's: its workers may start runs
        self.cluster = Cluster(link, self.background)
        link.on_tick(self._tell_leftovers)  # after the cluster's: it finds a new scheduler
        self.executions: dict[str, DaskExecution] = {}
        self.logs = LogPuller(link, settings.home.runs, lambda: self.executions.values())

    @classmethod
    async def connect(cls, settings: Settings, address: str) -> DaskBackend:
        """Connect to the scheduler (once sure it is one), install the worker plugin,
        watch the cluster and the connection."""
        link = await Link.open(address, Background())
        backend = cls(settings, link)
        backend.cluster.watch_gone(backend._on_gone)
        try:
            await link.start()
        except BaseException:
            await link.close()
            raise
        backend.logs.start()
        log.warning(
            "dask backend: scheduler %s, %d worker(s), %d slot(s)",
            address,
            len(backend.cluster.workers),
            backend.cluster.slots,
        )
        return backend

    # -- what the engine reads -------------------------------------------------------

    @property
    def slots(self) -> int:
        return self.cluster.slots

    def watch_slots(self, callback: Callable[[int], None]) -> None:
        self.cluster.watch_slots(callback)

    @property
    def isolation(self) -> dict[str, Any]:
        return self.cluster.isolation

    @property
    def details(self) -> dict[str, Any]:
        return {
            "scheduler": self.address,
            **self.link.state,
            "workers": len(self.cluster.workers),
            "cluster": {
                address: {"name": w.name, "slots": w.slots, **w.isolation}
                for address, w in self.cluster.workers.items()
            },
        }

    # -- a run's life ----------------------------------------------------------------

    async def prepare(self, job: Job) -> Shipped:
        run, exe, manifest = job.run, job.executable, job.manifest
        home = self.settings.home
        requirements = None
        isolated = exe.type == "python" and self.settings.python_envs != "daemon"
        if isolated:
            try:
                requirements = requirements_of(manifest, home.executables / exe.id)
            except OrchError as exc:
                raise StartFailed(Failure(FailureKind.ENVIRONMENT, detail=str(exc))) from None
        home.run_dir(run.id).mkdir(parents=True, exist_ok=True)
        while True:
            generation = await self.link.ready()  # while the scheduler is away: wait here
            try:
                package, input_blob, blobs = await self._ship(run, exe.id)
                break
            except Exception:
                if self.link.generation == generation:
                    if self.link.connected:
                        raise
                    self.link.lost("the connection to the scheduler closed")  # before the watch
                log.info("run %s: the scheduler went while its files were shipped", run.id)
        spec = TaskSpec(
            run=replace(run, placement=None),
            manifest=exe.manifest,
            package=package,
            input=input_blob,
            requirements=requirements,
            caps=self._caps(),
            dataset=dataset_name(self.ctx.tenant, run.id),
            shared_env=isolated and requirements is None,
            secrets=job.secrets,
            builds=self._builds(run),
        )
        return Shipped(spec, blobs, generation)

    async def _ship(self, run: Run, exe_id: str) -> tuple[Blob, Blob | None, list[Blob]]:
        """The run's package and input on the cluster: (package, input, what is held)."""
        shipper, blobs_dir = self.shipper, self.settings.home.blobs
        blobs: list[Blob] = []
        try:
            package = await shipper.ship_file(blobs_dir / exe_id[:2] / exe_id, exe_id)
            blobs.append(package)
            input_blob = await self._ship_input(shipper, run)
            if input_blob is not None:
                blobs.append(input_blob)
        except BaseException:
            shipper.release(blobs)
            raise
        return package, input_blob, blobs

    async def _ship_input(self, shipper: Shipper, run: Run) -> Blob | None:
        if run.input_path is None:
            return None
        path = Path(run.input_path)
        in_blob_store = path.parent.parent == self.settings.home.blobs  # named by its hash
        return await shipper.ship_input(path, path.name if in_blob_store else None)

    async def _reship(self, spec: TaskSpec) -> list[Future]:
        """What a run reads, on the cluster again (a retry after a lost worker, which may
        have held the only copy); read from the daemon's own files, by the same hashes."""
        package = self.settings.home.blobs / spec.package.sha256[:2] / spec.package.sha256
        futures = [await self.shipper.refresh(spec.package, package.read_bytes)]
        if spec.input is not None and spec.input.inline is None and spec.run.input_path:
            path = Path(spec.run.input_path)
            read = functools.partial(archive, path) if spec.input.folder else path.read_bytes
            futures.append(await self.shipper.refresh(spec.input, read))
        return futures

    def _builds(self, run: Run) -> Builds:
        """A worker builds the run's environment as this daemon builds a push's."""
        s = self.settings
        app = f"{self.ctx.tenant}/{run.app_id}"
        return Builds(app, s.limits.memory_mb, s.isolation.read_paths)

    def _caps(self) -> UnpackCaps:
        s = self.settings
        return UnpackCaps(
            package_bytes=s.max_package_mb * MIB * 4,  # as a push allows it to unpack to
            package_files=s.max_package_files,
            input_bytes=s.max_upload_mb * MIB,
        )

    def discard(self, run_id: str, staging: asyncio.Future[Any]) -> None:
        """The blobs a discarded stage holds go back once it has stopped."""

        def release(_: asyncio.Future[Any]) -> None:
            if not staging.cancelled() and staging.exception() is None:
                shipped: Shipped = staging.result()[1]
                if shipped.generation == self.link.generation:  # else its shipper is gone
                    self.shipper.release(shipped.blobs)

        staging.cancel()
        staging.add_done_callback(release)

    async def start(self, job: Job, prepared: Shipped) -> DaskExecution:
        if not self.link.connected:  # started past the queue while the scheduler is away
            await self.link.ready()
        if prepared.generation != self.link.generation:  # staged before the scheduler went
            prepared = await self.prepare(job)
        spec = prepared.spec
        execution = DaskExecution(
            self.ctx,
            spec,
            submit(self.ctx, spec),
            self.shipper.futures(prepared.blobs),
            retries_left=job.run.limits.retries or 0,
        )
        execution.held = prepared.blobs
        self._forget_uncollected()
        self.executions[job.run.id] = execution
        return execution

    async def collect(self, job: Job, prepared: Shipped | None, result: ProcessResult) -> Collected:
        run = job.run
        execution = self.executions.pop(run.id, None)
        if execution is not None:
            self.shipper.release(execution.held)
        ws = Workspace.of(self.settings.home.run_path(run.id))
        if execution is not None and execution.result is not None:
            await anyio.to_thread.run_sync(
                write_back, Path(ws.root), execution.result, execution.log_from, self._caps()
            )
        args = (ws, job.manifest, run.input_format, self.settings.statistics_parse_bytes)
        small = run.input_format not in DIRECTORY_FORMATS and small_output(ws.stdout)
        return collect(*args) if small else await anyio.to_thread.run_sync(collect, *args)

    async def recover(
        self, running: list[Run], queued: list[Run], known: set[str]
    ) -> dict[str, Execution]:
        """Reattach to the runs a crashed daemon left on the cluster; stop the rest."""
        found = await reattach(self.ctx, running, known)
        self.executions.update(found)
        return dict(found)

    async def close(self) -> None:
        await self.logs.stop()
        await self.background.drain(10)
        if self.link.up:
            self.shipper.close()
        await self.link.close()

    async def _attach(self, client: Client) -> None:
        """A connection (the first, or one after the scheduler came back): what was
        shipped on an earlier one is gone with it; the plugin and the topic are new here."""
        if self.shipper.client is not client:
            self.shipper.abandon()
            self.shipper = Shipper(client)
            for execution in self.executions.values():
                execution.held = []  # the abandoned shipper's: nothing to release
        await client.register_plugin(RunnerPlugin(), name=PLUGIN_NAME)
        client.subscribe_topic(TOPIC, self._on_event)

    async def _tell_leftovers(self) -> None:
        """The runs ended without their worker's result are over on the cluster too."""
        await self.ctx.leftovers.tell(self.ctx)

    # -- cluster events --------------------------------------------------------------

    def _on_event(self, event: tuple[float, Any]) -> None:
        _, msg = event
        if isinstance(msg, dict) and msg.get("event") == "accepted":
            execution = self.executions.get(str(msg.get("run")))
            if execution is not None:
                execution.accepted(str(msg.get("key")), str(msg.get("worker")))

    def _on_gone(self, worker: str, keys: set[str], why: str) -> None:
        for execution in list(self.executions.values()):
            execution.gone(worker, keys, why)

    def _forget_uncollected(self) -> None:
        """A run that ended without being collected (its start was never recorded) is
        dropped after a while, with the outputs it brought back."""
        cutoff = time.monotonic() - UNCOLLECTED_SECONDS
        for run_id, execution in list(self.executions.items()):
            if execution.ended_at is not None and execution.ended_at < cutoff:
                del self.executions[run_id]
                self.shipper.release(execution.held)


def tenant(settings: Settings) -> str:
    """This daemon's name on a cluster others may share: its host and home, hashed."""
    where = f"{socket.gethostname()}:{settings.home.root.resolve()}"
    return hashlib.sha256(where.encode()).hexdigest()[:12]
