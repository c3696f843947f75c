"""The run forms as a developer uses them in the browser: pasted text arrives as it was
copied (``\\n``, as the CLI sends the file), a cancel is asked first, the new-run form
says which options the app.yaml declares, and a used ``orch console`` link opened again
while signed in goes on to its page."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.cli_run import orch
from tests.console.conftest import Visit, signed_in_client
from tests.console.world import World
from tests.helpers import (
    TEXT_MANIFEST,
    Daemon,
    create_app,
    push_dir,
    unique,
    wait_for,
    wait_run,
    write_app,
)

EXPECT_TIMEOUT = 15_000

ECHO = """
import json, sys
text = sys.stdin.buffer.read().decode()
json.dump({"solutions": [{"carriage_returns": text.count("\\r"), "lines": text.split("\\n")}],
           "statistics": {"result": {"value": len(text)}}}, sys.stdout)
"""
"""A text model that says what it read: a line-based model reads ``12\\r`` off CRLF input."""


TEXT = "12\n30\n  7 apples\n\nlast line\n"


def _text_app(api: httpx.Client, tmp: Path) -> str:
    app_id = create_app(api, unique("text"), name="Text echo")
    push_dir(api, app_id, write_app(tmp / "echo", ECHO, TEXT_MANIFEST), tmp)
    return app_id


def _start_run(visit: Visit, app_id: str) -> str:
    """Press Start run on the open new-run form; the new run's ID (its page's address)."""
    visit.page.get_by_role("button", name="Start run").click()
    visit.page.wait_for_url(re.compile(rf"/apps/{app_id}/runs/run-[^/?#]+$"))
    return visit.page.url.rsplit("/", 1)[1]


def _input(visit: Visit, app_id: str, run_id: str) -> bytes:
    """The run's input as stored, byte for byte: the console's download of it (the API
    answers a text input as a JSON string)."""
    r = visit.page.request.get(f"{visit.daemon.url}/apps/{app_id}/runs/{run_id}/input")
    assert r.status == 200, r.text()
    body: bytes = r.body()
    return body


def test_pasted_text_arrives_as_copied_and_as_the_cli_sends_it(
    signed_in: Visit, tmp_path: Path
) -> None:
    """A browser sends a textarea's line endings as CRLF: the run's input grew by one byte a
    line, the model read ``\\r``, and it hashed differently from the CLI's run of the file."""
    daemon = signed_in.daemon
    with daemon.client() as api:
        app_id = _text_app(api, tmp_path)
        signed_in.goto(f"/apps/{app_id}/runs/new")
        signed_in.page.locator("#run-input").fill(TEXT)
        pasted = _start_run(signed_in, app_id)
        output = wait_run(api, app_id, pasted)["output"]["solutions"][0]
        assert output == {"carriage_returns": 0, "lines": TEXT.split("\n")}
        assert _input(signed_in, app_id, pasted) == TEXT.encode()  # byte for byte

        copied = tmp_path / "input.txt"
        copied.write_bytes(TEXT.encode())
        from_cli = orch(daemon, f"app run -a {app_id} -i", copied).stdout.strip()
        wait_run(api, app_id, from_cli)
        digests = {
            hashlib.sha256(_input(signed_in, app_id, r)).hexdigest() for r in (pasted, from_cli)
        }
        assert len(digests) == 1, digests  # the same input, from the console and the CLI

        crlf = tmp_path / "windows.txt"  # an uploaded file is kept as it is, CRs and all
        crlf.write_bytes(b"12\r\n30\r\n")
        signed_in.goto(f"/apps/{app_id}/runs/new")
        signed_in.page.locator("#run-file").set_input_files(str(crlf))
        uploaded = _start_run(signed_in, app_id)
        assert wait_run(api, app_id, uploaded)["output"]["solutions"][0]["carriage_returns"] == 2
        assert _input(signed_in, app_id, uploaded) == b"12\r\n30\r\n"


def _status(api: httpx.Client, app_id: str, run_id: str) -> str:
    meta = api.get(f"/v1/applications/{app_id}/runs/{run_id}/metadata").json()
    return str(meta["metadata"]["status_v2"])


def test_cancel_run_asks_first_in_the_page(signed_in: Visit, world: World) -> None:
    """One click used to cancel: now the click asks, "Keep it" keeps the run running, and
    only the question's button cancels it."""
    page = signed_in.page
    with signed_in.daemon.client() as api:
        run_id = api.post(f"/v1/applications/{world.sleeper}/runs", json={"input": {}}).json()[
            "run_id"
        ]
        here = f"/apps/{world.sleeper}/runs/{run_id}"
        signed_in.goto(here)
        page.get_by_role("button", name="Cancel run", exact=True).click()
        page.wait_for_url(f"**{here}?cancel=1#confirm")
        question = page.locator("[data-confirm=cancel]")
        assert f"Cancel run {run_id}?" in question.inner_text()
        assert _status(api, world.sleeper, run_id) in ("queued", "running")  # not yet
        signed_in.shot("run-cancel-asked", full_page=False)

        question.get_by_role("link", name="Keep it").click()
        page.wait_for_url(f"**{here}")
        assert page.locator("[data-confirm]").count() == 0
        assert _status(api, world.sleeper, run_id) in ("queued", "running")

        page.get_by_role("button", name="Cancel run", exact=True).click()
        page.get_by_role("button", name=f"Cancel run {run_id}").click()
        page.wait_for_url(f"**{here}")
        page.locator("[data-run-status=canceled]").wait_for(timeout=EXPECT_TIMEOUT)
        assert _status(api, world.sleeper, run_id) == "canceled"


def test_a_cancel_posted_without_confirmation_cancels_nothing(
    console_daemon: Daemon, world: World
) -> None:
    """A bare post (a stale page's button, a script) is led to the question, for a run and
    for an experiment; the question's ``confirm=yes`` cancels."""
    client, csrf = signed_in_client(console_daemon)
    with console_daemon.client() as api:
        run_id = api.post(f"/v1/applications/{world.sleeper}/runs", json={"input": {}}).json()[
            "run_id"
        ]
        run_page = f"/apps/{world.sleeper}/runs/{run_id}"
        bare = client.post(f"{run_page}/cancel", data={"csrf": csrf})
        assert bare.status_code == 303
        assert bare.headers["location"] == f"{run_page}?cancel=1#confirm"
        assert _status(api, world.sleeper, run_id) in ("queued", "running")
        asked = client.get(f"{run_page}?cancel=1").text
        assert f'action="{run_page}/cancel"' in asked and 'name="confirm" value="yes"' in asked

        base = f"/v1/applications/{world.sleeper}/experiments"
        set_id, exp_id = unique("asked"), unique("slow")
        up = api.post(f"/v1/applications/{world.sleeper}/runs/uploadurl").json()
        assert httpx.put(up["upload_url"], content=b"{}").status_code == 200
        made = api.post(f"/v1/applications/{world.sleeper}/inputs",
                        json={"name": "empty", "upload_id": up["upload_id"]})  # fmt: skip
        assert made.status_code == 201, made.text
        body = {"id": set_id, "name": "One", "input_ids": [made.json()["id"]]}
        assert api.post(f"{base}/inputsets", json=body).status_code == 201
        body = {"id": exp_id, "input_set_id": set_id, "instance_ids": ["devint"]}
        assert api.post(f"{base}/batch", json=body).status_code == 201, body
        exp_page = f"/apps/{world.sleeper}/experiments/{exp_id}"
        bare = client.post(f"{exp_page}/cancel", data={"csrf": csrf})
        assert bare.status_code == 303
        assert bare.headers["location"] == f"{exp_page}?cancel=1#confirm"
        assert api.get(f"{base}/batch/{exp_id}/metadata").json()["status"] == "started"
        asked = client.get(f"{exp_page}?cancel=1").text
        assert f"Cancel experiment {exp_id}?" in asked

        sure = client.post(f"{exp_page}/cancel", data={"csrf": csrf, "confirm": "yes"})
        assert (sure.status_code, sure.headers["location"]) == (303, exp_page)
        assert api.get(f"{base}/batch/{exp_id}/metadata").json()["status"] == "canceled"
        sure = client.post(f"{run_page}/cancel", data={"csrf": csrf, "confirm": "yes"})
        assert (sure.status_code, sure.headers["location"]) == (303, run_page)
        wait_for(lambda: _status(api, world.sleeper, run_id) == "canceled")


def test_the_new_run_form_lists_the_options_app_yaml_declares(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}/runs/new")
    hint = page.locator("[data-options-hint]")
    assert page.locator("#run-options").get_attribute("aria-describedby") == "options-hint"
    scale = hint.locator("[data-option=scale]").inner_text()
    assert "int" in scale and "1" in scale and "Divide weights by this factor" in scale
    sleep = hint.locator("[data-option=sleep]").inner_text()
    assert "float" in sleep and "0.0" in sleep and "Extra seconds to sleep" in sleep
    assert "others are passed to the model as given" in hint.inner_text()
    assert "candidate scale=4" in hint.locator("[data-instance-options]").inner_text()
    signed_in.shot("new-run-options-hint")


def test_a_used_link_opened_again_while_signed_in_lands_on_its_page(visit: Visit) -> None:
    """A restored tab or Back reopens the used link: the browser's session is still good,
    so its page opens, not the sign-in page with "already used"."""
    page = visit.page
    with visit.daemon.client() as api:
        link = api.post("/v1/console/login-link").json()["url"]
    link += "&next=" + quote("/runs?status=failed", safe="")
    page.goto(link)
    page.wait_for_url("**/runs?status=failed")
    answer = page.goto(link)  # used now
    assert answer is not None and answer.status == 200
    assert page.url == f"{visit.daemon.url}/runs?status=failed"
    assert page.get_by_role("alert").count() == 0

    page.context.clear_cookies()  # not signed in: the used link is still refused
    answer = page.goto(link)
    assert answer is not None and answer.status == 401
    assert "already used or has expired" in page.content()
