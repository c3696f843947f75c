"""A worker's cache: content-addressed blobs, unpacked packages and inputs, environments,
and the run folders of the worker process that owns them.

Layout under the cache root (``ORCH_WORKER_CACHE``, default ``~/.cache/orch-worker``)::

    blobs/<sha256>            single-file inputs (and packages until unpacked)
    inputs/<sha256>/          folder inputs, unpacked once (``inputs`` is the worker's only)
    executables/<sha256>/     packages, unpacked once, read-only
    envs/<hash>/              python environments (packaging/pyenv.py), built in the jail,
                              each an app's (of one daemon: ``protocol.Builds``)
    cache/apps/<tenant>/<app>/  the installer's cache (uv/, pip/) of that app's builds
                              (theirs alone to write: ``environments.app_cache``)
    runs/<owner>/<run-id>-attempt-<n>/  run folders (one per attempt) of one worker process
    runs/<owner>.lock         held (flock) for that process's life

Workers on one host may share a root: every write lands under a temporary name and is
renamed into place, so a blob or a package is complete or absent. A worker process
that died (even SIGKILL) leaves its lock free: the next sweep (at worker start, then
every few seconds, by any worker sharing the root) kills the models and the
environment builds it left running and removes its run folders.

A run reads its folder input where the local backend puts it, ``input.d`` in its own run
folder (``lend_input``): the jail opens the run folder to its model, and only to it, so
a model reads its own input and nobody else's, whatever the uid it runs under.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import tempfile
import time
from pathlib import Path

from orchestrator import trees
from orchestrator.environments import build_prefix
from orchestrator.packaging.unpack import inspect_and_unpack, safe_extract
from orchestrator.runs.backends.dask.protocol import UnpackCaps
from orchestrator.runs.cgroups import groups_named, run_groups
from orchestrator.runs.proctree import kill_marked
from orchestrator.runs.sandbox import kill_leftovers

log = logging.getLogger("orch.dask.cache")

CACHE_ENV = "ORCH_WORKER_CACHE"
BUDGET_ENV = "ORCH_WORKER_CACHE_MB"
DEFAULT_BUDGET_MB = 4096
KEEP_RECENT_SECONDS = 600.0
"""Inputs used this recently are never evicted (a run may be about to read them)."""


def default_root() -> Path:
    if env := os.environ.get(CACHE_ENV):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "orch-worker"


class BlobMismatch(Exception):
    """Shipped bytes do not hash to their name: never cached, never run."""


class WorkerCache:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs, self.inputs = root / "blobs", root / "inputs"
        self.executables, self.envs, self.runs = (
            root / "executables",
            root / "envs",
            root / "runs",
        )
        for folder in (self.blobs, self.inputs, self.executables, self.envs, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.inputs, 0o700)  # reached through a run's own folder only (``lend_input``)
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.own_runs = self.runs / self.owner
        self.own_runs.mkdir()
        # Locked before it gets its name: a sweeper never sees this owner's lock free.
        tmp = self.runs / f".{self.owner}.lock"
        self._lock = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.replace(tmp, self.runs / f"{self.owner}.lock")

    # -- content ---------------------------------------------------------------------

    def blob(self, sha256: str) -> Path | None:
        """The cached bytes of ``sha256``, if this root has them (touched: recently used)."""
        path = self.blobs / sha256
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def store(self, sha256: str, data: bytes) -> Path:
        """Cache shipped bytes under their hash, after checking that they are what they claim."""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise BlobMismatch(f"shipped content does not match its sha256 {sha256}")
        path = self.blobs / sha256
        fd, tmp = tempfile.mkstemp(dir=self.blobs, prefix=f".{sha256[:12]}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o444)
        os.replace(tmp, path)
        return path

    def package(self, sha256: str) -> Path | None:
        """The unpacked package, if this root has it."""
        path = self.executables / sha256
        return path if path.is_dir() else None

    def unpack_package(self, sha256: str, caps: UnpackCaps) -> Path:
        """Unpack a cached package blob once (checked like a push), then drop the blob."""
        dest = self.executables / sha256
        archive = self.blobs / sha256
        inspect_and_unpack(
            archive, dest, max_bytes=caps.package_bytes, max_files=caps.package_files
        )
        archive.unlink(missing_ok=True)
        return dest

    def input_folder(self, sha256: str) -> Path | None:
        path = self.inputs / sha256
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def unpack_input(self, sha256: str, caps: UnpackCaps) -> Path:
        """Unpack a cached folder-input archive once (hostile-archive checks), drop the tar.

        Its files are made read-only for everyone (as blobs are): runs share them through
        hard links (``lend_input``), and only ``inputs``, closed to all but the worker,
        keeps them from anyone who has no link."""
        dest = self.inputs / sha256
        archive = self.blobs / sha256
        work = Path(tempfile.mkdtemp(dir=self.inputs, prefix=f".{sha256[:12]}."))
        try:
            safe_extract(
                archive, work / "d", max_bytes=caps.input_bytes, max_files=caps.package_files
            )
            _read_only_files(work / "d")
            with contextlib.suppress(OSError):  # a concurrent unpack of the same input won
                os.replace(work / "d", dest)
        finally:
            trees.remove(work)
        archive.unlink(missing_ok=True)
        return dest

    def lend_input(self, folder: Path, run_dir: Path) -> Path:
        """A cached folder input as the run's own ``input.d``, where the local backend keeps
        it: beneath the run's folder, which the jail opens to the run's model only (its
        uid may read there: ``launch.command``'s ``readable``).

        Hard links, not a copy: a folder made and a link per file, whatever their size (a
        copy only where the file system refuses a link). The files are read-only and not
        the model's (it runs under a uid of its own when the worker is root; else Landlock
        keeps it to its work folder), so no run changes what the next one reads; a host
        with neither leaves the cache open to models anyway (its packages too)."""
        dest = run_dir / "input.d"
        run_dir.mkdir(parents=True, exist_ok=True)
        _link_tree(str(folder), str(dest))
        return dest

    def run_dir(self, run_id: str, attempt: int) -> Path:
        """``runs/<owner>/<attempt label>``: the sweep reads attempts from the folder names.

        One level, no folder per run: a rescheduled task of an earlier attempt may be
        staged on this worker next to the run's retry and then refused, and its clean-up
        must not remove a folder the retry is making its own in (as removing an emptied
        run folder did, failing the retry with ``FileNotFoundError``)."""
        return self.own_runs / attempt_label(run_id, attempt)

    # -- housekeeping ----------------------------------------------------------------

    def sweep(self) -> int:
        """Kill what dead worker processes sharing this root left running; returns how many
        owners were swept."""
        swept = 0
        for lock in self.runs.glob("*.lock"):
            owner = lock.name.removesuffix(".lock")
            if owner == self.owner or not _is_free(lock):
                continue
            folder = self.runs / owner
            labels = _attempt_labels(folder)
            killed = kill_marked(labels)
            for label in labels:
                kill_leftovers(None, None, [str(g) for g in run_groups(label)], None)
            builds = build_prefix(self.root, owner)  # its environment builds (``BuildJail``)
            killed += kill_marked(set(), prefix=builds)
            killed += kill_leftovers(None, None, [str(g) for g in groups_named(builds)], None)
            trees.remove(folder)
            lock.unlink(missing_ok=True)
            swept += 1
            log.warning(
                "swept the runs of a dead worker process (%s): %d attempt(s), %d "
                "process(es) killed",
                owner,
                len(labels),
                killed,
            )
        return swept

    def trim(self, budget_bytes: int) -> int:
        """Evict inputs not used for a while, oldest first, until the cache fits its budget.

        Packages and environments stay (they are what makes the next run cheap)."""
        entries = []
        for folder in (self.blobs, self.inputs):
            for entry in os.scandir(folder):
                if not entry.name.startswith("."):
                    entries.append((entry.stat(follow_symlinks=False).st_mtime, Path(entry.path)))
        total = sum(_size(path) for _, path in entries)
        evicted, recent = 0, time.time() - KEEP_RECENT_SECONDS
        for mtime, path in sorted(entries):
            if total <= budget_bytes or mtime > recent:
                break
            size = _size(path)
            trees.remove(path)  # a file, or a tree with read-only folders
            total -= size
            evicted += 1
        return evicted

    def close(self) -> None:
        """The process ends cleanly: its run folders go, and its lock with them."""
        trees.remove(self.own_runs)
        (self.runs / f"{self.owner}.lock").unlink(missing_ok=True)
        os.close(self._lock)


ATTEMPT = "-attempt-"
"""Between a run's id and an attempt's number, in its label and so its folder's name."""
ATTEMPT_FOLDER = re.compile(rf".+{re.escape(ATTEMPT)}\d+")


def attempt_label(run_id: str, attempt: int) -> str:
    """The sandbox label (process marker, cgroup name) of one attempt of a run.

    Per attempt, not per run: when a worker dies, the run is retried elsewhere while
    the dead worker's leftovers are swept, and the sweep must kill those, never the
    retry that carries the same run id."""
    return f"{run_id}{ATTEMPT}{attempt}"


def _attempt_labels(owner_runs: Path) -> set[str]:
    """The labels of the attempts a (dead) owner had folders for (``WorkerCache.run_dir``)."""
    try:
        return {name for name in os.listdir(owner_runs) if ATTEMPT_FOLDER.fullmatch(name)}
    except OSError:
        return set()


def _read_only_files(top: Path) -> None:
    """Every regular file of an unpacked input readable by all, writable by none."""
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o555 if mode & 0o111 else 0o444)


def _link_tree(source: str, dest: str) -> None:
    """``dest``, a tree of hard links to the files of ``source`` (its symbolic links made
    again: ``safe_extract`` checked that they stay inside)."""
    os.mkdir(dest)
    with os.scandir(source) as entries:
        for entry in entries:
            target = os.path.join(dest, entry.name)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), target)
            elif entry.is_dir():
                _link_tree(entry.path, target)
            else:
                try:
                    os.link(entry.path, target, follow_symlinks=False)
                except OSError:  # another file system, a link count at its limit
                    shutil.copyfile(entry.path, target, follow_symlinks=False)
                    os.chmod(target, 0o444)


def budget_bytes() -> int:
    raw = os.environ.get(BUDGET_ENV, "")
    return (int(raw) if raw.isdigit() else DEFAULT_BUDGET_MB) * 1024 * 1024


def _is_free(lock: Path) -> bool:
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # closing drops the lock we may just have taken
    return True


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total
