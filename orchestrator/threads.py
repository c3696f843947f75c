"""Helper threads: they give way to the event loop, and they carry their names.

The daemon works on one event loop; a few helper threads (the chores thread, the
SQLite checkpointer) are woken while runs go on. Linux lets a freshly woken thread
preempt the thread that woke it, so each hand-off could cost the loop a context
switch in the middle of an HTTP answer or a spawn, and the woken thread usually
only blocks again at once on the GIL the loop still holds. As ``SCHED_BATCH``
threads their wake-ups wait for the loop to block or for a free core; they keep
their fair share of CPU. Measured with 2 slots on 2 cores (``scripts/bench_ab.py``):
throughput of 20 ms runs +3.6 % (median of 8 paired passes), run latency unchanged.

Each also tells the OS its name: ``top -H``, ``ps -L`` and ``/proc`` otherwise call every
thread after the process, and the benchmark splits the daemon's CPU by thread.
"""

from __future__ import annotations

import contextlib
import os
import threading


def give_way_to_the_loop() -> None:
    """Make the calling thread ``SCHED_BATCH`` (Linux; a no-op elsewhere)."""
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))


def show_name() -> None:
    """Give the calling thread its Python name in the OS (Linux keeps 15 characters)."""
    with (
        contextlib.suppress(OSError),
        open(f"/proc/self/task/{threading.get_native_id()}/comm", "w") as comm,
    ):
        comm.write(threading.current_thread().name[:15])
