"""The trigger rule of shadow tests: a user's run on a baseline instance is shadowed.

After a run asked for through ``/runs`` (or the CLI) has been made as asked, each
*started* test that names its instance as a baseline counts it (``claim_run``: at
most ``maximum_runs``, the last one completes the test) and makes one run per
candidate instance: same input, same request options, marked with the test's ID
as their experiment ID and linked to the baseline run (``shadow_runs``). Candidate
runs are queued through the run service directly, so they never trigger anything
themselves, and queue behind interactive runs (the priority of experiment runs, or
the baseline's if lower). Nothing here may fail or delay the baseline run beyond the
writes: a candidate that cannot be made is recorded with its reason, never raised.

The input is shared without copying bytes: a managed input's blob is used as is; a
file or folder in the baseline run's own folder is hard-linked into the candidate's,
so deleting either run never takes the other's input away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import replace
from pathlib import Path

import anyio

from orchestrator import trees
from orchestrator.errors import OrchError
from orchestrator.experiments.batch import EXPERIMENT_PRIORITY
from orchestrator.experiments.shadow import ShadowTests
from orchestrator.home import Home
from orchestrator.models import Run, now
from orchestrator.runs.service import RunRequest, RunService
from orchestrator.shadow_models import ShadowLink, ShadowTest
from orchestrator.store import Store

log = logging.getLogger("orch.shadow")


class ShadowTrigger:
    def __init__(self, store: Store, home: Home, runs: RunService, tests: ShadowTests) -> None:
        self.store, self.home, self.runs, self.tests = store, home, runs, tests
        self._tasks: set[asyncio.Task[None]] = set()

    async def after(self, req: RunRequest, run: Run) -> None:
        """Shadow ``run`` (made as ``req`` asked) in every started test it is a baseline
        of. Never raises: the user's run exists whatever happens here; a request canceled
        meanwhile (the client went away) does not cut the work short either."""
        if req.experiment_id is not None or req.version_id is not None:
            return  # runs made for an experiment, and runs on a bare version
        try:  # the common case stops here: one indexed read, no task
            shadowing = await self.store.read.shadow_tests.started_for(run.app_id, run.instance_id)
        except Exception:
            log.exception("run %s: could not read the shadow tests", run.id)
            return
        if not shadowing:
            return
        task = asyncio.create_task(self._shadow_all(shadowing, req, run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        await asyncio.shield(task)

    async def _shadow_all(self, tests: list[ShadowTest], req: RunRequest, run: Run) -> None:
        for test in tests:
            try:
                await self._shadow(test, req, run, test.candidates_of(run.instance_id))
            except Exception:
                log.exception("shadow test %s: could not shadow run %s", test.id, run.id)

    async def _shadow(
        self, test: ShadowTest, req: RunRequest, run: Run, candidates: tuple[str, ...]
    ) -> None:
        if test.end_time is not None and test.end_time <= now():
            await self.tests.end(test)  # its timer has not fired yet
            return
        async with self.store.write() as w:
            claimed = await w.shadow_tests.claim_run(test.app_id, test.id)
        if not claimed:
            return  # full, or ended meanwhile
        links = [await self._candidate(test, req, run, c) for c in candidates]
        async with self.store.write() as w:
            await w.shadow_tests.insert_links(test.app_id, links)

    async def _candidate(
        self, test: ShadowTest, req: RunRequest, baseline: Run, instance_id: str
    ) -> ShadowLink:
        try:
            made = await self._make(test, req, baseline, instance_id)
        except OrchError as exc:
            return ShadowLink(test.id, baseline.id, instance_id, None, exc.message)
        except Exception as exc:
            log.exception("shadow test %s: candidate on %s", test.id, instance_id)
            return ShadowLink(test.id, baseline.id, instance_id, None, f"internal error: {exc}")
        return ShadowLink(test.id, baseline.id, instance_id, made.id)

    async def _make(
        self, test: ShadowTest, req: RunRequest, baseline: Run, instance_id: str
    ) -> Run:
        asked = replace(
            req,
            instance_id=instance_id,
            input=None,
            upload_id=None,
            input_file=None,
            input_format=baseline.input_format,
            experiment_id=test.id,
            experiment_type="shadow",
            priority=max(baseline.priority, EXPERIMENT_PRIORITY),
            name=f"{req.name or baseline.id} / {instance_id}",
            description=f"shadow test {test.id}: candidate of run {baseline.id}",
        )
        run = await self.runs.prepare(asked)
        run_dir = self.home.run_dir(run.id)
        run_dir.mkdir()
        try:
            run.input_path = await anyio.to_thread.run_sync(
                share_input, baseline.input_path, self.home.run_dir(baseline.id), run_dir
            )
            run.input_size = baseline.input_size
            await self.runs.create_many([run])
        except BaseException:
            trees.remove(run_dir)
            raise
        return run


def share_input(source: str | None, baseline_dir: Path, run_dir: Path) -> str | None:
    """The candidate's input path: the same managed blob, or hard links to the baseline's."""
    if source is None:
        return None
    path = Path(source)
    if path.parent != baseline_dir:
        return source  # a managed input, shared read-only like input sets share theirs
    target = run_dir / path.name
    if path.is_dir():
        shutil.copytree(path, target, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(path), str(target))
    return str(target)


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:  # a file system without hard links
        shutil.copy2(source, target)
