"""Runs as the API sees them: create, read, list, wait, cancel, delete."""

from __future__ import annotations

import asyncio
import builtins
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import anyio

from orchestrator import trees
from orchestrator.config import Settings
from orchestrator.errors import Conflict, Invalid, NotFound
from orchestrator.ids import check_label, new_id
from orchestrator.models import DEFAULT_PRIORITY, Limits, Run, RunStatus, now
from orchestrator.packaging.manifest import Manifest
from orchestrator.registry.resolve import resolve
from orchestrator.registry.secrets import require_collection
from orchestrator.runs import files, inputs
from orchestrator.runs.assets import Asset, run_asset, run_assets
from orchestrator.runs.events import RunEvents
from orchestrator.runs.executor import Executor
from orchestrator.runs.limits import run_limits
from orchestrator.runs.manifests import ManifestCache
from orchestrator.runs.options import apply_options, undeclared_options
from orchestrator.runs.process import StrPath
from orchestrator.runs.scheduler import Scheduler
from orchestrator.runs.states import OwnerRows, RunStates
from orchestrator.runs.tracked import ArchiveLimits, TrackedResult, record, unpushed
from orchestrator.runs.workspace import SMALL_OUTPUT, Workspace, sized_json
from orchestrator.store import Store
from orchestrator.uploads import UploadService

MIB = 1024 * 1024
_T = TypeVar("_T")
TEXT_FORMAT = "text"
SNIFF_BYTES = 4096
"""Read from a large output to see whether it opens a JSON object."""


@dataclass
class RunRequest:
    app_id: str
    instance_id: str | None = None
    version_id: str | None = None
    input: Any = None
    upload_id: str | None = None
    input_file: Path | None = None
    """An input already stored by orch (input sets): shared read-only, never copied."""
    input_format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    name: str = ""
    description: str = ""
    priority: int | None = None
    """The run's own queuing priority; None: its instance's, else ``DEFAULT_PRIORITY``."""
    queuing_disabled: bool | None = None
    """The run's own ``queuing.disabled``; None: its instance's, else False."""
    limits: Limits = field(default_factory=Limits)
    execution_class: str | None = None
    experiment_id: str | None = None
    experiment_type: str | None = None
    """What ``experiment_id`` names (``Run.experiment_type``)."""
    input_id: str | None = None
    secrets_collection_id: str | None = None
    """The run's own collection; else its instance's."""
    ensemble_definition_id: str | None = None
    """An ensemble run (the SDK's run type ``ensemble``): fans out by this definition."""
    cloned_run_id: str | None = None
    """The run of the same app this one was cloned from (the SDK's ``tracking``)."""


class RunRouter(Protocol):
    """Where runs created through ``/runs`` go (ensembles, shadow and switchback tests):
    the domain outside ``runs`` decides, the run service only asks."""

    async def create(
        self, req: RunRequest, plain: Callable[[RunRequest], Awaitable[Run]]
    ) -> Run: ...

    async def cancel(self, runs: builtins.list[Run]) -> builtins.list[Run]:
        """Cancel the runs it owns (ensemble runs); the others are left to the caller."""
        ...


class RunService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        uploads: UploadService,
        scheduler: Scheduler,
        executor: Executor,
        states: RunStates,
        events: RunEvents,
        manifests: ManifestCache,
    ) -> None:
        self.store, self.settings, self.uploads = store, settings, uploads
        self.scheduler, self.executor, self.events = scheduler, executor, events
        self.states, self.manifests = states, manifests
        self.router: RunRouter | None = None

    async def manifest(self, app_id: str, instance_id: str | None) -> Manifest:
        """The app.yaml a run on the instance would run by: the input it takes when the run
        does not say, the options it declares (the new-run form shows both)."""
        target = await resolve(self.store.read, app_id, instance_id, None)
        return self.manifests.get(target.executable.id, target.executable.manifest)

    async def prepare(self, req: RunRequest) -> Run:
        """Resolve, check options and limits: everything that can refuse a run, no writes.

        What the run leaves unset comes from its target here and only here: options,
        limits, execution class, secrets collection and queuing (priority, disabled)."""
        if req.priority is not None and not 1 <= req.priority <= 9:
            raise Invalid(f"priority must be between 1 and 9, got {req.priority}")
        check_label("run", req.name, req.description)
        target = await resolve(self.store.read, req.app_id, req.instance_id, req.version_id)
        await self._check_clone(req)
        manifest = self.manifests.get(target.executable.id, target.executable.manifest)
        applied = apply_options(manifest, target.options, req.options)
        limits = run_limits(self.settings, target, req.limits, req.execution_class)
        collection = req.secrets_collection_id or target.secrets_collection_id
        if collection:
            await require_collection(self.store.read, req.app_id, collection)
        return Run(
            id=new_id("run"),
            app_id=req.app_id,
            instance_id=target.instance_id,
            version_id=target.version_id,
            executable_id=target.executable.id,
            name=req.name or "",
            description=req.description or "",
            priority=_first(req.priority, target.queuing.priority, DEFAULT_PRIORITY),
            options=applied.values,
            option_sources=applied.sources,
            request_options=dict(req.options),
            limits=limits,
            execution_class=req.execution_class or target.execution_class,
            input_format=inputs.check_format(req.input_format or manifest.content_format),
            experiment_id=req.experiment_id,
            experiment_type=req.experiment_type,
            input_id=req.input_id,
            queuing_disabled=_first(req.queuing_disabled, target.queuing.disabled, False),
            secrets_collection_id=collection,
            cloned_run_id=req.cloned_run_id,
        )

    async def undeclared(self, run: Run) -> builtins.list[dict[str, str | None]]:
        """The options the run's request gave that its executable's app.yaml does not
        declare, each with its note (``runs/options.py``); instance options were noted when
        the instance was set. Reads nothing when the request gave no options."""
        given = [k for k, source in run.option_sources.items() if source == "run"]
        if not given or not run.executable_id:  # an ensemble's parent run: its groups' runs
            return []
        manifest = self.manifests.cached(run.executable_id)
        if manifest is None:
            exe = await self.store.read.executables.get(run.executable_id)
            if exe is None:  # pragma: no cover - a run's executable outlives it
                return []
            manifest = self.manifests.get(exe.id, exe.manifest)
        where = (
            f"version {run.version_id}"
            if run.version_id
            else f"devint's push {run.executable_id[:12]}"
        )
        return [u.to_dict(where) for u in undeclared_options(manifest, given)]

    async def _check_clone(self, req: RunRequest) -> None:
        """A clone names a run of its app (its status: cheap), pushed or not."""
        if req.cloned_run_id is None:
            return
        found = await self.store.read.runs.status(req.cloned_run_id)
        if found is None or found[0] != req.app_id:
            raise NotFound(f"cloned run {req.cloned_run_id!r} not found in app {req.app_id!r}")

    async def create(self, req: RunRequest) -> Run:
        """A run asked for by a user (``/runs``, the CLI): the router may redirect it."""
        if self.router is not None:
            return await self.router.create(req, self.create_plain)
        return await self.create_plain(req)

    async def create_plain(self, req: RunRequest) -> Run:
        run = await self.prepare(req)
        run_dir = self.settings.home.run_path(run.id)
        os.mkdir(run_dir)
        try:
            run.input_path, run.input_size = await self.store_input(run_dir, req, run.input_format)
            if not await self._start_now(run):
                await self.states.create(run)
                self.scheduler.submit(run)
        except BaseException:
            trees.remove(run_dir)
            raise
        return run

    async def track(self, req: RunRequest, result: TrackedResult) -> Run:
        """Record a run that happened elsewhere, finished as reported: nothing executes.

        An app with nothing pushed takes tracked runs too (on devint, no executable)."""
        try:
            run = await self.prepare(req)
        except Conflict:
            if req.instance_id or req.version_id:
                raise
            await self._check_clone(req)  # prepare refused before it got there
            run = unpushed(req)
        run_dir = self.settings.home.run_dir(run.id)
        run_dir.mkdir()
        try:
            run.input_path, run.input_size = await self.store_input(run_dir, req, run.input_format)
            limits = ArchiveLimits(
                self.settings.max_upload_mb * MIB, self.settings.max_package_files
            )
            await record(run, run_dir, result, self.uploads, limits)
            await self.states.create(run)
        except BaseException:
            trees.remove(run_dir)
            raise
        return run

    async def _start_now(self, run: Run) -> bool:
        """Spawn a run that finds a free slot *before* its row exists, then write the row
        ``running`` with its placement (pid, cgroup) in one statement while the model
        starts: the write is off the path from submit to spawn, and a run is never
        claimed. False: no free slot. The answer waits for the row, so a client can
        read what it was given; if the write fails, the process is killed and the
        error is the answer. A daemon killed between the spawn and the write leaves a
        process no row names: start-up recovery finds it by its standby cgroup or its
        marker (``recovery``)."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def record(placement: dict[str, Any] | None) -> bool:
            run.status, run.started_at, run.placement = RunStatus.RUNNING, now(), placement
            try:
                await self.states.create(run)
            except Exception as exc:
                written.set_exception(exc)
                return False
            written.set_result(None)
            return True

        task = self.scheduler.start_now(run, record)
        if task is None:
            return False

        def never_written(_: object) -> None:  # a bug, not a state: do not hang the client
            if not written.done():
                written.set_exception(RuntimeError(f"run {run.id} ended before it was written"))

        task.add_done_callback(never_written)
        await asyncio.shield(written)
        return True

    async def create_many(
        self, runs: builtins.list[Run], owner: OwnerRows | None = None, lead: Run | None = None
    ) -> None:
        """Queue prepared runs whose inputs orch already stores (experiments), in one write,
        with the row that owns them and the run they follow (``owner``, ``lead``:
        ``RunStates.create_many``; the lead is written, not queued).

        Their folders are made when they start: inputs are shared from the blob store.
        """
        await self.states.create_many(runs, owner, lead)
        for run in runs:
            self.scheduler.submit(run)

    async def store_input(
        self, run_dir: StrPath, req: RunRequest, fmt: str
    ) -> tuple[str | None, int]:
        """The run's input in ``run_dir``: its path (None without one) and size."""
        if req.upload_id is not None:
            up = await self.uploads.take_input(req.app_id, req.upload_id)
            return await anyio.to_thread.run_sync(
                inputs.adopt_upload,
                run_dir,
                Path(up.path),
                fmt,
                self.settings.max_upload_mb * MIB,
                self.settings.max_package_files,
            )
        if req.input_file is not None:
            return str(req.input_file), req.input_file.stat().st_size
        if req.input is None:
            return None, 0
        return inputs.write_inline(run_dir, req.input, fmt)

    async def get(self, app_id: str, run_id: str) -> Run:
        run = await self.store.read.runs.get(run_id)
        if run is None or run.app_id != app_id:
            raise NotFound(f"run {run_id!r} not found in app {app_id!r}")
        return run

    async def list(
        self,
        app_id: str,
        status: RunStatus | None = None,
        instance_id: str | None = None,
        limit: int = 50,
        before: tuple[str, str] | None = None,
    ) -> builtins.list[Run]:
        if await self.store.read.apps.get(app_id) is None:
            raise NotFound(f"app {app_id!r} not found")
        return await self.store.read.runs.list(
            app_id, status=status, instance_id=instance_id, limit=limit, before=before
        )

    async def queue(self) -> builtins.list[Run]:
        """Queued and running runs of every app, oldest first (the account's queue)."""
        return await self.store.read.runs.unfinished()

    async def wait(self, app_id: str, run_id: str, seconds: float) -> Run:
        """The run as soon as it is finished, or as it is after ``seconds``.

        Before waiting only its status is read: the run is read whole once, at the end.
        """
        fut = self.events.watch(run_id)
        try:
            found = await self.store.read.runs.status(run_id)
        except BaseException:
            self.events.forget(run_id, fut)
            raise
        if found is None or found[0] != app_id or found[1].finished or seconds <= 0:
            self.events.forget(run_id, fut)
        else:
            await self.events.wait(run_id, fut, seconds)
        return await self.get(app_id, run_id)

    async def cancel(self, app_id: str, run_id: str) -> Run:
        run = await self.get(app_id, run_id)
        if run.status.finished:
            raise Conflict(f"run {run_id!r} already finished ({run.status.value})")
        await self.cancel_many([run])
        return await self.wait(app_id, run_id, 30)

    async def cancel_many(self, runs: builtins.list[Run]) -> None:
        """Cancel runs: queued ones never start, running ones have their processes stopped.

        Returns once the queued ones are canceled; running ones end canceled as soon as
        their processes are gone (wait for them with ``wait``).
        """
        if self.router is not None:
            runs = await self.router.cancel(runs)
        queued = [r.id for r in runs if r.status == RunStatus.QUEUED]
        self.scheduler.discard_many(queued)
        moved = set(await self.states.cancel_queued(queued))
        for run in runs:  # running ones, and queued ones that started meanwhile
            if run.id not in moved:
                self.executor.cancel(run.id)

    async def cancel_experiment_runs(self, app_id: str, experiment_id: str) -> builtins.list[str]:
        """``cancel_many`` for every unfinished run of an experiment, none of them read
        whole (39,000 read to be canceled took seconds of the loop); returns the ids of
        those that were running, which end canceled once their processes are gone.

        The queued ones leave the scheduler's queue first, so none starts meanwhile; one
        that had just been handed a slot either loses its claim to the cancel (and is
        killed) or is running by the time the running ones are read."""
        self.scheduler.discard_matching(
            lambda run: run.experiment_id == experiment_id and run.app_id == app_id
        )
        await self.states.cancel_queued_of_experiment(app_id, experiment_id)
        read = self.store.read.runs
        running = await read.ids_of_experiment(app_id, experiment_id, RunStatus.RUNNING)
        for run_id in running:
            self.executor.cancel(run_id)
        return running

    async def delete(self, app_id: str, run_id: str) -> None:
        run = await self.get(app_id, run_id)
        if not run.status.finished:
            raise Conflict(f"run {run_id!r} is {run.status.value}; cancel it before deleting it")
        async with self.store.write() as w:
            await w.runs.delete(run_id)
        trees.remove(self.settings.home.run_dir(run_id))

    async def assets(self, run: Run) -> builtins.list[dict[str, Any]]:
        """The run's assets in the shape of the SDK's ``RunAsset``, with their content, for
        the console's run page, which shows what is left whatever became of the files."""
        args = await self._asset_args(run)
        return [
            a.wire() | {"content": a.content}
            for a in await anyio.to_thread.run_sync(run_assets, *args)
        ]

    async def asset_list(self, run: Run) -> builtins.list[Asset]:
        """The run's assets (``runs/assets``): metadata only, no file's bytes read. A run
        whose folder was deleted answers ``RunFilesGone``, not an empty list: its assets
        were in the folder (its output, its assets file)."""
        return await anyio.to_thread.run_sync(
            run_assets, *await self._asset_args(run, files_required=True)
        )

    async def asset(self, run: Run, asset_id: str) -> Asset:
        """One of the run's assets, as ``asset_list`` lists it (NotFound if none)."""
        args = await self._asset_args(run, files_required=True)
        return await anyio.to_thread.run_sync(run_asset, *args, asset_id)

    async def _asset_args(
        self, run: Run, files_required: bool = False
    ) -> tuple[Run, Workspace, int, str]:
        exe = await self.store.read.executables.get(run.executable_id)
        manifest = self.manifests.get(exe.id, exe.manifest) if exe else None
        assets_file = manifest.multi_file.assets if manifest else "outputs/assets.json"
        ws = Workspace.of(self.settings.home.run_path(run.id))
        if files_required:
            files.require(run, ws.root, ws.stdout, "assets")
        return run, ws, self.settings.inline_output_bytes, assets_file

    async def output_is_text(self, run: Run) -> bool:
        """Whether a finished run of a text app left an output that is no JSON object: the
        SDK reads every output whose format is not ``json`` as a tar.gz at its URL, and one
        that is ``json`` with ``.json()``, which text fails. A text app that prints JSON
        stays ``json`` (the SDK gets the object); json apps are never read here.

        Up to the inline size the output is parsed, as the run result's ``output`` is (the
        same answer both ways); above it, only its first bytes are looked at."""
        if run.input_format != TEXT_FORMAT or not run.status.finished or run.output_size == 0:
            return False
        path, limit = self.output_path(run), self.settings.inline_output_bytes
        if run.output_size > limit:
            return not await anyio.to_thread.run_sync(_opens_an_object, path)
        if run.output_size < SMALL_OUTPUT:  # parsing it costs less than a hop to a thread
            size, doc = sized_json(path, limit)
        else:
            size, doc = await anyio.to_thread.run_sync(sized_json, path, limit)
        return size > 0 and not isinstance(doc, dict)  # size 0: gone, nothing to call text

    def output_path(self, run: Run) -> Path:
        return Path(Workspace.of(self.settings.home.run_path(run.id)).stdout)

    def log_path(self, run: Run) -> Path:
        return Path(Workspace.of(self.settings.home.run_path(run.id)).stderr)

    def log_file(self, run: Run) -> Path:
        """``log_path`` for the API's log routes, which must not answer a deleted folder
        with an empty log: raises ``RunFilesGone`` then (``runs/files``). The console keeps
        ``log_path``: its run page shows the metadata whatever became of the files."""
        ws = Workspace.of(self.settings.home.run_path(run.id))
        files.require(run, ws.root, ws.stderr, "log")
        return Path(ws.stderr)


def _opens_an_object(path: Path) -> bool:
    """Whether the file starts (after blanks) like a JSON object; a missing file does (it
    is no text to archive). ``O_NONBLOCK``: a model may have left a FIFO there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        head = os.read(fd, SNIFF_BYTES)
    except OSError:
        return True
    finally:
        os.close(fd)
    return head.lstrip(b" \t\r\n").startswith(b"{")


def _first(mine: _T | None, instance: _T | None, default: _T) -> _T:
    """The run's own value, else its instance's, else the default (queuing's fields)."""
    if mine is not None:
        return mine
    return instance if instance is not None else default
