"""A run's secrets: handed to its model when it starts, taken away when it ends.

``env`` secrets join the model's environment (the jail's command pipe carries them,
nothing writes them down). ``file`` secrets are written, 0600, at their location in
the run's working folder, where the jail makes them readable by the model's uid and
by no other run. Which files were written is recorded in the run's folder
(``secret-files``: locations, never values), so that ``scrub`` removes them when the
run ends however it ends: success, failure, cancel, or the next daemon's recovery.

The local backend stages runs here; the dask backend ships the values inside the run's
task (never in its published dataset) and its worker stages them the same way.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from orchestrator.models import Failure, FailureKind, Run, Secret, SecretType
from orchestrator.runs.backend import StartFailed
from orchestrator.runs.process import StrPath
from orchestrator.runs.workspace import Workspace, confined
from orchestrator.store import Store

RECORD = "secret-files"
"""In the run's folder, beside ``work``: the locations of the secret files written."""


async def load(store: Store, run: Run) -> tuple[Secret, ...]:
    """The values for a run about to start (read now: an update reaches the next run)."""
    if not run.secrets_collection_id:
        return ()
    found = await store.read.secrets.get(run.app_id, run.secrets_collection_id)
    if found is None:
        raise StartFailed(_refused(f"secrets collection {run.secrets_collection_id!r} is gone"))
    return tuple(await store.read.secrets.values(run.app_id, run.secrets_collection_id))


def env_of(secrets: Sequence[Secret]) -> dict[str, str]:
    return {s.location: s.value for s in secrets if s.type == SecretType.ENV}


def write_files(run_dir: StrPath, secrets: Sequence[Secret]) -> tuple[str, ...]:
    """Each file secret at its location under ``work``; refused (``StartFailed``) where the
    app's package already has that path, so a secret never lands in the package."""
    files = [s for s in secrets if s.type == SecretType.FILE]
    if not files:
        return ()
    _write_record(Path(run_dir, RECORD), [s.location for s in files])  # first: a crash still scrubs
    work = Path(Workspace.of(run_dir).work)
    try:
        return tuple(str(_write(work, s)) for s in files)
    except BaseException:
        scrub(run_dir)  # the ones written before the refusal go too
        raise


def scrub(run_dir: StrPath) -> None:
    """Remove the run's secret files. The model owned the folder: a path that now leads
    elsewhere through a symlink is left alone (it is no longer the file written)."""
    record = Path(run_dir, RECORD)
    try:
        locations = json.loads(record.read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        locations = []
    work = Path(Workspace.of(run_dir).work)
    for location in locations if isinstance(locations, list) else []:
        path = work / str(location)
        if confined(path, work):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                path.unlink()
    record.unlink(missing_ok=True)


def _write_record(path: Path, locations: list[str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(locations, fh)


def _write(work: Path, secret: Secret) -> Path:
    *folders, name = secret.location.split("/")
    folder = work
    for part in folders:
        folder = folder / part
        try:
            os.mkdir(folder, 0o755)  # the model's uid must reach the file
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise StartFailed(_collides(secret)) from None
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(folder / name, flags, 0o600)
    except FileExistsError:
        raise StartFailed(_collides(secret)) from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secret.value)
    return folder / name


def _collides(secret: Secret) -> Failure:
    return _refused(f"file secret {secret.location!r} collides with a path of the app's package")


def _refused(why: str) -> Failure:
    return Failure(FailureKind.SPAWN, detail=why)
