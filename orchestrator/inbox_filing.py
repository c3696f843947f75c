"""One package dropped into the push directory, from the moment it is seen to its filing.

A dropped file is *taken* the moment the watcher sees it: a hard link in its app's
``.held/`` holds its bytes (its inode), so a package replaced under the same name while
it waits or is pushed is still the one pushed and filed, and the newcomer is a drop of
its own. The name in ``push/<app>/`` stays put until the package is filed, and it is
removed then only if it still names the package that was handled.

A stopped or killed daemon's holds are settled at the next start (``settle_holds``):
one whose package still has its name in ``push/<app>/`` goes (the package is taken
again); one that is all that is left of a package (another took its name, or it was
removed) is filed in ``.rejected/`` saying so, never lost (held in ``tmp/``, emptied at
start, such a package was gone without a word). It is not pushed: the package that took
its name is newer, and devint must end on the latest.

A folder cannot be linked: it is read in place, and filed only if the folder under
its name is still the one that was taken. A symlink (or a FIFO, a device, a socket) is
neither held nor read: it is filed as it is, its target untouched (``inbox_kinds.unfit``).

Names in ``.done/`` and ``.rejected/`` are never reused: a second package of the same
name filed within the same second gets ``<stamp>-2-<name>``, and so on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import TooLarge
from orchestrator.ids import new_token
from orchestrator.packaging.build import FileChanged, OverLimit, build_package
from orchestrator.packaging.whole import WholeCheck

Ident = tuple[int, int]
"""``(st_dev, st_ino)``: which file a name stands for."""

HELD = ".held"
"""In an app's folder, the inbox's holds on the packages taken from it: there, a hard
link is always possible (one file system), and a killed daemon's holds are found again."""
HELD_NAME_BYTES = 200
"""A hold's name is ``<token>-<name>``: the dropped name, to file it under at the next
start if that is all that is left of it; its last this many bytes (a name is <= 255)."""
ORPHAN_REASON = (
    "the daemon stopped while it waited to be pushed, and meanwhile another package took "
    "its name (or it was removed): it was not pushed, so that devint stays on the newer "
    "one; to push it, move it back into its app's folder"
)

COPY_CHUNK = 1024 * 1024
MIB = 1024 * 1024


def ident(st: os.stat_result) -> Ident:
    return st.st_dev, st.st_ino


def looks(st: os.stat_result) -> tuple[int, int]:
    """What tells a file that changed: its size and its mtime (to the nanosecond)."""
    return st.st_size, st.st_mtime_ns


@dataclass(eq=False)
class Drop:
    """A package seen in ``push/<app>/``, followed until it is filed."""

    origin: Path
    """``push/<app>/<name>``: where it was dropped, and where its name is removed from."""
    ident: Ident
    """The entry at ``origin`` when it was taken (``lstat``: a link is itself)."""
    claim: Path | None
    """A hard link to the package's file in its app's ``HELD``; ``None`` for a folder, or a
    file that could not be linked (another file system): then it is read in place."""
    folder: bool
    in_place: bool
    """Its last change was a write, not a rename (ctime == mtime; for a folder, an entry
    made in it): it may still be being written under its final name, so it is pushed only
    once it has settled."""
    seen: tuple[int, int]
    """``looks()`` when last seen: a change since means it is being written."""
    arrived: int
    """ctime (ns) when taken: a rename into the folder sets it, so drops seen together
    are pushed in the order they arrived, and devint ends on the latest."""
    disk_tries: int = field(default=0)
    """Times it met a full disk; it is rejected after ``DISK_TRIES``."""
    writing_since: float | None = field(default=None)
    """``time.monotonic()`` when it was first found still being written, while it is
    (``inbox_quiet.writing_for_long``)."""

    @property
    def source(self) -> Path:
        return self.claim or self.origin

    @property
    def app_id(self) -> str:
        return self.origin.parent.name

    @property
    def name(self) -> str:
        return self.origin.name


def take(path: Path, held: Path) -> Drop | None:
    """A drop for the entry at ``path``, its file held by a link in ``held`` (its app's
    ``HELD``); ``None`` if it is gone."""
    for _ in range(3):  # replaced between the look and the link: look again
        try:
            lst = os.lstat(path)
        except OSError:
            return None
        if stat.S_ISDIR(lst.st_mode):  # in place: its last change was an entry made in it
            in_place = lst.st_ctime_ns == lst.st_mtime_ns
            return Drop(path, ident(lst), None, True, in_place, looks(lst), lst.st_ctime_ns)
        if not stat.S_ISREG(lst.st_mode):  # a link is never followed, nor held: refused
            return Drop(path, ident(lst), None, False, False, looks(lst), lst.st_ctime_ns)
        link = hold_path(held, path.name)
        claim: Path | None = link
        try:
            _link(path, link)
        except OSError:
            claim = None  # another file system, links refused, or just gone: read in place
        else:
            try:
                linked = ident(os.lstat(link))
            except OSError:
                linked = (-1, -1)
            if linked != ident(lst):  # replaced meanwhile (by a link, even): look again
                with contextlib.suppress(OSError):
                    os.unlink(link)
                continue
        # the link has not changed the times looked at: `lst` is from before it
        in_place = lst.st_ctime_ns == lst.st_mtime_ns
        return Drop(path, ident(lst), claim, False, in_place, looks(lst), lst.st_ctime_ns)
    return None


def hold_path(held: Path, name: str) -> Path:
    """A new name in ``held`` for a hold on the package dropped as ``name``."""
    return held / f"{new_token()[:16]}-{os.fsdecode(os.fsencode(name)[-HELD_NAME_BYTES:])}"


def settle_holds(app: Path, holding: set[Path]) -> list[Path]:
    """What a stopped daemon held in ``app``'s ``HELD`` (all but ``holding``, this one's):
    a hold whose package has another name goes; one that is all that is left of its
    package is filed in ``.rejected/`` with ``ORPHAN_REASON``. Returns where those went."""
    held = app / HELD
    try:
        names = sorted(os.listdir(held))
    except OSError:
        return []
    kept = []
    for name in names:
        path = held / name
        try:
            st = os.lstat(path)
            if path in holding:
                continue
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                os.unlink(path)  # still named in push/<app>/ (taken again) or filed
                continue
            dest_dir = app / ".rejected"
            dest_dir.mkdir(exist_ok=True)
            dest = unique(dest_dir, name.split("-", 1)[-1])
            os.rename(path, dest)
            write_reason(dest, ORPHAN_REASON)
            kept.append(dest)
        except OSError:
            continue  # gone meanwhile, or unwritable: met again at the next start
    return kept


def _link(path: Path, claim: Path) -> None:
    # the entry itself, never what a symlink leads to (a hard link to the daemon's key
    # was filed in .rejected/); `take` checks that the hold is the file it looked at
    try:
        os.link(path, claim, follow_symlinks=False)
    except FileNotFoundError:
        if not os.path.lexists(path):
            raise
        claim.parent.mkdir(parents=True, exist_ok=True)  # its app's first, or removed by hand
        os.link(path, claim, follow_symlinks=False)


def open_for_writing(path: Path) -> bool:
    """Whether some process holds the file open for writing (Linux: a read lease is
    refused then), so a writer that pauses longer than the settle time is waited for
    too. False where leases are unavailable (another owner without CAP_LEASE, a file
    system without them): the settle time is all there is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.errno == errno.EAGAIN
    else:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
        return False
    finally:
        os.close(fd)


class NotWhole(Exception):
    """A package copied out to be pushed at once is not a whole archive (yet): it waits."""


def too_large(size: int, limit_mb: int) -> TooLarge:
    """The push's own refusal (``PushService._measure``), word for word."""
    return TooLarge(
        f"package is {size / MIB:.1f} MiB; the limit is {limit_mb} MiB (max_package_mb)"
    )


def copy_out(
    drop: Drop, target: Path, limit_mb: int, whole: bool = False
) -> tuple[int, int] | None:
    """Write the package to ``target`` (a folder is packaged first); returns the file's
    ``looks()`` as read, ``None`` for a folder. With ``whole``, a file must also be a
    whole archive (``WholeCheck``, in the same read), else ``NotWhole`` is raised.

    A file is read through one descriptor and must look the same before and after, with
    as many bytes as it said: a package written meanwhile is never pushed half. Its size
    is checked before a byte is copied and again as it is copied (it may grow): a sparse
    3 GiB file is refused, not written out in full first; a folder is packaged only up
    to the limit.
    """
    try:
        if drop.folder:
            try:
                build_package(drop.source, target, max_bytes=limit_mb * MIB)
            except OverLimit:
                raise TooLarge(
                    f"package is over {limit_mb} MiB, the limit (max_package_mb): its folder "
                    "was packaged no further"
                ) from None
            return None
        return _copy_file(drop.source, target, limit_mb * MIB, limit_mb, whole)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _copy_file(
    source: Path, target: Path, limit: int, limit_mb: int, whole: bool
) -> tuple[int, int]:
    # a FIFO must not block the thread; a link is never read through
    fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb", buffering=0) as src:
        before = os.fstat(src.fileno())
        if not stat.S_ISREG(before.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(source))
        if before.st_size > limit:
            raise too_large(before.st_size, limit_mb)
        copied = 0
        buffer = bytearray(min(COPY_CHUNK, before.st_size + 1) or 1)
        check = WholeCheck() if whole else None
        with open(target, "xb") as out:
            while n := src.readinto(buffer):
                copied += n
                if copied > limit:
                    raise too_large(max(copied, os.fstat(src.fileno()).st_size), limit_mb)
                read = memoryview(buffer)[:n]
                out.write(read)
                if check is not None:
                    check.feed(read)
        after = os.fstat(src.fileno())
    if looks(after) != looks(before) or copied != before.st_size:
        raise FileChanged(f"{source.name} changed while it was read; it is taken again")
    if check is not None and not check.whole():
        raise NotWhole(source.name)
    return looks(before)


def unique(folder: Path, name: str) -> Path:
    """A name in ``folder`` that nothing (nor its ``.reason``) has: ``<stamp>-<name>``,
    then ``<stamp>-2-<name>``, ... (two packages of one name filed in the same second
    used to overwrite each other, or fail for a folder)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    n = 1
    while True:
        dest = folder / (f"{stamp}-{name}" if n == 1 else f"{stamp}-{n}-{name}")
        if not os.path.lexists(dest) and not os.path.lexists(f"{dest}.reason"):
            return dest
        n += 1


def file_away(drop: Drop, folder: str, reason: str) -> Path | None:
    """Move a handled package to ``<app>/<folder>/`` with its ``.reason``, so a restart
    never takes it again; returns where it went, ``None`` if it is no longer there.

    Raises ``OSError`` if it cannot (its app's folder deleted, no permission)."""
    dest_dir = drop.origin.parent / folder
    dest_dir.mkdir(exist_ok=True)
    if drop.claim is not None:
        dest = _link_unique(drop.claim, dest_dir, drop.name)
        os.unlink(drop.claim)
    else:
        try:
            now = ident(os.lstat(drop.origin))
        except FileNotFoundError:
            return None
        if now != drop.ident:
            return None  # replaced by another package, which is a drop of its own
        dest = unique(dest_dir, drop.name)
        os.rename(drop.origin, dest)
    if os.path.islink(dest):  # filed as a link, the watcher of push/ would walk into its target
        reason += f" It led to: {os.readlink(dest)}"
        os.unlink(dest)
    write_reason(dest, reason)
    if drop.claim is not None:
        release(drop)
    return dest


def write_reason(dest: Path, reason: str) -> None:
    """``<dest>.reason``, written anew (a reason may change: ``inbox_reasons``)."""
    # whole or not at all: a watcher that saw the file being written read an empty reason
    written = Path(f"{dest}.reason.part")
    written.write_text(reason + "\n")
    os.replace(written, f"{dest}.reason")


def _link_unique(source: Path, folder: Path, name: str) -> Path:
    """A link, not a rename, so that an entry made meanwhile is never replaced."""
    while True:
        dest = unique(folder, name)
        try:
            os.link(source, dest)
        except FileExistsError:
            continue
        return dest


def release(drop: Drop) -> None:
    """Remove the package's name from ``push/<app>/`` if it still names the package.

    The name is taken aside before it is removed, so a package renamed onto it at that
    very moment is never the one removed: it is put back (or, should yet another have
    taken the name meanwhile, filed in ``.rejected/`` saying so, never lost).
    """
    try:
        if ident(os.lstat(drop.origin)) != drop.ident:
            return  # gone, or another package under that name: a drop of its own
    except OSError:
        return
    aside = hold_path(drop.origin.parent / HELD, drop.name)  # one file system, named
    try:
        os.rename(drop.origin, aside)
    except OSError:
        return
    if ident(os.lstat(aside)) == drop.ident:
        os.unlink(aside)
        return
    with contextlib.suppress(OSError):
        if stat.S_ISDIR(os.lstat(aside).st_mode):
            if not os.path.lexists(drop.origin):
                os.rename(aside, drop.origin)
                return
        else:
            os.link(aside, drop.origin, follow_symlinks=False)  # never over a newer one
            os.unlink(aside)
            return
    dest_dir = drop.origin.parent / ".rejected"
    dest_dir.mkdir(exist_ok=True)
    dest = unique(dest_dir, drop.name)
    os.rename(aside, dest)
    Path(f"{dest}.reason").write_text(
        "it was dropped while another package of the same name was being filed: drop it again\n"
    )
