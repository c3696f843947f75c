"""The daemon's connection to the Dask scheduler: checked before use, made again when lost.

``Link.open`` finds out what answers at the address before anything is registered
there, and says so in one line: nothing (the port is closed), something that is not
Dask (the scheduler's dashboard, any HTTP server: it accepts TCP but never answers
Dask's handshake, on which ``distributed`` waits without a deadline), a Dask worker
(``dask worker`` prints its own address too: an easy mix-up), or the scheduler.

Once up, the link is watched every second. A ``Client`` that lost its scheduler
cancels every task it submitted (the runs they ran fail) and, after its own few
seconds of trying, closes for good; so the link never relies on it: the moment its
client is not running, or another scheduler answers at the address (one restarted
while the client reconnected by itself), the link is *down*. Then the ``on_lost``
hooks run (the cluster forgets its workers: the engine's slots fall to 0 and queued
runs wait in its queue, where they can still be canceled), the old client is closed,
and a new one is tried with backoff (1 s, doubling, at most ``BACKOFF_MAX_SECONDS``)
until the scheduler answers again; then the ``on_connect`` hooks run (the worker
plugin, the event topics, a fresh shipper, the workers) and the queue moves again.
Every change of state (and of the reason the scheduler cannot be reached) is logged
once, not every attempt.

Between the moment the client loses its scheduler and the watch's next look, the link
is still up while its client is not: what must not act on that stale "up" (a run the
loss ended, whose slot would go to the next queued run: submitted to a client with no
scheduler, it would be dropped at once) first waits for the link's verdict
(``decided``): the client is back (a blip it reconnected from by itself), or the link
is down (no slot: queued runs wait queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from distributed import Client
from distributed.comm import connect, parse_address, parse_host_port

from orchestrator.errors import Unavailable
from orchestrator.runs.backends.dask.background import Background

log = logging.getLogger("orch.dask.link")

CONNECT_SECONDS = 10.0
"""To open a TCP connection to the scheduler (a remote host may be slow to answer)."""
HANDSHAKE_SECONDS = 5.0
"""For Dask's handshake and first answer once TCP is up: a scheduler answers in
milliseconds, so silence this long means it is something else."""
WATCH_SECONDS = 1.0
TICK_SECONDS = 10.0
"""At most this long for the periodic work of one watch (a hung scheduler must not
stop the watch)."""
BACKOFF_MAX_SECONDS = 5.0
VERDICT_POLL_SECONDS = 0.05
"""How often ``decided`` looks while the client and the link disagree (at most the
watch's second, plus a tick)."""
CLOSE_SECONDS = 5.0

Hook = Callable[[Client], Awaitable[None]]


class Connection(Protocol):
    """Whatever hands out the client in use now (``Link``, or a fixed one in tests)."""

    @property
    def client(self) -> Client: ...


async def identify(address: str) -> dict[str, Any]:
    """The Dask identity of the scheduler at ``address``; ``Unavailable`` (one line
    naming what answers instead) if it is not one."""
    host, port = parse_host_port(parse_address(address)[1])
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), CONNECT_SECONDS)
    except (OSError, TimeoutError) as exc:
        timed_out = isinstance(exc, TimeoutError)  # an OSError too, without a strerror
        why = f"no answer within {CONNECT_SECONDS:g} s" if timed_out else exc.strerror or str(exc)
        raise Unavailable(f"cannot reach the Dask scheduler at {address}: {why}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    try:
        info = await asyncio.wait_for(_ask_identity(address), HANDSHAKE_SECONDS)
    except TimeoutError:
        raise Unavailable(
            f"{address} is not a Dask scheduler "
            f"(no answer to the handshake within {HANDSHAKE_SECONDS:g} s)"
        ) from None
    except Exception as exc:
        why = f"the handshake failed: {exc}"
        raise Unavailable(f"{address} is not a Dask scheduler ({why})") from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind in ("Worker", "Nanny"):
        raise Unavailable(
            f"{address} is a Dask {str(kind).lower()}, not the scheduler: give the address "
            "`dask scheduler` listens on (dask://HOST:PORT, port 8786 by default)"
        )
    if kind != "Scheduler":
        raise Unavailable(f"{address} is not a Dask scheduler (it says it is {kind!r})")
    assert isinstance(info, dict)
    return info


async def _ask_identity(address: str) -> Any:
    comm = await connect(address, timeout=CONNECT_SECONDS)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


async def _new_client(address: str) -> Client:
    client = Client(
        address,
        asynchronous=True,
        set_as_default=False,
        name="orch-daemon",
        timeout=CONNECT_SECONDS,
    )
    try:
        await asyncio.wait_for(client, CONNECT_SECONDS + HANDSHAKE_SECONDS)
    except BaseException as exc:
        await _close(client)
        if isinstance(exc, OSError | TimeoutError):
            raise Unavailable(f"cannot connect to the Dask scheduler at {address}: {exc}") from None
        raise
    return client


async def _close(client: Client) -> None:
    """Closing a client whose scheduler is gone takes a moment, and may fail: no matter."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(timeout=CLOSE_SECONDS), CLOSE_SECONDS + 1)


def _not_cancelled(record: logging.LogRecord) -> bool:
    """``distributed`` logs a traceback when a client is closed while it tries to reconnect
    (its retry loop is cancelled): that is how the link lets a lost client go."""
    return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


class Link:
    def __init__(self, address: str, client: Client, scheduler_id: str, bg: Background) -> None:
        self.address, self.client, self.scheduler_id = address, client, scheduler_id
        self.background = bg
        self.generation = 1
        """Counts connections: what was shipped on an earlier one is gone with it."""
        self.why: str | None = None
        """Why the scheduler cannot be reached now (None while up)."""
        self.down_since: float | None = None
        self._up = asyncio.Event()
        self._up.set()
        self._on_connect: list[Hook] = []
        self._on_lost: list[Callable[[], None]] = []
        self._ticks: list[Callable[[], Awaitable[None]]] = []
        self._complaint: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        logging.getLogger("distributed.client").addFilter(_not_cancelled)  # once: same function

    @classmethod
    async def open(cls, address: str, background: Background) -> Link:
        """Connect, once sure the address is a scheduler; raises ``Unavailable``."""
        info = await identify(address)
        return cls(address, await _new_client(address), str(info.get("id")), background)

    # -- who wants to know -----------------------------------------------------------

    def on_connect(self, hook: Hook) -> None:
        """Run on every connection, in order, before the link counts as up."""
        self._on_connect.append(hook)

    def on_lost(self, hook: Callable[[], None]) -> None:
        self._on_lost.append(hook)

    def on_tick(self, tick: Callable[[], Awaitable[None]]) -> None:
        """Periodic work while up (reading the workers); its errors are logged once."""
        self._ticks.append(tick)

    async def start(self) -> None:
        """The hooks for the first connection (their failure stops the daemon's start),
        then the watch."""
        for hook in self._on_connect:
            await hook(self.client)
        self._watcher = asyncio.create_task(self._watch(), name="orch-dask-link")

    # -- what the backend reads ------------------------------------------------------

    @property
    def up(self) -> bool:
        return self._up.is_set()

    @property
    def connected(self) -> bool:
        """Up, and its client says so too (it knows the moment its connection closes; the
        watch notices within a second)."""
        return self.up and self.client.status == "running"

    async def ready(self) -> int:
        """Once the scheduler answers (at once, usually): the connection's generation."""
        await self._up.wait()
        return self.generation

    async def decided(self) -> None:
        """Once the link and its client agree: the client runs (again), or the link is
        down. Its client may have lost the scheduler a moment ago, before the watch looked:
        a run ended by that loss waits for this before its slot goes to the next queued run
        (which would be submitted to a client with no scheduler, and dropped)."""
        while True:  # no event says so: the client's status is polled, as the watch does
            if not self.up or self.client.status == "running" or not self._watching:
                return
            await asyncio.sleep(VERDICT_POLL_SECONDS)

    @property
    def _watching(self) -> bool:
        """No watch (not started, or closed): no verdict is coming."""
        return self._watcher is not None and not self._watcher.done()

    @property
    def state(self) -> dict[str, Any]:
        """For ``/healthz``: connected, or since when and why not."""
        if self.up:
            return {"connected": True}
        since = datetime.fromtimestamp(self.down_since or time.time(), UTC)
        return {
            "connected": False,
            "unreachable": self.why,
            "unreachable_since": since.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }

    # -- losing and finding the scheduler ----------------------------------------------

    def lost(self, why: str) -> None:
        """The scheduler is gone (or is another one now): down until a new client connects."""
        if not self.up:
            return
        self._up.clear()
        self.why, self.down_since = why, time.time()
        log.warning(
            "lost the Dask scheduler at %s: %s; its running runs fail, new ones wait queued "
            "until it answers again",
            self.address,
            why,
        )
        self.background.spawn(_close(self.client), f"close the client of {self.address}")
        for hook in self._on_lost:
            hook()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        await _close(self.client)

    async def _watch(self) -> None:
        delay = WATCH_SECONDS
        while True:
            await asyncio.sleep(delay)
            if self.up:
                await self._tick()
                delay = WATCH_SECONDS
            elif await self._reconnect():
                delay = WATCH_SECONDS
            else:
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    async def _tick(self) -> None:
        if not self.connected:
            self.lost("the connection to the scheduler closed")
            return
        for tick in self._ticks:
            try:
                await asyncio.wait_for(tick(), TICK_SECONDS)
            except Exception as exc:
                if not self.connected:
                    self.lost("the connection to the scheduler closed")
                    return
                self._complain(f"the Dask scheduler at {self.address} did not answer: {exc!r}")
                return
            if not self.up:  # the tick found another scheduler there
                return
        if self._complaint is not None:
            log.warning("the Dask scheduler at %s answers again", self.address)
            self._complaint = None

    def _complain(self, what: str) -> None:
        if what != self._complaint:
            log.warning("%s", what)
            self._complaint = what

    async def _reconnect(self) -> bool:
        try:
            info = await identify(self.address)
            client = await _new_client(self.address)
        except Unavailable as exc:
            self._still_down(exc.message)
            return False
        except Exception as exc:
            self._still_down(f"cannot connect: {exc!r}")
            return False
        self.client, self.scheduler_id = client, str(info.get("id"))
        self.generation += 1
        try:
            for hook in self._on_connect:
                await hook(client)
        except Exception as exc:
            self._still_down(f"connected, but could not set the cluster up: {exc!r}")
            self.background.spawn(_close(client), f"close the client of {self.address}")
            for undo in self._on_lost:  # what the hooks that ran did (slots, workers)
                undo()
            return False
        down = time.time() - (self.down_since or time.time())
        self.why, self.down_since, self._complaint = None, None, None
        self._up.set()
        log.warning(
            "the Dask scheduler at %s answers again (after %.0f s): queued runs start",
            self.address,
            down,
        )
        return True

    def _still_down(self, why: str) -> None:
        if why != self.why:
            log.warning("no Dask scheduler to reconnect to yet: %s", why)
            self.why = why
