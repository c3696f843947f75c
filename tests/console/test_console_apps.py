"""Apps in the browser: create one (errors inline), set the default instance with the
dropdown and Save (the API agrees), push from the CLI and watch the environment status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.console.conftest import Visit
from tests.console.world import World
from tests.helpers import unique, write_app

MANIFEST = (
    "type: python\nruntime: ghcr.io/nextmv-io/runtime/python:3.11\n"
    "files: [main.py, requirements.txt]\npython:\n  pip-requirements: requirements.txt\n"
)


def test_creating_an_app_checks_the_id_inline_then_lands_on_the_app(signed_in: Visit) -> None:
    page = signed_in.page
    app_id = unique("made").replace("made", "ui")
    page.get_by_label("ID").fill("Not OK!")
    page.get_by_label("Name").fill("Made in the console")
    page.get_by_role("button", name="Create app").click()
    error = page.get_by_role("alert")
    assert "may only contain lowercase letters" in error.inner_text()
    assert page.get_by_label("Name").input_value() == "Made in the console"  # kept
    assert page.get_by_label("ID").get_attribute("aria-invalid") == "true"
    signed_in.shot("apps-create-error")
    page.get_by_label("ID").fill(app_id)
    page.get_by_role("button", name="Create app").click()
    page.wait_for_url(f"**/apps/{app_id}")
    assert page.get_by_role("heading", name="Made in the console").is_visible()
    with signed_in.daemon.client() as api:
        assert api.get(f"/v1/applications/{app_id}").json()["name"] == "Made in the console"


def test_the_default_instance_dropdown_and_save_change_what_the_api_says(
    signed_in: Visit, world: World
) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.knapsack}")
    dropdown = page.get_by_label("Default instance")
    assert dropdown.input_value() == "production"
    dropdown.select_option("candidate")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    with signed_in.daemon.client() as api:
        app = api.get(f"/v1/applications/{world.knapsack}").json()
        assert app["default_instance"] == "candidate"
        history = api.get(f"/v1/applications/{world.knapsack}/history").json()["items"]
        assert history[0]["pointer"] == "default_instance" and history[0]["to"] == "candidate"
    assert page.get_by_label("Default instance").input_value() == "candidate"
    signed_in.shot("app-detail")
    page.get_by_label("Default instance").select_option("production")
    page.get_by_role("button", name="Save").click()
    page.get_by_text("Saved.").wait_for()
    with signed_in.daemon.client() as api:
        assert api.get(f"/v1/applications/{world.knapsack}").json()["default_instance"] == (
            "production"
        )


def test_a_cli_push_shows_the_environment_status_and_the_installer_message(
    signed_in: Visit, tmp_path: Path
) -> None:
    """A requirement that cannot resolve: building, then failed with uv's own words (the
    push does not wait for the build, so the page is seen following it)."""
    page = signed_in.page
    app_id = unique("envs")
    with signed_in.daemon.client() as api:
        api.post("/v1/applications", json={"id": app_id, "name": "Environments"})
    signed_in.goto(f"/apps/{app_id}")
    assert page.get_by_text("Nothing pushed yet").is_visible()
    folder = write_app(tmp_path / "app", "print('{}')\n", MANIFEST)
    (folder / "requirements.txt").write_text("this-package-does-not-exist-orch==0.0.1\n")
    env = {**os.environ, "ORCH_HOME": str(signed_in.daemon.home)}
    push = subprocess.run(
        [sys.executable, "-m", "orchestrator", "app", "push", "-a", app_id, "--app-dir",
         str(folder), "--no-wait"], env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert push.returncode == 0, push.stderr
    signed_in.goto(f"/apps/{app_id}")
    status = page.locator("[data-env-status]")
    assert status.get_attribute("data-env-status") in ("building", "failed")
    page.locator("[data-env-status=failed]").wait_for(timeout=300_000)  # polled, no reload
    message = page.locator("[data-env-message]").inner_text()
    assert "this-package-does-not-exist-orch" in message
    signed_in.shot("app-environment-failed")


def test_an_existing_version_is_offered_and_promoted_as_it_is(
    signed_in: Visit, world: World
) -> None:
    """Promote made a version of the current push only: an existing version's ID was
    refused as taken. It is now promoted as it is, and the form offers the versions."""
    page = signed_in.page
    app_url = f"/v1/applications/{world.stepper}"
    with signed_in.daemon.client() as api:
        old = unique("old")
        assert api.post(f"{app_url}/versions", json={"id": old}).is_success
        count = len(api.get(f"{app_url}/versions").json())
    signed_in.goto(f"/apps/{world.stepper}")
    offered = page.locator("#version-ids option").evaluate_all("els => els.map(e => e.value)")
    assert old in offered
    page.get_by_label("Version ID").fill(old)
    page.get_by_label("Attach to instance").fill("staging")
    page.get_by_role("button", name="Promote").click()
    page.get_by_text(f"Promoted: version {old}").wait_for()
    with signed_in.daemon.client() as api:
        assert api.get(f"{app_url}/instances/staging").json()["version_id"] == old
        assert len(api.get(f"{app_url}/versions").json()) == count  # no new version


def test_promote_from_the_console(signed_in: Visit, world: World, tmp_path: Path) -> None:
    page = signed_in.page
    signed_in.goto(f"/apps/{world.stepper}")
    page.get_by_label("Version ID").fill("v7")
    page.get_by_label("Version name").fill("Seventh")
    page.get_by_label("Attach to instance").fill("staging")
    page.get_by_role("button", name="Promote").click()
    page.get_by_text("Promoted: version v7").wait_for()
    with signed_in.daemon.client() as api:
        app = api.get(f"/v1/applications/{world.stepper}").json()
        assert app["default_instance"] == "staging"
        assert (
            api.get(f"/v1/applications/{world.stepper}/instances/staging").json()["version_id"]
            == "v7"
        )
    del tmp_path
