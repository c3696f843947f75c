"""What a run may touch, decided in one place; the jail (``runs/jail``) enforces it.

A model may read and execute its package, its Python environment and the
installation behind it, its input and the configured ``read_paths``; it may
write only its working folder, its private ``TMPDIR`` and its two output files.
Everything else of the daemon's home (the key, the database, other runs, other
apps' packages, uploads, other blobs) is out of its reach, whatever the host
offers to enforce it with (see ``isolation``). An environment build's installer is
held the same way (``build_access``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orchestrator.models import Run
from orchestrator.runs.process import Access, ProcessSpec
from orchestrator.runs.workspace import Workspace


def run_access(
    run: Run, ws: Workspace, python: str, package: str, read_paths: Sequence[str] = ()
) -> Access:
    """A run: its package (an absolute path), interpreter, input and the configured
    ``read_paths``."""
    read = [package, *interpreter_roots(python)]
    if run.input_path:
        read.append(os.path.abspath(run.input_path))
    read += map(os.path.abspath, read_paths)
    return Access(  # the workspace's paths are absolute already (``Workspace.of``)
        folder=ws.root,
        read=tuple(read),
        write=(ws.work, ws.tmp),
        write_files=(ws.stdout, ws.stderr),
        env=(("HOME", ws.tmp),),  # a home it can write (caches, configs), emptied after
    )


def build_access(
    work: str, env: str, cache: str, program: str, reads: Sequence[str] = ()
) -> Access:
    """An environment build's installer step (``environments.BuildJail``): it reads what a
    run reads of the system and the interpreter, the installer ``program`` and ``reads``
    (its app's package, ``read_paths``, the index folders the daemon's settings name);
    it writes only the ``env`` folder it builds, the build ``cache`` and its ``TMPDIR``
    (``work/tmp``, also its ``HOME``), its output goes to ``work/step.log``."""
    tmp = os.path.join(work, "tmp")
    read = [*interpreter_roots(sys.executable), os.path.dirname(os.path.realpath(program))]
    return Access(
        folder=work,
        read=tuple(dict.fromkeys(map(os.path.abspath, [*read, *reads]))),
        write=(env, cache, tmp),
        write_files=(os.path.join(work, "step.log"),),
        env=(("HOME", tmp),),
    )


def spec_access(spec: ProcessSpec) -> Access:
    """For a bare ``ProcessSpec`` (tools, tests): its cwd and TMPDIR, its input and
    output files, and the interpreter that runs it."""
    cwd = os.path.abspath(spec.cwd)
    write = [cwd]
    if tmp := spec.env.get("TMPDIR"):
        write.append(os.path.abspath(tmp))
    read = [*interpreter_roots(spec.argv[0])] if spec.argv and "/" in spec.argv[0] else []
    if spec.stdin is not None:
        read.append(os.path.abspath(spec.stdin))
    return Access(
        folder=cwd,
        read=tuple(read),
        write=tuple(write),
        write_files=(os.path.abspath(spec.stdout), os.path.abspath(spec.stderr)),
    )


@functools.lru_cache(maxsize=64)
def interpreter_roots(executable: str) -> tuple[str, ...]:
    """The trees an interpreter needs: its virtual environment (when it is one) and
    the installation behind it (``home`` of ``pyvenv.cfg``, and where the
    executable really lives). Cached: read once per interpreter, not per run."""
    exe = Path(executable).absolute()
    roots: list[Path] = []
    venv = exe.parent.parent
    config = venv / "pyvenv.cfg"
    if config.is_file():
        roots.append(venv)
        base = _venv_home(config)
        if base is not None:
            roots.append(base.parent)
    real = Path(os.path.realpath(exe))
    roots.append(real.parent.parent if real.parent.name == "bin" else real.parent)
    return tuple(dict.fromkeys(map(os.path.abspath, roots)))


def _venv_home(config: Path) -> Path | None:
    """``home = /usr/local/bin`` in pyvenv.cfg: the base interpreter's bin folder."""
    try:
        lines = config.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and value.strip():
            return Path(os.path.realpath(value.strip()))
    return None
