"""Builds the engine from settings, starts it in order, and stops it in reverse."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.config import Settings
from orchestrator.environments import Environments
from orchestrator.experiments.batch import ExperimentService
from orchestrator.experiments.inputs import InputService, InputSetService
from orchestrator.inbox import Inbox
from orchestrator.registry.apps import AppService
from orchestrator.registry.instances import InstanceService
from orchestrator.registry.push import PushService
from orchestrator.registry.versions import VersionService
from orchestrator.runs.events import RunEvents
from orchestrator.runs.executor import Executor
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.recovery import recover
from orchestrator.runs.sandbox import Sandbox
from orchestrator.runs.scheduler import Scheduler
from orchestrator.runs.service import RunService
from orchestrator.services import Services
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore
from orchestrator.uploads import UploadService

log = logging.getLogger("orch.engine")


@dataclass
class Engine:
    services: Services
    envs: Environments
    scheduler: Scheduler
    inbox: Inbox
    sandbox: Sandbox

    async def start(self) -> None:
        """Recovery first: nothing may start before the previous daemon's runs are settled."""
        report = await recover(self.services.store, self.services.settings.home)
        await self.envs.resume()
        await self.services.uploads.purge_expired()
        for run in report.queued:
            self.scheduler.submit(run)
        await self.services.experiments.resume()
        await self.inbox.start()

    async def stop(self) -> None:
        await self.inbox.stop()
        await self.scheduler.stop(self.services.settings.shutdown_grace_seconds)
        self.sandbox.close()
        await self.envs.stop()
        await self.services.store.close()


async def build_engine(settings: Settings) -> Engine:
    home = settings.home
    store = Store(home.db)
    await store.open()
    blobs = BlobStore(home.blobs)
    envs = Environments(store, settings)
    events = RunEvents()
    manifests = ManifestCache()
    sandbox = Sandbox.from_settings(settings)
    log.info("process containment: %s", sandbox.containment)
    executor = Executor(store, settings, sandbox, envs, events, manifests)
    scheduler = Scheduler(store, executor, settings.concurrency)
    uploads = UploadService(store, settings)
    push = PushService(store, settings, blobs, envs.on_new_executable)
    runs = RunService(store, settings, uploads, scheduler, executor, events, manifests)
    inputs = InputService(store, blobs, uploads)
    input_sets = InputSetService(store, inputs)
    experiments = ExperimentService(store, home, runs, inputs, input_sets)
    events.subscribe(experiments.on_run_finished)
    svc = Services(
        settings=settings,
        store=store,
        blobs=blobs,
        apps=AppService(store, home, blobs),
        push=push,
        versions=VersionService(store),
        instances=InstanceService(store, settings),
        uploads=uploads,
        runs=runs,
        inputs=inputs,
        input_sets=input_sets,
        experiments=experiments,
    )
    return Engine(svc, envs, scheduler, Inbox(home, push), sandbox)
