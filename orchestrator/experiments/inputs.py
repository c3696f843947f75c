"""Managed inputs and input sets: the inputs that matter, kept by content hash.

An input is taken from an upload or from a past run, hashed, and stored once
in the blob store; it keeps a name. An input set is an ordered list of
inputs, built from inputs, files, past runs, or an instance's recent runs.
"""

from __future__ import annotations

import builtins
import contextlib
import shutil
from datetime import UTC, datetime
from pathlib import Path

from orchestrator.errors import Conflict, Invalid, NotFound, OrchError
from orchestrator.ids import check_label, new_id, new_token, relabel, validate_child_id
from orchestrator.models import InputSet, ManagedInput, Run, RunStatus
from orchestrator.registry.lookup import require_app
from orchestrator.registry.resolve import resolve
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.store import Repos, Store
from orchestrator.store.blobs import BlobStore
from orchestrator.store.overview import RunQuery
from orchestrator.uploads import UploadService


def parse_time(value: str | None) -> str | None:
    """ISO 8601 (with or without offset; naive means UTC) → our stored timestamp text."""
    if not value:
        return None
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(f"{value!r} is not an ISO 8601 time (e.g. 2026-01-31T12:00:00Z)") from None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _directory_format(fmt: str) -> str:
    return f"{fmt} inputs cannot be kept in input sets yet: use json or text"


async def require_input(repos: Repos, app_id: str, input_id: str) -> ManagedInput:
    found = await repos.inputs.get(app_id, input_id)
    if found is None:
        raise NotFound(f"input {input_id!r} not found in app {app_id!r}")
    return found


class InputService:
    def __init__(self, store: Store, blobs: BlobStore, uploads: UploadService) -> None:
        self.store, self.blobs, self.uploads = store, blobs, uploads
        self.scratch = uploads.settings.home.scratch("inputs")

    def path(self, item: ManagedInput) -> Path:
        return self.blobs.path(item.sha256)

    async def from_upload(
        self,
        app_id: str,
        upload_id: str,
        name: str | None,
        input_id: str | None = None,
        fmt: str = "json",
        description: str = "",
    ) -> ManagedInput:
        up = await self.uploads.take_input(app_id, upload_id)
        return await self._keep(
            app_id, Path(up.path), name or upload_id, input_id, fmt, description
        )

    async def from_run(
        self,
        app_id: str,
        run_id: str,
        name: str | None = None,
        input_id: str | None = None,
        description: str = "",
    ) -> ManagedInput:
        run = await self.source_run(app_id, run_id)
        assert run.input_path is not None  # source_run refuses a run without one
        copy = self.scratch / f"keep-{new_token()[:16]}"
        try:
            shutil.copyfile(run.input_path, copy)
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        return await self._keep(
            app_id,
            copy,
            name or run.name or run_id,
            input_id,
            run.input_format,
            description,
            run_id=run_id,
        )

    async def source_run(self, app_id: str, run_id: str) -> Run:
        """The run ``from_run`` keeps the input of, or why it cannot: callers that keep
        several check them all first, so a bad one is refused before any input is made."""
        run = await self.store.read.runs.get(run_id)
        if run is None or run.app_id != app_id:
            raise NotFound(f"run {run_id!r} not found in app {app_id!r}")
        if run.input_path is None or Path(run.input_path).is_dir():
            raise Invalid(f"run {run_id!r} has no single-file input to keep")
        if run.input_format in DIRECTORY_FORMATS:
            raise Invalid(_directory_format(run.input_format))
        return run

    async def _keep(
        self,
        app_id: str,
        path: Path,
        name: str,
        input_id: str | None,
        fmt: str,
        description: str,
        run_id: str | None = None,
    ) -> ManagedInput:
        try:
            if fmt in DIRECTORY_FORMATS:
                raise Invalid(_directory_format(fmt))
            input_id = validate_child_id(input_id or new_id("input"), "input")
            check_label("input", name, description)
            if await self.store.read.inputs.get(app_id, input_id) is not None:
                raise Conflict(f"input {input_id!r} already exists in app {app_id!r}")
            sha, size, _ = await self.blobs.add_file(path)
        finally:
            path.unlink(missing_ok=True)  # moved into the blob store, or refused
        item = ManagedInput(
            id=input_id,
            app_id=app_id,
            name=name,
            sha256=sha,
            size=size,
            format=fmt,
            description=description,
            run_id=run_id,
        )
        async with self.store.write() as w:
            await require_app(w, app_id)
            if await w.inputs.get(app_id, input_id) is not None:
                raise Conflict(f"input {input_id!r} already exists in app {app_id!r}")
            await w.inputs.insert(item)
        return item

    async def get(self, app_id: str, input_id: str) -> ManagedInput:
        return await require_input(self.store.read, app_id, input_id)

    async def list(self, app_id: str) -> builtins.list[ManagedInput]:
        await require_app(self.store.read, app_id)
        return await self.store.read.inputs.list(app_id)

    async def update(
        self, app_id: str, input_id: str, name: str | None, description: str | None
    ) -> ManagedInput:
        async with self.store.write() as w:
            item = await require_input(w, app_id, input_id)
            relabel("input", item, name, description)
            await w.inputs.update(item)
        return item

    async def delete(self, app_id: str, input_id: str) -> None:
        async with self.store.write() as w:
            item = await require_input(w, app_id, input_id)
            sets = await w.inputs.in_sets(app_id, input_id)
            if sets:
                raise Conflict(f"input {input_id!r} is in input set(s) {', '.join(sets)}")
            await w.inputs.delete(app_id, input_id)
            orphans = await w.inputs.orphan_blobs([item.sha256])
        for sha in orphans:
            self.blobs.delete(sha)


class InputSetService:
    def __init__(self, store: Store, inputs: InputService) -> None:
        self.store, self.inputs = store, inputs

    async def create(
        self,
        app_id: str,
        set_id: str | None,
        name: str | None,
        description: str = "",
        input_ids: builtins.list[str] | None = None,
        run_ids: builtins.list[str] | None = None,
        instance_id: str | None = None,
        maximum_runs: int | None = None,
        start_time: str | None = None,
        end_time: str | None = None,
    ) -> InputSet:
        set_id = validate_child_id(set_id or new_id("input-set"), "input set")
        check_label("input set", name, description)
        await require_app(self.store.read, app_id)
        if await self.store.read.input_sets.get(app_id, set_id) is not None:
            raise Conflict(f"input set {set_id!r} already exists in app {app_id!r}")
        ids = list(input_ids or [])
        for input_id in dict.fromkeys(ids):
            await require_input(self.store.read, app_id, input_id)
        sources = await self._source_runs(
            app_id, run_ids, instance_id, maximum_runs, start_time, end_time
        )
        for run_id in dict.fromkeys(sources):
            await self.inputs.source_run(app_id, run_id)
        if not ids and not sources:
            raise Invalid(
                "an input set needs inputs: give input ids, files, run ids or an instance"
            )
        # Everything is checked: only a race (a run deleted meanwhile) can fail from here,
        # and then the inputs made so far go again, so a refused set leaves none behind.
        made: builtins.list[str] = []
        try:
            for run_id in sources:
                made.append((await self.inputs.from_run(app_id, run_id)).id)
            # an instance's traffic repeats itself; runs named one by one are the user's
            # choice, kept as given (as Nextmv's input sets from run ids are)
            kept = await self._once_by_content(app_id, ids, made) if instance_id else made
            item = InputSet(set_id, app_id, name or set_id, description or "", [*ids, *kept])
            return await self._save(item)
        except BaseException:
            for input_id in made:
                with contextlib.suppress(OrchError):  # the first error is the one to answer
                    await self.inputs.delete(app_id, input_id)
            raise

    async def _once_by_content(
        self, app_id: str, given: builtins.list[str], made: builtins.list[str]
    ) -> builtins.list[str]:
        """``made`` (inputs just kept from runs) without those whose content (sha256) is
        already in the set: a batch on the set would weight that input double. Busy
        instances see the same request again and again; the first run's input stays,
        the copies go (``made`` keeps only the ones left, for the caller's cleanup)."""
        seen = {(await require_input(self.store.read, app_id, i)).sha256 for i in given}
        kept: builtins.list[str] = []
        for input_id in list(made):
            sha = (await require_input(self.store.read, app_id, input_id)).sha256
            if sha in seen:
                await self.inputs.delete(app_id, input_id)
                made.remove(input_id)
            else:
                seen.add(sha)
                kept.append(input_id)
        return kept

    async def _source_runs(
        self,
        app_id: str,
        run_ids: builtins.list[str] | None,
        instance_id: str | None,
        maximum_runs: int | None,
        start_time: str | None,
        end_time: str | None,
    ) -> builtins.list[str]:
        if instance_id is None:
            return list(run_ids or [])
        own = RunQuery(
            app_id=app_id,
            instance_id=instance_id,
            status=RunStatus.SUCCEEDED,
            created_after=parse_time(start_time),
            created_before=parse_time(end_time),
            experiment_runs=False,  # the instance's traffic, not what experiments ran on it
        )
        runs = await self.store.read.overview.runs(own, limit=maximum_runs or 20)
        if not runs:
            await resolve(self.store.read, app_id, instance_id, None)  # unknown: 404, not 400
            raise Invalid(f"instance {instance_id!r} has no succeeded runs in that window")
        return [*(run_ids or []), *(r.id for r in runs)]

    async def _save(self, item: InputSet) -> InputSet:
        async with self.store.write() as w:
            if await w.input_sets.get(item.app_id, item.id) is not None:  # made meanwhile
                raise Conflict(f"input set {item.id!r} already exists in app {item.app_id!r}")
            for input_id in dict.fromkeys(item.input_ids):
                await require_input(w, item.app_id, input_id)
            item.input_ids = list(dict.fromkeys(item.input_ids))
            await w.input_sets.insert(item)
        return item

    async def get(self, app_id: str, set_id: str) -> InputSet:
        found = await self.store.read.input_sets.get(app_id, set_id)
        if found is None:
            await require_app(self.store.read, app_id)
            raise NotFound(f"input set {set_id!r} not found in app {app_id!r}")
        return found

    async def list(self, app_id: str) -> builtins.list[InputSet]:
        await require_app(self.store.read, app_id)
        return await self.store.read.input_sets.list(app_id)

    async def update(
        self,
        app_id: str,
        set_id: str,
        name: str | None,
        description: str | None,
        input_ids: builtins.list[str] | None,
    ) -> InputSet:
        """``input_ids``: the set's inputs from now on, exactly (None: they stay as they are)."""
        item = await self.get(app_id, set_id)
        if input_ids is not None and not input_ids:
            raise Invalid("an input set needs inputs: give at least one input id")
        async with self.store.write() as w:
            relabel("input set", item, name, description)
            if input_ids is not None:
                for input_id in dict.fromkeys(input_ids):
                    await require_input(w, app_id, input_id)
                item.input_ids = list(dict.fromkeys(input_ids))
            await w.input_sets.update(item)
        return item

    async def delete(self, app_id: str, set_id: str) -> None:
        await self.get(app_id, set_id)
        async with self.store.write() as w:
            await w.input_sets.delete(app_id, set_id)

    async def members(self, app_id: str, set_id: str) -> builtins.list[ManagedInput]:
        item = await self.get(app_id, set_id)
        return [await require_input(self.store.read, app_id, i) for i in item.input_ids]
