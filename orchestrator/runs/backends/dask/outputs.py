"""A finished run's files, packed on the worker and written into the daemon's run folder.

The API reads every output from the daemon's run folder (``runs/<id>/stdout``,
``stderr``, ``work/outputs/...``), so a run on a worker brings back exactly the
files the local backend would have left there: its stdout and log, and for
folder formats the output folder plus the statistics, metrics and assets files
the manifest names (relative to the run's work folder). The daemon unpacks the
archive with the same hostile-archive checks as an uploaded input.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from orchestrator import trees
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.unpack import safe_extract
from orchestrator.runs.backends.dask.protocol import TaskResult, UnpackCaps
from orchestrator.runs.inputs import DIRECTORY_FORMATS
from orchestrator.runs.workspace import Workspace, output_dir_name


def pack(ws: Workspace, manifest: Manifest, fmt: str) -> tuple[bytes, bytes, bytes | None]:
    """(stdout, stderr, the output archive or None) of a finished run (worker side)."""
    stdout, stderr = _read(Path(ws.stdout)), _read(Path(ws.stderr))
    if fmt not in DIRECTORY_FORMATS:
        return stdout, stderr, None
    out = output_dir_name(fmt)
    extra = (manifest.multi_file.statistics, manifest.multi_file.metrics)
    names = [out, *(n for n in (*extra, manifest.multi_file.assets) if not _under(n, out))]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as tar:
        for name in names:
            path = Path(ws.work, name)
            if path.exists() or path.is_symlink():
                tar.add(path, arcname=name)  # symlinks stay links: checked when unpacked
    return stdout, stderr, buffer.getvalue()


def write_back(run_dir: Path, result: TaskResult, log_from: int, caps: UnpackCaps) -> None:
    """Put a finished attempt's files into the daemon's run folder (daemon side).

    The log keeps its first ``log_from`` bytes (what orch wrote there: notes of a lost
    worker and earlier attempts' logs) and then holds this attempt's whole log, which
    replaces what was streamed of it while it ran.
    """
    ws = Workspace.of(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    Path(ws.stdout).write_bytes(result.stdout)
    with open(ws.stderr, "ab") as fh:
        fh.truncate(log_from)
        fh.write(result.stderr)
    if result.outputs is not None:
        _unpack(result.outputs, Path(ws.work), caps)


def _unpack(archive: bytes, work: Path, caps: UnpackCaps) -> None:
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work, prefix=".unpack-") as tmp:
        tar_path = Path(tmp) / "outputs.tar.gz"
        tar_path.write_bytes(archive)
        tree = Path(tmp) / "tree"
        safe_extract(tar_path, tree, max_bytes=caps.input_bytes, max_files=caps.package_files)
        for entry in os.listdir(tree):
            target = work / entry
            if target.is_dir() and not target.is_symlink():
                trees.remove(target)
            os.replace(tree / entry, target)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _under(name: str, folder: str) -> bool:
    return Path(name).parts[:1] == (folder,)
