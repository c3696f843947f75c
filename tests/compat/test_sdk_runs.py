"""Runs through the official SDK: create, poll, results, logs, cancel, options, large I/O."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nextmv
import pytest
import requests
from nextmv import cloud
from nextmv.polling import PollingOptions
from nextmv.status import StatusV2

from tests.compat.conftest import NewApp, Push
from tests.helpers import (
    MULTI_FILE_MANIFEST,
    SAMPLES,
    TEXT_MANIFEST,
    Daemon,
    unique,
    wait_for,
    write_app,
)

KNAPSACK_INPUT = json.loads((SAMPLES / "knapsack" / "input.json").read_text())
MAX_RUN_SIZE = 5 * 1024 * 1024  # the SDK's _MAX_RUN_SIZE: above it, uploads and URLs are used

IO_MAIN = """\
import json, sys
args = sys.argv[1:]
opts = dict(zip(args[::2], args[1::2]))
data = sys.stdin.buffer.read()
print(f"io: read {len(data)} bytes", file=sys.stderr)
out = {"n": len(data), "head": data[:12].decode(errors="replace")}
if opts.get("-mode") == "big":
    out["blob"] = "x" * int(opts.get("-size", "6000000"))
json.dump(out, sys.stdout)
"""
IO_MANIFEST = """\
type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files: [main.py]
configuration:
  content:
    format: json
  options:
    items:
      - {name: mode, option_type: string, default: count}
      - {name: size, option_type: int, default: 6000000}
"""
TEXT_MAIN = """\
import json, sys
text = sys.stdin.read()
print("upper: got", len(text), "chars", file=sys.stderr)
print(json.dumps({"upper": text.upper(), "statistics": {"result": {"value": len(text)}}}))
"""
MULTI_FILE_MAIN = """\
import json, os, sys
names = sorted(
    os.path.relpath(os.path.join(d, f), "inputs") for d, _, fs in os.walk("inputs") for f in fs
)
sizes = {n: os.path.getsize(os.path.join("inputs", n)) for n in names}
os.makedirs("outputs/solutions", exist_ok=True)
with open("outputs/solutions/summary.json", "w") as fh:
    json.dump({"files": names, "sizes": sizes}, fh)
with open("outputs/statistics.json", "w") as fh:
    json.dump({"result": {"value": len(names)}}, fh)
print("multi-file: read", len(names), "files", file=sys.stderr)
"""


# --------------------------------------------------------------------------- fixtures / helpers


def _app_with(
    new_app: NewApp, push: Push, folder: Path, main: str, manifest: str | None
) -> cloud.Application:
    app = new_app("sdkrun")
    push(app, write_app(folder, main, manifest))
    return app


@pytest.fixture(scope="module")
def io_app(
    new_app: NewApp, push: Push, tmp_path_factory: pytest.TempPathFactory
) -> cloud.Application:
    return _app_with(new_app, push, tmp_path_factory.mktemp("io") / "io", IO_MAIN, IO_MANIFEST)


@pytest.fixture(scope="module")
def prod(knapsack: cloud.Application) -> cloud.Instance:
    """An instance of the module's knapsack app, with an option of its own."""
    version = knapsack.new_version(id=unique("v"), name="knapsack v1")
    config = cloud.InstanceConfiguration(options={"duration": "3"})
    return knapsack.new_instance(version_id=version.id, id=unique("prod"), configuration=config)


class Spy:
    """A real SDK client whose HTTP calls are recorded on the way through (nothing is faked)."""

    def __init__(self, daemon: Daemon) -> None:
        self.client = cloud.Client(api_key=daemon.key, url=daemon.url)
        self.requests: list[dict[str, Any]] = []
        self.uploads: list[dict[str, Any]] = []
        request, upload = self.client.request, self.client.upload_to_presigned_url

        def record_request(method: str, endpoint: str, **kwargs: Any) -> Any:
            self.requests.append({"method": method, "endpoint": endpoint, **kwargs})
            return request(method=method, endpoint=endpoint, **kwargs)

        def record_upload(data: Any, url: str, **kwargs: Any) -> Any:
            size = len(data) if isinstance(data, str | bytes) else None
            self.uploads.append({"url": url, "type": type(data).__name__, "size": size, **kwargs})
            return upload(data=data, url=url, **kwargs)

        self.client.request = record_request  # type: ignore[method-assign]
        self.client.upload_to_presigned_url = record_upload  # type: ignore[method-assign]

    def app(self, app: cloud.Application) -> cloud.Application:
        return cloud.Application(client=self.client, id=app.id)

    def run_posts(self) -> list[dict[str, Any]]:
        return [
            r for r in self.requests if r["method"] == "POST" and r["endpoint"].endswith("/runs")
        ]


def _status(app: cloud.Application, run_id: str) -> StatusV2:
    return app.run_information(run_id).metadata.status_v2


# --------------------------------------------------------------------------- basic runs


def test_run_without_instance_goes_to_devint(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    assert knapsack.default_instance_id is None
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, name="first", description="by the SDK")
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.id == run_id and (result.name, result.description) == ("first", "by the SDK")
    assert result.metadata.status_v2 == StatusV2.succeeded and result.metadata.error == ""
    assert result.output is not None
    assert result.output["solutions"][0]["value"] == 444
    assert result.output["statistics"]["result"]["value"] == 444
    assert result.metadata.statistics is not None
    assert result.metadata.statistics["result"]["value"] == 444

    with pytest.deprecated_call():  # run_metadata is deprecated in 1.13 but must keep working
        meta = knapsack.run_metadata(run_id).metadata
    assert knapsack.run_information(run_id).metadata == meta
    assert meta.application_id == knapsack.id
    assert meta.application_instance_id == "devint"
    assert meta.format.format_input.input_type.value == "json"
    assert meta.format.format_output.output_type.value == "json"
    assert meta.input_size == len(json.dumps(KNAPSACK_INPUT, separators=(",", ":")))
    assert meta.output_size > 0 and meta.duration > 0
    assert meta.run_type is not None and meta.run_type.run_type.value == "standard"

    log = knapsack.run_logs(run_id).log
    assert "solving knapsack: 11 items" in log and "best value 444" in log
    assert knapsack.run_input(run_id) == KNAPSACK_INPUT


def test_run_on_latest_is_devint(knapsack: cloud.Application, fast: PollingOptions) -> None:
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, instance_id="latest")
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded
    assert result.metadata.application_instance_id == "devint"


def test_run_on_an_instance_and_on_the_default_instance(
    client: cloud.Client, new_app: NewApp, push: Push, fast: PollingOptions
) -> None:
    app = new_app("sdkdef")
    push(app, SAMPLES / "knapsack")
    version = app.new_version(id=unique("v"))
    config = cloud.InstanceConfiguration(options={"scale": "2"})
    inst = app.new_instance(version_id=version.id, id=unique("i"), configuration=config)

    def instance_of(a: cloud.Application, **kwargs: Any) -> str:
        run_id = a.new_run(input=KNAPSACK_INPUT, **kwargs)
        a.run_result_with_polling(run_id, polling_options=fast)
        return a.run_information(run_id).metadata.application_instance_id

    assert instance_of(app, instance_id=inst.id) == inst.id
    assert instance_of(app) == "devint"  # no default yet

    updated = app.update(default_instance_id=inst.id)
    assert updated.default_instance_id == inst.id
    # The SDK object that knows the default sends ?instance_id=<default> ...
    assert instance_of(updated) == inst.id
    # ... one built from the bare id sends no instance_id: the server applies the default.
    bare = cloud.Application(client=client, id=app.id)
    assert bare.default_instance_id is None
    assert instance_of(bare) == inst.id
    assert instance_of(bare, instance_id="latest") == "devint"

    meta = bare.run_information(bare.new_run(input=KNAPSACK_INPUT)).metadata
    assert meta.application_version_id == version.id


def test_new_run_with_result(knapsack: cloud.Application, fast: PollingOptions) -> None:
    result = knapsack.new_run_with_result(
        input=KNAPSACK_INPUT, run_options={"scale": 2}, polling_options=fast
    )
    assert result.metadata.status_v2 == StatusV2.succeeded
    assert result.output is not None and result.output["options"]["scale"] == 2


def test_options_reach_model_with_sources(
    knapsack: cloud.Application, prod: cloud.Instance, fast: PollingOptions
) -> None:
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, instance_id=prod.id, options={"scale": 5})
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.output is not None
    assert result.output["options"] == {"duration": 3.0, "scale": 5, "sleep": 0.0}

    options = knapsack.run_information(run_id).metadata.options
    assert options is not None and options.options_summary is not None
    summary = {s.name: (s.source, s.value) for s in options.options_summary}
    assert summary["scale"] == ("run", "5")
    assert summary["duration"] == ("instance", "3.0")
    assert summary["sleep"][0] not in ("run", "instance") and summary["sleep"][1] == "0.0"
    assert options.request_options == {"scale": "5"}
    assert options.active_options == {"duration": "3.0", "scale": "5", "sleep": "0.0"}


def test_request_options_are_what_was_sent(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    """``request_options`` echoes the request; the model gets (and ``active_options`` and
    the summary show) the values its manifest's types make of them."""
    sent = {"duration": "2", "scale": "03", "sleep": "0"}
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, options=sent)
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    options = knapsack.run_information(run_id).metadata.options
    assert options is not None and options.request_options == sent
    assert options.active_options == {"duration": "2.0", "scale": "3", "sleep": "0.0"}
    assert result.metadata.options is not None
    assert result.metadata.options.request_options == sent  # the result says the same


def test_cancel_a_sleeping_run(knapsack: cloud.Application, fast: PollingOptions) -> None:
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, options={"sleep": "30"})
    # Running, and inside the model (its first log line is out): the sleep has begun.
    wait_for(lambda: "solving knapsack" in knapsack.run_logs(run_id).log, timeout=20)
    running = knapsack.run_result(run_id)  # no polling: the result of an unfinished run
    assert running.metadata.status_v2 == StatusV2.running and running.output is None
    started = time.monotonic()
    knapsack.cancel_run(run_id)
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.canceled
    assert time.monotonic() - started < 10
    assert "best value" not in knapsack.run_logs(run_id).log


def test_list_runs(knapsack: cloud.Application, fast: PollingOptions) -> None:
    done = knapsack.new_run_with_result(input=KNAPSACK_INPUT, polling_options=fast)
    runs = {r.id: r for r in knapsack.list_runs()}
    assert done.id in runs
    listed = runs[done.id]
    assert listed.status_v2 == StatusV2.succeeded
    assert listed.application_id == knapsack.id and listed.application_instance_id == "devint"
    assert done.id in {r.id for r in knapsack.list_runs(no_pagination=True)}
    succeeded = knapsack.list_runs(status=StatusV2.succeeded)
    assert done.id in {r.id for r in succeeded}
    assert all(r.status_v2 == StatusV2.succeeded for r in succeeded)


def test_list_runs_follows_page_tokens(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    app = _app_with(new_app, push, tmp_path / "tiny", "print('{}')\n", None)
    ids = {app.new_run(input={"i": i}) for i in range(53)}  # the server's page is 50 runs
    listed = app.list_runs()
    assert {r.id for r in listed} == ids and len(listed) == len(ids)
    wait_for(lambda: all(r.status_v2 == StatusV2.succeeded for r in app.list_runs()), timeout=30)


def test_run_logs_with_polling(knapsack: cloud.Application, fast: PollingOptions) -> None:
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, options={"sleep": "0.3"})
    lines = [entry.log for entry in knapsack.run_logs_with_polling(run_id, polling_options=fast)]
    assert lines == ["solving knapsack: 11 items, capacity 50", "best value 444 with 8 items"]


def test_configuration_without_format_defaults_to_json(
    knapsack: cloud.Application, fast: PollingOptions
) -> None:
    config = nextmv.RunConfiguration(queuing=nextmv.RunQueuing(priority=2))
    run_id = knapsack.new_run(input=KNAPSACK_INPUT, configuration=config)
    result = knapsack.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded
    assert result.metadata.format.format_input.input_type.value == "json"
    assert result.metadata.queuing_priority == 2
    assert result.output is not None and result.output["solutions"][0]["value"] == 444


def test_run_output_and_delete_run(knapsack: cloud.Application, fast: PollingOptions) -> None:
    done = knapsack.new_run_with_result(input=KNAPSACK_INPUT, polling_options=fast)
    assert knapsack.run_output(done.id) == done.output
    knapsack.delete_run(done.id)
    with pytest.raises(requests.HTTPError) as err:
        knapsack.run_information(done.id)
    assert err.value.response.status_code == 404
    assert done.id not in {r.id for r in knapsack.list_runs()}


@pytest.fixture(scope="module")
def failing(
    new_app: NewApp, push: Push, tmp_path_factory: pytest.TempPathFactory
) -> tuple[cloud.Application, str]:
    main = "import sys\nprint('boom: bad input', file=sys.stderr)\nsys.exit(3)\n"
    app = _app_with(new_app, push, tmp_path_factory.mktemp("fail") / "fail", main, None)
    return app, app.new_run(input={"x": 1})


def test_failed_run_is_returned_not_raised(
    failing: tuple[cloud.Application, str], fast: PollingOptions
) -> None:
    app, run_id = failing
    result = app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.failed
    assert "boom: bad input" in result.metadata.error
    assert "boom: bad input" in app.run_logs(run_id).log


def test_failed_run_without_output_has_no_output(
    failing: tuple[cloud.Application, str], fast: PollingOptions
) -> None:
    app, run_id = failing
    assert app.run_result_with_polling(run_id, polling_options=fast).output is None


def test_list_assets(knapsack: cloud.Application, fast: PollingOptions) -> None:
    done = knapsack.new_run_with_result(input=KNAPSACK_INPUT, polling_options=fast)
    assert knapsack.list_assets(done.id) == []


# --------------------------------------------------------------------------- large and non-JSON I/O


def test_large_json_input_goes_through_an_upload(
    daemon: Daemon, io_app: cloud.Application, fast: PollingOptions
) -> None:
    spy = Spy(daemon)
    app = spy.app(io_app)
    big = {"blob": "y" * (MAX_RUN_SIZE + 1000)}
    compact = len(json.dumps(big, separators=(",", ":")))
    assert compact > MAX_RUN_SIZE

    run_id = app.new_run(input=big)
    assert len(spy.uploads) == 1 and spy.uploads[0]["size"] == compact
    (post,) = spy.run_posts()
    assert "upload_id" in post["payload"] and "input" not in post["payload"]

    result = app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.output == {"n": compact, "head": '{"blob":"yyy'}
    assert result.metadata.input_size == compact
    assert result.metadata.format.format_input.input_type.value == "json"
    assert app.run_input(run_id) == big  # > 5 MiB: the SDK fetches it via ?format=url


def test_large_json_output_comes_through_a_url(
    daemon: Daemon, io_app: cloud.Application, fast: PollingOptions
) -> None:
    spy = Spy(daemon)
    app = spy.app(io_app)
    run_id = app.new_run(input={"x": 1}, options={"mode": "big", "size": 6_000_000})
    result = app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.metadata.output_size > MAX_RUN_SIZE
    assert result.output is not None and set(result.output) == {"n", "head", "blob"}
    assert len(result.output["blob"]) == 6_000_000 and result.output["n"] == len('{"x":1}')
    endpoints = [r["endpoint"] for r in spy.requests]
    assert f"v1/applications/{io_app.id}/runs/{run_id}/output" in endpoints
    assert any(e.startswith("http") and "/downloads/" in e for e in endpoints)


def test_text_input_is_uploaded_as_text(
    daemon: Daemon,
    new_app: NewApp,
    push: Push,
    tmp_path: Path,
    fast: PollingOptions,
) -> None:
    text_app = _app_with(new_app, push, tmp_path / "upper", TEXT_MAIN, TEXT_MANIFEST)
    spy = Spy(daemon)
    app = spy.app(text_app)
    text = "some text\nsecond line"
    run_id = app.new_run(input=text)
    assert spy.uploads and spy.uploads[0]["type"] == "str"
    (post,) = spy.run_posts()
    assert post["payload"]["configuration"]["format"]["input"]["type"] == "text"

    result = app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.output is not None and result.output["upper"] == text.upper()
    assert result.metadata.format.format_input.input_type.value == "text"
    assert result.metadata.input_size == len(text)
    assert app.run_input(run_id) == text
    assert "upper: got 21 chars" in app.run_logs(run_id).log


def test_a_large_text_input_comes_back_through_its_url(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    """Over 5 MiB the SDK fetches an input by URL and unpacks every input that is not
    ``json`` as a tar.gz: the URL of a text input served its bytes, which failed there
    (``shutil.ReadError``). orch's CLI still gets the bytes (``test_cli``)."""
    text_app = _app_with(new_app, push, tmp_path / "upper", TEXT_MAIN, TEXT_MANIFEST)
    text = "ab\n" * (MAX_RUN_SIZE // 3 + 100)
    run_id = text_app.new_run(input=text)
    result = text_app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.metadata.input_size == len(text) > MAX_RUN_SIZE

    back = tmp_path / "back"
    assert text_app.run_input(run_id, output_dir_path=str(back)) is None
    assert [p.name for p in back.iterdir()] == ["input"]
    assert (back / "input").read_text() == text


def test_multi_file_input_dir_and_output_dir(
    new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    app = _app_with(new_app, push, tmp_path / "mf", MULTI_FILE_MAIN, MULTI_FILE_MANIFEST)
    inputs = tmp_path / "inputs"
    (inputs / "sub").mkdir(parents=True)
    (inputs / "a.csv").write_text("id,value\n1,2\n")
    (inputs / "sub" / "b.json").write_text('{"k": 1}')

    run_id = app.new_run(input_dir_path=str(inputs))
    out = tmp_path / "out"
    result = app.run_result_with_polling(run_id, polling_options=fast, output_dir_path=str(out))
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.metadata.format.format_input.input_type.value == "multi-file"
    assert result.metadata.format.format_output.output_type.value == "multi-file"
    assert result.metadata.statistics == {"result": {"value": 2}}

    found = list(out.rglob("summary.json"))
    assert len(found) == 1, sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    summary = json.loads(found[0].read_text())
    assert summary == {"files": ["a.csv", "sub/b.json"], "sizes": {"a.csv": 13, "sub/b.json": 8}}
    assert "multi-file: read 2 files" in app.run_logs(run_id).log

    back = tmp_path / "inputs-back"
    assert app.run_input(run_id, output_dir_path=str(back)) is None
    assert (back / "a.csv").read_text() == "id,value\n1,2\n"
    assert (back / "sub" / "b.json").read_text() == '{"k": 1}'


def test_a_run_cut_off_by_its_output_limit_is_a_result_without_output(
    new_app: NewApp, push: Push, tmp_path_factory: pytest.TempPathFactory, fast: PollingOptions
) -> None:
    """Past the SDK's inline size, a failed run's stray stdout made ``run_result`` fetch it
    by URL and raise a JSONDecodeError: the user never saw the failure's message."""
    main = "import sys\nsys.stdout.write('x' * (20 * 1024 * 1024))\n"
    app = _app_with(new_app, push, tmp_path_factory.mktemp("flood") / "flood", main, None)
    body = {"input": {}, "configuration": {"limits": {"output_mb": 6}}}  # orch's limits
    run_id = app.client.request("POST", f"{app.endpoint}/runs", payload=body).json()["run_id"]
    result = app.run_result_with_polling(run_id, polling_options=fast)
    assert result.metadata.status_v2 == StatusV2.failed
    assert "output limit 6 MiB exceeded" in result.metadata.error
    assert result.output is None and result.metadata.output_size == 0


TEXT_OUTPUT_MAIN = """\
import sys
text = sys.stdin.read()
print("upper:", text.upper())
"""


def test_a_text_apps_output_comes_as_a_file(
    client: cloud.Client, new_app: NewApp, push: Push, tmp_path: Path, fast: PollingOptions
) -> None:
    """A text app's output is no JSON: its format says ``text`` and it comes, as the SDK
    reads any non-JSON output, as a tar.gz it unpacks into ``output_dir_path``. orch's own
    ``GET .../output`` (the CLI's) still gives the bytes as the model wrote them."""
    app = _app_with(new_app, push, tmp_path / "shout", TEXT_OUTPUT_MAIN, TEXT_MANIFEST)
    run_id = app.new_run(input="hello\nworld")
    got = tmp_path / "got"
    result = app.run_result_with_polling(run_id, polling_options=fast, output_dir_path=str(got))
    assert result.metadata.status_v2 == StatusV2.succeeded, result.metadata.error
    assert result.metadata.format.format_output.output_type.value == "text"
    assert (got / "output").read_text() == "upper: HELLO\nWORLD\n"
    again = tmp_path / "again"
    assert app.run_output(run_id, output_dir_path=str(again)) is None
    assert (again / "output").read_text() == "upper: HELLO\nWORLD\n"
    assert app.run_result(run_id, output_dir_path=str(tmp_path / "third")).id == run_id
    raw = client.request("GET", f"{app.endpoint}/runs/{run_id}/output")
    assert raw.content == b"upper: HELLO\nWORLD\n"
    assert app.run_input(run_id) == "hello\nworld"
