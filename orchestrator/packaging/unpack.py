"""Check and unpack a pushed package (daemon side).

Every package is hostile until proven otherwise: we do not let ``tarfile`` extract
anything, we read members one by one from a size-capped stream and write them
ourselves, so each rule below produces a message that names the member and the
rule, and a gzip bomb stops at ``max_bytes`` instead of filling the disk.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from orchestrator import trees
from orchestrator.errors import OrchError, TooLarge, Unprocessable
from orchestrator.packaging import bytecode
from orchestrator.packaging.links import escapes, escaping_link
from orchestrator.packaging.manifest import MANIFEST_FILE, Manifest
from orchestrator.packaging.requirements import read_requirements

CHUNK = 1024 * 1024
_HEADER_ALLOWANCE = 4096
"""Bytes of tar headers allowed per member on top of ``max_bytes`` (pax, long names, padding)."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class UnpackResult:
    files: int
    """Regular files (``max_files`` counts every member: directories and links too)."""
    size: int
    manifest: Manifest


MAX_DEPTH = 100
"""Levels of folders a member may sit beneath: deeper trees break the walks that check,
compile and protect a package (a RecursionError, a path past ``PATH_MAX``), and no real
package comes near (a vendored ``site-packages`` is ~15)."""


@dataclass
class _Budget:
    """What has been written so far, counted from real bytes, never from headers."""

    max_bytes: int
    max_files: int
    files: int = 0
    size: int = 0
    regular: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)


def inspect_and_unpack(
    archive: Path, dest: Path, *, max_bytes: int, max_files: int, scratch: Path | None = None
) -> UnpackResult:
    """Unpack ``archive`` into ``dest`` (named by the package's sha256) atomically.

    If ``dest`` exists, this package was already unpacked and checked: it is
    reused as is. The work happens in a folder under ``scratch`` (default: next
    to ``dest``; on the same file system, so the result is renamed into place).
    On any failure nothing is left behind, except what a killed process cannot
    clean: that is why the daemon's ``scratch`` is emptied at every start.
    """
    if dest.is_dir():
        return _describe_existing(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch or dest.parent
    scratch.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=scratch, prefix=f".{dest.name}.unpack-"))
    try:
        result, root = _unpack_checked(archive, work, max_bytes, max_files)
        try:
            os.replace(root, dest)
        except OSError:
            if not dest.is_dir():
                raise
            return _describe_existing(dest)  # a concurrent unpack of the same package won
        dest.chmod(0o555)
        return result
    finally:
        remove_tree(work)


def safe_extract(archive: Path, dest: Path, *, max_bytes: int, max_files: int) -> int:
    """Unpack an untrusted archive that is not a package (a run's input folder).

    Same checks as for packages, minus the manifest; returns the bytes written.
    On failure ``dest`` is removed and the error says "input archive".
    """
    dest.mkdir()
    budget = _Budget(max_bytes=max_bytes, max_files=max_files)
    try:
        _extract(archive, dest, budget)
        _check_symlinks(dest)
    except OrchError as exc:
        remove_tree(dest)
        raise type(exc)(exc.message.replace("package", "input archive", 1)) from None
    except BaseException:
        remove_tree(dest)
        raise
    return budget.size


def _unpack_checked(
    archive: Path, work: Path, max_bytes: int, max_files: int
) -> tuple[UnpackResult, Path]:
    """Extract into ``work/pkg``, check the result and make it read-only (except its root)."""
    tree = work / "pkg"
    tree.mkdir()
    budget = _Budget(max_bytes=max_bytes, max_files=max_files)
    _extract(archive, tree, budget)
    _check_symlinks(tree)
    root = _package_root(tree)
    manifest = Manifest.load(root / MANIFEST_FILE)
    _check_contents(root, manifest)
    if manifest.type == "python":
        _compile(root)
    _make_read_only(root, manifest)
    result = UnpackResult(files=len(budget.regular), size=budget.size, manifest=manifest)
    return result, root


def _extract(archive: Path, tree: Path, budget: _Budget) -> None:
    limit = budget.max_bytes + _HEADER_ALLOWANCE * (budget.max_files + 4)
    with _open_stream(archive) as raw:
        stream = _CappedReader(raw, limit, budget.max_bytes)
        try:
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for member in tar:
                    _extract_member(tar, member, tree, budget)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise Unprocessable(f"package is corrupt or truncated: {exc}") from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise  # the disk's fault, not the package's: it is not rejected for it
            # the member's name, not the path it was going to (the daemon's home)
            named = isinstance(exc.filename, str)
            at = f" (at {os.path.relpath(exc.filename, tree)!r})" if named else ""
            reason = exc.strerror or type(exc).__name__
            raise Unprocessable(f"package could not be unpacked: {reason}{at}") from None


@contextlib.contextmanager
def _open_stream(archive: Path) -> Iterator[_Readable]:
    """Decide gzip or plain tar from the bytes themselves; names are not trusted."""
    with archive.open("rb") as fh:
        head = fh.read(512)
        fh.seek(0)
        if head[:2] == b"\x1f\x8b":
            with gzip.GzipFile(fileobj=fh, mode="rb") as gz:
                yield gz
        elif head[257:262] == b"ustar":
            yield fh
        else:
            raise Unprocessable(f"package is not a tar.gz or tar archive ({_sniff(head)})")


def _sniff(head: bytes) -> str:
    """What the file is instead, in words: its first bytes as text when they are text."""
    if not head:
        return "the file is empty"
    if head.startswith(b"PK\x03\x04"):
        return "it is a zip file: make a tar.gz instead"
    if head.lstrip()[:1] in (b"{", b"["):
        return "it is JSON text"
    text = head[:16].decode("ascii", errors="replace")
    if text.isascii() and text.isprintable():
        return f"it is text, starting {text!r}"
    return f"it starts with the bytes {head[:8].hex(' ')}"


def _extract_member(tar: tarfile.TarFile, member: tarfile.TarInfo, tree: Path, b: _Budget) -> None:
    name = _member_name(member)
    if name is None:
        return
    b.files += 1
    if b.files > b.max_files:
        raise TooLarge(f"package has more than {b.max_files} files")
    previous = b.kinds.get(name)
    if previous == "dir" and not member.isdir():
        raise Unprocessable(f"package member {name!r} would replace a directory with a file")
    if previous not in (None, "dir"):
        raise Unprocessable(f"package member {name!r} appears more than once")
    target = tree / name
    _check_parents(tree, name, b)
    if member.isdir():
        target.mkdir(parents=True, exist_ok=True)
        b.kinds[name] = "dir"
    elif member.isreg():
        if b.size + member.size > b.max_bytes:
            raise TooLarge(f"package unpacks to more than {b.max_bytes} bytes (at {name!r})")
        source = tar.extractfile(member)
        if source is None:  # only for non-regular members; kept for the type checker
            raise Unprocessable(f"package member {name!r} has no data")
        _copy(source, target, member.mode, b)
        b.regular.add(name)
        b.kinds[name] = "file"
    elif member.issym():
        _check_link_target(name, member.linkname)
        os.symlink(member.linkname, target)
        b.kinds[name] = "symlink"
    elif member.islnk():
        _hard_link(name, member.linkname, tree, b)
    else:
        raise Unprocessable(
            f"package member {name!r} is a {_kind(member)}; packages may only contain "
            "files, directories and links"
        )


def _member_name(member: tarfile.TarInfo) -> str | None:
    """The member's normalized relative name, or None for the archive root itself."""
    raw = member.name
    if "\0" in raw:
        raise Unprocessable(f"package member name {raw!r} contains a NUL character")
    if raw.startswith("/"):
        raise Unprocessable(f"package member {raw!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Unprocessable(f"package member {raw!r} has a '..' path component")
    if len(parts) > MAX_DEPTH:
        shown = raw if len(raw) <= 80 else raw[:80] + "..."
        raise Unprocessable(
            f"package member {shown!r} is {len(parts)} levels deep; at most {MAX_DEPTH}"
        )
    return "/".join(parts) or None


def _check_parents(tree: Path, name: str, b: _Budget) -> None:
    """Refuse to write through a symlink or into a file: both escape or corrupt the tree."""
    parts = name.split("/")
    for n in range(1, len(parts)):
        parent = "/".join(parts[:n])
        kind = b.kinds.get(parent)
        if kind not in (None, "dir"):
            raise Unprocessable(
                f"package member {name!r} would be written inside {parent!r}, which is a {kind}"
            )
        if kind is None:
            (tree / parent).mkdir(exist_ok=True)
            b.kinds[parent] = "dir"


def _check_link_target(name: str, target: str) -> None:
    if not target or "\0" in target:
        raise Unprocessable(f"package symlink {name!r} has an invalid target {target!r}")
    if target.startswith("/"):
        raise Unprocessable(f"package symlink {name!r} points to the absolute path {target!r}")
    depth = len(name.split("/")) - 1
    for part in target.split("/"):
        depth += -1 if part == ".." else 0 if part in ("", ".") else 1
        if depth < 0:
            raise Unprocessable(
                f"package symlink {name!r} points to {target!r}, outside the package"
            )


def _hard_link(name: str, target: str, tree: Path, b: _Budget) -> None:
    """Hard links become copies of an earlier regular member; nothing else is linkable."""
    source = "/".join(p for p in target.split("/") if p not in ("", "."))
    if target.startswith("/") or source not in b.regular:
        raise Unprocessable(
            f"package hard link {name!r} points to {target!r}, which is not a regular file "
            "earlier in the package"
        )
    with (tree / source).open("rb") as fh:
        _copy(fh, tree / name, (tree / source).stat().st_mode, b)
    b.regular.add(name)
    b.kinds[name] = "file"


def _copy(source: IO[bytes], target: Path, mode: int, b: _Budget) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        while chunk := source.read(CHUNK):
            if b.size + len(chunk) > b.max_bytes:
                raise TooLarge(f"package unpacks to more than {b.max_bytes} bytes")
            b.size += len(chunk)
            out.write(chunk)
    target.chmod(0o700 if mode & 0o111 else 0o600)


def _kind(member: tarfile.TarInfo) -> str:
    if member.ischr():
        return "character device"
    if member.isblk():
        return "block device"
    if member.isfifo():
        return "FIFO"
    return f"member of unsupported type {member.type!r}"


def _check_symlinks(tree: Path) -> None:
    """Each link was checked alone; chains (``s -> .``, ``x -> s/..``) are checked resolved."""
    real_tree = os.path.realpath(tree)
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path) and escapes(path, real_tree):
                raise escaping_link(os.path.relpath(path, tree))


def _package_root(tree: Path) -> Path:
    """``app.yaml`` at the top, or inside one single top-level folder (``dir/app.yaml``)."""
    if (tree / MANIFEST_FILE).is_file() and not (tree / MANIFEST_FILE).is_symlink():
        return tree
    entries = sorted(os.listdir(tree))
    if len(entries) == 1:
        only = tree / entries[0]
        if only.is_dir() and not only.is_symlink() and (only / MANIFEST_FILE).is_file():
            return only
    listing = ", ".join(entries[:10]) + (", ..." if len(entries) > 10 else "") or "nothing"
    raise Unprocessable(f"package has no {MANIFEST_FILE} at its root (found: {listing})")


def _check_contents(root: Path, manifest: Manifest) -> None:
    if not (root / manifest.entrypoint).is_file():
        raise Unprocessable(
            f"package: the entrypoint {manifest.entrypoint!r} (execution.entrypoint, default "
            f"for {manifest.type} apps) is missing from the package"
        )
    if manifest.cwd and not (root / manifest.cwd).is_dir():
        raise Unprocessable(f"package: execution.cwd {manifest.cwd!r} is not a folder in it")
    _check_requirements(root, manifest)


def _check_requirements(root: Path, manifest: Manifest) -> None:
    """The requirements file and what it includes are in the package, as UTF-8 text: the
    environment is built after the push returns, and a missing include must not surface
    there, as a path in the daemon's home."""
    requirements = manifest.pip_requirements
    if not isinstance(requirements, str):
        return
    if not (root / requirements).is_file():
        raise Unprocessable(
            f"package: python.pip-requirements file {requirements!r} is missing from the package"
        )
    if Path(requirements).suffix != ".toml":
        try:
            read_requirements(root, requirements, "the package")
        except Unprocessable as exc:
            raise Unprocessable(f"package: {exc.message}") from None


def _compile(root: Path) -> None:
    """Byte-compile the package's modules once, before it turns read-only.

    Runs share the package read-only (and models run with PYTHONDONTWRITEBYTECODE), so
    without this every run compiled the app's own modules again: 9-10 ms per run for an
    840-line helper module, against 0.5 ms with its bytecode cached (measured). It
    happens in a child process under memory and time limits (``bytecode``): what the
    package holds decides what compiling costs. A module that does not compile, or not
    within the limits, is left to compile (or fail, with the model's own traceback) at
    run time, as it would without this.
    """
    bytecode.compile_tree(root)


def _make_read_only(root: Path, manifest: Manifest) -> None:
    """Runs share the tree, so nobody may change it; the root stays writable until moved.

    Go and binary entrypoints are made executable even if the tar lost the bit
    (packed on Windows, say), since nothing else could ever run them.
    """
    entry = root / manifest.entrypoint
    if manifest.type in ("go", "binary") and not entry.is_symlink():
        entry.chmod(0o700)
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISREG(mode):
                os.chmod(path, 0o555 if mode & 0o111 else 0o444)
        if dirpath != str(root):
            os.chmod(dirpath, 0o555)


def _describe_existing(dest: Path) -> UnpackResult:
    """The package's own files (its bytecode, made at unpack, is not part of it)."""
    files = size = 0
    for dirpath, dirs, names in os.walk(dest):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in names:
            info = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(info.st_mode):
                files += 1
                size += info.st_size
    return UnpackResult(files=files, size=size, manifest=Manifest.load(dest / MANIFEST_FILE))


def remove_tree(path: Path) -> None:
    """Remove a tree that may hold read-only folders (an unpacked package), however deep."""
    trees.remove(path)


class _CappedReader:
    """The decompressed stream, cut off past a bound so headers cannot balloon either."""

    def __init__(self, raw: _Readable, limit: int, max_bytes: int) -> None:
        self.raw = raw
        self.left = limit
        self.max_bytes = max_bytes

    def read(self, size: int = -1) -> bytes:
        want = self.left + 1 if size < 0 else min(size, self.left + 1)
        data = self.raw.read(want)
        self.left -= len(data)
        if self.left < 0:
            raise TooLarge(f"package unpacks to more than {self.max_bytes} bytes")
        return data
