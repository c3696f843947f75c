"""A run's working directory, and what is collected from it afterwards.

The unpacked package is shared read-only by every run of an executable; each
run gets its own folder whose top-level entries are symlinks into the
package, plus writable ``inputs``/``outputs`` folders. That costs a handful
of syscalls instead of a copy, and a model that writes next to its code
cannot corrupt another run.

Layout of ``runs/<id>/``: ``input`` or ``input.d/``, ``work/`` (cwd),
``stdout`` (the output of json/text apps), ``stderr`` (the log), ``tmp/``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from dataclasses import dataclass
from typing import Any

from orchestrator import standard_json, trees
from orchestrator.packaging.manifest import Manifest
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.metrics import reported
from orchestrator.runs.process import StrPath


@dataclass(frozen=True)
class Workspace:
    """A run's paths, absolute strings: made, joined and handed to the jail on every run's
    path, where ``pathlib`` cost ~700 Python calls per run (a third of the daemon's run
    path)."""

    root: str
    work: str
    cwd: str
    stdin: str | None
    stdout: str
    stderr: str
    tmp: str

    @classmethod
    def of(cls, run_dir: StrPath) -> Workspace:
        root = os.path.abspath(run_dir)
        work = f"{root}/work"
        return cls(root, work, work, None, f"{root}/stdout", f"{root}/stderr", f"{root}/tmp")


def input_dir_name(manifest: Manifest, fmt: str) -> str:
    return "input" if fmt == "csv-archive" else manifest.multi_file.input_path.strip("/")


def output_dir_name(fmt: str) -> str:
    return "output" if fmt == "csv-archive" else "outputs"


def prepare(
    run_dir: StrPath,
    package: StrPath,
    manifest: Manifest,
    fmt: str,
    input_path: str | None,
) -> Workspace:
    ws = Workspace.of(run_dir)
    package = os.fspath(package)
    try:
        _mkdir(ws.work)
    except FileNotFoundError:  # no run folder yet (a Dask attempt's)
        os.makedirs(ws.work)
    _mkdir(ws.tmp)
    for entry in os.listdir(package):
        if entry not in RESERVED:
            os.symlink(f"{package}/{entry}", f"{ws.work}/{entry}")
    stdin = input_path
    input_link = None
    if fmt in DIRECTORY_FORMATS:  # json/text apps answer on stdout: no outputs folder to make
        _mkdir(f"{ws.work}/{output_dir_name(fmt)}")
        stdin = None
        if input_path is not None:
            target = os.path.join(ws.work, input_dir_name(manifest, fmt))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(input_path, target)
            input_link = (os.path.relpath(target, ws.work), input_path)
    _links.remember(ws.work, DaemonLinks(package, input_link))
    cwd = os.path.join(ws.work, manifest.cwd) if manifest.cwd else ws.work
    return Workspace(ws.root, ws.work, cwd, stdin, ws.stdout, ws.stderr, ws.tmp)


RESERVED = frozenset({"inputs", "input", "outputs", "output"})
"""Package entries not linked into the working folder: the run's own input and outputs."""


def _mkdir(path: str) -> None:
    """``mkdir``, a folder already there being fine (a re-staged run's)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path)


@dataclass(frozen=True)
class DaemonLinks:
    """The links ``prepare`` made in a working folder: one per package entry but the
    ``RESERVED`` ones (its name, to the entry), and the folder input's (its path under
    ``work``, its target)."""

    package: str
    input: tuple[str, str] | None

    def made(self, name: str, target: str) -> bool:
        """Whether ``name`` -> ``target`` is one of them: the same name and the same
        target, so a model's link named like a package file it replaced is not."""
        if (name, target) == self.input:
            return True
        return name not in RESERVED and target == f"{self.package}/{name}"


class _Made:
    """``DaemonLinks`` by working folder, for ``daemon_links`` (the disk limit's clean-up).

    In memory, in the process that made them (the daemon, or the Dask worker that
    staged the run): a model may rewrite anything in its folder, so what the daemon
    made cannot be read back from there. At most ``KEPT`` folders, the latest: a run
    still going after that many newer ones were staged, or one of a daemon since
    restarted, has none of its links known, and a clean-up after a breach takes them too
    (the links are inert once the run is over).
    """

    KEPT = 1024

    def __init__(self) -> None:
        self._by_work: dict[str, DaemonLinks] = {}
        self._lock = threading.Lock()  # runs are staged on worker threads too

    def remember(self, work: str, links: DaemonLinks) -> None:
        with self._lock:
            self._by_work.pop(work, None)  # a re-staged run's: the newest again
            self._by_work[work] = links
            if len(self._by_work) > self.KEPT:
                del self._by_work[next(iter(self._by_work))]

    def get(self, work: str) -> DaemonLinks | None:
        with self._lock:
            return self._by_work.get(work)

    def forget(self, work: str) -> None:
        with self._lock:
            self._by_work.pop(work, None)


_links = _Made()


def daemon_links(folder: StrPath) -> DaemonLinks | None:
    """The links ``prepare`` made in ``folder`` (a working folder), if this process made
    them and still knows; None for any other folder (no link in it is the daemon's)."""
    return _links.get(os.path.abspath(folder))


def clear_attempt(run_dir: StrPath) -> None:
    """Undo a start that never got recorded, keeping the input: the run starts afresh."""
    ws = Workspace.of(run_dir)
    _links.forget(ws.work)
    for folder in (ws.work, ws.tmp):
        trees.remove(folder)
    for path in (ws.stdout, ws.stderr):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


SMALL_OUTPUT = 256 * 1024
"""Below this, parsing an output on the loop is cheaper than a hop to a thread."""


def small_output(path: StrPath) -> bool:
    """Whether the output at ``path`` is below ``SMALL_OUTPUT`` (a missing one is)."""
    try:
        return os.stat(path).st_size < SMALL_OUTPUT
    except FileNotFoundError:
        return True


@dataclass(frozen=True)
class Collected:
    """What a finished run left for the record (whatever backend ran it)."""

    output_size: int
    statistics: dict[str, Any] | None
    metrics: dict[str, Any] | None = None
    """The output's top-level ``metrics`` (Nextmv's newer convention), or the metrics file."""


def collect(ws: Workspace, manifest: Manifest, fmt: str, parse_limit: int) -> Collected:
    """Measure the output and pick up statistics without loading big outputs."""
    if fmt in DIRECTORY_FORMATS:
        out_dir = os.path.join(ws.work, output_dir_name(fmt))
        stats_file = os.path.join(ws.work, manifest.multi_file.statistics)
        metrics_file = os.path.join(ws.work, manifest.multi_file.metrics)
        statistics = metrics = None
        if confined(stats_file, ws.work):
            statistics = _statistics(_read_json(stats_file, parse_limit), whole=True)
        if confined(metrics_file, ws.work):
            metrics = reported(_read_json(metrics_file, parse_limit), whole=True)
        if statistics is None or metrics is None:
            doc = _read_json(ws.stdout, parse_limit)
            statistics, metrics = statistics or _statistics(doc), metrics or reported(doc)
        size = _tree_size(out_dir) if confined(out_dir, ws.work) else 0
        return Collected(size, statistics, metrics)
    size, doc = sized_json(ws.stdout, parse_limit)
    return Collected(size, _statistics(doc), reported(doc))


def confined(path: StrPath, root: StrPath) -> bool:
    """Whether ``path`` really lies inside ``root``, no symlink taking it elsewhere.

    The model owns its working folder: it may have made ``outputs`` or
    ``statistics.json`` a link to anything (the daemon's key, the whole disk), and
    the daemon reads them with more rights than the model had.
    """
    real, top = os.path.realpath(path), os.path.realpath(root)
    return real.startswith(top.rstrip("/") + "/") and not os.path.islink(path)


def clear_tmp(tmp: StrPath) -> None:
    """What the model left in its TMPDIR goes when the run ends; the empty folder stays.

    Deleting is not free: on ext4 without a journal (this project's benchmark VM) every
    inode allocation skips the inodes of its block group freed recently (minutes; 15+
    measured under /tmp), one lookup each (file creation measured 25-45 us, and 140-580 us
    after 2,000 deletions). A run only creates files, so the daemon never adds to that; the
    empty folder goes with the run's folder.
    """
    try:
        with os.scandir(tmp) as entries:
            leftovers = [(entry.path, entry.is_dir(follow_symlinks=False)) for entry in entries]
    except OSError:
        return
    for path, is_dir in leftovers:
        if is_dir:
            trees.remove(path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _read_json(path: StrPath, limit: int) -> Any:
    return sized_json(path, limit)[1]


def sized_json(path: StrPath, limit: int) -> tuple[int, Any]:
    """``(size, document)`` of the regular file at ``path``: size 0 when it is missing or
    not a regular file, document None when it is bigger than ``limit`` or not JSON.

    One open, one fstat, one read: this runs on the loop for every run's output, where
    ``Path.is_file`` + ``stat`` + ``open`` cost eleven syscalls. ``O_NONBLOCK`` because a
    model may have left a FIFO where a file was expected: opening one blocks."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return 0, None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return 0, None
        if info.st_size > limit:
            return info.st_size, None
        data = _read_upto(fd, limit + 1, info.st_size + 1)
    except OSError:
        return 0, None
    finally:
        os.close(fd)
    try:
        return info.st_size, None if len(data) > limit else standard_json.loads(data)
    except ValueError:
        return info.st_size, None


def _read_upto(fd: int, most: int, expected: int) -> bytes:
    """At most ``most`` bytes of ``fd``, to its end, reading ``expected`` bytes first (a
    read allocates all it asks for: asking for the limit would cost 16 MiB each time)."""
    chunks, left, ask = [], most, expected
    while left > 0 and (chunk := os.read(fd, min(left, ask))):
        chunks.append(chunk)
        left -= len(chunk)
        ask = 64 * 1024
    return b"".join(chunks)


def _statistics(doc: Any, whole: bool = False) -> dict[str, Any] | None:
    if not isinstance(doc, dict):
        return None
    if whole and "statistics" not in doc:
        return doc
    stats = doc.get("statistics")
    return stats if isinstance(stats, dict) else None


def _tree_size(root: StrPath) -> int:
    return sum(info.st_size for _, _, info in trees.regular_files(root))


def stderr_tail(path: StrPath, max_bytes: int = 4000) -> str:
    """The end of the log: where a stack trace is."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    if size > max_bytes:
        text = "…" + text.split("\n", 1)[-1]
    return text.strip()


def read_assets(ws: Workspace, fmt: str, parse_limit: int, assets_file: str) -> list[Any]:
    """Assets the model reported: ``assets`` in its JSON output, or the assets file: a list,
    or ``{"assets": [...]}`` as the SDK's own ``nextmv.write`` keys it."""
    assets = os.path.join(ws.work, assets_file)
    doc = None
    if fmt in DIRECTORY_FORMATS and confined(assets, ws.work):
        doc = _read_json(assets, parse_limit)
        if isinstance(doc, dict):
            doc = doc.get("assets")
    if doc is None:
        whole = _read_json(ws.stdout, parse_limit)
        doc = whole.get("assets") if isinstance(whole, dict) else None
    return doc if isinstance(doc, list) else []
