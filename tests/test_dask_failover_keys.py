"""A run retried after a failover leaves none of its attempts' keys on the scheduler.

When an attempt's worker is reported lost, the run starts again under a new key, and the
lost attempt's claim still names its worker. A worker reported lost may live on (a missed
heartbeat, a network split that heals): it keeps running that attempt's model for as long
as the scheduler says the claim is its own, that is for ever, beside the retry that
succeeded. So the lost attempt's key is withdrawn as the retry starts (its model loses
its lease and is killed within seconds), and once the run ends, success or not, every
attempt's key is (``execution.settle``): no claim of the run names a worker any more.

The daemon's side runs in process (a ``DaskExecution``, as in ``test_dask_withdraw``),
against a real scheduler and one real worker with two slots: the failover is forced by
reporting that worker lost while attempt 1 runs (the process lives on, as above), and the
retry runs on the same worker and succeeds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest
from distributed import Client, Future

from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.cache import attempt_label
from orchestrator.runs.backends.dask.execution import Context, DaskExecution, submit
from orchestrator.runs.backends.dask.protocol import (
    TaskSpec,
    task_key,
)
from orchestrator.runs.backends.dask.worker import read_logs
from tests.dask_cluster import DaskCluster
from tests.dask_specs import inline_spec

TENANT = "failover-keys-test"
RUN = "run-failover"

MODEL = """\
import json, os, sys, time
doc = json.load(sys.stdin)
print(f"pid={os.getpid()}", file=sys.stderr, flush=True)
if doc["slow"] in os.environ["TMPDIR"]:  # attempt 1 only: it outlives the whole test
    time.sleep(120)
json.dump({"statistics": {"result": {"value": 7}}}, sys.stdout)
"""


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    """One worker with two slots: attempt 1 keeps one, the retry takes the other."""
    cluster = DaskCluster.start(tmp_path / "cluster", workers=1, slots=2)
    yield cluster.executor.replace("dask://", "tcp://")
    cluster.stop()


async def until(check: Callable[[], Awaitable[Any]], seconds: float = 30) -> Any:
    for _ in range(int(seconds / 0.05)):
        if got := await check():
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true within {seconds} s: {check.__name__}")


async def eventually(read: Callable[[], Awaitable[Any]], wanted: Any, seconds: float = 15) -> Any:
    """What ``read`` gives once it is ``wanted``, else its last value (for the assertion)."""
    for _ in range(int(seconds / 0.05)):
        if (got := await read()) == wanted:
            break
        await asyncio.sleep(0.05)
    return got


def _spec(tmp: Path) -> TaskSpec:
    """Attempt 1 of the run sleeps: its model is told its own temporary folder's name."""
    data = json.dumps({"slow": attempt_label(RUN, 1) + "/"}).encode()
    return inline_spec(tmp, MODEL, RUN, data, TENANT)


async def _nothing_to_reship(_: TaskSpec) -> list[Future]:
    return []  # inline package and input: the retry reads them from its spec


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _of_run(dask_scheduler: Any = None) -> dict[str, Any]:
    """What the scheduler holds of the run: its tasks, and the claims of its keys."""
    keys = [task_key(RUN, n) for n in (1, 2)]
    return {
        "tasks": [str(k) for k in dask_scheduler.tasks if RUN in str(k)],
        "claims": claims.lookup(keys, dask_scheduler=dask_scheduler),
    }


async def test_a_run_retried_after_a_failover_withdraws_every_attempts_key(
    scheduler: str, tmp_path: Path
) -> None:
    async with Client(scheduler, asynchronous=True, set_as_default=False) as daemon:
        link = SimpleNamespace(client=daemon)  # a connection that is never lost
        ctx = Context(link, TENANT, scheduler, tmp_path / "runs", Background(), _nothing_to_reship)
        spec = _spec(tmp_path)
        execution = DaskExecution(ctx, spec, submit(ctx, spec), [], retries_left=1)
        waiting = asyncio.create_task(execution.wait())

        async def first_model() -> tuple[str, int] | None:
            """Attempt 1's worker and model pid, once the model said it."""
            logs = await daemon.run(read_logs, {RUN: 0})  # by worker, then by run
            for worker, own in logs.items():
                words = dict(w.split("=", 1) for w in own.get(RUN, b"").decode().split())
                if "pid" in words:
                    return worker, int(words["pid"])
            return None

        worker, pid = await until(first_model)
        execution.gone(worker, {spec.key}, "was lost")  # reported lost; it lives on
        facts = await asyncio.wait_for(waiting, 60)
        assert execution.spec.attempt == 2 and facts.exit_code == 0, facts
        assert execution.result is not None
        # attempt 1's claim went when the retry started: its lease check kills its model
        first = await daemon.run_on_scheduler(claims.lookup, [spec.key])
        assert first == {spec.key: claims.WITHDRAWN}
        assert await eventually(lambda: asyncio.to_thread(_alive, pid), False) is False

        await ctx.leftovers.tell(ctx)  # the link's next tick
        await ctx.background.drain(10)

        wanted = {"tasks": [], "claims": {k: claims.WITHDRAWN for k in (spec.key, execution.key)}}
        assert await eventually(lambda: daemon.run_on_scheduler(_of_run), wanted) == wanted
        assert not [n for n in await daemon.list_datasets() if RUN in str(n)]
