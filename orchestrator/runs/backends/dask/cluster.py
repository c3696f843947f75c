"""The cluster as the daemon sees it: its workers, their ``orch`` slots, and who left.

Slots are the sum of the workers' ``orch`` resources (``dask worker --resources
orch=N``), each no more than its worker's threads: the engine's queue admits that
many runs, and Dask's resource admission keeps each worker within its own N. Workers
are read from the scheduler every second while the link to it is up (joins, leaves, new
slots), and each worker's own event topic is watched, on which the scheduler announces
its removal at once with the tasks it was processing. While the link is down there is
no worker and no slot: runs wait in the engine's queue (``link.py``).

Each worker describes the sandbox it gives models when it joins (``worker.describe``);
``isolation`` sums them up for ``/healthz``: the protections every worker gives, and
the workers that differ; ``builds``: what the workers' environment builds get (each
worker builds the envs of the runs it gets, with this daemon's memory and
``read_paths``: ``protocol.Builds``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.runs.backends.dask.background import Background
from orchestrator.runs.backends.dask.link import Link
from orchestrator.runs.backends.dask.protocol import RESOURCE
from orchestrator.runs.backends.dask.worker import describe

log = logging.getLogger("orch.dask.cluster")

Gone = Callable[[str, set[str], str], None]
"""(worker, the keys it was processing if known, why) for a worker that left."""

PROTECTIONS = "protections"
BUILDS = "builds"


@dataclass
class WorkerView:
    name: str
    slots: int
    isolation: dict[str, Any] = field(default_factory=dict)


def usable_slots(info: dict[str, Any]) -> tuple[int, str]:
    """A worker's slots as the scheduler describes it: its ``orch`` resource, but no more
    than its threads (a task runs on one; a run admitted beyond them would show
    ``running`` while it waits in the worker), and why fewer were counted ("" if not)."""
    offered = int((info.get("resources") or {}).get(RESOURCE, 0))
    threads = int(info.get("nthreads") or offered)
    if offered <= threads:
        return offered, ""
    return threads, (
        f"offers {RESOURCE}={offered} slots but runs {threads} thread(s): {threads} counted"
        f" (start it with --nthreads {offered})"
    )


class Cluster:
    def __init__(self, link: Link, background: Background) -> None:
        self.link, self.address, self.background = link, link.address, background
        self.workers: dict[str, WorkerView] = {}
        self._on_slots: list[Callable[[int], None]] = []
        self._on_gone: list[Gone] = []
        link.on_connect(self._attach)
        link.on_tick(self.refresh)
        link.on_lost(self._detach)

    @property
    def slots(self) -> int:
        return sum(w.slots for w in self.workers.values())

    def watch_slots(self, callback: Callable[[int], None]) -> None:
        self._on_slots.append(callback)
        callback(self.slots)

    def watch_gone(self, callback: Gone) -> None:
        self._on_gone.append(callback)

    @property
    def isolation(self) -> dict[str, Any]:
        """What protects the hosts from models, summed up over the workers."""
        if not self.link.up:
            return _unknown(f"no worker reachable ({self.link.why})")
        return summarize({w.name: w.isolation for w in self.workers.values()})

    def protections_of(self, address: str) -> list[str] | None:
        """The protections one worker gives models, as it described them (None if it has
        not, or is not in the cluster)."""
        view = self.workers.get(address)
        if view is None or PROTECTIONS not in view.isolation:
            return None
        return list(view.isolation[PROTECTIONS])

    async def _attach(self, _client: Any) -> None:
        """A new connection: its workers, all of them new to it."""
        await self.refresh()

    def _detach(self) -> None:
        """The link is down: no worker is reachable, so no run can start."""
        self.workers.clear()
        for resize in self._on_slots:
            resize(0)

    async def refresh(self) -> None:
        """Read the workers from the scheduler; announce slot changes and departures."""
        scheduler: Any = self.link.client.scheduler
        identity = await scheduler.identity(n_workers=-1)
        if str(identity.get("id")) != self.link.scheduler_id:
            self.link.lost(f"another scheduler answers at {self.address} (it restarted)")
            return
        seen: dict[str, Any] = identity.get("workers", {})
        before = self.slots
        for address in set(self.workers) - set(seen):
            self._gone(address, set(), "left the cluster")
        for address, info in seen.items():
            slots, short = usable_slots(info)
            known = self.workers.get(address)
            if known is None:
                if short:
                    log.warning("cluster %s: worker %s %s", self.address, address, short)
                self._joined(address, str(info.get("name", address)), slots)
            else:
                known.slots = slots
        if self.slots != before:
            log.warning("cluster %s: %d worker(s), %d slot(s)", self.address, len(seen), self.slots)
            for callback in self._on_slots:
                callback(self.slots)

    def _joined(self, address: str, name: str, slots: int) -> None:
        self.workers[address] = WorkerView(name, slots)
        handler = functools.partial(self._on_worker_event, address)
        self.link.client.subscribe_topic(address, handler)
        if slots > 0:
            self.background.spawn(self._describe(address), f"describe {address}")

    def _gone(self, address: str, keys: set[str], why: str) -> None:
        view = self.workers.pop(address, None)
        if view is None:
            return
        with contextlib.suppress(Exception):  # not subscribed, or the client is closing
            self.link.client.unsubscribe_topic(address)
        for tell in self._on_gone:
            tell(address, keys, why)
        for resize in self._on_slots:
            resize(self.slots)

    def _on_worker_event(self, address: str, event: tuple[float, Any]) -> None:
        """The scheduler's own word on a worker (its topic is its address)."""
        _, msg = event
        if isinstance(msg, dict) and msg.get("action") == "remove-worker":
            keys = {str(k) for k in msg.get("processing-tasks") or ()}
            self._gone(address, keys, "closed" if msg.get("expected") else "was lost")

    async def _describe(self, address: str) -> None:
        with contextlib.suppress(Exception):  # informative only
            answers = await self.link.client.run(describe, workers=[address], on_error="return")
            info = answers.get(address)
            if isinstance(info, dict) and address in self.workers:
                self.workers[address].isolation = info


def summarize(described: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The protections every worker gives models, and the workers that give others (by
    name): a run may land on any worker, so only what all of them give is promised.

    ``refused`` only when every worker refuses models (none can run anywhere); a worker
    that refuses while others run models is one that differs."""
    if not described:
        return _unknown("no worker in the cluster")
    known = {name: facts for name, facts in described.items() if PROTECTIONS in facts}
    kinds = sorted({str(f["containment"]) for f in known.values() if f.get("containment")})
    if not known:
        return _unknown("the workers have not described their sandbox yet")
    common = _common([list(facts[PROTECTIONS]) for facts in known.values()])
    differ = {
        name: {PROTECTIONS: list(facts[PROTECTIONS]), "refused": facts.get("refused")}
        for name, facts in sorted(known.items())
        if set(facts[PROTECTIONS]) != set(common) or facts.get("refused")
    }
    refusals = [facts.get("refused") for facts in known.values()]
    summary: dict[str, Any] = {
        "containment": ",".join(kinds) or "unknown",
        PROTECTIONS: common,
        "refused": refusals[0] if all(refusals) else None,
        "workers_differing": {} if all(refusals) else differ,
        BUILDS: _builds(list(known.values())),
    }
    if len(known) < len(described):
        summary["undescribed"] = sorted(set(described) - set(known))
    return summary


def _builds(known: list[dict[str, Any]]) -> dict[str, Any]:
    """What environment builds get on every described worker: the protections all of them
    give builds, the network open, and their uid when they share one (None: not switched,
    or not the same everywhere)."""
    facts = [f[BUILDS] for f in known if isinstance(f.get(BUILDS), dict)]
    if len(facts) < len(known):
        return _unknown_builds("a worker of an older orch does not describe its builds")
    uids = {f.get("uid") for f in facts}
    return {
        PROTECTIONS: _common([list(f.get(PROTECTIONS, [])) for f in facts]),
        "network": "open",
        "uid": uids.pop() if len(uids) == 1 else None,
    }


def _common(lists: list[list[str]]) -> list[str]:
    """What every list holds, in the first one's order."""
    return [p for p in lists[0] if all(p in other for other in lists[1:])]


def _unknown(why: str) -> dict[str, Any]:
    return {"containment": "unknown", PROTECTIONS: [], "unknown": why, BUILDS: _unknown_builds(why)}


def _unknown_builds(why: str) -> dict[str, Any]:
    return {PROTECTIONS: [], "network": "open", "uid": None, "unknown": why}
