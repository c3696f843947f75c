"""Whether a run's files are still where orch put them, and the error when they are not.

A run's folder (``runs/<id>/``: ``workspace``) holds its log, its output and, for most
runs, its input; its row in the store holds everything else. Someone may delete the
folder by hand (to free space, by mistake). The row and so the run's metadata stay, but
its log must not then read as empty, nor its output as a bare 404, as if the model had
written neither: the answer says the folder is gone (``RunFilesGone``, a 410).

Not every finished run ever had a folder: an experiment's runs get theirs when they
start, so one canceled while queued, or failed before its process was spawned, never had
one and nothing of it was lost. Only a row that proves something was stored there
counts (``had_files``); such a run keeps its empty log and its "no output".
"""

from __future__ import annotations

import os

from orchestrator.errors import Gone
from orchestrator.models import Run, RunType


class RunFilesGone(Gone):
    """A run's folder was removed outside orch: what was asked for (``what``: its log,
    output or input) went with it. The run's record is intact."""

    def __init__(self, run_id: str, folder: str, what: str) -> None:
        super().__init__(
            f"run {run_id!r}: its folder {folder} no longer exists, so its {what} is gone "
            "(deleted outside orch; the run's metadata is kept)"
        )
        self.run_id, self.folder, self.what = run_id, folder, what


def had_files(run: Run, folder: str) -> bool:
    """Whether the row proves orch stored files in the run's ``folder``: a process was
    spawned there (its placement), it is a tracked run (what it reported), it recorded an
    output, or its input lies there."""
    return (
        run.placement is not None
        or run.run_type == RunType.EXTERNAL
        or run.output_size > 0
        or (run.input_path or "").startswith(folder.rstrip("/") + "/")
    )


def require(run: Run, folder: str, path: str, what: str) -> None:
    """Raise ``RunFilesGone`` when ``path`` (the run's ``what``, inside its ``folder``) is
    missing because the folder was deleted; return when it is there, lies elsewhere (an
    input in the blob store), or never was (``had_files``). The file is checked first: on
    every ordinary read this costs one ``stat``."""
    if not path.startswith(folder.rstrip("/") + "/") or os.path.lexists(path):
        return
    if not os.path.isdir(folder) and had_files(run, folder):
        raise RunFilesGone(run.id, folder, what)
