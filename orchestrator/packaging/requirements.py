"""A requirements file and the files it includes, read alike by the CLI, the unpacker and
the environment builder.

pip lets a requirements file include others: ``-r more.txt`` (``--requirement``)
adds their requirements, ``-c cons.txt`` (``--constraint``) their constraints, each
path relative to the including file. The environment is built from a copy of the
lines in another folder, where such paths would not resolve, so all three readers
must agree on the files a set spans: ``orch app push`` packages every one (``files``
rarely names them), the daemon refuses a package that misses one, naming it (not a
path in its home), and the builder inlines them. A package carries its own
requirements, so an include may not leave it; a web address (``-r https://...``) is
the installer's to fetch and is left as it is.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.errors import Unprocessable
from orchestrator.packaging.links import escapes

MAX_DEPTH = 20
"""Levels of includes: a chain deeper than this is a generated attack, not an app."""
_COMMENT = re.compile(r"(^|\s)#.*$")
_INCLUDE = re.compile(
    r"^(?:-(?P<short>[rc])\s*=?\s*|--(?P<long>requirement|constraint)(?:\s*=\s*|\s+))(?P<path>\S.*)$"
)
_URL = re.compile(r"^https?://", re.IGNORECASE)


@dataclass
class RequirementSet:
    """What a requirements file spans, its includes inlined."""

    files: list[str] = field(default_factory=list)
    """The files read, as POSIX paths relative to the package, the top one first."""
    requirements: list[str] = field(default_factory=list)
    constraints: list[str] = field(default_factory=list)
    """Lines of ``-c`` files: they limit versions but install nothing themselves."""


def read_requirements(root: Path, top: str, where: str) -> RequirementSet:
    """``top`` (relative to ``root``) with every file it includes, checked and inlined.

    ``where`` names ``root`` in messages ("the app folder", "the package"): each
    refusal is one line naming the including file, its line and the include.
    """
    reader = _Reader(root, where)
    reader.read(posixpath.normpath(top), constraint=False, chain=())
    return reader.found


def logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of each line that says something, as pip reads them: a trailing
    backslash joins the next line, comments and runs of blanks go."""
    out: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 1
    for number, raw in enumerate(text.splitlines(), 1):
        start = start if pending else number
        if raw.endswith("\\"):
            pending.append(raw[:-1])
            continue
        out.append((start, " ".join([*pending, raw])))
        pending = []
    if pending:
        out.append((start, " ".join(pending)))
    cleaned = ((n, " ".join(_COMMENT.sub("", line).split())) for n, line in out)
    return [(n, line) for n, line in cleaned if line]


class _Reader:
    """One walk over the include graph; each file is read once per kind (``-r``/``-c``),
    so a diamond of includes costs its edges, not its paths."""

    def __init__(self, root: Path, where: str) -> None:
        self.root, self.where = root, where
        self.real_root = os.path.realpath(root)
        self.found = RequirementSet()
        self.done: set[tuple[str, bool]] = set()

    def read(self, name: str, constraint: bool, chain: tuple[str, ...]) -> None:
        if (name, constraint) in self.done:
            return
        self.done.add((name, constraint))
        if name not in self.found.files:
            self.found.files.append(name)
        for number, line in logical_lines(self._text(name)):
            include = _INCLUDE.match(line)
            if include is None or _URL.match(include["path"]):
                (self.found.constraints if constraint else self.found.requirements).append(line)
                continue
            target = self._resolve(name, number, line, include["path"])
            if target in (*chain, name):
                raise self._refuse(name, number, line, "includes a file that includes it")
            if len(chain) >= MAX_DEPTH:
                raise self._refuse(name, number, line, f"nests includes over {MAX_DEPTH} deep")
            kind = include["short"] or include["long"][0]
            self.read(target, kind == "c", (*chain, name))

    def _resolve(self, name: str, number: int, line: str, path: str) -> str:
        """The included file's name relative to the root: inside it, and a file."""
        if "\0" in path:
            raise self._refuse(name, number, line, "names a path with a NUL character")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), path))
        outside = path.startswith("/") or target == ".." or target.startswith("../")
        if outside or escapes(self.root / target, self.real_root):
            raise self._refuse(name, number, line, f"includes a file outside {self.where}")
        full = self.root / target
        if not full.exists():
            missing = f"includes {target!r}, which is missing from {self.where}"
            raise self._refuse(name, number, line, missing)
        if not full.is_file():
            raise self._refuse(name, number, line, f"includes {target!r}, which is not a file")
        return target

    @staticmethod
    def _refuse(name: str, number: int, line: str, problem: str) -> Unprocessable:
        return Unprocessable(f"{name}, line {number}: {line!r} {problem}")

    def _text(self, name: str) -> str:
        """The file as text; pip accepts a UTF-8 byte order mark, and so do we."""
        try:
            data = (self.root / name).read_bytes()
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise Unprocessable(f"requirements file {name!r} cannot be read: {reason}") from None
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise Unprocessable(
                f"requirements file {name!r} is not UTF-8 text (line {line}); save it as UTF-8"
            ) from None
