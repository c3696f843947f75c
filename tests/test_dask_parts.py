"""The dask backend's parts in process: what can be checked without a cluster.

Real files, real processes and the real code; the scheduler in the claims test is
a plain object with the two attributes the claim function reads (``tasks`` and
``log_event``), since the function is meant to run inside Dask's scheduler and
the end-to-end tests (``test_dask.py``) run it there.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import pytest

from orchestrator.cli.daemon import _isolation
from orchestrator.config import Settings, dask_address
from orchestrator.errors import Invalid
from orchestrator.home import Home
from orchestrator.models import Limits
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.backends.dask import claims
from orchestrator.runs.backends.dask.cache import BlobMismatch, WorkerCache, attempt_label
from orchestrator.runs.backends.dask.cluster import summarize, usable_slots
from orchestrator.runs.backends.dask.outputs import pack, write_back
from orchestrator.runs.backends.dask.protocol import TaskResult, UnpackCaps
from orchestrator.runs.backends.dask.shipping import archive
from orchestrator.runs.process import ProcessResult
from orchestrator.runs.proctree import MARKER_VAR
from orchestrator.runs.workspace import Workspace
from tests.helpers import wait_for

CAPS = UnpackCaps(package_bytes=1 << 20, package_files=100, input_bytes=1 << 20)


@pytest.mark.parametrize(
    ("executor", "address"),
    [
        ("local", None),
        ("dask://10.1.2.3:8786", "tcp://10.1.2.3:8786"),
        ("dask://sched.example", "tcp://sched.example:8786"),
        ("dask://127.0.0.1:65535", "tcp://127.0.0.1:65535"),
    ],
)
def test_executor_addresses(executor: str, address: str | None) -> None:
    assert dask_address(executor) == address


@pytest.mark.parametrize("bad", ["tcp://h:1", "dask://", "dask://h:port", "remote", "dask:/h"])
def test_bad_executors_are_refused_with_the_expected_form(bad: str, tmp_path: Path) -> None:
    with pytest.raises(Invalid, match="dask://HOST:PORT"):
        Settings.load(Home(tmp_path), executor=bad)


def test_an_empty_port_is_refused_not_taken_as_the_default(tmp_path: Path) -> None:
    """``dask://127.0.0.1:`` was silently port 8786: a port left out by mistake."""
    with pytest.raises(Invalid, match="the port is empty"):
        Settings.load(Home(tmp_path), executor="dask://127.0.0.1:")


@pytest.mark.parametrize("port", ["0", "99999", "65536"])
def test_a_port_out_of_range_is_refused_before_anything_starts(port: str, tmp_path: Path) -> None:
    """Not 10 s later, when the connection fails: the CLI says it before spawning anything."""
    with pytest.raises(Invalid, match="port must be 1-65535"):
        Settings.load(Home(tmp_path), executor=f"dask://127.0.0.1:{port}")


def test_isolation_on_a_cluster_is_what_every_worker_gives_and_who_differs() -> None:
    """A run may land on any worker: ``orch daemon status`` promises what all of them give,
    and names each worker that gives something else."""
    full = {"containment": "cgroup", "protections": ["landlock-fs", "uid", "no-new-privs"]}
    less = {"containment": "cgroup", "protections": ["no-new-privs"], "refused": None}
    summary = summarize({"w0": full, "w1": less, "w2": less, "new": {}})
    assert summary["protections"] == ["no-new-privs"] and summary["undescribed"] == ["new"]
    assert list(summary["workers_differing"]) == ["w0"]
    assert _isolation(summary) == "no-new-privs; worker w0: landlock-fs, uid, no-new-privs"
    same = summarize({"w0": full, "w1": full})
    assert _isolation(same) == "landlock-fs, uid, no-new-privs"
    refused = {**less, "refused": "the jail does not start"}
    assert _isolation(summarize({"w0": full, "w1": refused})).endswith(
        "worker w1: MODELS REFUSED: the jail does not start"
    )
    assert _isolation(summarize({"w1": refused})) == "MODELS REFUSED: the jail does not start"
    assert _isolation(summarize({})) == "unknown: no worker in the cluster"


def test_a_folder_input_is_lent_to_its_run_folder_by_links(tmp_path: Path) -> None:
    """The run reads its folder input beneath its own run folder, where the jail lets its
    model's uid read, while the cache's copy stays closed to everyone but the worker."""
    cache = WorkerCache(tmp_path / "cache")
    try:
        folder = tmp_path / "input"
        (folder / "deep").mkdir(parents=True)
        (folder / "a.txt").write_text("a")
        (folder / "deep" / "b.txt").write_text("b")
        (folder / "link.txt").symlink_to("a.txt")
        data = archive(folder)
        sha = hashlib.sha256(data).hexdigest()
        cache.store(sha, data)
        cached = cache.unpack_input(sha, CAPS)
        run_dir = cache.run_dir("run-in", 1)
        lent = cache.lend_input(cached, run_dir)
        assert lent == run_dir / "input.d"
        assert (lent / "deep" / "b.txt").read_text() == "b"
        assert os.readlink(lent / "link.txt") == "a.txt"
        for name in ("a.txt", "deep/b.txt"):  # the same bytes, none copied
            assert os.stat(lent / name).st_ino == os.stat(cached / name).st_ino
            assert os.stat(lent / name).st_mode & 0o777 == 0o444
        assert os.stat(cache.inputs).st_mode & 0o777 == 0o700
    finally:
        cache.close()


def test_retries_is_a_limit_capped_by_the_instance() -> None:
    assert Limits.from_dict({"retries": 0}).retries == 0
    with pytest.raises(Invalid, match="retries must be 0 to 3"):
        Limits.from_dict({"retries": 4})
    caps = Limits(retries=1).over(Settings().limits)
    assert Limits(retries=1).exceeding(caps) == []
    assert Limits(retries=2).exceeding(caps) == ["retries=2 exceeds the instance cap 1"]
    assert Limits(retries=1).exceeding(Settings().limits)  # the default allows none


def test_the_first_claim_of_a_key_wins_and_a_restart_is_refused() -> None:
    events: list[tuple[str, Any]] = []
    scheduler = SimpleNamespace(tasks={}, log_event=lambda topic, msg: events.append((topic, msg)))
    assert claims.claim("k1", "tcp://a", "run-1", dask_scheduler=scheduler) == "tcp://a"
    assert claims.claim("k1", "tcp://b", "run-1", dask_scheduler=scheduler) == "tcp://a"
    assert [msg["worker"] for _, msg in events] == ["tcp://a"]  # accepted once
    assert claims.lookup(["k1", "k2"], dask_scheduler=scheduler) == {"k1": "tcp://a"}
    scheduler.tasks = {"k1": object()}
    for n in range(claims._PRUNE_ABOVE + 1):
        claims.claim(f"gone-{n}", "tcp://a", "r", dask_scheduler=scheduler)
    assert claims.lookup(["k1", "gone-0"], dask_scheduler=scheduler) == {"k1": "tcp://a"}


def test_a_withdrawn_key_is_refused_to_every_later_claim() -> None:
    events: list[tuple[str, Any]] = []
    scheduler = SimpleNamespace(tasks={}, log_event=lambda topic, msg: events.append((topic, msg)))
    assert claims.withdraw("k1", dask_scheduler=scheduler) == claims.WITHDRAWN
    assert claims.claim("k1", "tcp://late", "run-1", dask_scheduler=scheduler) == claims.WITHDRAWN
    assert events == []  # never accepted: no worker starts it
    assert claims.claim("k2", "tcp://a", "run-2", dask_scheduler=scheduler) == "tcp://a"
    assert claims.withdraw("k2", dask_scheduler=scheduler) == "tcp://a"  # too late: a kill


def test_the_cache_keeps_content_by_hash_and_refuses_a_mismatch(tmp_path: Path) -> None:
    cache = WorkerCache(tmp_path / "cache")
    data = b"some input"
    sha = hashlib.sha256(data).hexdigest()
    assert cache.blob(sha) is None
    path = cache.store(sha, data)
    assert cache.blob(sha) == path and path.read_bytes() == data
    with pytest.raises(BlobMismatch):
        cache.store("0" * 64, data)
    assert cache.blob("0" * 64) is None
    cache.close()


def test_trim_evicts_old_inputs_first_and_keeps_recent_ones(tmp_path: Path) -> None:
    cache = WorkerCache(tmp_path / "cache")
    old, recent = b"o" * 4000, b"r" * 4000
    for data, age in ((old, 7200), (recent, 0)):
        path = cache.store(hashlib.sha256(data).hexdigest(), data)
        os.utime(path, (time.time() - age, time.time() - age))
    assert cache.trim(budget_bytes=1000) == 1
    assert [p.read_bytes() for p in cache.blobs.iterdir()] == [recent]
    cache.close()


def test_a_dead_worker_process_leaves_nothing_running(tmp_path: Path) -> None:
    """A worker killed with SIGKILL leaves its models and run folders; the next worker
    sharing the cache (or its successor) kills them by their marker and removes them,
    and never the retry of the same run another worker is running meanwhile."""
    root = tmp_path / "cache"
    dead = WorkerCache(root)
    dead.run_dir("run-orphan", 0).mkdir(parents=True)

    def model(attempt: int) -> subprocess.Popen[bytes]:
        marker = f"{attempt_label('run-orphan', attempt)}.0123abcd"
        return subprocess.Popen(["sleep", "300"], env={**os.environ, MARKER_VAR: marker})

    orphan, retry = model(0), model(1)
    os.close(dead._lock)  # the process died: the kernel dropped its lock
    alive = WorkerCache(root)
    alive.run_dir("run-orphan", 1).mkdir(parents=True)
    try:
        assert alive.sweep() == 1
        wait_for(lambda: orphan.poll() is not None, timeout=10)
        assert not dead.own_runs.exists() and not psutil.pid_exists(orphan.pid)
        assert retry.poll() is None, "the sweep killed a live worker's retry of the run"
        assert alive.sweep() == 0 and alive.run_dir("run-orphan", 1).is_dir()
    finally:
        retry.kill()
        retry.wait()
        alive.close()


def test_two_attempts_of_a_run_on_one_worker_share_no_folder_but_the_owners(
    tmp_path: Path,
) -> None:
    """When a worker dies, Dask may reschedule the run's task onto the worker that runs
    orch's retry: that stale attempt is staged, refused by its claim and cleaned up while
    the retry makes its folders. A folder per run, removed by the clean-up once emptied,
    failed such a retry with ``FileNotFoundError``; the attempts' folders now hang from the
    owner's, which lives as long as the worker process."""
    cache = WorkerCache(tmp_path / "cache")
    try:
        stale, retry = cache.run_dir("run-x", 1), cache.run_dir("run-x", 2)
        assert stale.parent == retry.parent == cache.own_runs
        (stale / "work").mkdir(parents=True)
        shutil.rmtree(stale)  # the refused attempt's clean-up (runner._remove_run_dir)
        os.mkdir(retry)  # the retry's stage, one folder at a time
        (retry / "work").mkdir()
        assert sorted(os.listdir(cache.own_runs)) == [attempt_label("run-x", 2)]
    finally:
        cache.close()


def test_outputs_travel_from_the_worker_run_folder_into_the_daemons(tmp_path: Path) -> None:
    manifest = Manifest.from_dict({"type": "python", "runtime": "r", "files": ["main.py"]})
    worker = Workspace.of(tmp_path / "worker-run")
    work = Path(worker.work)
    (work / "outputs" / "solutions").mkdir(parents=True)
    (work / "outputs" / "solutions" / "s.json").write_text('{"x": 1}')
    (work / "outputs" / "statistics.json").write_text('{"result": {"value": 2}}')
    Path(worker.stdout).write_text("out")
    Path(worker.stderr).write_text("the whole log\n")
    stdout, stderr, outputs = pack(worker, manifest, "multi-file")
    assert outputs is not None
    daemon = tmp_path / "daemon-run"
    daemon.mkdir()
    (daemon / "stderr").write_bytes(b"[orch] a note\npartial streamed lo")
    facts = ProcessResult(0, None, 1.0, 0.1, 5.0, None, None, False, None)
    result = TaskResult(facts, "tcp://w", stdout, stderr, outputs)
    write_back(daemon, result, len(b"[orch] a note\n"), CAPS)
    assert (daemon / "stderr").read_text() == "[orch] a note\nthe whole log\n"
    assert (daemon / "stdout").read_text() == "out"
    assert (daemon / "work" / "outputs" / "solutions" / "s.json").read_text() == '{"x": 1}'
    assert (daemon / "work" / "outputs" / "statistics.json").is_file()


def test_a_hostile_output_archive_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("outputs/../../escape")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    facts = ProcessResult(0, None, 1.0, 0.1, 5.0, None, None, False, None)
    result = TaskResult(facts, "tcp://w", b"", b"", buffer.getvalue())
    with pytest.raises(Exception, match="input archive"):
        write_back(tmp_path / "run", result, 0, CAPS)
    assert not (tmp_path / "escape").exists()


def test_a_folder_input_archives_to_the_same_bytes_whatever_its_times(tmp_path: Path) -> None:
    folder = tmp_path / "input"
    (folder / "deep").mkdir(parents=True)
    (folder / "a.csv").write_text("a")
    (folder / "deep" / "b.csv").write_text("b")
    first = archive(folder)
    os.utime(folder / "a.csv", (1, 1))
    assert archive(folder) == first
    (folder / "a.csv").write_text("changed")
    assert archive(folder) != first


@pytest.mark.parametrize(
    ("info", "slots", "said"),
    [
        ({"resources": {"orch": 2}, "nthreads": 2}, 2, ""),
        ({"resources": {"orch": 1}, "nthreads": 4}, 1, ""),
        ({"resources": {}, "nthreads": 4}, 0, ""),
        ({"resources": {"orch": 2}, "nthreads": 1}, 1, "orch=2 slots but runs 1 thread(s)"),
    ],
)
def test_a_workers_slots_are_no_more_than_its_threads(
    info: dict[str, Any], slots: int, said: str
) -> None:
    """``--nthreads 1 --resources orch=2`` counted 2 slots: the second run admitted there
    showed ``running`` while it waited in the worker for its one thread."""
    counted, why = usable_slots(info)
    assert counted == slots and said in why and bool(why) is bool(said)
