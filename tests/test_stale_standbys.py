"""The standby groups of a dead daemon go at the next start, a zombie daemon's too (a
daemon killed with SIGKILL stays a zombie until pid 1 collects it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.runs.cgroups import PREFIX, detect, remove_stale_standbys
from tests.helpers import wait_for


def test_a_zombie_daemons_standby_groups_are_removed() -> None:
    support = detect()
    if support is None or support.memory_parent is None:
        pytest.skip("no cgroup this process may manage here")
    pid = os.fork()
    if pid == 0:
        os._exit(0)  # the "daemon": dead, and not collected yet
    try:
        wait_for(
            lambda: Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z"
        )
        group = support.memory_parent / f"{PREFIX}standby-{pid}-1"
        group.mkdir()
        live = support.memory_parent / f"{PREFIX}standby-{os.getpid()}-1"  # this process's
        live.mkdir()
        try:
            remove_stale_standbys(support)
            assert not group.exists(), "a zombie's standby group was kept"
            assert live.exists(), "a live daemon's standby group was removed"
        finally:
            live.rmdir()
            if group.exists():
                group.rmdir()
    finally:
        os.waitpid(pid, 0)
