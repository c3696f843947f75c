"""One per worker process: runs models in orch's sandbox, as the local backend does.

Dask calls the task (``worker.run_task``) in one of its threads; the sandbox is
asyncio code (pidfds, timers), so the runner keeps its own event loop in a
thread of its own and the task thread waits for its attempt there. On that loop
an attempt materializes what the run needs from the cache (fetching what is
missing from the cluster by key; an environment is built in the jail, as the
daemon's are: ``environments.BuildJail``), builds the workspace and command with the
local backend's ``stage`` (so the sandbox's rules are the same everywhere),
runs it, and packs what the daemon needs back.

Dask cannot interrupt a running task, so cancel is a side channel: the daemon
calls ``worker.cancel_run`` on the worker (``Client.run``), which kills the
process tree (or stops the attempt while it is still being prepared, or
leaves a tombstone for an attempt that has not arrived yet).

A side channel reaches only the workers connected when it is sent, and a task the
scheduler forgets keeps its thread (and so its model) running on the worker. So a
model also runs under its claim (``claims.py``): every ``LEASE_SECONDS`` the runner
asks the scheduler who holds the keys of its running models, and stops those whose
claim is no longer its own: the daemon withdrew it (the run ended without this
worker's word: failed while the daemon's connection to the scheduler was broken,
canceled while it was away), or the scheduler has none (it came back empty). Only a
clear answer stops a model: a scheduler that does not answer is no verdict (a worker
that lost its scheduler closes, and stops its models then).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import logging
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from distributed import Future

from orchestrator import trees
from orchestrator.environments import BuildJail, build_isolation
from orchestrator.errors import OrchError
from orchestrator.models import Failure, FailureKind
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.pyenv import build_env, shared_python
from orchestrator.runs.backend import StartFailed
from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.cache import (
    BlobMismatch,
    WorkerCache,
    attempt_label,
    budget_bytes,
)
from orchestrator.runs.backends.dask.outputs import pack
from orchestrator.runs.backends.dask.protocol import Blob, RunLost, TaskResult, TaskSpec
from orchestrator.runs.backends.local import Staged, stage
from orchestrator.runs.process import ProcessResult
from orchestrator.runs.sandbox import RunningProcess, Sandbox
from orchestrator.runs.workspace import Workspace

log = logging.getLogger("orch.dask.runner")

FETCH_TIMEOUT_SECONDS = 300.0
PUBLISH_WAIT_SECONDS = 30.0
HOUSEKEEPING_SECONDS = 5.0
LEASE_SECONDS = 5.0
"""How often a worker running models asks the scheduler whether their claims are still its
own (one call per worker, whatever number of models it runs)."""
LEASE_ANSWER_SECONDS = 10.0
TOMBSTONE_SECONDS = 3600.0
MAX_LOG_READ = 256 * 1024
"""Bytes of a run's log handed to one pull (the daemon asks again 4 times a second)."""


class StageFailed(Exception):
    """The attempt cannot start, for a reason that is the run's (environment, package)."""

    def __init__(self, failure: Failure, restartable: bool = False) -> None:
        super().__init__(failure.message)
        self.failure, self.restartable = failure, restartable


@dataclass
class Attempt:
    """An attempt while it is on this worker: what cancel and the log pulls need."""

    run_id: str
    task: asyncio.Task[Any] | None
    prep: asyncio.Task[Staged] | None = None
    ws: Workspace | None = None
    process: RunningProcess | None = None
    canceled: bool = False
    grace: float = 2.0
    closing: bool = False
    """Killed because the worker is closing: a lost worker to the daemon, not a cancel."""
    key: str = ""
    """The attempt's task key: the claim its model runs under."""


def facts_without_process(canceled: bool = False, failure: Failure | None = None) -> ProcessResult:
    return ProcessResult(None, None, 0.0, 0.0, 0.0, None, None, canceled, None, failure=failure)


class WorkerRunner:
    def __init__(self, address: str, root: Path) -> None:
        self.address = address
        self.cache = WorkerCache(root)
        self.cache.sweep()
        self.sandbox = Sandbox(home=root)  # the cache (other runs, packages) hidden from models
        self.builds = BuildJail(self.sandbox, root, owner=self.cache.owner)
        """Where the environments runs need are built: the daemon's build jail, in this
        worker's sandbox, the app's cache under this worker's, with the memory and the
        ``read_paths`` of the run's daemon (``_jail``); what a killed worker process left
        of its builds goes with its sweep (``WorkerCache.sweep``)."""
        self.loop = asyncio.new_event_loop()
        self._attempts: dict[str, Attempt] = {}
        """By task key: a refused restart may be staging next to the real attempt."""
        self._tombstones: dict[str, float] = {}
        self._fetching: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._shared: str | None = None
        """The interpreter of apps without requirements here, once known (``_python``)."""
        self._client: Any = None
        """The worker's client (every task here gets the same): the lease checks use it."""
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="orch-runner", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        chores = [
            self.loop.create_task(self._housekeeping()),
            self.loop.create_task(self._leases()),
        ]
        self.loop.run_forever()
        for chore in chores:
            chore.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            self.loop.run_until_complete(asyncio.gather(*chores))
        self.loop.close()

    @property
    def describe(self) -> dict[str, Any]:
        """The sandbox models get here (the shape of the local backend's ``isolation``),
        and this worker's cache and interpreter."""
        return {
            "containment": self.sandbox.containment,
            **self.sandbox.isolation.to_dict(),
            "builds": build_isolation(self.sandbox),
            "cache": str(self.cache.root),
            "python": sys.version.split()[0],
            "running": len(self._attempts),
        }

    # -- called from Dask's threads ----------------------------------------------------

    def run(self, spec: TaskSpec, client: Any) -> TaskResult:
        """The task: claim the key (a rescheduled task is refused) while the attempt is
        being prepared; the model starts only once the claim is this worker's."""
        self._client = client
        claim: concurrent.futures.Future[str] = concurrent.futures.Future()
        attempt = asyncio.run_coroutine_threadsafe(self._attempt(spec, client, claim), self.loop)
        try:
            first = client.run_on_scheduler(claims.claim, spec.key, self.address, spec.run.id)
        except BaseException as exc:
            claim.set_exception(exc)
            attempt.add_done_callback(lambda done: done.exception())  # it ends on this error
            raise
        claim.set_result(first)
        if first not in (self.address, claims.WITHDRAWN):
            attempt.result()  # prepared for nothing: wait for its clean-up
            raise RunLost(spec.key, first)
        return attempt.result()  # a withdrawn key's: nothing ran, as for a canceled run

    def cancel(self, run_id: str, grace: float) -> None:
        self.loop.call_soon_threadsafe(self._cancel, run_id, grace)

    def read_log(self, run_id: str, offset: int) -> bytes | None:
        """New bytes of a running attempt's log from ``offset``; None if it is not here."""
        attempt = next((a for a in self._of_run(run_id) if a.process is not None), None)
        if attempt is None or attempt.ws is None:
            return None
        try:
            with open(attempt.ws.stderr, "rb") as fh:
                fh.seek(offset)
                return fh.read(MAX_LOG_READ)
        except FileNotFoundError:
            return b""

    def close(self) -> None:
        """The worker is closing: no model of ours outlives it."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError, TimeoutError):  # loop already gone
            asyncio.run_coroutine_threadsafe(self._stop_all(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.sandbox.close()
        self.cache.close()

    # -- on the runner's loop ------------------------------------------------------------

    async def _attempt(
        self, spec: TaskSpec, client: Any, claim: concurrent.futures.Future[str]
    ) -> TaskResult:
        run_id = spec.run.id
        if self._tombstones.pop(run_id, None) is not None:
            return self._nothing_ran(facts_without_process(canceled=True))
        attempt = self._attempts[spec.key] = Attempt(run_id, asyncio.current_task(), key=spec.key)
        run_dir = self.cache.run_dir(run_id, spec.attempt)
        try:
            attempt.prep = asyncio.create_task(self._stage(spec, client, run_dir))
            try:
                staged = await attempt.prep
            except StageFailed as exc:
                facts = facts_without_process(failure=exc.failure)
                return TaskResult(facts, self.address, b"", b"", None, exc.restartable)
            except asyncio.CancelledError:
                if not attempt.canceled:
                    raise
                return self._nothing_ran(facts_without_process(canceled=True))
            owner = await asyncio.wrap_future(claim)
            if owner != self.address:  # refused: never started
                return self._nothing_ran(facts_without_process(canceled=owner == claims.WITHDRAWN))
            return await self._execute(spec, attempt, staged)
        finally:
            self._attempts.pop(spec.key, None)
            await asyncio.to_thread(_remove_run_dir, run_dir)

    async def _execute(self, spec: TaskSpec, attempt: Attempt, staged: Staged) -> TaskResult:
        attempt.ws = staged.ws
        attempt.process = await self.sandbox.start(staged.spec)
        if attempt.canceled:
            attempt.process.cancel(attempt.grace)
        facts = await attempt.process.wait()
        if attempt.closing:
            why = f"worker {self.address} closed while the run ran"
            return self._nothing_ran(
                facts_without_process(failure=Failure(FailureKind.WORKER_LOST, detail=why))
            )
        fmt, manifest = spec.run.input_format, Manifest.from_dict(spec.manifest)
        stdout, stderr, outputs = await asyncio.to_thread(pack, staged.ws, manifest, fmt)
        return TaskResult(facts, self.address, stdout, stderr, outputs)

    def _nothing_ran(self, facts: ProcessResult) -> TaskResult:
        return TaskResult(facts, self.address, b"", b"", None)

    async def _stage(self, spec: TaskSpec, client: Any, run_dir: Path) -> Staged:
        """What the run needs, from the cache or fetched once; then its workspace."""
        package = await self._package(spec, client)
        input_path = await self._input(spec, client) if spec.input is not None else None
        python = await self._python(spec, package)
        await asyncio.to_thread(_remove_run_dir, run_dir)  # an earlier attempt's leftovers
        if input_path is not None and spec.input is not None and spec.input.folder:
            input_path = await asyncio.to_thread(self.cache.lend_input, input_path, run_dir)
        run = replace(spec.run, input_path=str(input_path) if input_path else None)
        manifest = Manifest.from_dict(spec.manifest)
        label = attempt_label(run.id, spec.attempt)
        try:
            return await asyncio.to_thread(
                stage, run, run_dir, package, manifest, python, label=label, secrets=spec.secrets
            )
        except StartFailed as exc:  # a file secret where the package has a path
            raise StageFailed(exc.failure) from None

    async def _package(self, spec: TaskSpec, client: Any) -> Path:
        sha = spec.package.sha256
        async with self._fetching[sha]:
            if (found := self.cache.package(sha)) is not None:
                return found
            await self._fetch(spec, spec.package, client)
            try:
                return await asyncio.to_thread(self.cache.unpack_package, sha, spec.caps)
            except OrchError as exc:
                detail = f"the package could not be unpacked on worker {self.address}: {exc}"
                raise StageFailed(Failure(FailureKind.SPAWN, detail=detail)) from None

    async def _input(self, spec: TaskSpec, client: Any) -> Path:
        blob = spec.input
        assert blob is not None
        async with self._fetching[blob.sha256]:
            if not blob.folder:
                return self.cache.blob(blob.sha256) or await self._fetch(spec, blob, client)
            if (found := self.cache.input_folder(blob.sha256)) is not None:
                return found
            await self._fetch(spec, blob, client)
            try:
                return await asyncio.to_thread(self.cache.unpack_input, blob.sha256, spec.caps)
            except OrchError as exc:
                detail = f"the input could not be unpacked on worker {self.address}: {exc}"
                raise StageFailed(Failure(FailureKind.SPAWN, detail=detail)) from None

    async def _fetch(self, spec: TaskSpec, blob: Blob, client: Any) -> Path:
        """The bytes from the task (small ones) or the cluster (the daemon scattered them under
        their key), cached by their hash."""
        try:
            if blob.inline is not None:
                return await asyncio.to_thread(self.cache.store, blob.sha256, blob.inline)
            data = await asyncio.to_thread(_gather, client, spec.dataset, blob.key)
            return await asyncio.to_thread(self.cache.store, blob.sha256, data)
        except (BlobMismatch, TimeoutError, OSError) as exc:
            detail = f"worker {self.address} could not fetch {blob.key} from the cluster: {exc}"
            failure = Failure(FailureKind.WORKER_LOST, detail=detail)
            raise StageFailed(failure, restartable=True) from None

    async def _python(self, spec: TaskSpec, package: Path) -> str:
        """The run's environment built here (cached by hash), the worker's shared one, or
        (``python_envs = "daemon"``, or no shared one could be made) its interpreter."""
        if spec.requirements is None:
            if not spec.shared_env:
                return sys.executable
            if self._shared is None:
                self._shared = await shared_python(self.cache.envs, sys.executable)
            return self._shared
        jail, app = self._jail(spec, package)
        envs = self.cache.envs
        built = await build_env(spec.requirements, envs, sys.executable, app=app, jail=jail)
        if not built.ok:
            detail = f"on worker {self.address}:\n{built.message}"
            raise StageFailed(Failure(FailureKind.ENVIRONMENT, detail=detail))
        return str(built.python)

    def _jail(self, spec: TaskSpec, package: Path) -> tuple[BuildJail, str]:
        """Where the run's environment is built, and for which app: the daemon's memory
        and ``read_paths`` for its builds (``TaskSpec.builds``), the run's app's cache."""
        how = spec.builds
        app = how.app or spec.run.app_id
        jail = replace(self.builds, memory_mb=how.memory_mb, read_paths=how.read_paths)
        return jail.of(str(package), app), app

    def _of_run(self, run_id: str) -> list[Attempt]:
        return [a for a in self._attempts.values() if a.run_id == run_id]

    def _cancel(self, run_id: str, grace: float) -> None:
        attempts = self._of_run(run_id)
        if not attempts:  # not here yet (or never): it will not start here
            now = time.monotonic()
            self._tombstones[run_id] = now
            for old in [r for r, t in self._tombstones.items() if now - t > TOMBSTONE_SECONDS]:
                del self._tombstones[old]
        for attempt in attempts:
            _stop(attempt, grace)

    async def _stop_all(self) -> None:
        for attempt in list(self._attempts.values()):
            attempt.closing = True
            self._cancel(attempt.run_id, 0)
        running = [a.task for a in self._attempts.values() if a.task is not None]
        if running:
            await asyncio.wait(running, timeout=10)

    async def _leases(self) -> None:
        """Stop the models whose claim is no longer this worker's (see the module's doc)."""
        while True:
            await asyncio.sleep(LEASE_SECONDS)
            try:
                await self._check_leases()
            except Exception as exc:  # no verdict: the models keep running
                log.info("could not check the claims of this worker's runs: %r", exc)

    async def _check_leases(self) -> None:
        running = {a.key: a for a in self._attempts.values() if a.process is not None}
        client = self._client
        if not running or client is None:
            return
        holders: dict[str, str] = await asyncio.wait_for(
            asyncio.to_thread(client.run_on_scheduler, claims.lookup, list(running)),
            LEASE_ANSWER_SECONDS,
        )
        for key, attempt in running.items():
            holder = holders.get(key)
            if holder == self.address or attempt.canceled or self._attempts.get(key) is not attempt:
                continue  # its own, stopped already, or ended while the scheduler answered
            if holder is None:
                why = "the scheduler has no claim of it (it restarted, or forgot the task)"
            elif holder == claims.WITHDRAWN:
                why = "the daemon withdrew its claim (the run is over)"
            else:
                why = f"its claim is {holder}'s"
            log.warning("run %s: %s; stopping its model (%s)", attempt.run_id, why, key)
            _stop(attempt, 0)

    async def _housekeeping(self) -> None:
        """Sweep what dead worker processes sharing the cache left; keep inputs in budget."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_SECONDS)
            try:
                await asyncio.to_thread(self.cache.sweep)
                await asyncio.to_thread(self.cache.trim, budget_bytes())
            except Exception:  # housekeeping must never take the runner down
                log.exception("worker cache housekeeping failed")


def _stop(attempt: Attempt, grace: float) -> None:
    """Kill the attempt's process tree, or stop it while it is being prepared: canceled."""
    attempt.canceled, attempt.grace = True, grace
    if attempt.process is not None:
        attempt.process.cancel(grace)
    elif attempt.prep is not None:
        attempt.prep.cancel()


def _gather(client: Any, dataset: str, key: str) -> bytes:
    """Shipped bytes, by key, through the run's published record (which holds their future:
    a bare key names nothing a client can wait on). The daemon publishes the record just
    after submitting the task, so a task that starts first waits a moment for it."""
    deadline = time.monotonic() + PUBLISH_WAIT_SECONDS
    while (record := client.get_dataset(dataset, default=None)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the run's record {dataset} is not on the scheduler")
        time.sleep(0.01)
    futures = [f for f in record.get("blobs", []) if isinstance(f, Future) and f.key == key]
    try:
        if not futures or not client.who_has(futures).get(key):
            raise TimeoutError(f"no worker holds {key} (its holder was lost)")
        data: bytes = futures[0].result(timeout=FETCH_TIMEOUT_SECONDS)
    finally:
        for future in record.get("blobs", []):
            future.release()
        record["task"].release()
    return data


def _remove_run_dir(run_dir: Path) -> None:
    """An attempt's folder (only its own: ``WorkerCache.run_dir``)."""
    trees.remove(run_dir)
