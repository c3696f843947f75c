"""Runs over HTTP: resolution, options, formats, queue, cancel, logs, listing, large I/O."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeDaemon
from tests.helpers import (
    SAMPLES,
    Daemon,
    create_app,
    push_dir,
    run_and_wait,
    wait_for,
    wait_run,
    write_app,
)
from tests.test_experiments import keep_input

KNAPSACK_INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())


@pytest.fixture
def knapsack(api: httpx.Client, tmp_path: Path) -> str:
    app_id = create_app(api)
    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    return app_id


def start(api: httpx.Client, app_id: str, body: dict, **params: str) -> str:
    r = api.post(f"/v1/applications/{app_id}/runs", json=body, params=params)
    assert r.status_code == 201, r.text
    return r.json()["run_id"]


def test_run_succeeds_with_output_statistics_and_log(api: httpx.Client, knapsack: str) -> None:
    res = run_and_wait(api, knapsack, {"input": KNAPSACK_INPUT})
    meta = res["metadata"]
    assert meta["status_v2"] == "succeeded" and meta["error"] == ""
    assert res["output"]["solutions"][0]["value"] == 444
    assert meta["statistics"]["result"]["value"] == 444
    assert meta["application_instance_id"] == "devint"
    assert meta["exit_code"] == 0 and meta["cpu_seconds"] > 0 and meta["peak_memory_mb"] > 0
    assert meta["duration"] > 0 and meta["started_at"] and meta["ended_at"]
    log = api.get(f"/v1/applications/{knapsack}/runs/{res['id']}/logs").json()["log"]
    assert "best value 444" in log


def test_resolution_instance_default_devint(
    api: httpx.Client, knapsack: str, tmp_path: Path
) -> None:
    api.post(
        f"/v1/applications/{knapsack}/promote", json={"version_id": "v1", "instance_id": "prod"}
    )
    push_dir(api, knapsack, SAMPLES / "shell-echo", tmp_path)  # devint now runs the echo app
    by_default = run_and_wait(api, knapsack, {"input": KNAPSACK_INPUT})
    assert by_default["metadata"]["application_instance_id"] == "prod"
    assert by_default["metadata"]["application_version_id"] == "v1"
    assert "solutions" in by_default["output"] and by_default["output"]["solutions"][0]["value"]
    on_devint = run_and_wait(api, knapsack, {"input": {"x": 1}}, instance="devint")
    assert on_devint["metadata"]["application_instance_id"] == "devint"
    assert on_devint["output"]["solutions"][0]["greeting"] == "hello"
    explicit = run_and_wait(api, knapsack, {"input": KNAPSACK_INPUT}, instance="default")
    assert explicit["metadata"]["application_instance_id"] == "prod"
    r = api.post(
        f"/v1/applications/{knapsack}/runs", json={"input": {}}, params={"instance_id": "nope"}
    )
    assert r.status_code == 404 and "nope" in r.json()["error"]


def test_options_layering_and_validation(api: httpx.Client, knapsack: str) -> None:
    api.post(f"/v1/applications/{knapsack}/versions", json={"id": "v1"})
    api.post(
        f"/v1/applications/{knapsack}/instances",
        json={
            "id": "tuned",
            "version_id": "v1",
            "configuration": {"options": {"duration": "3", "scale": "2"}},
        },
    )
    res = run_and_wait(
        api, knapsack, {"input": KNAPSACK_INPUT, "options": {"scale": "1", "extra": "x"}}, "tuned"
    )
    summary = {
        o["name"]: (o["value"], o["source"]) for o in res["metadata"]["options"]["options_summary"]
    }
    assert summary == {
        "duration": ("3.0", "instance"),
        "scale": ("1", "run"),
        "sleep": ("0.0", "manifest"),
        "extra": ("x", "run"),
    }
    assert res["output"]["options"]["scale"] == 1
    bad = api.post(
        f"/v1/applications/{knapsack}/runs", json={"input": {}, "options": {"scale": "big"}}
    )
    assert (
        bad.status_code == 400
        and "'scale'" in bad.json()["error"]
        and "integer" in bad.json()["error"]
    )


def test_strict_and_required_options(api: httpx.Client, tmp_path: Path) -> None:
    manifest = (
        "type: python\nruntime: r\nfiles: [main.py]\nconfiguration:\n  options:\n"
        "    strict: true\n    items:\n      - {name: seed, option_type: int, required: true}\n"
    )
    app_dir = write_app(tmp_path / "strict", "import sys; print('{}')\n", manifest)
    app_id = create_app(api)
    push_dir(api, app_id, app_dir, tmp_path)
    r = api.post(f"/v1/applications/{app_id}/runs", json={"input": {}})
    assert r.status_code == 400 and "required option(s) missing: seed" in r.json()["error"]
    r = api.post(
        f"/v1/applications/{app_id}/runs", json={"input": {}, "options": {"seed": "1", "x": "2"}}
    )
    assert r.status_code == 400 and "strict" in r.json()["error"]


def test_failing_model_has_trace_in_log_and_error(api: httpx.Client, tmp_path: Path) -> None:
    app_dir = write_app(
        tmp_path / "boom", "def solve():\n    raise ValueError('no feasible plan')\nsolve()\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, app_dir, tmp_path)
    res = run_and_wait(api, app_id, {"input": {}})
    meta = res["metadata"]
    assert meta["status_v2"] == "failed" and meta["exit_code"] == 1
    assert "exited with code 1" in meta["error"] and "ValueError: no feasible plan" in meta["error"]
    log = api.get(f"/v1/applications/{app_id}/runs/{res['id']}/logs").json()["log"]
    assert "Traceback" in log


def test_text_input_and_non_json_output(api: httpx.Client, tmp_path: Path) -> None:
    app_dir = write_app(tmp_path / "upper", "import sys\nprint(sys.stdin.read().upper())\n")
    app_id = create_app(api)
    push_dir(api, app_id, app_dir, tmp_path)
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=b"hello text").status_code == 200
    run_id = start(
        api,
        app_id,
        {"upload_id": up["upload_id"], "configuration": {"format": {"input": {"type": "text"}}}},
    )
    res = wait_run(api, app_id, run_id)
    assert res["metadata"]["status_v2"] == "succeeded"
    assert res["metadata"]["format"]["output"]["type"] == "text"
    url = res["output"]["url"]  # not a JSON object: a tar.gz at its URL, as the SDK reads it
    with tarfile.open(fileobj=io.BytesIO(httpx.get(url).content)) as tar:
        member = tar.extractfile("output")
        assert member is not None and member.read() == b"HELLO TEXT\n"
    raw = api.get(f"/v1/applications/{app_id}/runs/{run_id}/output")  # orch's CLI reads this
    assert raw.content == b"HELLO TEXT\n"
    assert api.get(f"/v1/applications/{app_id}/runs/{run_id}/input").json() == "hello text"
    again = api.post(f"/v1/applications/{app_id}/runs", json={"upload_id": up["upload_id"]})
    assert again.status_code == 404  # consumed: an upload feeds one run


MULTI_FILE = """\
import json, os, pathlib
names = sorted(os.listdir("inputs"))
out = pathlib.Path("outputs")
(out / "solutions").mkdir(parents=True, exist_ok=True)
(out / "solutions" / "names.txt").write_text("\\n".join(names))
(out / "statistics.json").write_text(json.dumps({"result": {"value": len(names)}}))
"""


def test_multi_file_input_and_outputs(api: httpx.Client, tmp_path: Path) -> None:
    manifest = (
        "type: python\nruntime: r\nfiles: [main.py]\n"
        "configuration:\n  content:\n    format: multi-file\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "mf", MULTI_FILE, manifest), tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in ("a.csv", "b.json"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    httpx.put(up["upload_url"], content=buf.getvalue())
    res = wait_run(api, app_id, start(api, app_id, {"upload_id": up["upload_id"]}))
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["metadata"]["statistics"] == {"result": {"value": 2}}
    assert res["metadata"]["format"]["output"]["type"] == "multi-file"
    archive = httpx.get(res["output"]["url"]).content
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        names = tar.extractfile("solutions/names.txt")
        assert names is not None and names.read() == b"a.csv\nb.json"
    flags, name = archive[3], archive[10 : archive.index(b"\0", 10)]
    assert flags & 0x08 and name == b"output.tar"  # the name gunzip -N restores, not a temp


def test_an_archive_sent_to_a_json_app_is_named_in_words(api: httpx.Client, tmp_path: Path) -> None:
    """The daemon said ``'utf-8' codec can't decode byte 0x8b in position 1``."""
    app_id = create_app(api)
    push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.addfile(tarfile.TarInfo("a.json"), io.BytesIO(b""))
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=buf.getvalue()).status_code == 200
    r = api.post(f"/v1/applications/{app_id}/runs", json={"upload_id": up["upload_id"]})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == (
        "input is not valid JSON: it is not UTF-8 text (byte 0x8b at offset 1) (a gzip file:"
        " folder inputs go to multi-file or csv-archive apps)"
    )


def test_priority_order_and_cancel_queued(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    d = make_daemon(config="concurrency = 1\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        blocker = start(api, app_id, {"input": KNAPSACK_INPUT, "options": {"sleep": "1"}})
        low = start(
            api, app_id, {"input": KNAPSACK_INPUT, "configuration": {"queuing": {"priority": 9}}}
        )
        high = start(
            api, app_id, {"input": KNAPSACK_INPUT, "configuration": {"queuing": {"priority": 1}}}
        )
        doomed = start(api, app_id, {"input": KNAPSACK_INPUT})
        r = api.patch(f"/v1/applications/{app_id}/runs/{doomed}/cancel")
        assert r.status_code == 200 and r.json()["metadata"]["status_v2"] == "canceled"
        results = {rid: wait_run(api, app_id, rid) for rid in (blocker, low, high)}
        started = {rid: res["metadata"]["started_at"] for rid, res in results.items()}
        assert started[blocker] < started[high] < started[low]
        gone = api.get(f"/v1/applications/{app_id}/runs/{doomed}/metadata").json()["metadata"]
        assert gone["status_v2"] == "canceled" and gone.get("started_at") is None
        bad = api.post(
            f"/v1/applications/{app_id}/runs",
            json={"input": {}, "configuration": {"queuing": {"priority": 10}}},
        )
        assert bad.status_code == 400


def test_a_run_whose_folder_was_deleted_by_hand_is_a_410_naming_it(
    daemon: Daemon, api: httpx.Client, knapsack: str
) -> None:
    """``rm -rf`` of a finished run's folder: its log (whole and live), its output (the
    route, the result, a URL handed out before), its input and its assets answer 410 with a message
    naming the run and its folder, never an empty log or a bare 404; its metadata reads."""
    run_id = run_and_wait(api, knapsack, {"input": KNAPSACK_INPUT})["id"]
    base = f"/v1/applications/{knapsack}/runs/{run_id}"
    url = api.get(f"{base}/output", params={"format": "url"}).json()["url"]
    folder = daemon.home / "runs" / run_id
    shutil.rmtree(folder)
    said = (
        f"run {run_id!r}: its folder {folder} no longer exists, so its {{}} is gone "
        "(deleted outside orch; the run's metadata is kept)"
    )
    asked = [
        (api.get(f"{base}/logs"), "log"),
        (api.get(f"{base}/logs/live"), "log"),
        (api.get(f"{base}/output"), "output"),
        (api.get(f"{base}/output", params={"format": "url"}), "output"),
        (api.get(base), "output"),
        (httpx.get(url), "output"),
        (api.get(f"{base}/input"), "input"),
        (api.get(f"{base}/assets"), "assets"),  # not an empty list: they were there
        (api.get(f"{base}/assets/{run_id}-asset-0"), "assets"),
    ]
    for answer, what in asked:
        assert answer.status_code == 410, (answer.url, answer.text)
        assert answer.json() == {"error": said.format(what)}
    meta = api.get(f"{base}/metadata")
    assert meta.status_code == 200 and meta.json()["metadata"]["status_v2"] == "succeeded"


def test_an_experiment_run_that_never_started_has_no_folder_to_miss(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """An experiment's runs get their folder when they start: one canceled while queued
    never had one, so nothing was deleted. Its log stays empty and its output a 404. (A
    run waiting ahead of it is the one staged ahead, with a folder.)"""
    d = make_daemon(config="concurrency = 1\n")
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, SAMPLES / "knapsack", tmp_path)
        busy = {"input": KNAPSACK_INPUT, "options": {"sleep": "30"}}
        blockers = [start(api, app_id, busy) for _ in range(2)]
        kept = keep_input(api, app_id, json.dumps(KNAPSACK_INPUT).encode(), "in")
        sets = f"/v1/applications/{app_id}/experiments/inputsets"
        assert api.post(sets, json={"id": "one", "name": "One", "input_ids": [kept]}).is_success
        batch = f"/v1/applications/{app_id}/experiments/batch"
        body = {"id": "queued", "name": "Q", "input_set_id": "one", "instance_ids": ["devint"]}
        assert api.post(batch, json=body).status_code == 201
        assert api.patch(f"{batch}/queued/cancel").status_code == 200
        (run,) = api.get(f"{batch}/queued/runs").json()["runs"]
        assert run["status_v2"] == "canceled"
        assert not (d.home / "runs" / run["id"]).exists()
        base = f"/v1/applications/{app_id}/runs/{run['id']}"
        assert api.get(f"{base}/logs").json() == {"log": ""}
        output = api.get(f"{base}/output")
        assert output.status_code == 404, output.text
        assert output.json() == {"error": f"run {run['id']!r} has no output"}
        for blocker in blockers:
            api.patch(f"/v1/applications/{app_id}/runs/{blocker}/cancel")


TOUCH_OR_SLEEP = """import json, pathlib, sys, time
doc = json.load(sys.stdin)
if "touch" in doc:
    pathlib.Path(doc["touch"]).write_text("ran")
time.sleep(doc.get("sleep", 0))
print("{}")
"""


def test_a_queued_run_canceled_never_starts_its_model(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """Runs are spawned before they are claimed, so a cancel must keep a waiting run
    from ever being handed to a process, not only mark it canceled: it never gets the
    output files its spawn creates, and the workspace it was staged with (it was next
    in line) is cleared again."""
    d = make_daemon(config="concurrency = 1\n")
    marker = tmp_path / "ran"
    with d.client() as api:
        app_id = create_app(api)
        push_dir(api, app_id, write_app(tmp_path / "touch", TOUCH_OR_SLEEP), tmp_path)
        blocker = start(api, app_id, {"input": {"sleep": 1}})
        doomed = start(api, app_id, {"input": {"touch": str(marker)}})
        wait_for(lambda: (d.home / "runs" / doomed / "work").exists())  # staged
        r = api.patch(f"/v1/applications/{app_id}/runs/{doomed}/cancel")
        assert r.status_code == 200 and r.json()["metadata"]["status_v2"] == "canceled"
        assert wait_run(api, app_id, blocker)["metadata"]["status_v2"] == "succeeded"
        after = run_and_wait(api, app_id, {"input": {}})  # the slot moved on past it
        assert after["metadata"]["status_v2"] == "succeeded"
        assert not marker.exists()
        assert not (d.home / "runs" / doomed / "stdout").exists()
        wait_for(lambda: not (d.home / "runs" / doomed / "work").exists())
        assert (d.home / "runs" / after["id"] / "work").exists()


def test_tmpdir_is_the_runs_own_and_emptied_after_it(api: httpx.Client, tmp_path: Path) -> None:
    main = (
        "import json, os, tempfile\n"
        "fd, path = tempfile.mkstemp()\n"
        "os.write(fd, b'scratch')\n"
        "nested = tempfile.mkdtemp()\n"
        "open(os.path.join(nested, 'part'), 'w').write('x')\n"
        "print(json.dumps({'tmp': os.environ['TMPDIR'], 'file': path, 'dir': nested}))\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "scratch", main), tmp_path)
    res = run_and_wait(api, app_id, {"input": {}})
    tmp = Path(res["output"]["tmp"])
    assert Path(res["output"]["file"]).parent == tmp
    assert Path(res["output"]["dir"]).parent == tmp
    assert tmp.parent.name == res["id"]  # inside the run's own folder
    # The folder stays (deleting inodes is what costs; see workspace.clear_tmp), empty.
    wait_for(lambda: tmp.is_dir() and not any(tmp.iterdir()))


def test_cancel_running_kills_it(api: httpx.Client, knapsack: str) -> None:
    run_id = start(api, knapsack, {"input": KNAPSACK_INPUT, "options": {"sleep": "60"}})
    wait_for(
        lambda: (
            api.get(f"/v1/applications/{knapsack}/runs/{run_id}/metadata").json()["metadata"][
                "status_v2"
            ]
            == "running"
        )
    )
    began = time.monotonic()
    r = api.patch(f"/v1/applications/{knapsack}/runs/{run_id}/cancel")
    assert r.json()["metadata"]["status_v2"] == "canceled"
    assert time.monotonic() - began < 10
    again = api.patch(f"/v1/applications/{knapsack}/runs/{run_id}/cancel")
    assert again.status_code == 409 and "already finished" in again.json()["error"]


def test_live_logs_follow_a_running_run(api: httpx.Client, tmp_path: Path) -> None:
    main = (
        "import sys, time\nfor i in range(3):\n"
        "    print(f'step {i}', file=sys.stderr)\n    time.sleep(0.3)\nprint('{}')\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "slow", main), tmp_path)
    run_id = start(api, app_id, {"input": {}})
    lines, token = [], ""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        page = api.get(
            f"/v1/applications/{app_id}/runs/{run_id}/logs/live", params={"since": token}
        ).json()
        lines += [item["log"] for item in page["items"]]
        token = page["next_page_token"]
        if page["status_v2"] in ("succeeded", "failed", "canceled"):
            break
        time.sleep(page["next_available_in_seconds"] or 0.05)
    assert lines == ["step 0", "step 1", "step 2"]


def test_the_raw_log_is_the_whole_log_byte_for_byte(api: httpx.Client, tmp_path: Path) -> None:
    """``/logs`` answers JSON cut to the last 5 MiB with a note; ``/logs/raw`` is what the
    model wrote: every byte, progress carriage returns and a last line without its end."""
    main = (
        "import sys\nline = 'x' * 1023 + '\\n'\nsys.stderr.write(line * 6 * 1024)\n"
        "sys.stderr.write('50%\\r100%')\nprint('{}')\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "flood", main), tmp_path)
    res = run_and_wait(api, app_id, {"input": {}})
    base = f"/v1/applications/{app_id}/runs/{res['id']}"
    expected = ("x" * 1023 + "\n") * 6 * 1024 + "50%\r100%"
    cut = api.get(f"{base}/logs").json()["log"]
    assert cut.startswith("[orch: ") and cut.endswith("50%\r100%")
    raw = api.get(f"{base}/logs/raw")
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("text/plain")
    assert raw.text == expected
    assert api.get(f"/v1/applications/{app_id}/runs/no-such-run/logs/raw").status_code == 404


def test_list_filters_pages_and_delete(api: httpx.Client, knapsack: str) -> None:
    ids = [start(api, knapsack, {"input": KNAPSACK_INPUT}) for _ in range(3)]
    for rid in ids:
        wait_run(api, knapsack, rid)
    first = api.get(f"/v1/applications/{knapsack}/runs", params={"limit": 2}).json()
    assert [r["id"] for r in first["runs"]] == ids[::-1][:2] and first["next_page_token"]
    rest = api.get(
        f"/v1/applications/{knapsack}/runs",
        params={"limit": 2, "pagetoken": first["next_page_token"]},
    ).json()
    assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next_page_token"] == ""
    ok = api.get(f"/v1/applications/{knapsack}/runs", params={"status": "succeeded"}).json()
    assert len(ok["runs"]) == 3
    assert (
        api.get(f"/v1/applications/{knapsack}/runs", params={"status": "bogus"}).status_code == 422
    )
    assert api.delete(f"/v1/applications/{knapsack}/runs/{ids[0]}").status_code == 204
    assert api.get(f"/v1/applications/{knapsack}/runs/{ids[0]}").status_code == 404


def test_bad_run_requests(api: httpx.Client, knapsack: str) -> None:
    base = f"/v1/applications/{knapsack}/runs"
    assert api.get(f"{base}/run-nope").json() == {
        "error": f"run 'run-nope' not found in app '{knapsack}'"
    }
    both = api.post(base, json={"input": {}, "upload_id": "u"})
    assert both.status_code == 400 and "exactly one" in both.json()["error"]
    assert (
        api.post(base, content=b"{", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert api.post("/v1/applications/nope-app/runs", json={"input": {}}).status_code == 404
    empty = create_app(api)
    r = api.post(f"/v1/applications/{empty}/runs", json={"input": {}})
    assert r.status_code == 409 and "push" in r.json()["error"]


@pytest.mark.parametrize(
    "body",
    [{}, {"inptu": {}}, KNAPSACK_INPUT],
    ids=["empty", "a typo", "the input file as the body"],
)
def test_a_run_without_an_input_is_refused(
    api: httpx.Client, knapsack: str, body: dict[str, object]
) -> None:
    """Each was a 201: a run with no input, which died in the model on an empty stdin."""
    base = f"/v1/applications/{knapsack}/runs"
    before = len(api.get(base).json()["runs"])
    refused = api.post(base, json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"].startswith("a run needs an input: give input (the JSON")
    assert len(api.get(base).json()["runs"]) == before


def test_large_input_and_output_use_urls(api: httpx.Client, tmp_path: Path) -> None:
    main = (
        "import sys, json\ndata = sys.stdin.buffer.read()\n"
        "print(json.dumps({'n': len(data), 'pad': 'x' * 6_000_000}))\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "big", main), tmp_path)
    payload = json.dumps({"blob": "y" * 6_000_000}).encode()
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    httpx.put(up["upload_url"], content=payload)
    res = wait_run(api, app_id, start(api, app_id, {"upload_id": up["upload_id"]}))
    meta = res["metadata"]
    assert meta["status_v2"] == "succeeded" and meta["input_size"] == len(payload)
    assert meta["output_size"] > 5 * 1024 * 1024 and set(res["output"]) == {"url"}
    assert httpx.get(res["output"]["url"]).json()["n"] == len(payload)
    url = api.get(
        f"/v1/applications/{app_id}/runs/{res['id']}/output", params={"format": "url"}
    ).json()["url"]
    assert httpx.get(url + "x").status_code == 401


def test_upload_cap_is_413(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    d = make_daemon(config="max_upload_mb = 1\n")
    with d.client() as api:
        app_id = create_app(api)
        up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
        r = httpx.put(up["upload_url"], content=b"x" * (3 * 1024 * 1024))
        assert r.status_code == 413
        assert not list((d.home / "uploads").glob("*.part"))
