"""Run assets, the account queue and live logs through the official SDK."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
import requests
from nextmv import cloud
from nextmv.cloud.account import Queue
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.compat.conftest import NewApp, Push
from tests.conftest import MakeDaemon
from tests.helpers import MULTI_FILE_MANIFEST, SAMPLES, wait_for, write_app

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
CHART = [{"type": "bar", "data": {"labels": ["a"], "datasets": [{"data": [1]}]}}]

JSON_ASSETS_MAIN = f"""\
import json, sys
json.load(sys.stdin)
json.dump({{
    "solutions": [{{"ok": True}}],
    "assets": [
        {{"name": "chart", "content_type": "json", "content": {CHART!r},
          "visual": {{"schema": "chartjs", "label": "Progress", "type": "custom-tab"}}}},
        {{"name": "picture.png", "content_type": "image/png", "encoding": "base64",
          "content": {base64.b64encode(PNG).decode()!r}}},
    ],
}}, sys.stdout)
"""
MULTI_ASSETS_MAIN = f"""\
import json, os
os.makedirs("outputs/solutions", exist_ok=True)
with open("outputs/solutions/s.json", "w") as fh:
    json.dump({{"ok": True}}, fh)
with open("outputs/plot.png", "wb") as fh:
    fh.write({PNG!r})
with open("outputs/assets.json", "w") as fh:
    json.dump([
        {{"name": "plot", "content_type": "image/png", "path": "plot.png"}},
        {{"name": "escape", "content_type": "text/plain", "path": "../../stderr"}},
        {{"name": "numbers", "content": {{"a": [1, 2]}}}},
    ], fh)
"""
KEYED_ASSETS_MAIN = MULTI_ASSETS_MAIN.replace("json.dump([", 'json.dump({"assets": [').replace(
    "], fh)", "]}, fh)"
)
"""The same assets as the SDK's ``nextmv.write`` writes them: keyed by ``assets``."""
CHATTY_MAIN = """\
import sys, time
for n in range(3):
    print(f"line {n}", file=sys.stderr, flush=True)
    time.sleep(0.3)
print("{}")
"""


def test_json_app_assets_list_metadata_url_and_content(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    app = new_app("assets")
    push(app, write_app(tmp_path / "a", JSON_ASSETS_MAIN))
    run_id = app.new_run_with_result(input={}, polling_options=fast).id
    chart, picture = app.list_assets(run_id)
    assert (chart.name, chart.content_type, picture.content_type) == (
        "chart",
        "json",
        "image/png",
    )
    assert chart.visual is not None and chart.visual.label == "Progress"
    assert chart.visual.visual_schema.value == "chartjs"
    assert picture.size == len(PNG)
    assert app.download_asset_content(chart) == CHART
    assert app.download_asset_content(picture) == PNG
    meta = app.client.request("GET", f"{app.endpoint}/runs/{run_id}/assets/{picture.id}").json()
    assert meta["type"] == "binary" and meta["name"] == "picture.png"
    keyless = requests.get(meta["download_url"], timeout=10)  # signed: no key needed
    assert keyless.status_code == 200 and keyless.content == PNG
    forged = requests.get(meta["download_url"].replace("sig=", "sig=0"), timeout=10)
    assert forged.status_code == 401
    with pytest.raises(requests.HTTPError, match="404"):
        app.client.request("GET", f"{app.endpoint}/runs/{run_id}/assets/{run_id}-asset-9")


@pytest.mark.parametrize("main", [MULTI_ASSETS_MAIN, KEYED_ASSETS_MAIN], ids=["list", "keyed"])
def test_multi_file_assets_are_files_of_the_output_folder(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions, main: str
) -> None:
    app = new_app("assetsmf")
    push(app, write_app(tmp_path / "m", main, MULTI_FILE_MANIFEST))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "x.txt").write_text("x")
    run_id = app.new_run(input_dir_path=str(tmp_path / "in"))
    app.run_result_with_polling(run_id, polling_options=fast, output_dir_path=str(tmp_path / "o"))
    assets = app.list_assets(run_id)
    assert [a.name for a in assets] == ["plot", "numbers"]  # a path out of outputs is no asset
    buffer = io.BytesIO()
    app.download_asset_content(assets[0], buffer)
    assert buffer.getvalue() == PNG
    assert app.download_asset_content(assets[1]) == {"a": [1, 2]}


def test_account_queue_lists_queued_and_running_runs(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    d = make_daemon(config="concurrency = 1\n")
    client = cloud.Client(api_key=d.key, url=d.url)
    app = cloud.Application.new(client=client, id="queue-app", name="Queue")
    app.push(app_dir=str(write_copy(tmp_path)), verbose=False)
    input_ = json.loads((SAMPLES / "knapsack" / "input.json").read_text())
    running = app.new_run(input=input_, options={"sleep": "30"}, name="blocker")
    wait_for(lambda: app.run_information(running).metadata.status_v2 == StatusV2.running, 30)
    queued = app.new_run(input=input_, name="waiting")
    queue = _queue(client)
    got = {r.id: (r.status_v2, r.name, r.application_id) for r in queue.runs}
    assert got == {
        running: (StatusV2.running, "blocker", "queue-app"),
        queued: (StatusV2.queued, "waiting", "queue-app"),
    }
    app.cancel_run(running)
    app.cancel_run(queued)
    wait_for(lambda: _queue(client).runs == [], 30)


def _queue(client: cloud.Client) -> Queue:
    """What ``Account.queue`` does; in 1.13 it calls the module ``nextmv.deprecated`` as a
    function (a TypeError before any request), so the request is made as it would make it
    and the answer read with the SDK's own model."""
    return Queue.from_dict(client.request("GET", "v1/account/queue").json())


def write_copy(tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "knapsack"
    shutil.copytree(SAMPLES / "knapsack", target)
    return target


def test_live_logs_follow_since_and_next_page_token(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    app = new_app("chatty")
    push(app, write_app(tmp_path / "c", CHATTY_MAIN))
    run_id = app.new_run(input={})
    logs = app.run_logs_with_polling(run_id, polling_options=fast)
    assert [entry.log for entry in logs] == ["line 0", "line 1", "line 2"]
    live = f"{app.endpoint}/runs/{run_id}/logs/live"
    first = app.client.request("GET", live).json()
    assert first["status_v2"] == "succeeded" and len(first["items"]) == 3
    token = first["next_page_token"]
    again = app.client.request("GET", live, query_params={"since": token}).json()
    assert again["items"] == [] and again["next_page_token"] == token
    part = app.client.request("GET", live, query_params={"since": str(len("line 0\n"))}).json()
    assert [i["log"] for i in part["items"]] == ["line 1", "line 2"]
