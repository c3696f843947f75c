"""How the daemon lets go of a run's task on a real Dask scheduler (no workers needed).

A retry after a lost worker, and a cancel before the task was accepted, both withdraw a
task. Dask's ``Future.cancel`` would have the scheduler broadcast ``cancelled-keys`` to
every client, and a worker's client whose handshake is in flight at that moment gets it
batched with its ``stream-start`` and fails to connect; the task that took that client
meanwhile (``get_client`` hands it out while it connects) then never hears of its
futures again. That is how a retried run hung on a 2-core machine: the retry's
withdrawal of attempt 1 reached the scheduler just as the surviving worker's client
registered. So a withdrawal must reach no client but the daemon's, and still leave the
scheduler with nothing of the withdrawn task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from distributed import Client, Future

from orchestrator.models import Run
from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.execution import Context, DaskExecution, submit
from orchestrator.runs.backends.dask.protocol import Blob, TaskSpec, UnpackCaps, dataset_name
from tests.dask_cluster import DaskCluster

TENANT = "withdraw-test"


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """A scheduler without workers: submitted tasks wait, which is all these tests need."""
    cluster = DaskCluster.start(tmp_path / "cluster", workers=0)
    yield cluster.executor.replace("dask://", "tcp://")
    cluster.stop()


async def until(check: Callable[[], Awaitable[bool]]) -> None:
    for _ in range(1000):  # 20 s
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never true: {check}")


def _spec(run_id: str) -> TaskSpec:
    return TaskSpec(
        run=Run(id=run_id, app_id="app", instance_id="inst", executable_id="exe"),
        manifest={},
        package=Blob("0" * 64, 1, False),
        input=None,
        requirements=None,
        caps=UnpackCaps(package_bytes=1, package_files=1, input_bytes=1),
        dataset=dataset_name(TENANT, run_id),
    )


async def _no_blobs(_: TaskSpec) -> list[Future]:
    return []


async def test_a_retry_and_a_cancel_withdraw_tasks_without_telling_other_clients(
    scheduler: str, tmp_path: Path
) -> None:
    async with (
        Client(scheduler, asynchronous=True, set_as_default=False, name="daemon") as daemon,
        Client(scheduler, asynchronous=True, set_as_default=False, name="bystander") as other,
    ):
        heard: list[dict[str, Any]] = []
        handle = other._stream_handlers["cancelled-keys"]

        def spy(**msg: Any) -> None:  # what a worker's client would get mid-handshake
            heard.append(msg)
            handle(**msg)

        other._stream_handlers["cancelled-keys"] = spy
        link = SimpleNamespace(client=daemon)  # a connection that is never lost
        ctx = Context(link, TENANT, scheduler, tmp_path / "runs", Background(), _no_blobs)
        spec = _spec("run-withdrawn")
        execution = DaskExecution(ctx, spec, submit(ctx, spec), [], retries_left=1)
        waiting = asyncio.create_task(execution.wait())

        async def published(attempt: int) -> bool:
            record = await daemon.get_dataset(spec.dataset, default=None)
            return record is not None and record["spec"].attempt == attempt

        await until(lambda: published(1))
        execution.gone("tcp://127.0.0.1:1", {spec.key}, "was lost")  # attempt 1's worker
        await until(lambda: published(2))  # the retry: attempt 1 withdrawn, attempt 2 queued
        execution.cancel()  # before any worker accepted attempt 2: withdrawn too
        facts = await asyncio.wait_for(waiting, 20)
        assert facts.canceled and facts.failure is None
        await ctx.background.drain(10)
        # a worker that joins after the cancel's broadcast (no tombstone there) and is
        # handed the task before the scheduler forgets it is refused: it never starts
        late = await daemon.run_on_scheduler(
            claims.claim, execution.key, "tcp://127.0.0.1:2", "run-withdrawn"
        )
        assert late == claims.WITHDRAWN
        keys = [spec.key, execution.key]
        assert keys == [f"orch-run-run-withdrawn-{n}" for n in (1, 2)]

        def left(dask_scheduler: Any = None) -> list[str]:
            return [k for k in keys if k in dask_scheduler.tasks]

        async def forgotten() -> bool:
            return not await daemon.run_on_scheduler(left)

        await until(forgotten)  # the scheduler kept nothing of either attempt

        # A cancel sent now broadcasts after anything the daemon sent before: once the
        # bystander hears it, it would have heard an earlier withdrawal broadcast too.
        marker = daemon.submit(int, 0, pure=False)
        await daemon.cancel([marker])

        async def marker_heard() -> bool:
            return any(marker.key in m["keys"] for m in heard)

        await until(marker_heard)
        assert [list(m["keys"]) for m in heard] == [[marker.key]], heard
