"""A push of a package whose environment failed builds it again: how a user retries once
the package index is back (offline here: a wheel folder that fills in between)."""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path

import httpx

from tests.conftest import MakeDaemon
from tests.helpers import create_app, push_dir, run_and_wait, wait_for, write_app

MAIN = "import json, zzqorch\nprint(json.dumps({'x': zzqorch.X}))\n"
MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)


def _wheel(folder: Path, name: str = "zzqorch", version: str = "1.0") -> None:
    """The smallest wheel an installer takes: one module, its metadata and RECORD."""
    info = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": b"X = 1\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()},{len(data)}"
        for path, data in files.items()
    ]
    with zipfile.ZipFile(folder / f"{name}-{version}-py3-none-any.whl", "w") as whl:
        for path, data in files.items():
            whl.writestr(path, data)
        whl.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")


def _env(api: httpx.Client, app_id: str) -> str:
    return str(api.get(f"/v1/applications/{app_id}/executable").json()["environment"]["status"])


def test_pushing_a_failed_package_again_builds_its_environment(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    folder = write_app(tmp_path / "app", MAIN, MANIFEST)
    (folder / "requirements.txt").write_text(f"--no-index\n--find-links {wheels}\nzzqorch==1.0\n")
    # a build reads no folder outside its package unless the config lets it
    daemon = make_daemon(config=f'[isolation]\nread_paths = ["{wheels}"]\n')
    with daemon.client() as api:
        _retry(api, app_id=create_app(api), folder=folder, wheels=wheels, tmp_path=tmp_path)


def _retry(api: httpx.Client, app_id: str, folder: Path, wheels: Path, tmp_path: Path) -> None:
    first = push_dir(api, app_id, folder, tmp_path)["executable"]["id"]
    wait_for(lambda: _env(api, app_id) == "failed", timeout=120, interval=0.2)
    _wheel(wheels)  # the index is back
    again = push_dir(api, app_id, folder, tmp_path)["executable"]["id"]
    assert again == first  # the same package
    wait_for(lambda: _env(api, app_id) == "ready", timeout=120, interval=0.2)
    result = run_and_wait(api, app_id, {"input": {}})
    assert result["metadata"]["status_v2"] == "succeeded", result["metadata"]["error"]
    assert result["output"] == {"x": 1}
