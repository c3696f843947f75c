"""Push over HTTP: the SDK's upload-URL flow, devint, dedup, and hostile packages."""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeDaemon
from tests.helpers import (
    SAMPLES,
    Daemon,
    create_app,
    push_archive,
    push_dir,
    run_and_wait,
    unique,
)

MANIFEST = b"type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\nfiles:\n  - main.py\n"


def tar_with(tmp: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path = tmp / f"{unique('bad')}.tar.gz"
    path.write_bytes(buf.getvalue())
    return path


def member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def valid() -> list[tuple[tarfile.TarInfo, bytes]]:
    return [member("app.yaml", MANIFEST), member("main.py", b"print('{}')\n")]


def test_push_moves_devint_and_records_history(api: httpx.Client, tmp_path: Path) -> None:
    app_id = create_app(api)
    first = push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)["executable"]
    assert first["requirements"]["executable_type"] == "python"
    devint = api.get(f"/v1/applications/{app_id}/instances/devint").json()
    assert devint["id"] == "devint" and devint["version_id"] == ""
    assert api.get(f"/v1/applications/{app_id}/instances/latest").json()["id"] == "devint"
    second = push_dir(api, app_id, SAMPLES / "shell-echo", tmp_path)["executable"]
    assert api.get(f"/v1/applications/{app_id}/executable").json()["id"] == second["id"]
    moves = api.get(f"/v1/applications/{app_id}/history").json()["items"]
    assert [(m["pointer"], m["from"], m["to"], m["action"]) for m in moves] == [
        ("devint", first["id"], second["id"], "push"),
        ("devint", None, first["id"], "push"),
    ]


def test_identical_content_is_stored_once(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    home = daemon.home
    a, b = create_app(api), create_app(api)
    one = push_dir(api, a, SAMPLES / "shell-echo", tmp_path)["executable"]["id"]
    two = push_dir(api, b, SAMPLES / "shell-echo", tmp_path)["executable"]["id"]
    assert one == two
    assert len(list((home / "blobs" / one[:2]).glob(one + "*"))) == 1


def test_upload_url_is_single_use_and_needs_no_key(api: httpx.Client, tmp_path: Path) -> None:
    app_id = create_app(api)
    url = api.get(f"/v1/applications/{app_id}/binary").json()["upload_url"]
    assert url.startswith("http://127.0.0.1:")
    archive = tar_with(tmp_path, *valid())
    assert httpx.put(url, content=archive.read_bytes()).status_code == 200
    again = httpx.put(url, content=archive.read_bytes())
    assert again.status_code == 409 and "already been used" in again.json()["error"]
    assert httpx.put(url + "x", content=b"x").status_code == 404


def test_commit_without_upload_is_a_conflict(api: httpx.Client) -> None:
    app_id = create_app(api)
    r = api.put(f"/v1/applications/{app_id}/binary", json={"requirements": {}})
    assert r.status_code == 409 and "upload" in r.json()["error"]


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_a_commit_naming_its_upload_takes_that_package(api: httpx.Client, tmp_path: Path) -> None:
    """Two pushes to one app at once: each commit takes its own upload when it names it
    (orch's CLI does); one that names none takes the newest received (the SDK's way)."""
    app_id = create_app(api)
    base = f"/v1/applications/{app_id}/binary"
    first, second = api.get(base).json(), api.get(base).json()
    packages = {
        "a": tar_with(tmp_path, *valid(), member("a.txt", b"a")),
        "b": tar_with(tmp_path, *valid(), member("b.txt", b"b")),
    }
    for target, name in ((first, "a"), (second, "b")):
        assert httpx.put(target["upload_url"], content=packages[name].read_bytes()).is_success
    body = {"requirements": {}, "upload_id": first["upload_id"]}
    committed = api.put(base, json=body).json()["executable"]["id"]
    newest = api.put(base, json={"requirements": {}}).json()["executable"]["id"]
    sha = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in packages.items()}
    assert (committed, newest) == (sha["a"], sha["b"])  # an executable's ID is its sha256
    again = api.put(base, json=body)  # consumed: the same upload cannot be committed twice
    assert again.status_code == 404, again.text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([member("../x", b"evil")], "'..'"),
        ([member("/etc/passwd", b"evil")], "absolute path"),
        ([_link("out", "/etc", tarfile.SYMTYPE)], "absolute path"),
        ([_link("out", "../../etc/passwd", tarfile.SYMTYPE)], "outside the package"),
        ([_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "hard link"),
        ([member("dev", b"", type=tarfile.CHRTYPE)], "character device"),
    ],
)
def test_hostile_archives_are_refused_and_change_nothing(
    api: httpx.Client, tmp_path: Path, extra: list, message: str
) -> None:
    app_id = create_app(api)
    good = push_dir(api, app_id, SAMPLES / "shell-echo", tmp_path)["executable"]["id"]
    r = push_archive(api, app_id, tar_with(tmp_path, *valid(), *extra))
    assert r.status_code == 422, r.text
    assert message in r.json()["error"]
    assert api.get(f"/v1/applications/{app_id}/executable").json()["id"] == good
    assert not (tmp_path.parent / "x").exists()


def test_malformed_manifest_and_missing_files(api: httpx.Client, tmp_path: Path) -> None:
    app_id = create_app(api)
    broken = tar_with(tmp_path, member("app.yaml", b"type: [python\n"), member("main.py"))
    r = push_archive(api, app_id, broken)
    assert r.status_code == 422 and "not valid YAML" in r.json()["error"]
    no_type = tar_with(tmp_path, member("app.yaml", b"files: [main.py]\n"), member("main.py"))
    assert "type" in push_archive(api, app_id, no_type).json()["error"]
    no_main = tar_with(tmp_path, member("app.yaml", MANIFEST))
    r = push_archive(api, app_id, no_main)
    assert r.status_code == 422 and "main.py" in r.json()["error"]
    not_tar = tmp_path / "junk.tar.gz"
    not_tar.write_bytes(b"this is not an archive")
    assert push_archive(api, app_id, not_tar).status_code == 422


def test_oversize_package_is_413(make_daemon: MakeDaemon) -> None:
    small = make_daemon(config="max_package_mb = 1\n")
    with small.client() as api:
        app_id = create_app(api)
        url = api.get(f"/v1/applications/{app_id}/binary").json()["upload_url"]
        r = httpx.put(url, content=b"\0" * (2 * 1024 * 1024))
        assert r.status_code == 413, r.text
        assert r.json()["error"] == "binary upload (max_package_mb) exceeds the limit of 1 MiB"
        assert api.get("/healthz").status_code == 200


def test_a_package_costly_to_compile_leaves_the_daemon_responsive(
    api: httpx.Client, daemon: Daemon, tmp_path: Path
) -> None:
    """A few KB of gzip that unpack to a 3 MB module: compiled in the daemon it took
    ~1 GB and held the GIL for seconds (every request waited). The worker compiling it
    is limited instead: the push succeeds, the daemon neither grows nor stalls, the
    small modules get their bytecode and the app runs."""
    app_id = create_app(api)
    main = b"import helper\nprint('{\"solution\": %d}' % helper.value())\n"
    archive = tar_with(
        tmp_path,
        member("app.yaml", MANIFEST),
        member("main.py", main),
        member("helper.py", b"def value():\n    return 7\n"),
        member("big.py", b"x = [" + b"1," * 1_500_000 + b"]\n"),
    )
    assert archive.stat().st_size < 20_000
    rss_before = daemon.rss_mib()
    pushed: list[httpx.Response] = []
    pushing = threading.Thread(target=lambda: pushed.append(push_archive(api, app_id, archive)))
    rss: list[float] = []

    def sample() -> None:  # apart from the requests below, which a stalled daemon holds up
        while pushing.is_alive():
            rss.append(daemon.rss_mib())
            time.sleep(0.02)

    pushing.start()
    sampler = threading.Thread(target=sample)
    sampler.start()
    slowest = 0.0
    with daemon.client() as other:
        while pushing.is_alive():
            started = time.monotonic()
            assert other.get("/healthz").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    pushing.join()
    sampler.join()
    assert pushed[0].status_code == 200, pushed[0].text
    assert slowest < 1.0, f"/healthz took {slowest:.2f} s during the push"
    grew = max(rss, default=rss_before) - rss_before
    assert grew < 200, f"the daemon grew by {grew:.0f} MiB"
    exe = daemon.home / "executables" / pushed[0].json()["executable"]["id"]
    tag = sys.implementation.cache_tag
    assert (exe / "__pycache__" / f"helper.{tag}.pyc").is_file()
    assert not (exe / "__pycache__" / f"big.{tag}.pyc").exists()
    run = run_and_wait(api, app_id, {"input": {}})
    assert run["metadata"]["status_v2"] == "succeeded", run
    assert run["output"] == {"solution": 7}
