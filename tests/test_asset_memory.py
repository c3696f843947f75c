"""A run's assets are listed from metadata and downloaded as a stream: no asset's bytes
are held whole by the daemon.

Listing once read every binary asset's file whole, for each entry: an ``assets.json``
naming one 200 MiB sparse file (no disk) ten times took the daemon from 70 MB to 2.6 GB
on one listing, and 5 MiB of entries naming a 1 GiB file killed it the moment anyone
opened the run's page. Sizes here are small; a regression still costs the file's size
at least once, which the bounds below catch.
"""

from __future__ import annotations

import base64
import json
import os
import tarfile
import tracemalloc
from pathlib import Path

import httpx
import psutil
import pytest

from orchestrator.errors import NotFound
from orchestrator.models import Run
from orchestrator.runs.assets import Asset, open_file, run_asset, run_assets
from orchestrator.runs.workspace import Workspace
from tests.conftest import MakeDaemon
from tests.helpers import MULTI_FILE_MANIFEST, create_app, push_dir, run_and_wait, write_app

MIB = 1024 * 1024
LIMIT = 5 * MIB
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def _workspace(tmp_path: Path, assets: list[object]) -> tuple[Run, Workspace]:
    """A finished multi-file run's folder: a 64 MiB sparse file, a small real one, a FIFO,
    links out, and ``assets``."""
    ws = Workspace.of(tmp_path / "run")
    outputs = Path(ws.work, "outputs")
    outputs.mkdir(parents=True)
    with open(outputs / "sparse.bin", "wb") as fh:
        fh.truncate(64 * MIB)
    (outputs / "plot.png").write_bytes(PNG)
    os.mkfifo(outputs / "fifo")
    (tmp_path / "secret").write_bytes(b"the daemon's")
    (outputs / "link").symlink_to(tmp_path / "secret")
    Path(ws.stderr).write_text("log")
    (outputs / "assets.json").write_text(json.dumps(assets))
    return Run("run-a", "app", "devint", "e" * 64, input_format="multi-file"), ws


def _binary(name: str, path: str) -> dict[str, str]:
    return {"name": name, "content_type": "application/octet-stream", "path": path}


MIXED = [
    _binary("plot", "plot.png"),
    {"name": "numbers", "content": {"a": [1, 2]}},
    _binary("fifo", "fifo"),  # no regular file: left out, and never opened (it would block)
    _binary("link", "link"),  # a link out of the run's folder
    _binary("escape", "../../stderr"),
    _binary("missing", "nothing-here"),
    _binary("nul", "plot.png\u0000"),  # a path no file can have
    "not an asset",
    {"name": "b64", "content_type": "image/png", "encoding": "base64",
     "content": base64.b64encode(PNG).decode()},
    {"name": "bad64", "content_type": "image/png", "encoding": "base64", "content": "%%%"},
    {"name": "wide64", "content_type": "image/png", "encoding": "base64", "content": "é"},
    {"name": "text", "content_type": "text/plain", "content": "héllo"},
    _binary("sparse", "sparse.bin"),
]  # fmt: skip


def test_listing_reads_sizes_not_bytes(tmp_path: Path) -> None:
    run, ws = _workspace(tmp_path, [_binary(f"a{n}", "sparse.bin") for n in range(64)] + MIXED)
    tracemalloc.start()
    try:
        assets = run_assets(run, ws, LIMIT, "outputs/assets.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * MIB, f"listing allocated {peak / MIB:.1f} MiB"  # was 64 x 64 MiB
    assert len(assets) == 64 + 5
    assert {a.size for a in assets[:64]} == {64 * MIB}
    assert [(a.name, a.id, a.size) for a in assets[64:]] == [
        ("plot", "run-a-asset-64", len(PNG)),
        ("numbers", "run-a-asset-65", len('{"a": [1, 2]}')),
        ("b64", "run-a-asset-72", len(PNG)),  # not base64 (bad64, wide64): left out
        ("text", "run-a-asset-75", len("héllo".encode())),
        ("sparse", "run-a-asset-76", 64 * MIB),
    ]


def test_one_asset_is_found_by_its_position_as_the_list_gives_it(tmp_path: Path) -> None:
    run, ws = _workspace(tmp_path, MIXED)
    for listed in run_assets(run, ws, LIMIT, "outputs/assets.json"):
        assert run_asset(run, ws, LIMIT, "outputs/assets.json", listed.id) == listed
    for absent in (
        "run-a-asset-2",  # the FIFO: left out of the list, so no asset
        "run-a-asset-6",  # a NUL in its path: left out
        "run-a-asset-7",  # not an object
        "run-a-asset-99",
        "run-a-asset-00",  # the first asset's position, spelled otherwise
        "run-a-asset-\u0661",  # a digit, but not one an id is written with
        "run-b-asset-0",
        "run-a-asset-",
        "nope",
    ):
        with pytest.raises(NotFound):
            run_asset(run, ws, LIMIT, "outputs/assets.json", absent)


def test_bodies_of_assets_held_in_the_document(tmp_path: Path) -> None:
    run, ws = _workspace(tmp_path, MIXED)
    by_name = {a.name: a for a in run_assets(run, ws, LIMIT, "outputs/assets.json")}
    assert by_name["numbers"].body() == b'{"a": [1, 2]}'
    assert by_name["b64"].body() == PNG and by_name["text"].body() == "héllo".encode()
    with pytest.raises(ValueError):
        by_name["plot"].body()  # a file's bytes are streamed (open_file), never held


def _read_all(asset: Asset) -> bytes:
    fd, size = open_file(asset)
    try:
        return os.read(fd, size + 1)
    finally:
        os.close(fd)


def test_a_file_is_opened_only_when_it_still_is_a_regular_file_in_the_run(
    tmp_path: Path,
) -> None:
    """What was listed may be swapped before the download: for a link out, a FIFO, or a
    folder on its way that now leads elsewhere; the download then finds nothing."""
    run, ws = _workspace(tmp_path, [_binary("plot", "plot.png"), _binary("deep", "d/x.bin")])
    outputs = Path(ws.work, "outputs")
    (outputs / "d").mkdir()
    (outputs / "d" / "x.bin").write_bytes(b"deep")
    plot, deep = run_assets(run, ws, LIMIT, "outputs/assets.json")
    assert _read_all(plot) == PNG and _read_all(deep) == b"deep"

    (outputs / "plot.png").unlink()
    (outputs / "plot.png").symlink_to(tmp_path / "secret")
    with pytest.raises(NotFound):
        open_file(plot)
    (outputs / "plot.png").unlink()
    os.mkfifo(outputs / "plot.png")
    with pytest.raises(NotFound):
        open_file(plot)  # returns at once: O_NONBLOCK

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.bin").write_bytes(b"not the run's")
    (outputs / "d").rename(tmp_path / "d-moved")
    (outputs / "d").symlink_to(elsewhere)
    with pytest.raises(NotFound):
        open_file(deep)


MAIN = """\
import json, os
os.makedirs("outputs", exist_ok=True)
with open("outputs/sparse.bin", "wb") as fh:
    fh.truncate(32 << 20)
with open("outputs/plot.png", "wb") as fh:
    fh.write(%r)
assets = [{"name": f"a{n}", "content_type": "application/octet-stream", "path": "sparse.bin"}
          for n in range(32)]
assets.append({"name": "plot", "content_type": "image/png", "path": "plot.png"})
assets.append({"name": "chart", "content": [{"type": "bar"}],
               "visual": {"schema": "chartjs", "label": "Chart"}})
with open("outputs/assets.json", "w") as fh:
    json.dump(assets, fh)
""" % (PNG,)  # noqa: UP031


def _peak_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        line = next(line for line in fh if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _reset_peak(pid: int) -> None:
    """Peak RSS starts again from the current RSS (if allowed: else it only grows, and
    a bound on it still holds)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def test_the_daemon_lists_shows_and_streams_assets_without_holding_them(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon()
    pid = d.process.pid
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "app", MAIN, MULTI_FILE_MANIFEST), tmp_path)
        up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
        (tmp_path / "x.txt").write_text("x")
        with tarfile.open(tmp_path / "in.tar.gz", "w:gz") as tar:
            tar.add(tmp_path / "x.txt", "x.txt")
        httpx.put(
            up["upload_url"], content=(tmp_path / "in.tar.gz").read_bytes()
        ).raise_for_status()
        res = run_and_wait(api, app_id, {"upload_id": up["upload_id"]})
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]
        runs = f"/v1/applications/{app_id}/runs/{res['id']}"
        link = api.post("/v1/console/login-link").json()["url"]

        _reset_peak(pid)
        start = _peak_mib(pid)
        items = api.get(f"{runs}/assets").json()["items"]
        assert [i["size"] for i in items[:32]] == [32 * MIB] * 32
        assert [(i["name"], i["size"]) for i in items[32:]] == [("plot", len(PNG)), ("chart", 17)]
        with httpx.Client(base_url=d.url, headers={"accept": "text/html"}) as browser:
            browser.get(link.removeprefix(d.url))
            page = browser.get(f"/apps/{app_id}/runs/{res['id']}")
        assert page.status_code == 200 and 'data-visual="chartjs"' in page.text

        sparse = api.get(f"{runs}/assets/{items[0]['id']}").json()
        got, zeros = 0, True
        with httpx.stream("GET", sparse["download_url"]) as streamed:
            assert streamed.headers["content-length"] == str(32 * MIB)
            for chunk in streamed.iter_bytes():
                got, zeros = got + len(chunk), zeros and not chunk.strip(b"\0")
        assert got == 32 * MIB and zeros
        grew = _peak_mib(pid) - start
        assert grew < 24, f"the daemon's peak RSS grew {grew:.0f} MiB (a file is 32 MiB)"
        _assert_head_reads_nothing(pid, sparse["download_url"], 32 * MIB)

        plot = api.get(f"{runs}/assets/{items[32]['id']}").json()
        fetched = httpx.get(plot["download_url"])
        assert (
            fetched.content == PNG and fetched.headers["content-type"] == "application/octet-stream"
        )
        chart = api.get(f"{runs}/assets/{items[33]['id']}").json()
        assert httpx.get(chart["download_url"]).json() == [{"type": "bar"}]


def _assert_head_reads_nothing(pid: int, url: str, size: int) -> None:
    """A ``HEAD`` on a download URL answers its headers without reading the file: the
    daemon's ``read_chars`` (every byte its ``read`` calls returned) barely moves. On one
    kept-alive connection, as a link checker's: a client that hangs up at once stops the
    reading by itself. The second request is answered once the first has ended."""
    before = psutil.Process(pid).io_counters().read_chars
    with httpx.Client() as client:
        head = client.head(url)
        assert client.head(url).status_code == 200
    read = psutil.Process(pid).io_counters().read_chars - before
    assert head.status_code == 200 and head.headers["content-length"] == str(size)
    assert head.content == b""
    assert read < size // 8, f"a HEAD read {read / MIB:.1f} MiB of a {size / MIB:.0f} MiB file"


def test_a_head_on_an_output_url_reads_no_output(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    """``curl -I`` on an output URL: starlette's file response sends only the headers for a
    ``HEAD``, but the request reaches it as the ``GET`` it mirrors (``api/head.py``)."""
    main = 'import sys; sys.stdout.write(\'{"pad": "\' + "x" * (24 << 20) + \'"}\')\n'
    d = make_daemon()
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "app", main), tmp_path)
        res = run_and_wait(api, app_id, {"input": {}})
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]
        output = f"/v1/applications/{app_id}/runs/{res['id']}/output"
        url = api.get(output, params={"format": "url"}).json()["url"]
    size = (24 << 20) + len('{"pad": ""}')
    _assert_head_reads_nothing(d.process.pid, url, size)
