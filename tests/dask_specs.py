"""A run's task as the daemon sends it to Dask, for tests that drive workers without one.

The package and the input travel inline in the spec (nothing is shipped), so a test needs
only a scheduler and its workers (``tests/dask_cluster.py``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from orchestrator.models import Run
from orchestrator.packaging.build import build_package
from orchestrator.runs.backends.dask.protocol import Blob, TaskSpec, UnpackCaps, dataset_name
from tests.helpers import write_app


def inline_spec(tmp: Path, main: str, run_id: str, data: bytes, tenant: str) -> TaskSpec:
    """The task of run ``run_id`` of a one-file app (``main``) on input ``data``."""
    app = write_app(tmp / "app", main)
    package = build_package(app, tmp / "app.tar.gz").path.read_bytes()
    sha = hashlib.sha256(package).hexdigest()
    return TaskSpec(
        run=Run(id=run_id, app_id="app", instance_id="inst", executable_id=sha),
        manifest=yaml.safe_load((app / "app.yaml").read_text()),
        package=Blob(sha, len(package), False, inline=package),
        input=Blob(hashlib.sha256(data).hexdigest(), len(data), False, inline=data),
        requirements=None,
        caps=UnpackCaps(package_bytes=1 << 24, package_files=100, input_bytes=1 << 20),
        dataset=dataset_name(tenant, run_id),
    )
