"""One run on the cluster, from its task's submission to its facts.

The run's task is published as a dataset with what a restarted daemon needs to
pick it up (the task, the blobs it reads, its spec, what is left of its
retries), so the run outlives a daemon that crashes. ``wait`` ends with the
task's result, or with a lost worker: then the run is started again on another
worker if its ``retries`` limit allows it (a new key, and a line in its log
saying so: never silently), else it fails ``worker_lost`` naming the worker.

A run that ends without its worker's result (the scheduler dropped its task when the
daemon's connection broke, its worker was reported lost, it was withdrawn) may still
run: Dask cannot interrupt a task, a task the scheduler forgets keeps its thread, and
the daemon never heard that its model stopped. So may an earlier attempt of a run that
was started again, whatever its end: a worker reported lost may live on (a missed
heartbeat), and its attempt's claim still names it, so its model would keep its lease
for ever beside the retry. Such a run is kept in ``Leftovers`` until the cluster has been
told it is over (``settle``: every attempt's key withdrawn), on the first connection that
is up.

A run whose task the scheduler dropped before any worker accepted it (the scheduler went
a moment after the run was handed to it) never reached a worker: it is not failed, and
uses up no retry. It stays ``running`` and its log says it waits for the cluster; once the
scheduler answers again it is submitted as a new attempt (a new key: should a worker have
started the old one unseen, that model runs under no claim and is stopped), as a queued
run would start then. Its slot stays its own meanwhile, so it goes first.

The same holds for what an attempt reads: a retry shipped again while no worker is in the
cluster waits for one (``shipping.py``), as a fresh run does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from distributed import Client, Future
from distributed.scheduler import KilledWorker

from orchestrator.models import Failure, FailureKind
from orchestrator.runs.backend import PROTECTIONS, WORKER
from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.link import Connection, Link
from orchestrator.runs.backends.dask.protocol import (
    RESOURCE,
    Blob,
    RunLost,
    TaskResult,
    TaskSpec,
    dataset_name,
    task_key,
)
from orchestrator.runs.backends.dask.worker import cancel_run, run_task
from orchestrator.runs.process import ProcessResult

log = logging.getLogger("orch.dask.execution")

T = TypeVar("T")

FREE_RESTARTS = 2
"""Times a run whose package or input was lost with a worker before anything of it started
is submitted again (no rerun: its model never ran), whatever its retries limit."""


class Leftovers:
    """Runs this daemon ended without their worker's result, or after a failover (whatever
    their end), until the cluster was told.

    Telling it needs a connection that is up, and a run ends this way precisely when the
    connection broke (its task dropped), so each is kept here and told on a tick of the
    link (``DaskBackend``): within a second of its end if the scheduler answers (also when
    Dask's client reconnected by itself, which the link may never see), else within a
    second of the scheduler answering again. A run leaves once told; one whose telling
    failed is tried again on the next tick.
    """

    def __init__(self) -> None:
        self._runs: dict[str, tuple[str, ...]] = {}
        """Run id to the task keys of all its attempts."""

    def add(self, run_id: str, keys: tuple[str, ...]) -> None:
        self._runs[run_id] = keys

    async def tell(self, ctx: Context) -> None:
        """Settle every run kept here on the cluster ``ctx`` reaches now."""
        if not self._runs:
            return
        runs = list(self._runs.items())
        told = await asyncio.gather(
            *(settle(ctx, run_id, keys) for run_id, keys in runs), return_exceptions=True
        )
        for (run_id, keys), outcome in zip(runs, told, strict=True):
            if not isinstance(outcome, BaseException) and self._runs.get(run_id) == keys:
                del self._runs[run_id]
        failed = next((o for o in told if isinstance(o, BaseException)), None)
        if failed is not None:
            raise failed  # the link logs it once; the runs are told on its next tick


@dataclass(frozen=True)
class Context:
    """What every execution shares with its backend."""

    link: Connection
    """The connection to the scheduler, whose client may be a new one (``link.py``)."""
    tenant: str
    scheduler: str
    runs_dir: Path
    background: Background
    reship: Callable[[TaskSpec], Awaitable[list[Future]]]
    """The blobs of a run, shipped again where a lost worker held their only copy."""
    leftovers: Leftovers = field(default_factory=Leftovers)
    """Runs ended without their worker's result, until the cluster was told they are over."""
    protections_of: Callable[[str], list[str] | None] = lambda _worker: None
    """The protections a worker (by address) gives models, as it described them to the
    cluster (``cluster.py``); None while unknown."""

    @property
    def client(self) -> Client:
        return self.link.client

    @property
    def connected(self) -> bool:
        """Whether the scheduler is reachable now (a fixed connection is never lost)."""
        return self.link.connected if isinstance(self.link, Link) else True

    async def decided(self) -> None:
        """The link's verdict on a client that lost its scheduler (``Link.decided``)."""
        if isinstance(self.link, Link):
            await self.link.decided()

    async def ready(self) -> None:
        """Once the scheduler answers (at once while it does)."""
        if isinstance(self.link, Link):
            await self.link.ready()


@dataclass(frozen=True)
class Unreached:
    """An attempt the scheduler dropped before any worker accepted it: the run never
    reached a worker (nothing to fail, no retry to use)."""

    why: str


def submit(ctx: Context, spec: TaskSpec) -> Future:
    """The run's task: one ``orch`` slot, never retried by Dask itself."""
    return ctx.client.submit(
        run_task, spec, key=spec.key, resources={RESOURCE: 1}, pure=False, retries=0
    )


def attempt_keys(run_id: str, attempts: int) -> tuple[str, ...]:
    """The task keys of a run's attempts 1 to ``attempts``."""
    return tuple(task_key(run_id, n) for n in range(1, attempts + 1))


async def settle(ctx: Context, run_id: str, keys: tuple[str, ...]) -> None:
    """Tell the cluster a run is over, wherever and whether or not its model still runs.

    First its claims are withdrawn (``claims.withdraw``): a worker running its model loses
    its lease and stops it within seconds, even if the kill below misses it (it was not
    connected when it was sent), and no worker starts it any more. Then every worker kills
    it at once (and leaves a tombstone if it never had it). Last its published record goes,
    and with it the scheduler's hold on its task and blobs (else kept for ever). On a
    scheduler that came back empty there is nothing to drop, and the withdrawn claims
    stop a worker that rejoins it with the model still running."""
    client = ctx.client
    for key in keys:
        await client.run_on_scheduler(claims.withdraw, key)
    await client.run(cancel_run, run_id, 0.0, on_error="return")
    await client.unpublish_dataset(dataset_name(ctx.tenant, run_id))


def withdraw(task: Future) -> None:
    """Let go of a task the daemon no longer wants; the scheduler forgets it once nothing
    else (the run's published record) holds it, so Dask never starts it again.

    Never ``Future.cancel``: Dask's cancel has the scheduler broadcast ``cancelled-keys``
    to every client, and a client whose handshake is in flight gets it batched with its
    ``stream-start`` and fails to connect (distributed asserts that message comes alone).
    Such a client is a worker's, made by the first task that starts there, which is just
    when a retry and its lost worker's rescheduled attempt land on the survivor: the other
    task, already handed that client by ``get_client`` while it connected, then waits
    forever on the shipped blobs (its futures never hear from the scheduler)."""
    task.release()


class DaskExecution:
    def __init__(
        self,
        ctx: Context,
        spec: TaskSpec,
        future: Future,
        blobs: list[Future],
        *,
        retries_left: int,
        log_from: int = 0,
        worker: str | None = None,
        published: bool = False,
    ) -> None:
        self.ctx, self.spec, self.future, self.blobs = ctx, spec, future, blobs
        self.retries_left, self.log_from, self.worker = retries_left, log_from, worker
        self.run_id = spec.run.id
        self.result: TaskResult | None = None
        self._described: list[str] | None = None
        """The protections the cluster saw the current attempt's worker give, once it
        accepted the attempt (``Context.protections_of``)."""
        self.held: list[Blob] = []
        """Blobs the daemon's shipper holds for this run, released once it is collected."""
        self.done = False
        self.ended_at: float | None = None
        self._canceled = False
        self._cancel_asked = asyncio.Event()
        """Set with ``_canceled``: what the run waits for (the cluster, a worker) ends."""
        self._lost = asyncio.Event()
        self._lost_why = ""
        self._withdrawn = asyncio.Event()
        """Canceled before its task was accepted: the task is let go, and no result awaited."""
        self._started = time.monotonic()
        self._restarts_left = FREE_RESTARTS
        self._published: asyncio.Task[None] | None = None
        if not published:
            self._published = asyncio.create_task(self._publish())

    @property
    def placement(self) -> dict[str, Any] | None:
        """Where the current attempt runs; once a worker accepted it, that worker and its
        protections, and once the run ended with a result, the worker that produced it and
        the protections its model ran under (as the worker reports them)."""
        placement: dict[str, Any] = {
            "backend": "dask",
            "scheduler": self.ctx.scheduler,
            "key": self.spec.key,
            "attempt": self.spec.attempt,
        }
        if self.result is not None:
            placement[WORKER] = self.result.worker
            placement[PROTECTIONS] = list(self.result.facts.isolation)
        elif self.worker is not None:
            placement[WORKER] = self.worker
            protections = self._described or self.ctx.protections_of(self.worker)
            if protections is not None:
                placement[PROTECTIONS] = protections
        return placement

    @property
    def key(self) -> str:
        return self.spec.key

    # -- the executor's side ---------------------------------------------------------

    async def wait(self, gone: Callable[[], None] | None = None) -> ProcessResult:
        """The facts, once the worker's task ended (``gone`` is left to the caller: the
        worker's processes end with its task)."""
        try:
            while True:
                got = await self._attempt_outcome()
                if self._canceled and (not isinstance(got, TaskResult) or got.restartable):
                    return self._facts(canceled=True)
                if isinstance(got, TaskResult) and self._restartable(got):
                    self._restarts_left -= 1
                    why = got.facts.failure.detail if got.facts.failure else "lost"
                    attempt = self.spec.attempt + 1
                    await self._again(
                        f"[orch] {why}; the run had not started: submitting it again"
                        f" (attempt {attempt})"
                    )
                    continue
                if isinstance(got, TaskResult):
                    self.result = got
                    return got.facts
                if got is None:
                    return self._facts(canceled=True)
                if isinstance(got, Unreached):
                    await self._again(
                        f"[orch] {got.why} before the run reached a worker; it waits for the"
                        f" cluster, then starts (attempt {self.spec.attempt + 1}; no retry used)"
                    )
                    continue
                if got.kind == FailureKind.WORKER_LOST and self.retries_left > 0 and self._again_ok:
                    await self._retry(got.detail)
                    continue
                return self._facts(failure=got)
        finally:
            self.done, self.ended_at = True, time.monotonic()
            if self.result is None or self.spec.attempt > 1:
                # its model may still run, or an earlier attempt's on a worker reported lost
                # that lives on (its claim names that worker): the cluster is told it is over
                self.ctx.leftovers.add(self.run_id, attempt_keys(self.run_id, self.spec.attempt))
            self.ctx.background.spawn(self._forget(), f"forget {self.run_id}")

    def cancel(self, grace_seconds: float = 2.0) -> None:
        """Kill the run's process tree on its worker (Dask cannot interrupt a task); a task
        not started yet is withdrawn, and every worker told never to start it."""
        if self._canceled or self.done:
            return
        self._canceled = True
        self._cancel_asked.set()
        self._stop(grace_seconds)

    def _stop(self, grace_seconds: float) -> None:
        workers = [self.worker] if self.worker else None
        if self.worker is None:
            withdraw(self.future)
            self._withdrawn.set()
            self.ctx.background.spawn(
                self.ctx.client.run_on_scheduler(claims.withdraw, self.key),
                f"withdraw {self.run_id}",
            )
        self.ctx.background.spawn(
            self.ctx.client.run(
                cancel_run, self.run_id, grace_seconds, workers=workers, on_error="return"
            ),
            f"cancel {self.run_id}",
        )

    # -- the cluster's side ----------------------------------------------------------

    def accepted(self, key: str, worker: str) -> None:
        if key == self.key:
            self.worker = worker
            # read now: a worker that is lost later leaves the cluster's view with it
            self._described = self.ctx.protections_of(worker)

    def gone(self, worker: str, keys: set[str], why: str) -> None:
        """A worker left: if it ran (or was about to run) this attempt, the attempt is lost."""
        if self.done or not (worker == self.worker or self.key in keys):
            return
        self._lost_why = f"worker {worker} {why}"
        self._lost.set()

    # -- internals -------------------------------------------------------------------

    def _restartable(self, got: TaskResult) -> bool:
        return got.restartable and self._restarts_left > 0 and not self._canceled and self._again_ok

    @property
    def _again_ok(self) -> bool:
        """A run with secrets reattached after a daemon restart cannot start again: its
        secrets were never published with it (it fails as the lost worker left it)."""
        return self.spec.complete

    async def _attempt_outcome(self) -> TaskResult | Failure | Unreached | None:
        """The attempt's result, a failure (a lost worker, a crash), ``Unreached`` (dropped
        before a worker had it), or None if withdrawn."""
        result = asyncio.ensure_future(self._result(self.future))
        lost = asyncio.ensure_future(self._lost.wait())
        withdrawn = asyncio.ensure_future(self._withdrawn.wait())
        finished = False
        try:
            await asyncio.wait({result, lost, withdrawn}, return_when=asyncio.FIRST_COMPLETED)
            finished = result.done()
        finally:  # also when this is cancelled: asyncio.wait leaves all three pending
            lost.cancel()
            withdrawn.cancel()
            if not finished:
                result.cancel()
        if finished:
            return result.result()
        if self._withdrawn.is_set():
            return None
        return Failure(FailureKind.WORKER_LOST, detail=self._lost_why)

    async def _result(self, future: Future) -> TaskResult | Failure | Unreached | None:
        try:
            got = await future
        except RunLost as exc:
            return Failure(FailureKind.WORKER_LOST, detail=f"worker {exc.first_worker} was lost")
        except KilledWorker as exc:
            return Failure(FailureKind.WORKER_LOST, detail=str(exc))
        except concurrent.futures.CancelledError as exc:
            if self._canceled:
                return None
            # the client lost its scheduler: once this returns, the run's slot goes to the
            # next queued run, which must find the link down (and wait queued), not a
            # client with no scheduler; the watch says so within a second
            await self.ctx.decided()
            why = f"the Dask scheduler dropped the run's task ({exc})"
            if self.worker is None:  # no worker ever accepted it: the run did not start
                return Unreached(why)
            return Failure(FailureKind.WORKER_LOST, detail=why)
        except Exception as exc:  # the runner itself broke on the worker
            log.warning("run %s: its task failed on the cluster: %r", self.run_id, exc)
            return Failure(FailureKind.CRASH, detail=f"on the cluster: {exc!r}")
        if not isinstance(got, TaskResult):
            return Failure(FailureKind.CRASH, detail=f"the task returned {type(got).__name__}")
        lost = got.facts.failure
        if lost is not None and lost.kind == FailureKind.WORKER_LOST and not got.restartable:
            return lost  # its worker closed under it: a lost worker, retried as such
        return got

    async def _retry(self, why: str) -> None:
        """Start the run again after its worker was lost, as its retries limit allows."""
        self.retries_left -= 1
        await self._again(
            f"[orch] {why} while it ran this run; starting it again on the cluster "
            f"(attempt {self.spec.attempt + 1}, retries left: {self.retries_left})"
        )

    async def _again(self, note: str) -> None:
        """A new task (a new key: the old one stays refused), with what it reads shipped
        again if need be, and a line in the run's log saying why. While the scheduler is
        away, or no worker can hold what the run reads, it waits (a cancel ends the wait).

        The old key's claim is withdrawn at once: a worker reported lost that lives on
        stops that attempt's model at its next lease check (~5 s) instead of running it
        beside the new one until the run ends (when ``settle`` withdraws every key; it
        also covers a withdrawal that did not reach the scheduler here)."""
        old, old_key = self.future, self.spec.key
        self.spec = self.spec.next_attempt()
        stderr = self.ctx.runs_dir / self.run_id / "stderr"
        self.log_from = await asyncio.to_thread(_append, stderr, f"{note}\n".encode())
        log.warning("run %s: %s", self.run_id, note)  # the note names the attempt
        self.worker, self._described, self._lost_why = None, None, ""
        self._lost.clear()
        blobs = await self._unless_canceled(self._reship())
        if blobs is None:  # canceled while it waited: nothing submitted, nothing to wait for
            if not self._withdrawn.is_set():  # canceled before this attempt's worker was let go
                self._stop(0)
            return
        self.blobs = blobs
        self.future = submit(self.ctx, self.spec)
        if self._canceled:  # while this was being arranged
            self._stop(0)
        withdraw(old)
        try:
            await self.ctx.client.run_on_scheduler(claims.withdraw, old_key)
        except (OSError, TimeoutError) as exc:  # the connection broke: settle tells it later
            log.info("run %s: attempt %s not withdrawn yet: %s", self.run_id, old_key, exc)
        if self._published is not None:
            try:
                await self._published
            except Exception as exc:  # on a connection gone since: the new record replaces it
                log.info("run %s: attempt %s was not published: %r", self.run_id, old_key, exc)
        self._published = asyncio.create_task(self._publish())

    async def _reship(self) -> list[Future]:
        """What the attempt reads, on the cluster the link reaches now: once the scheduler
        answers, and again on the next connection if this one breaks meanwhile."""
        while True:
            await self.ctx.ready()
            try:
                return await self.ctx.reship(self.spec)
            except Exception:
                if self.ctx.connected:
                    raise
                log.info("run %s: the scheduler went while its files were shipped", self.run_id)
                await self.ctx.decided()

    async def _unless_canceled(self, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None if the run is canceled first (``work`` is stopped)."""
        task = asyncio.ensure_future(work)
        canceled = asyncio.ensure_future(self._cancel_asked.wait())
        try:
            await asyncio.wait({task, canceled}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when this is cancelled
            canceled.cancel()
            if not task.done():
                task.cancel()
        if not task.done() or task.cancelled():
            return None
        return task.result()

    async def _publish(self) -> None:
        """Keep the task (and the blobs it reads) alive on the cluster without the daemon."""
        record = {
            "task": self.future,
            "blobs": self.blobs,
            "spec": self.spec.published,
            "retries_left": self.retries_left,
            "log_from": self.log_from,
        }
        name = dataset_name(self.ctx.tenant, self.run_id)
        await self.ctx.client.publish_dataset(**{name: record}, override=True)

    async def _forget(self) -> None:
        if self._published is not None:
            try:
                await self._published
            except Exception as exc:
                log.warning("run %s: its task was never published: %s", self.run_id, exc)
        client = self.ctx.client
        if client.status != "running" or self.future.client is not client:
            return  # its scheduler went, and the dataset with it (a new one never had it)
        await client.unpublish_dataset(dataset_name(self.ctx.tenant, self.run_id))
        self.future.release()

    def _facts(self, canceled: bool = False, failure: Failure | None = None) -> ProcessResult:
        """Facts of an attempt whose process is out of reach (withdrawn, or on a lost worker)."""
        ran = time.monotonic() - self._started
        return ProcessResult(None, None, ran, 0.0, 0.0, None, None, canceled, None, failure=failure)


def _append(path: Path, data: bytes) -> int:
    """Append to the run's log; returns its new size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("ab") as fh:
        fh.write(data)
        return fh.tell()
