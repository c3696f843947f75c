"""Requirements files that include others (``-r``, ``-c`` and their long forms).

The CLI packages every included file, the daemon refuses a package that misses one
(naming it, never a path in its home), and the environment builder inlines them, with
constraints kept constraints. The installs are real and offline: two hand-made wheels
of one project, found through ``--find-links``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import httpx
import pytest

from orchestrator.errors import Unprocessable
from orchestrator.packaging.build import build_package
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.pyenv import CONSTRAINT, build_env, requirements_of
from orchestrator.packaging.unpack import inspect_and_unpack
from tests.conftest import MakeDaemon
from tests.helpers import create_app, push_archive, push_dir, run_and_wait, write_tree

PY_REQS = "type: python\nfiles: [main.py]\npython: {pip-requirements: requirements.txt}\n"
MiB = 1024 * 1024


def hand_made(path: Path, files: dict[str, bytes]) -> Path:
    """A package as the SDK or a script could make it: exactly ``files``, nothing added."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


def unpack(archive: Path, dest: Path) -> Manifest:
    return inspect_and_unpack(archive, dest, max_bytes=10 * MiB, max_files=100).manifest


# --- the CLI packages what a requirements file includes ----------------------------------------

INCLUDING = {
    "app.yaml": PY_REQS,
    "main.py": "",
    "requirements.txt": "six  # top\n-r more.txt\n--requirement=sub/extra.txt\n"
    "-c cons.txt\n--constraint sub/c2.txt\n-r https://example.com/r.txt\n",
    "more.txt": "attrs\n",
    "sub/extra.txt": "-r ../deep.txt\nidna\n",
    "deep.txt": "# nothing but a comment\n",
    "cons.txt": "six==1.16.0\n",
    "sub/c2.txt": "-c ../cons.txt\nidna<4\n",
    "unrelated.txt": "not packaged\n",
}


def test_build_packages_every_included_file(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "app", INCLUDING)
    built = build_package(app, tmp_path / "pkg.tar.gz")
    includes = ["more.txt", "sub/extra.txt", "deep.txt", "cons.txt", "sub/c2.txt"]
    assert built.files == sorted(["app.yaml", "main.py", "requirements.txt", *includes])
    manifest = unpack(built.path, tmp_path / "executables" / built.sha256)
    lines = requirements_of(manifest, tmp_path / "executables" / built.sha256)
    assert lines == [
        "six",
        "attrs",
        "idna",
        "-r https://example.com/r.txt",  # a URL is the installer's to fetch
        f"{CONSTRAINT}six==1.16.0",
        f"{CONSTRAINT}idna<4",
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"requirements.txt": "six\n-r more.txt\n"},
            "requirements.txt, line 2: '-r more.txt' includes 'more.txt', "
            "which is missing from the app folder",
        ),
        (
            {"requirements.txt": "-r more.txt\n", "more.txt": "x\n\\\n\n--constraint c.txt\n"},
            "more.txt, line 4: '--constraint c.txt' includes 'c.txt', which is missing",
        ),
        (
            {"requirements.txt": "-c ../outside.txt\n"},
            "requirements.txt, line 1: '-c ../outside.txt' includes a file outside the app folder",
        ),
        (
            {"requirements.txt": "--requirement /etc/hostname\n"},
            "'--requirement /etc/hostname' includes a file outside the app folder",
        ),
        (
            {"requirements.txt": "-r a.txt\n", "a.txt": "-r requirements.txt\n"},
            "a.txt, line 1: '-r requirements.txt' includes a file that includes it",
        ),
        (
            {"requirements.txt": "-r sub\n", "sub/x.txt": ""},
            "requirements.txt, line 1: '-r sub' includes 'sub', which is not a file",
        ),
        (
            {"requirements.txt": b"six\n\xff\n"},
            "requirements file 'requirements.txt' is not UTF-8 text (line 2); save it as UTF-8",
        ),
        (
            {"requirements.txt": "-r more.txt\n", "more.txt": b"caf\xe9\n"},
            "requirements file 'more.txt' is not UTF-8 text (line 1)",
        ),
    ],
)
def test_build_refuses_what_cannot_be_packaged(
    tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    app = write_tree(tmp_path / "app", {"app.yaml": PY_REQS, "main.py": "", **files})
    (tmp_path / "outside.txt").write_text("six\n")
    with pytest.raises(Unprocessable, match=re.escape(message)) as info:
        build_package(app, tmp_path / "pkg.tar.gz")
    assert "\n" not in info.value.message and str(tmp_path) not in info.value.message
    assert not (tmp_path / "pkg.tar.gz").exists()


def test_build_refuses_an_include_reached_through_a_link_out(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "app", {"app.yaml": PY_REQS, "main.py": ""})
    (app / "requirements.txt").write_text("-r linked.txt\n")
    (tmp_path / "secret.txt").write_text("six\n")
    (app / "linked.txt").symlink_to(tmp_path / "secret.txt")
    with pytest.raises(
        Unprocessable, match=r"'-r linked\.txt' includes a file outside the app folder$"
    ):
        build_package(app, tmp_path / "pkg.tar.gz")


def test_includes_nest_at_most_twenty_deep(tmp_path: Path) -> None:
    chain = {f"r{n}.txt": f"-r r{n + 1}.txt\n" for n in range(25)}
    files = {"app.yaml": PY_REQS, "main.py": "", "requirements.txt": "-r r0.txt\n", **chain}
    app = write_tree(tmp_path / "app", {**files, "r25.txt": "six\n"})
    with pytest.raises(Unprocessable) as info:
        build_package(app, tmp_path / "pkg.tar.gz")
    assert info.value.message == "r19.txt, line 1: '-r r20.txt' nests includes over 20 deep"
    app = write_tree(tmp_path / "ok", {**files, "r19.txt": "six\n"})  # twenty levels are fine
    assert "r19.txt" in build_package(app, tmp_path / "pkg.tar.gz").files


def test_a_byte_order_mark_is_not_part_of_the_first_requirement(tmp_path: Path) -> None:
    files = {"app.yaml": PY_REQS, "main.py": "", "requirements.txt": b"\xef\xbb\xbfsix\n"}
    app = write_tree(tmp_path / "app", files)
    assert requirements_of(Manifest.load(app / "app.yaml"), app) == ["six"]


# --- the daemon checks a package it did not build ----------------------------------------------


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {"requirements.txt": b"-r more.txt\n"},
            "package: requirements.txt, line 1: '-r more.txt' includes 'more.txt', "
            "which is missing from the package",
        ),
        (
            {"requirements.txt": b"-r more.txt\n", "more.txt": b"-c deep/cons.txt\n"},
            "package: more.txt, line 1: '-c deep/cons.txt' includes 'deep/cons.txt', which is",
        ),
        (
            {"requirements.txt": b"-r ../../etc/hostname\n"},
            "includes a file outside the package",
        ),
        (
            {"requirements.txt": b"\xfe\xff\x00s\x00i\x00x\n"},
            "package: requirements file 'requirements.txt' is not UTF-8 text (line 1)",
        ),
    ],
)
def test_unpack_refuses_a_package_missing_an_include(
    tmp_path: Path, files: dict[str, bytes], message: str
) -> None:
    base = {"app.yaml": PY_REQS.encode(), "main.py": b""}
    archive = hand_made(tmp_path / "pkg.tar.gz", base | files)
    dest = tmp_path / "executables" / "x"
    with pytest.raises(Unprocessable, match=re.escape(message)) as info:
        unpack(archive, dest)
    assert str(tmp_path) not in info.value.message
    assert not dest.exists()


def test_a_push_missing_an_include_is_refused_with_422(api: httpx.Client, tmp_path: Path) -> None:
    app_id = create_app(api)
    files = {"app.yaml": PY_REQS.encode(), "main.py": b"", "requirements.txt": b"-r more.txt\n"}
    r = push_archive(api, app_id, hand_made(tmp_path / "pkg.tar.gz", files))
    assert r.status_code == 422, r.text
    message = r.json()["error"]
    assert "'-r more.txt' includes 'more.txt', which is missing from the package" in message
    assert "executables" not in message
    assert api.get(f"/v1/applications/{app_id}/history").json()["items"] == []  # not landed


# --- constraints reach the installer ------------------------------------------------------------


def wheel(folder: Path, version: str) -> Path:
    """A pure-python wheel of ``orchdemo`` at ``version``: an install needs no network."""
    name, dist = "orchdemo", f"orchdemo-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n".encode(),
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{dist}/WHEEL": b"Wheel-Version: 1.0\nGenerator: orch-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = [f"{path},sha256={_digest(data)},{len(data)}" for path, data in files.items()]
    path = folder / f"{name}-{version}-py3-none-any.whl"
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(member, data)
        zf.writestr(f"{dist}/RECORD", "\n".join([*record, f"{dist}/RECORD,,"]) + "\n")
    return path


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    for version in ("1.0", "2.0"):
        wheel(folder, version)
    return folder


async def test_a_constraint_limits_what_is_installed(wheels: Path, tmp_path: Path) -> None:
    offline = ["--no-index", f"--find-links {wheels}", "orchdemo"]
    free = await build_env(offline, tmp_path / "envs", sys.executable, install_timeout=120)
    held = await build_env([*offline, f"{CONSTRAINT}orchdemo<2"], tmp_path / "envs", sys.executable)
    assert free.ok and held.ok, (free.message, held.message)
    assert held.path != free.path  # constraints are part of what an env is
    assert _installed(free.path) == "2.0" and _installed(held.path) == "1.0"


def _installed(env: Path) -> str:
    found = list(env.glob("lib/*/site-packages/orchdemo/__init__.py"))
    return found[0].read_text().split("'")[1]


def test_a_pushed_app_gets_its_included_requirements_and_constraints(
    make_daemon: MakeDaemon, wheels: Path, tmp_path: Path
) -> None:
    main = "import json, orchdemo\nprint(json.dumps({'version': orchdemo.VERSION}))\n"
    manifest = (
        "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\nfiles: [main.py]\n"
        "python:\n  pip-requirements: requirements.txt\n"
    )
    files = {
        "app.yaml": manifest,
        "main.py": main,
        "requirements.txt": "-r reqs/base.txt\n-c reqs/pins.txt\n",
        "reqs/base.txt": f"--no-index\n--find-links {wheels}\norchdemo\n",
        "reqs/pins.txt": "orchdemo==1.0\n",
    }
    # a build reads no folder outside its package unless the config lets it, as its uid
    wheels.chmod(0o755)
    daemon = make_daemon(config=f'[isolation]\nread_paths = ["{wheels}"]\n')
    with daemon.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_tree(tmp_path / "app", files), tmp_path)
        res = run_and_wait(api, app_id, {"input": {}}, timeout=300)
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["output"] == {"version": "1.0"}
