"""What an entry of the push directory is: a package, an app's folder, or what is refused.

Only what ``push/<app>/`` holds under a final name is a drop: a package (``.tar.gz``,
``.tgz``, ``.tar``) or a folder (pushed once it holds ``app.yaml``). Temp names
(``*.tmp``, ``*.part``, dot files) are someone still writing; a file straight in
``push/`` is for no app (``inbox_unpushed`` says so beside it). An entry that is neither a
regular file nor a folder (a symlink, a FIFO, a device, a socket) is looked at with
``lstat`` only and never read: a link may lead to the daemon's key, or to ``/proc/kcore``,
which never settles.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from orchestrator.inbox_unpushed import said_beside
from orchestrator.packaging.manifest import MANIFEST_FILE

PACKAGE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".swp", "~")
PACKAGE_HELP = (
    "only packages (.tar.gz, .tgz, .tar) and folders containing app.yaml are pushed from here"
)


def kind_of(path: Path, push_root: Path) -> str | None:
    """``package``, ``folder`` (with ``app.yaml``), ``bare`` (a folder without it: it
    waits for one), ``other`` (a file that is neither: rejected, saying so), ``unfit``
    (neither a file nor a folder: refused unread) for ``push/<app>/<entry>`` under a final
    name; ``astray``
    for a file straight in ``push/`` (not pushed: which app?); else ``None`` (temporary
    and dot names, the reasons said beside entries, app folders, anything deeper)."""
    try:
        rel = path.relative_to(push_root)
    except ValueError:
        return None
    if len(rel.parts) not in (1, 2) or any(p.startswith(".") for p in rel.parts):
        return None
    if rel.parts[-1].endswith(TEMP_SUFFIXES) or said_beside(path):
        return None
    try:
        st = os.lstat(path)  # never followed: a link is what it is
    except OSError:
        return None  # gone
    if len(rel.parts) == 1:
        return None if stat.S_ISDIR(st.st_mode) else "astray"
    if os.path.islink(path.parent):
        return None  # an app folder that is a link is not read through: it is removed
    if stat.S_ISDIR(st.st_mode):
        return "folder" if (path / MANIFEST_FILE).is_file() else "bare"
    if not stat.S_ISREG(st.st_mode):
        return "unfit"
    return "package" if rel.parts[1].endswith(PACKAGE_SUFFIXES) else "other"


def unfit(st: os.stat_result) -> str | None:
    """What an entry that is neither a regular file nor a folder is (``lstat``), else
    ``None``. Such an entry is never read: a link may lead to the daemon's key, or to
    ``/proc/kcore``, which never settles and held its app's other packages back."""
    mode = st.st_mode
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def unfit_reason(what: str, app_id: str) -> str:
    """Why an ``unfit`` entry was refused, and what to do instead."""
    moved = (
        "the link was removed: kept, the watcher of push/ would walk into what it leads to"
        if what == "a symbolic link"
        else "it was moved here"
    )
    return (
        f"it is {what}: the push directory never reads through a link, a pipe, a device or "
        f"a socket ({moved}; nothing was read from what it leads to); put the package itself, "
        f"or the app's folder, in push/{app_id}/ (cp -L copies what a link points to)"
    )


def not_a_package(app_id: str) -> str:
    """Why a file that is no package was refused. Files of an app's own folder dropped as
    ``push/<app>/`` itself (``cp -r myapp/. push/<app>/``) arrive one by one, each no
    package: say where the folder goes."""
    return (
        f"it is not a package: {PACKAGE_HELP}; an app's folder is put whole inside "
        f"push/{app_id}/ (push/{app_id}/<folder>/app.yaml)"
    )
