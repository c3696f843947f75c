"""Builds the engine from settings, starts it in order, and stops it in reverse."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.config import Settings, dask_address
from orchestrator.disk import DiskMonitor
from orchestrator.environments import BuildJail, Environments
from orchestrator.errors import Unavailable
from orchestrator.experiments.acceptance import AcceptanceService
from orchestrator.experiments.analysis import ExperimentAnalysis
from orchestrator.experiments.batch import ExperimentService
from orchestrator.experiments.ensemble_runs import EnsembleRuns
from orchestrator.experiments.ensembles import EnsembleDefinitions
from orchestrator.experiments.inputs import InputService, InputSetService
from orchestrator.experiments.routing import Router
from orchestrator.experiments.shadow import ShadowTests
from orchestrator.experiments.shadow_runs import ShadowTrigger
from orchestrator.experiments.switchback import SwitchbackTests
from orchestrator.housekeeping import Housekeeping
from orchestrator.inbox import Inbox
from orchestrator.registry.apps import AppService
from orchestrator.registry.gc import Collector
from orchestrator.registry.instances import InstanceService
from orchestrator.registry.push import PushService
from orchestrator.registry.secrets import SecretsService
from orchestrator.registry.versions import VersionService
from orchestrator.runs.backend import Backend
from orchestrator.runs.backends.local import LocalBackend
from orchestrator.runs.events import RunEvents
from orchestrator.runs.executor import Executor
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.recovery import recover
from orchestrator.runs.sandbox import Sandbox
from orchestrator.runs.scheduler import Scheduler
from orchestrator.runs.service import RunService
from orchestrator.runs.states import RunStates
from orchestrator.services import Services
from orchestrator.store import Store
from orchestrator.store.blobs import BlobStore
from orchestrator.uploads import UploadService

log = logging.getLogger("orch.engine")
Phase = Callable[[str], contextlib.AbstractContextManager[None]]


@dataclass
class Engine:
    services: Services
    envs: Environments
    scheduler: Scheduler
    inbox: Inbox
    backend: Backend
    housekeeping: Housekeeping

    async def start(self, phase: Phase = lambda _: contextlib.nullcontext()) -> None:
        """Recovery first: nothing may start before the previous daemon's runs are settled.
        ``phase`` names each step (``lifecycle.StartPhases``: a slow start says where)."""
        svc = self.services
        with phase("recovering the runs a stopped daemon left"):
            report = await recover(svc.store, svc.runs.states, self.backend)
        with phase("resuming environment builds"):
            await self.envs.resume()
        with phase("sweeping what a stopped daemon left"):
            await self.housekeeping.start()  # sweeps what a killed daemon left; watches disk
            if restored := await svc.push.restore_missing():
                log.warning("unpacked again %d package(s) whose folder was gone", len(restored))
        with phase(f"queueing {len(report.queued)} run(s) again"):
            for run, execution in report.reattached:
                self.scheduler.adopt(run, execution)
            for run in report.queued:
                self.scheduler.submit(run)
        with phase("resuming experiments and tests"):
            await self.services.experiments.resume()
            await self.services.ensemble_runs.resume()
            await self.services.switchback_tests.resume()
            await self.services.shadow_tests.resume()
        with phase("watching the push directory"):
            await self.inbox.start()

    async def stop(self) -> None:
        await self.housekeeping.stop()
        await self.services.shadow_tests.close()
        await self.inbox.stop()
        await self.scheduler.stop(self.services.settings.shutdown_grace_seconds)
        await self.backend.close()
        await self.envs.stop()
        await self.services.store.close()


async def make_backend(settings: Settings, envs: Environments) -> Backend:
    """The backend the settings name; the dask one (and Dask itself) is imported only
    when chosen, so the default install stays lean."""
    address = dask_address(settings.executor)
    if address is None:
        sandbox = Sandbox.from_settings(settings)
        log.info("process containment: %s", sandbox.containment)
        envs.jail = BuildJail.start(sandbox, settings)
        return LocalBackend(settings, sandbox, envs)
    try:
        from orchestrator.runs.backends.dask.backend import DaskBackend
    except ImportError as exc:
        raise Unavailable(
            f"the dask executor needs the dask extra (pip install 'orch[dask]'): {exc}"
        ) from None
    backend = await DaskBackend.connect(settings, address)
    try:  # a push's requirements are built here too (a push waits for them; workers build
        # their own): in a jail, as a local daemon's are, from a sandbox of builds only
        envs.jail = BuildJail.start(Sandbox.from_settings(settings, standby=0), settings)
    except BaseException:
        await backend.close()
        raise
    envs.owns_jail = True
    return backend


async def build_engine(settings: Settings, disk: DiskMonitor | None = None) -> Engine:
    home = settings.home
    disk = disk or DiskMonitor.of(settings)
    store = Store(home.db, disk)
    await store.open()
    blobs = BlobStore(home.blobs)
    envs = Environments(store, settings)
    events = RunEvents()
    states = RunStates(store, events)
    manifests = ManifestCache()
    try:
        backend = await make_backend(settings, envs)
    except BaseException:
        await store.close()  # its checkpointer thread and connections go with it
        raise
    executor = Executor(store, settings, backend, states, manifests)
    scheduler = Scheduler(executor, states, backend.slots, admit=lambda: disk.ok)
    disk.when_space_returns(scheduler.resume)
    if (watch_slots := getattr(backend, "watch_slots", None)) is not None:
        watch_slots(scheduler.resize)  # a cluster's slots follow its workers
    uploads = UploadService(store, settings)
    gc = Collector(store, home, blobs)
    push = PushService(store, settings, blobs, gc, envs.on_new_executable)
    runs = RunService(store, settings, uploads, scheduler, executor, states, events, manifests)
    inputs = InputService(store, blobs, uploads)
    input_sets = InputSetService(store, inputs)
    experiments = ExperimentService(store, home, runs, inputs, input_sets)
    events.subscribe(experiments.on_run_changed)
    ensemble_definitions = EnsembleDefinitions(store)
    ensemble_runs = EnsembleRuns(store, home, runs, ensemble_definitions)
    events.subscribe(ensemble_runs.on_run_changed)
    switchback_tests = SwitchbackTests(store, home)
    shadow_tests = ShadowTests(store, home, runs)
    shadows = ShadowTrigger(store, home, runs, shadow_tests)
    runs.router = Router(ensemble_runs, switchback_tests, shadows)
    svc = Services(
        settings=settings,
        store=store,
        blobs=blobs,
        apps=AppService(store, home, blobs, gc),
        push=push,
        versions=VersionService(store),
        instances=InstanceService(store, settings),
        uploads=uploads,
        runs=runs,
        inputs=inputs,
        input_sets=input_sets,
        experiments=experiments,
        analysis=ExperimentAnalysis(store),
        secrets=SecretsService(store),
        acceptance=AcceptanceService(store, experiments),
        ensemble_definitions=ensemble_definitions,
        ensemble_runs=ensemble_runs,
        switchback_tests=switchback_tests,
        shadow_tests=shadow_tests,
    )
    housekeeping = Housekeeping(home, store, uploads, disk)
    return Engine(svc, envs, scheduler, Inbox(home, push, envs), backend, housekeeping)
