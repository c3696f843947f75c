"""Live updates: a broadcast of run changes, and the server-sent-event wire format.

``RunEvents`` (the engine) calls ``RunFeed.publish(run_id)`` after every committed
status change. Each open page stream holds a ``Subscription``: a bounded queue of
run ids. A page that falls too far behind (a burst of thousands of runs while its
tab sleeps) is told to reload instead of making the daemon hold an ever-growing
backlog for it.

A page is rendered before its stream subscribes, so a change in between would be
lost (a run that finished then would show "running" for good). The feed therefore
numbers its changes and keeps the last ``QUEUE_LIMIT``: a page carries the ``mark``
it was rendered at, and its stream, once subscribed, is first given every change
after that mark. A mark the feed can no longer answer for (too old, or from before
the daemon restarted) makes the subscription ``overflowed``: the page reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections import deque
from collections.abc import Iterator
from typing import Any

QUEUE_LIMIT = 2000
KEEPALIVE_SECONDS = 15.0


class Subscription:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[str] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    def put(self, run_id: str) -> None:
        try:
            self.queue.put_nowait(run_id)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next_batch(self, wait_seconds: float, stopping: asyncio.Event) -> list[str] | None:
        """Run ids changed since the last call (deduplicated, in order), waiting up to
        ``wait_seconds`` for the first; ``[]`` on timeout, ``None`` once the daemon stops."""
        if stopping.is_set():
            return None
        if self.queue.empty():
            getter = asyncio.ensure_future(self.queue.get())
            stopper = asyncio.ensure_future(stopping.wait())
            try:
                done, _ = await asyncio.wait(
                    {getter, stopper}, timeout=wait_seconds, return_when=asyncio.FIRST_COMPLETED
                )
            finally:  # also when the page hangs up: asyncio.wait leaves both pending
                stopper.cancel()
                if not getter.done():
                    getter.cancel()
            if getter not in done:
                return None if stopping.is_set() else []
            first = [getter.result()]
        else:
            first = []
        while not self.queue.empty():
            first.append(self.queue.get_nowait())
        return list(dict.fromkeys(first))


class RunFeed:
    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._epoch = secrets.token_hex(4)
        self._count = 0
        self._recent: deque[str] = deque(maxlen=QUEUE_LIMIT)

    @property
    def mark(self) -> str:
        """Where the feed is now, for a page to hand back to its stream: ``epoch-count``."""
        return f"{self._epoch}-{self._count}"

    def publish(self, run_id: str) -> None:
        self._count += 1
        self._recent.append(run_id)
        for sub in self._subscriptions:
            sub.put(run_id)

    @contextlib.contextmanager
    def subscribe(self, since: str = "") -> Iterator[Subscription]:
        """A subscription, given first the changes after ``since`` (a ``mark``) if any."""
        sub = Subscription()
        if since:
            self._replay(sub, since)
        self._subscriptions.add(sub)
        try:
            yield sub
        finally:
            self._subscriptions.discard(sub)

    def _replay(self, sub: Subscription, since: str) -> None:
        epoch, _, count_text = since.partition("-")
        missed = self._count - int(count_text) if count_text.isdigit() else -1
        if epoch != self._epoch or not 0 <= missed <= len(self._recent):
            sub.overflowed = True
            return
        for run_id in list(self._recent)[len(self._recent) - missed :]:
            sub.put(run_id)

    @property
    def listeners(self) -> int:
        return len(self._subscriptions)


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One server-sent event; ``data`` is sent as JSON (one line, so no framing issues)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def retry(milliseconds: int) -> str:
    """How soon the browser reconnects after the stream ends or breaks."""
    return f"retry: {milliseconds}\n\n"


KEEPALIVE = ": keepalive\n\n"
