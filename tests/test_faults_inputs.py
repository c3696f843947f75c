"""Consistent inputs: the CLI's push follows the daemon's symlink rule, and names and
descriptions have caps answered with 4xx everywhere."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.errors import Invalid
from orchestrator.ids import MAX_DESCRIPTION_LENGTH, MAX_NAME_LENGTH, check_label
from tests.faults import orch
from tests.helpers import Daemon, create_app, push_archive, push_dir, write_app

MODEL = "import json\nprint(json.dumps({'ok': True}))\n"


def _app_with_link(folder: Path, target: Path) -> Path:
    app = write_app(
        folder, MODEL, manifest="type: python\nruntime: py\nfiles:\n  - main.py\n  - secret\n"
    )
    os.symlink(target, app / "secret")
    return app


def test_orch_app_push_refuses_a_link_out_of_the_app_folder(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("the user's secret\n")
    app_id = create_app(api)
    for target in (outside, Path("..") / "outside.txt"):  # absolute and relative
        folder = tmp_path / f"app-{len(str(target))}"
        done = orch("app", "push", "-a", app_id, "--app-dir", str(_app_with_link(folder, target)),
                    "--home", str(daemon.home))  # fmt: skip
        assert done.returncode != 0
        assert "package symlink 'secret' resolves to a path outside the package" in done.stderr
    assert api.get(f"/v1/applications/{app_id}/executable").status_code == 409  # nothing pushed


def test_the_daemon_refuses_the_same_link_in_a_package(api: httpx.Client, tmp_path: Path) -> None:
    archive = tmp_path / "linked.tar"
    with tarfile.open(archive, "w") as tar:
        for name, data in {"app.yaml": b"type: python\nruntime: py\n", "main.py": b""}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("secret")
        link.type, link.linkname = tarfile.SYMTYPE, "s/.."  # passes alone; escapes resolved
        tar.addfile(link)
        loop = tarfile.TarInfo("s")
        loop.type, loop.linkname = tarfile.SYMTYPE, "."
        tar.addfile(loop)
    r = push_archive(api, create_app(api), archive)
    assert r.status_code == 422
    assert "package symlink 'secret' resolves to a path outside the package" in r.json()["error"]


def test_links_inside_the_app_folder_still_push(
    daemon: Daemon, api: httpx.Client, tmp_path: Path
) -> None:
    app = write_app(tmp_path / "app", MODEL, manifest=(
        "type: python\nruntime: py\nfiles:\n  - main.py\n  - alias.py\n"))  # fmt: skip
    os.symlink("main.py", app / "alias.py")
    app_id = create_app(api)
    done = orch("app", "push", "-a", app_id, "--app-dir", str(app), "--home", str(daemon.home))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("field", ["name", "description"])
def test_names_and_descriptions_are_capped(api: httpx.Client, tmp_path: Path, field: str) -> None:
    cap = MAX_NAME_LENGTH if field == "name" else MAX_DESCRIPTION_LENGTH
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "app", MODEL), tmp_path)
    version = api.post(f"/v1/applications/{app_id}/versions", json={"id": "v1"})
    assert version.status_code == 201, version.text
    base = f"/v1/applications/{app_id}"
    writes = [
        ("post", "/v1/applications", {"id": f"capped-{field[0]}", "name": "n"}),
        ("put", base, {}),
        ("post", f"{base}/versions", {"id": "v2"}),
        ("put", f"{base}/versions/v1", {}),
        ("post", f"{base}/instances", {"id": "i1", "version_id": "v1"}),
        ("post", f"{base}/runs", {"input": {}}),
        ("post", f"{base}/experiments/inputsets", {"id": "s1", "input_ids": ["x"]}),
        ("post", f"{base}/experiments/batch", {"id": "b1", "input_set_id": "s1"}),
    ]
    for method, path, body in writes:
        r = api.request(method, path, json={**body, field: "x" * (cap + 1)})
        assert r.status_code == 422, (path, r.text)
        assert f"at most {cap} characters" in r.json()["error"], (path, r.text)
    r = api.request("put", base, json={field: "x" * cap})
    assert r.status_code == 200, r.text  # the cap itself is fine


def test_a_huge_name_is_refused_fast(api: httpx.Client) -> None:
    started = time.monotonic()
    r = api.post("/v1/applications", json={"id": "huge-name", "name": "x" * 50_000_000})
    assert r.status_code == 422 and len(r.text) < 1000
    assert time.monotonic() - started < 10
    assert api.get("/v1/applications/huge-name").status_code == 404


def test_the_domain_caps_every_entry_point() -> None:
    """Callers that are not the HTTP API (the console's forms) meet the same caps."""
    check_label("run", "x" * MAX_NAME_LENGTH, "y" * MAX_DESCRIPTION_LENGTH)
    with pytest.raises(Invalid, match="run name has 257 characters; the limit is 256"):
        check_label("run", "x" * 257)
    with pytest.raises(Invalid, match="input set description has 4097 characters"):
        check_label("input set", None, "y" * 4097)
