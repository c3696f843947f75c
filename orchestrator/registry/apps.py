"""App lifecycle: create, read, update (incl. the default instance), delete, history."""

from __future__ import annotations

import asyncio
import builtins

from orchestrator import trees
from orchestrator.environments import forget_app
from orchestrator.errors import Conflict, Invalid
from orchestrator.home import Home
from orchestrator.ids import check_label, validate_id
from orchestrator.models import RESERVED_INSTANCES, App, PointerMove
from orchestrator.registry.gc import Collector
from orchestrator.registry.lookup import rename, require_app, require_instance
from orchestrator.store import Repos, Store
from orchestrator.store.blobs import BlobStore

_UNSET = object()


class AppService:
    def __init__(self, store: Store, home: Home, blobs: BlobStore, gc: Collector) -> None:
        self.store, self.home, self.blobs, self.gc = store, home, blobs, gc

    async def create(
        self,
        app_id: str,
        name: str,
        description: str = "",
        default_experiment_instance_id: str | None = None,
        default_instance_id: str | None = None,
    ) -> App:
        """A new app; its default instances are checked before anything is written, so a
        refused one leaves no app behind (a new app has no instances yet: only the
        reserved ones can be named, and as the default instance they mean none: the
        caller passes None for them)."""
        validate_id(app_id, "app")
        if not name or not name.strip():
            raise Invalid("app name is required")
        check_label("app", name, description)
        app = App(
            id=app_id,
            name=name,
            description=description or "",
            default_experiment_instance_id=default_experiment_instance_id or None,
        )
        async with self.store.write() as w:
            if await w.apps.get(app_id) is not None:
                raise Conflict(f"app {app_id!r} already exists")
            await _check_experiment_default(w, app_id, app.default_experiment_instance_id)
            if default_instance_id is not None:
                await require_instance(w, app_id, default_instance_id)
                app.default_instance_id = default_instance_id
            await w.apps.insert(app)
        (self.home.push / app_id).mkdir(exist_ok=True)
        return app

    async def get(self, app_id: str) -> App:
        return await require_app(self.store.read, app_id)

    async def list(self) -> builtins.list[App]:
        return await self.store.read.apps.list()

    async def update(
        self,
        app_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        default_instance_id: str | object | None = _UNSET,
        default_experiment_instance_id: str | object | None = _UNSET,
    ) -> App:
        """Change name/description and/or the default (experiment) instance ("" or None
        clears it)."""
        async with self.store.write() as w:
            app = await require_app(w, app_id)
            rename(app, name, description, "app")
            if default_instance_id is not _UNSET:
                new = default_instance_id or None
                assert new is None or isinstance(new, str)
                await self._check_default(w, app_id, new)
                await w.history.record(
                    PointerMove(app_id, "default_instance", app.default_instance_id, new, "update")
                )
                app.default_instance_id = new
            if default_experiment_instance_id is not _UNSET:
                new = default_experiment_instance_id or None
                assert new is None or isinstance(new, str)
                await _check_experiment_default(w, app_id, new)
                old = app.default_experiment_instance_id
                await w.history.record(
                    PointerMove(app_id, "default_experiment_instance", old, new, "update")
                )
                app.default_experiment_instance_id = new
            await w.apps.update(app)
        return app

    @staticmethod
    async def _check_default(w: Repos, app_id: str, instance_id: str | None) -> None:
        if instance_id is None:
            return
        if instance_id in RESERVED_INSTANCES:
            raise Invalid(
                f"{instance_id!r} cannot be the default instance: runs without a default "
                "instance already go to devint"
            )
        await require_instance(w, app_id, instance_id)

    async def delete(self, app_id: str) -> None:
        """Remove the app with its versions, instances, runs and now-unreferenced packages."""
        async with self.store.write() as w:
            await require_app(w, app_id)
            running = await w.runs.unfinished(app_id)
            if running:
                raise Conflict(
                    f"app {app_id!r} has {len(running)} queued or running run(s); cancel them first"
                )
            run_ids = await w.runs.ids_for_app(app_id)
            input_shas = await w.inputs.shas_of_app(app_id)
            await w.apps.delete(app_id)
            orphans = await w.inputs.orphan_blobs(input_shas)
        for sha in orphans:  # kept inputs no other app shares
            self.blobs.delete(sha)
        trees.remove(self.home.push / app_id)
        await asyncio.to_thread(forget_app, self.home, app_id)  # its build cache and envs
        for run_id in run_ids:
            trees.remove(self.home.run_dir(run_id))
        await self.gc.collect()

    async def history(self, app_id: str) -> builtins.list[PointerMove]:
        await require_app(self.store.read, app_id)
        return await self.store.read.history.list(app_id)


async def _check_experiment_default(w: Repos, app_id: str, instance_id: str | None) -> None:
    """The default experiment instance must exist (404 as for the default instance); the
    reserved devint/latest exist in every app, and unlike the default instance naming
    them means something (experiments have no implicit instance), so they are kept."""
    if instance_id is None or instance_id in RESERVED_INSTANCES:
        return
    await require_instance(w, app_id, instance_id)
