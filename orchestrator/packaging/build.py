"""Build a package from an app directory (client side of ``orch app push``).

Packages are content-addressed by the daemon, so the archive must be a pure
function of the selected files' names, contents and executable bits: pushing an
unchanged app twice must give the same sha256 and hence reuse the executable.
Links inside the folder are followed (their targets are packaged as files);
a selected file reached through a link that leaves the folder is refused,
with the daemon's rule and message (``links``). A file saved while it is being
packaged is refused too (``FileChanged``): the archive would hold half of the save.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from orchestrator.errors import Unprocessable
from orchestrator.packaging.links import check_selected
from orchestrator.packaging.manifest import MANIFEST_FILE, Manifest
from orchestrator.packaging.requirements import read_requirements

SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".venv"})
"""Never packaged: caches and tooling state that differ between machines."""


class FileChanged(Unprocessable):
    """A file changed, or went, while it was packaged: pushing again packages the save.

    An ``Unprocessable``, so the push directory treats it as a package still being
    written, and ``orch app push --watch`` reports it and goes on watching.
    """


class OverLimit(Exception):
    """The archive grew past the ``max_bytes`` it was given: building stopped there, so a
    folder far too large costs that much disk and time, not its whole size."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the package grew past {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass(frozen=True)
class BuildResult:
    path: Path
    sha256: str
    size: int
    files: list[str]


def build_package(app_dir: Path, dest: Path, max_bytes: int | None = None) -> BuildResult:
    """Select the manifest's files in ``app_dir`` and write a deterministic tar.gz to ``dest``;
    ``OverLimit`` (nothing left at ``dest``) once it would be larger than ``max_bytes``."""
    manifest_path = app_dir / MANIFEST_FILE
    if not manifest_path.is_file():
        raise Unprocessable(f"{app_dir} has no {MANIFEST_FILE}; it is not an app directory")
    check_selected(app_dir, [MANIFEST_FILE])  # before it is read: its errors quote it
    manifest = Manifest.load(manifest_path)
    inside = os.path.relpath(dest.resolve(), app_dir.resolve())
    files = select_files(app_dir, manifest, skip={Path(inside).as_posix()})
    check_selected(app_dir, files)  # the daemon's rule: no link out of the package
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            sink = _HashingWriter(raw, max_bytes)
            _write_archive(app_dir, files, sink)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return BuildResult(path=dest, sha256=sink.hash.hexdigest(), size=sink.size, files=files)


def select_files(app_dir: Path, manifest: Manifest, skip: Collection[str] = ()) -> list[str]:
    """The package's file list: ``files`` globs applied in order, plus the must-haves.

    Like the nextmv SDK, an including pattern that matches nothing is an error (it
    is nearly always a typo or a binary that was not built), and so is an
    entrypoint that is not selected. ``app.yaml``, a pip requirements file and the
    files it includes (``-r``, ``-c``) are always included because the daemon cannot
    work without them. ``skip`` keeps the package being written out of itself when
    it lands inside ``app_dir``.
    """
    candidates = [f for f in _walk(app_dir) if f not in skip]
    selected: set[str] = set()
    for pattern in manifest.files:
        negated = pattern.startswith("!")
        matcher = glob_regex(pattern[1:] if negated else pattern)
        matches = {f for f in candidates if _matches(matcher, f)}
        if negated:
            selected -= matches
        elif not matches:
            raise Unprocessable(f"{MANIFEST_FILE}: files: pattern {pattern!r} matched nothing")
        else:
            selected |= matches
    selected.add(MANIFEST_FILE)
    selected.update(_requirement_files(app_dir, manifest))
    if manifest.entrypoint not in selected:
        raise Unprocessable(
            f"{MANIFEST_FILE}: the entrypoint {manifest.entrypoint!r} is not among the files "
            "selected by 'files' (build it first, or fix execution.entrypoint or files)"
        )
    return sorted(selected)


def _requirement_files(app_dir: Path, manifest: Manifest) -> list[str]:
    """The pip requirements file and every file it includes, which the environment build
    needs in the package whether or not ``files`` selects them."""
    requirements = manifest.pip_requirements
    if not isinstance(requirements, str):
        return []
    if not (app_dir / requirements).is_file():
        raise Unprocessable(
            f"{MANIFEST_FILE}: python.pip-requirements file {requirements!r} "
            f"does not exist in {app_dir}"
        )
    check_selected(app_dir, [requirements])  # before it is read: its errors quote lines
    if Path(requirements).suffix == ".toml":
        return [requirements]  # pyproject dependencies include nothing
    return read_requirements(app_dir, requirements, "the app folder").files


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a manifest glob to a regex over relative POSIX paths.

    ``*``, ``?`` and ``[...]`` stay within one path segment and, as in shell globs,
    do not match a leading dot; ``**`` spans any number of segments. A directory
    that matches brings its whole subtree, hidden files included (see ``_matches``).
    """
    pattern = pattern.strip()
    while pattern.startswith("./"):
        pattern = pattern[2:]
    segments = [s for s in pattern.rstrip("/").split("/") if s not in ("", ".")]
    out = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            out += r"(?:(?!\.)[^/]+/)*(?!\.)[^/]*" if last else r"(?:(?!\.)[^/]+/)*"
            continue
        out += _segment_regex(segment) + ("" if last else "/")
    return re.compile(out)


def _segment_regex(segment: str) -> str:
    out = "" if segment.startswith(".") or segment[0] not in "*?[" else r"(?!\.)"
    i = 0
    while i < len(segment):
        char = segment[i]
        close = segment.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif close != -1:
            body = segment[i + 1 : close]
            negate = body.startswith("!")
            body = re.escape(body[1:] if negate else body).replace(r"\-", "-")
            out += f"[{'^/' if negate else ''}{body}]"
            i = close
        else:
            out += re.escape(char)
        i += 1
    return out


def _matches(matcher: re.Pattern[str], path: str) -> bool:
    """A file matches when it, or a directory above it, matches: naming a folder takes it all."""
    parts = path.split("/")
    return any(matcher.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1))


def _walk(app_dir: Path) -> list[str]:
    """Every regular file under ``app_dir`` (following symlinks, once), as relative POSIX paths."""
    found: list[str] = []
    seen: set[str] = set()
    for root, dirs, names in os.walk(app_dir, followlinks=True):
        seen.add(os.path.realpath(root))
        dirs[:] = [
            d
            for d in dirs
            if d not in SKIPPED_DIRS and os.path.realpath(os.path.join(root, d)) not in seen
        ]
        rel = Path(root).relative_to(app_dir)
        for name in names:
            if os.path.isfile(os.path.join(root, name)):
                found.append((rel / name).as_posix())
    return found


def _write_archive(app_dir: Path, files: list[str], sink: _HashingWriter) -> None:
    """Stream each file into the archive; nothing varies but names, bytes and exec bits."""
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=sink, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for name in files:
            _add_file(tar, app_dir, name)


def _add_file(tar: tarfile.TarFile, app_dir: Path, name: str) -> None:
    """Add one file as it is once opened: its header from the open file, and a save
    meanwhile (a short read, another size or time) refused rather than half-packaged."""
    try:
        raw = io.FileIO(app_dir / name, "rb")
    except FileNotFoundError:
        raise FileChanged(f"{name} was removed while it was packaged; push again") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise Unprocessable(f"{name} cannot be read: {reason}") from None
    with _SteadyReader(raw, name) as fh:
        before = os.fstat(fh.fileno())
        info = tarfile.TarInfo(name)
        info.size = before.st_size
        info.mode = 0o755 if before.st_mode & 0o111 else 0o644
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, fh)
        after = os.fstat(fh.fileno())
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
        raise FileChanged(_changed(name))


def _changed(name: str) -> str:
    return f"{name} changed while it was packaged; push again"


class _SteadyReader(io.BufferedReader):
    """A file that ends no sooner than its size said: tarfile copies exactly the size in
    the header, and a file cut meanwhile would otherwise end in its ``OSError``
    ("unexpected end of data") with no name."""

    def __init__(self, raw: io.FileIO, name: str) -> None:
        super().__init__(raw)
        self.member = name

    def read(self, size: int | None = -1, /) -> bytes:
        data = super().read(size)
        if size is not None and size > 0 and len(data) < size:
            raise FileChanged(_changed(self.member))
        return data


class _HashingWriter:
    """Hashes the archive as it is written, so it is never read back or held in memory;
    counts it against ``max_bytes``."""

    def __init__(self, raw: BinaryIO, max_bytes: int | None = None) -> None:
        self.raw, self.max_bytes = raw, max_bytes
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self.max_bytes is not None and self.size > self.max_bytes:
            raise OverLimit(self.max_bytes)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()
