"""The one symlink rule of packages, for the daemon's unpacker and ``orch app push`` alike.

A link may point anywhere inside the package, never out of it: resolved (so
chains like ``s -> .``, ``x -> s/..`` count), its target must be the package
folder or below it. The daemon refuses a package holding such a link; the
CLI refuses to build one, instead of packaging whatever the link reaches
(``/etc/hostname``, a key in the user's home).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from orchestrator.errors import Unprocessable


def escapes(path: str | os.PathLike[str], real_root: str) -> bool:
    """Whether ``path``, resolved, lies outside ``real_root`` (itself resolved)."""
    real = os.path.realpath(path)
    return real != real_root and not real.startswith(real_root + os.sep)


def escaping_link(name: str) -> Unprocessable:
    return Unprocessable(f"package symlink {name!r} resolves to a path outside the package")


def check_selected(root: Path, files: Iterable[str]) -> None:
    """Refuse when a file to package is, or lies under, a link that leaves ``root``."""
    real_root = os.path.realpath(root)
    checked: set[str] = set()
    for name in files:
        parts = name.split("/")
        for n in range(1, len(parts) + 1):
            prefix = "/".join(parts[:n])
            if prefix in checked:
                continue
            checked.add(prefix)
            path = root / prefix
            if path.is_symlink() and escapes(path, real_root):
                raise escaping_link(prefix)
