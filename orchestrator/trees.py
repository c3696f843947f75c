"""File trees that models (or archives) made: walked and removed at any depth.

``shutil.rmtree`` and a walk by full paths both fail on what a hostile model can build in
its own folder, and both failed here:

- ``shutil.rmtree`` recurses once per level (Python 3.11), and the ``RecursionError`` of
  a tree 2,500 folders deep escapes ``ignore_errors``: deleting such a run answered 500,
  and the sweep of leftover run folders then stopped the daemon from starting at all;
- a path longer than ``PATH_MAX`` (4,096 bytes: ~2,000 levels of one-letter folders)
  cannot be opened by name, so a walk by paths did not see the files beneath it: bytes
  a disk limit never counted.

So this walk holds one directory descriptor at a time and opens each level relative to
the one above (``openat``), never following a symlink. It keeps no descriptor per level
(a tree can be deeper than the process's descriptor limit): it climbs back with ``..``
and checks that it arrived where it came from (device and inode), so a folder moved
during the walk ends it instead of taking it outside the tree. A folder the daemon may
not enter (a model of the same uid can ``chmod 000`` its own folders) is given its
owner's permissions back first: the tree is the daemon's to measure and to remove.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LIST = stat.S_IRUSR | stat.S_IXUSR
"""What the owner needs to list a folder and open what is in it."""

Entries = list[tuple[str, bool]]
"""A folder's entries: name, and whether it is a folder (a symlink never is)."""


class TreeMoved(OSError):
    """A folder changed place while it was walked: the walk stops where it is."""


@dataclass
class Folder:
    """One folder of a walk: ``fd`` is open only until the walk's next step."""

    fd: int
    path: str
    """Relative to the walk's top ("" for the top itself); may be longer than PATH_MAX."""
    entries: Entries


@dataclass
class _Level:
    name: str
    identity: tuple[int, int]
    entries: Entries
    folders: list[str] = field(default_factory=list)


def folders_bottom_up(top: str | os.PathLike[str]) -> Iterator[Folder]:
    """Every folder beneath and including ``top``, each after all the folders inside it
    (so they can be emptied first); entry names are relative to its ``fd``. Nothing is
    yielded when ``top`` is not a folder (or is a link to one)."""
    try:
        fd = _open(os.fspath(top), None)
    except OSError:
        return
    try:
        levels = [_level(fd, "")]
        while levels:
            level = levels[-1]
            if level.folders:
                name = level.folders.pop()
                try:
                    child = _open(name, fd)
                except OSError:
                    continue  # gone, or not a folder any more: nothing beneath to walk
                os.close(fd)
                fd = child
                levels.append(_level(fd, name))
                continue
            yield Folder(fd, "/".join(lv.name for lv in levels[1:]), level.entries)
            levels.pop()
            if levels:
                parent = os.open("..", _DIR, dir_fd=fd)
                os.close(fd)
                fd = parent
                if _identity(fd) != levels[-1].identity:
                    raise TreeMoved(f"a folder beneath {os.fspath(top)!r} moved during the walk")
    finally:
        os.close(fd)


def regular_files(top: str | os.PathLike[str]) -> Iterator[tuple[Folder, str, os.stat_result]]:
    """Each regular file beneath ``top`` (links are not followed, nor reported): its
    folder, its name there and its ``lstat``, folder by folder, names sorted."""
    for folder in folders_bottom_up(top):
        for name, is_folder in sorted(folder.entries):
            if is_folder:
                continue
            try:
                info = os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                yield folder, name, info


def remove(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` and everything beneath it, however deep, as far as possible
    (what cannot be removed stays; a missing path is fine). A symlink is removed, never
    followed."""
    with contextlib.suppress(OSError):
        for folder in folders_bottom_up(path):
            with contextlib.suppress(OSError):
                os.fchmod(folder.fd, stat.S_IRWXU)  # write access to the folder, to unlink in it
            for name, is_folder in folder.entries:
                with contextlib.suppress(OSError):
                    if is_folder:
                        os.rmdir(name, dir_fd=folder.fd)
                    else:
                        os.unlink(name, dir_fd=folder.fd)
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.rmdir(path)
        else:
            os.unlink(path)


def _open(name: str, dir_fd: int | None) -> int:
    try:
        return os.open(name, _DIR, dir_fd=dir_fd)
    except PermissionError:  # the model took the folder's permissions away: give them back
        _grant(name, dir_fd)
        return os.open(name, _DIR, dir_fd=dir_fd)


def _grant(name: str, dir_fd: int | None) -> None:
    """``u+rwx`` on the folder ``name``, through a handle that refuses a symlink
    (``O_PATH | O_NOFOLLOW | O_DIRECTORY``): one swapped in meanwhile is not followed."""
    handle = os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{handle}", stat.S_IRWXU)
    finally:
        os.close(handle)


def _level(fd: int, name: str) -> _Level:
    info = os.fstat(fd)
    if info.st_mode & _LIST != _LIST and os.geteuid() != 0:  # readable, but not searchable
        with contextlib.suppress(OSError):
            os.fchmod(fd, stat.S_IMODE(info.st_mode) | stat.S_IRWXU)
    with os.scandir(fd) as found:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in found]
    level = _Level(name, (info.st_dev, info.st_ino), entries)
    level.folders = [name for name, is_folder in entries if is_folder]
    return level


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return info.st_dev, info.st_ino
