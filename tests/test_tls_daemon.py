"""A ``--tls`` daemon: HTTPS with orch's CA for the SDK, orch's own CLI and the console;
upload and download URLs in the scheme and host the client used; plain http refused."""

from __future__ import annotations

import re
import shlex
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nextmv import cloud

from orchestrator.packaging.build import build_package
from tests.cli_run import CLI, ENV
from tests.helpers import Daemon, unique, write_app

COUNT_MAIN = "import sys, json\ndata = sys.stdin.read()\nprint(json.dumps({'n': len(data)}))\n"
BIG = 5 * 1024 * 1024 + 1000  # above the SDK's inline limit: its upload-URL path


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    home = tmp_path_factory.mktemp("tls-home")
    d: Daemon = Daemon.start(home, config="tls = true\n")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def ca(tls_daemon: Daemon) -> ssl.SSLContext:
    """What a client of the daemon trusts: orch's CA, nothing else."""
    return ssl.create_default_context(cafile=tls_daemon.home / "tls" / "ca.pem")


@pytest.fixture(scope="module")
def counter(
    tls_daemon: Daemon, ca: ssl.SSLContext, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """An app whose model prints the size of its input, pushed the SDK's way over https."""
    tmp = tmp_path_factory.mktemp("count")
    archive = build_package(write_app(tmp / "app", COUNT_MAIN), tmp / "app.tar.gz").path
    with tls_daemon.client(verify=ca) as api:
        app_id = unique("tls")
        assert api.post("/v1/applications", json={"id": app_id, "name": "TLS"}).is_success
        upload = api.get(f"/v1/applications/{app_id}/binary").json()["upload_url"]
        assert upload.startswith(f"{tls_daemon.url}/uploads/")
        assert httpx.put(upload, content=archive.read_bytes(), verify=ca).status_code == 200
        pushed = api.put(f"/v1/applications/{app_id}/binary", json={"requirements": {}})
        assert pushed.status_code == 200, pushed.text
    return app_id


def test_the_daemon_publishes_an_https_url(tls_daemon: Daemon, ca: ssl.SSLContext) -> None:
    assert tls_daemon.url.startswith("https://127.0.0.1:")
    assert httpx.get(f"{tls_daemon.url}/healthz", verify=ca).json()["status"] == "ok"
    localhost = tls_daemon.url.replace("127.0.0.1", "localhost")
    assert httpx.get(f"{localhost}/healthz", verify=ca).status_code == 200


def test_plain_http_and_unverified_clients_get_nothing(tls_daemon: Daemon) -> None:
    plain = tls_daemon.url.replace("https://", "http://")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{plain}/healthz", timeout=5)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_daemon.url}/healthz", timeout=5)  # the system's CAs only


def test_orchs_cli_speaks_https_and_says_why_plain_http_fails(tls_daemon: Daemon) -> None:
    home = ["--home", str(tls_daemon.home)]
    listed = subprocess.run(
        [*CLI, "app", "list", "--json", *home], capture_output=True, text=True, env=ENV
    )
    assert listed.returncode == 0 and listed.stdout.startswith("["), listed.stderr
    plain = {**ENV, "ORCH_URL": tls_daemon.url.replace("https", "http"), "ORCH_API_KEY": "k"}
    plain["ORCH_HOME"] = str(tls_daemon.home)  # as exported: a typed --home ignores ORCH_URL
    refused = subprocess.run(
        [*CLI, "app", "list"], capture_output=True, text=True, env=plain, timeout=30
    )
    assert refused.returncode == 1
    assert f"a --tls daemon answers on {tls_daemon.url} only" in refused.stderr


def test_the_sdk_uploads_and_downloads_over_https(
    tls_daemon: Daemon, ca: ssl.SSLContext, counter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tls_daemon.home / "tls" / "ca.pem"))
    endpoint = tls_daemon.url.removeprefix("https://")  # as the nextmv CLI gives it
    app = cloud.Application(client=cloud.Client(api_key=tls_daemon.key, url=endpoint), id=counter)
    upload = app.upload_url()
    assert upload.upload_url.startswith(f"{tls_daemon.url}/uploads/")
    big = {"blob": "z" * BIG}
    run_id = app.new_run(input=big)  # > 5 MiB: the SDK PUTs it to an upload URL
    result = app.run_result_with_polling(run_id)
    assert result.metadata.status_v2.value == "succeeded", result.metadata.error
    assert result.output == {"n": len('{"blob":""}') + BIG}
    with tls_daemon.client(verify=ca) as api:
        path = f"/v1/applications/{counter}/runs/{run_id}/input"
        url = api.get(path, params={"format": "url"}).json()["url"]
    assert url.startswith(f"{tls_daemon.url}/")
    assert app.run_input(run_id) == big  # the SDK follows that URL


def test_urls_follow_the_host_the_client_used(
    tls_daemon: Daemon, ca: ssl.SSLContext, counter: str
) -> None:
    localhost = tls_daemon.url.replace("127.0.0.1", "localhost")
    auth = {"Authorization": f"Bearer {tls_daemon.key}"}
    with httpx.Client(base_url=localhost, headers=auth, verify=ca) as api:
        upload = api.post(f"/v1/applications/{counter}/runs/uploadurl").json()["upload_url"]
        assert upload.startswith(f"{localhost}/uploads/")
        assert httpx.put(upload, content=b'{"a": 1}', verify=ca).status_code == 200


def test_the_console_works_over_https(tls_daemon: Daemon, ca: ssl.SSLContext) -> None:
    """A Secure session cookie, and changes accepted from the https origin only."""
    with tls_daemon.client(verify=ca) as api:
        link = api.post("/v1/console/login-link").json()["url"]
        assert link.startswith(f"{tls_daemon.url}/login?token=")
        entered = httpx.get(link, verify=ca)
    cookie = entered.headers["set-cookie"].lower()
    assert entered.status_code == 200 and "secure" in cookie and "httponly" in cookie
    with httpx.Client(base_url=tls_daemon.url, verify=ca, cookies=entered.cookies) as browser:
        page = browser.get("/apps", headers={"accept": "text/html"})
        assert page.status_code == 200
        match = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert match, page.text
        form = {"id": unique("console"), "name": "x", "csrf": match.group(1)}
        plain = {"origin": tls_daemon.url.replace("https", "http")}
        assert browser.post("/apps", data=form, headers=plain).status_code == 403
        own = {"origin": tls_daemon.url}
        made = browser.post("/apps", data=form, headers=own, follow_redirects=False)
        assert made.status_code == 303 and made.headers["location"] == f"/apps/{form['id']}"


def test_certificates_survive_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first: Daemon = Daemon.start(home, config="tls = true\n")
    cert = (home / "tls" / "cert.pem").read_bytes()
    first.stop()
    again: Daemon = Daemon.start(home)
    try:
        assert (home / "tls" / "cert.pem").read_bytes() == cert
        ca = ssl.create_default_context(cafile=home / "tls" / "ca.pem")
        assert httpx.get(f"{again.url}/healthz", verify=ca).status_code == 200
    finally:
        again.stop()


def test_a_restarted_daemon_keeps_its_scheme_until_told_otherwise(tmp_path: Path) -> None:
    """As it keeps its port: an https URL saved for the nextmv CLI stays good. A plain
    start after a TLS one used to serve http."""
    home, schemes = tmp_path / "home", []
    for env in ({"ORCH_TLS": "1"}, {}, {"ORCH_TLS": "0"}, {}):
        d: Daemon = Daemon.start(home, env=env)
        schemes.append(d.url.partition(":")[0])
        d.stop()
    assert schemes == ["https", "https", "http", "http"]


def test_env_quotes_its_values_and_names_the_bundle(tmp_path: Path) -> None:
    home = tmp_path / "it's a home"
    d: Daemon = Daemon.start(home, config="tls = true\n")
    try:
        env_cmd = shlex.join([*CLI, "daemon", "env", "--home", str(home)])
        show = 'printf "%s\\n" "$REQUESTS_CA_BUNDLE" "$NEXTMV_ENDPOINT" "$ORCH_URL"'
        done = subprocess.run(
            ["sh", "-c", f'eval "$({env_cmd})" && {show}'], capture_output=True, text=True, env=ENV
        )
        assert done.returncode == 0, done.stderr
        bundle, endpoint, url = done.stdout.splitlines()
        assert bundle == str(home / "tls" / "ca-bundle.pem") and Path(bundle).is_file()
        assert url == d.url and endpoint == d.url.removeprefix("https://")
    finally:
        d.stop()


def test_a_plain_daemon_env_says_the_nextmv_cli_needs_tls(fresh_daemon: Daemon) -> None:
    argv = [*CLI, "daemon", "env", "--home", str(fresh_daemon.home)]
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)
    assert done.returncode == 0
    assert f"export NEXTMV_ENDPOINT={fresh_daemon.url}\n" in done.stdout
    assert "REQUESTS_CA_BUNDLE" not in done.stdout
    assert "nextmv CLI speaks https only" in done.stderr and "--tls" in done.stderr


def test_start_tls_refuses_a_running_plain_daemon(fresh_daemon: Daemon) -> None:
    argv = [*CLI, "daemon", "start", "--tls", "--home", str(fresh_daemon.home)]
    done = subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=30)
    assert done.returncode == 1 and done.stdout == ""
    assert "without TLS" in done.stderr and "orch daemon stop" in done.stderr


def test_an_https_url_meeting_plain_http_or_another_homes_ca_is_said_in_words(
    tls_daemon: Daemon, daemon: Daemon, tmp_path: Path
) -> None:
    """An ``ORCH_URL`` exported for a ``--tls`` daemon since started without it, or for
    another home's: ``ssl``'s words were ``[SSL: WRONG_VERSION_NUMBER] wrong version
    number (_ssl.c:1006)`` and ``CERTIFICATE_VERIFY_FAILED``."""

    def app_list(url: str, home: Path) -> subprocess.CompletedProcess[str]:
        env = {**ENV, "ORCH_URL": url, "ORCH_API_KEY": "k", "ORCH_HOME": str(home)}
        argv = [*CLI, "app", "list"]  # no --home typed: that would ignore ORCH_URL
        return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)

    plain = app_list(daemon.url.replace("http://", "https://"), daemon.home)
    assert plain.returncode == 1 and "does not speak TLS" in plain.stderr, plain.stderr
    assert "_ssl.c" not in plain.stderr
    stranger = app_list(tls_daemon.url, tmp_path / "another-home")
    assert stranger.returncode == 1, stranger.stderr
    assert f"cannot trust the daemon at {tls_daemon.url}: " in stranger.stderr
    assert "_ssl.c" not in stranger.stderr
