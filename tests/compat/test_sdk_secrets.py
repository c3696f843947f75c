"""Secrets collections through the official SDK: every secrets method, delivery to a
model (env and file), and that values appear nowhere else."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest
import requests
from nextmv import cloud
from nextmv.cloud import BatchExperimentRun, Secret, SecretType
from nextmv.polling import PollingOptions
from nextmv.run import RunConfiguration

from tests.compat.conftest import NewApp, Push
from tests.conftest import TEST_EXECUTOR, MakeDaemon
from tests.helpers import Daemon, unique, wait_for, write_app

PROBE = """\
import hashlib, json, os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
def digest(data):
    return None if data is None else hashlib.sha256(data).hexdigest()
token = os.environ.get("SECRET_TOKEN")
try:
    with open("licence/key.lic", "rb") as fh:
        licence = fh.read()
except OSError:
    licence = None
print("probe: token set", token is not None, "licence set", licence is not None, file=sys.stderr)
time.sleep(float(args.get("-sleep", 0)))
peeked = None
if args.get("-peek"):
    try:
        with open(args["-peek"], "rb") as fh:
            peeked = digest(fh.read())
    except OSError as exc:
        peeked = type(exc).__name__
json.dump({"solution": {"env": digest(token.encode() if token else None),
                        "file": digest(licence), "peeked": peeked}, "statistics": {}}, sys.stdout)
sys.exit(int(args.get("-fail", 0)))
"""
PROBE_MANIFEST = """\
type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files: [main.py]
configuration:
  options:
    items:
      - {name: sleep, option_type: float, default: 0}
      - {name: fail, option_type: int, default: 0}
      - {name: peek, option_type: string, default: ""}
"""
LOCAL_ONLY = pytest.mark.skipif(
    TEST_EXECUTOR != "local", reason="reads the run's working folder, on this machine"
)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def probe(
    new_app: NewApp, push: Push, tmp_path_factory: pytest.TempPathFactory
) -> cloud.Application:
    app = new_app("secrets")
    push(app, write_app(tmp_path_factory.mktemp("probe") / "probe", PROBE, PROBE_MANIFEST))
    return app


def _collection(app: cloud.Application, env: str, file: str) -> str:
    cid = unique("sc")
    app.new_secrets_collection(
        secrets=[
            Secret(secret_type=SecretType.ENV, location="SECRET_TOKEN", value=env),
            Secret(secret_type=SecretType.FILE, location="licence/key.lic", value=file),
        ],
        id=cid,
        name="probe secrets",
    )
    return cid


def _status(err: pytest.ExceptionInfo[requests.HTTPError]) -> tuple[int, str]:
    response = err.value.response
    assert response is not None
    return response.status_code, response.json()["error"]


def _files_holding(root: Path, *values: str) -> list[Path]:
    needles = [v.encode() for v in values]
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in needles):
                found.append(path)
    return found


def test_collection_crud_masks_values(probe: cloud.Application) -> None:
    cid = unique("sc")
    made = probe.new_secrets_collection(
        secrets=[Secret(secret_type=SecretType.ENV, location="API_KEY", value="crud-value-1")],
        id=cid,
        name="API keys",
        description="for the solver",
    )
    assert (made.collection_id, made.name, made.description) == (cid, "API keys", "for the solver")
    assert made.application_id == probe.id
    assert cid in [c.collection_id for c in probe.list_secrets_collections()]
    assert cid in [c.collection_id for c in probe.list_secrets_collections(no_pagination=True)]
    got = probe.secrets_collection(cid)
    assert [(s.secret_type, s.location) for s in got.secrets] == [(SecretType.ENV, "API_KEY")]
    assert got.secrets[0].value != "crud-value-1"

    renamed = probe.update_secrets_collection(cid, name="renamed")
    assert renamed.name == "renamed" and renamed.description == "for the solver"
    probe.update_secrets_collection(
        cid,
        secrets=[Secret(secret_type=SecretType.FILE, location="keys/a.txt", value="crud-value-2")],
    )
    keys = [(s.secret_type, s.location) for s in probe.secrets_collection(cid).secrets]
    assert keys == [(SecretType.FILE, "keys/a.txt")]
    probe.update_secrets_collection(
        cid,
        secrets=[Secret(secret_type=SecretType.ENV, location="B", value="crud-value-3")],
        keep_existing=True,
    )
    keys = [(s.secret_type, s.location) for s in probe.secrets_collection(cid).secrets]
    assert keys == [(SecretType.ENV, "B"), (SecretType.FILE, "keys/a.txt")]
    assert all(
        s.value not in ("crud-value-2", "crud-value-3")
        for s in probe.secrets_collection(cid).secrets
    )

    probe.delete_secrets_collection(cid)
    with pytest.raises(requests.HTTPError) as err:
        probe.secrets_collection(cid)
    assert _status(err)[0] == 404
    assert cid not in [c.collection_id for c in probe.list_secrets_collections()]


def test_secrets_reach_the_model_and_nothing_else(
    probe: cloud.Application, daemon: Daemon, fast: PollingOptions
) -> None:
    env_value, file_value = unique("env-secret-value"), unique("file-secret-value")
    cid = _collection(probe, env_value, file_value)
    instance = probe.new_instance(
        version_id=probe.new_version().id,
        id=unique("inst"),
        configuration=cloud.InstanceConfiguration(secrets_collection_id=cid),
    )
    assert instance.configuration.secrets_collection_id == cid
    result = probe.new_run_with_result(input={}, instance_id=instance.id, polling_options=fast)
    assert result.metadata.status_v2.value == "succeeded", result.error_log
    assert result.output["solution"] == {
        "env": _sha(env_value),
        "file": _sha(file_value),
        "peeked": None,
    }
    assert result.metadata.secrets_collection_id == cid

    run_id = result.id
    shown = [
        probe.client.request("GET", f"{probe.endpoint}/runs/{run_id}/metadata").text,
        probe.client.request("GET", f"{probe.endpoint}/runs/{run_id}").text,
        probe.client.request("GET", f"{probe.endpoint}/instances/{instance.id}").text,
        probe.client.request("GET", f"{probe.endpoint}/secrets/{cid}").text,
        probe.client.request("GET", f"{probe.endpoint}/runs/{run_id}/logs").text,
        probe.client.request("GET", f"{probe.endpoint}/secrets").text,
    ]
    assert not [text for text in shown if env_value in text or file_value in text]
    run_dir = daemon.home / "runs" / run_id
    assert not (run_dir / "work" / "licence" / "key.lic").exists()
    assert _files_holding(run_dir, env_value, file_value) == []
    assert env_value not in daemon.log() and file_value not in daemon.log()


def test_run_configuration_names_a_collection(
    probe: cloud.Application, fast: PollingOptions
) -> None:
    env_value = unique("run-level")
    cid = _collection(probe, env_value, "f")
    config = RunConfiguration(secrets_collection_id=cid)
    result = probe.new_run_with_result(
        input={}, instance_id="latest", configuration=config, polling_options=fast
    )
    assert result.output["solution"]["env"] == _sha(env_value)
    plain = probe.new_run_with_result(input={}, instance_id="latest", polling_options=fast)
    assert plain.output["solution"] == {"env": None, "file": None, "peeked": None}


@pytest.mark.parametrize("end", [pytest.param("cancel", marks=LOCAL_ONLY), "fail"])
def test_secret_files_go_when_the_run_ends(
    probe: cloud.Application, daemon: Daemon, end: str
) -> None:
    file_value = unique("ending")
    cid = _collection(probe, "e", file_value)
    options = {"sleep": "30"} if end == "cancel" else {"fail": "3"}
    run_id = probe.new_run(
        input={},
        instance_id="latest",
        options=options,
        configuration=RunConfiguration(secrets_collection_id=cid),
    )
    run_dir = daemon.home / "runs" / run_id
    if end == "cancel":
        wait_for(lambda: (run_dir / "work" / "licence" / "key.lic").exists(), 30)
        probe.cancel_run(run_id)

    def status() -> str:
        return str(probe.run_information(run_id).metadata.status_v2.value)

    wait_for(lambda: status() in ("canceled", "failed"), 30)
    assert status() == ("canceled" if end == "cancel" else "failed")
    assert not (run_dir / "work" / "licence" / "key.lic").exists()
    assert _files_holding(run_dir, file_value) == []


@LOCAL_ONLY
def test_another_run_cannot_read_a_runs_secret_file(
    probe: cloud.Application, daemon: Daemon, fast: PollingOptions
) -> None:
    with daemon.client() as api:
        protections = api.get("/healthz").json()["isolation"]["protections"]
    if not {"landlock-fs", "mount-ns"} & set(protections):
        pytest.skip("this host confines no run to its folder (see orch daemon status)")
    cid = _collection(probe, "e", unique("guarded"))
    holder = probe.new_run(
        input={},
        instance_id="latest",
        options={"sleep": "30"},
        configuration=RunConfiguration(secrets_collection_id=cid),
    )
    secret_file = daemon.home / "runs" / holder / "work" / "licence" / "key.lic"
    try:
        wait_for(secret_file.exists, 30)
        peek = {"peek": str(secret_file)}
        other = probe.new_run_with_result(
            input={}, instance_id="latest", run_options=peek, polling_options=fast
        )
        peeked = other.output["solution"]["peeked"]
        assert peeked in ("FileNotFoundError", "PermissionError"), peeked
    finally:
        probe.cancel_run(holder)


def test_file_secret_that_collides_with_the_package_fails_the_run(
    probe: cloud.Application, fast: PollingOptions
) -> None:
    cid = unique("sc")
    probe.new_secrets_collection(
        secrets=[Secret(secret_type=SecretType.FILE, location="main.py", value="x")], id=cid
    )
    result = probe.new_run_with_result(
        input={},
        instance_id="latest",
        configuration=RunConfiguration(secrets_collection_id=cid),
        polling_options=fast,
    )
    assert result.metadata.status_v2.value == "failed"
    assert "collides" in (result.metadata.error or "")


def test_the_database_is_private(daemon: Daemon) -> None:
    for name in ("orch.db", "orch.db-wal"):
        mode = stat.S_IMODE((daemon.home / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"


@pytest.mark.parametrize(
    ("secret", "status", "says"),
    [
        ({"type": "ssh", "location": "A", "value": "v"}, 400, "type"),
        ({"type": "file", "location": "../escape", "value": "v"}, 400, ".."),
        ({"type": "file", "location": "a/../../b", "value": "v"}, 400, ".."),
        ({"type": "file", "location": "/etc/key", "value": "v"}, 400, "relative"),
        ({"type": "file", "location": "outputs/key", "value": "v"}, 400, "outputs"),
        ({"type": "env", "location": "PATH", "value": "v"}, 400, "orch sets"),
        ({"type": "env", "location": "ORCH_API_KEY", "value": "v"}, 400, "orch sets"),
        ({"type": "env", "location": "NOT-A-NAME", "value": "v"}, 400, "variable name"),
        ({"type": "env", "location": "A"}, 422, "value"),
    ],
)
def test_bad_secrets_are_refused(
    probe: cloud.Application, secret: dict[str, Any], status: int, says: str
) -> None:
    body = {"id": unique("bad"), "name": "bad", "secrets": [secret]}
    with pytest.raises(requests.HTTPError) as err:
        probe.client.request("POST", f"{probe.endpoint}/secrets", payload=body)
    code, message = _status(err)
    assert code == status and says in message, message
    assert body["id"] not in [c.collection_id for c in probe.list_secrets_collections()]


def test_bad_requests_name_what_is_wrong(probe: cloud.Application) -> None:
    ep = probe.endpoint
    missing = unique("missing")
    for method, path in (("GET", f"{ep}/secrets/{missing}"), ("DELETE", f"{ep}/secrets/{missing}")):
        with pytest.raises(requests.HTTPError) as err:
            probe.client.request(method, path)
        assert _status(err) == (
            404,
            f"secrets collection {missing!r} not found in app {probe.id!r}",
        )
    with pytest.raises(requests.HTTPError) as err:
        probe.new_run(input={}, configuration=RunConfiguration(secrets_collection_id=missing))
    assert _status(err)[0] == 404
    with pytest.raises(requests.HTTPError) as err:
        probe.new_instance(
            version_id=probe.new_version().id,
            configuration=cloud.InstanceConfiguration(secrets_collection_id=missing),
        )
    assert _status(err)[0] == 404

    empty = {"id": unique("empty"), "name": "e", "secrets": []}
    with pytest.raises(requests.HTTPError) as err:
        probe.client.request("POST", f"{ep}/secrets", payload=empty)
    assert _status(err)[0] == 400
    twice = [{"type": "env", "location": "A", "value": "1"}] * 2
    with pytest.raises(requests.HTTPError) as err:
        probe.client.request("POST", f"{ep}/secrets", payload={**empty, "secrets": twice})
    assert _status(err) == (400, "secret (env, 'A') is given twice")


def test_collection_conflicts(probe: cloud.Application) -> None:
    cid = _collection(probe, "a", "b")
    with pytest.raises(requests.HTTPError) as err:
        _recreate(probe, cid)
    assert _status(err)[0] == 409
    ops = {
        "operations": [{"op": "create", "type": "env", "location": "SECRET_TOKEN", "value": "x"}]
    }
    with pytest.raises(requests.HTTPError) as err:
        probe.client.request("PATCH", f"{probe.endpoint}/secrets/{cid}", payload=ops)
    assert _status(err)[0] == 409
    ops = {"operations": [{"op": "delete", "type": "env", "location": "NOPE"}]}
    with pytest.raises(requests.HTTPError) as err:
        probe.client.request("PATCH", f"{probe.endpoint}/secrets/{cid}", payload=ops)
    assert _status(err)[0] == 404
    instance = probe.new_instance(
        version_id=probe.new_version().id,
        configuration=cloud.InstanceConfiguration(secrets_collection_id=cid),
    )
    with pytest.raises(requests.HTTPError) as err:
        probe.delete_secrets_collection(cid)
    code, message = _status(err)
    assert code == 409 and instance.id in message
    probe.delete_instance(instance.id)
    probe.delete_secrets_collection(cid)


def _recreate(app: cloud.Application, cid: str) -> None:
    app.new_secrets_collection(
        secrets=[Secret(secret_type=SecretType.ENV, location="X", value="y")], id=cid
    )


@LOCAL_ONLY
def test_recovery_removes_the_files_of_a_run_a_killed_daemon_left(
    make_daemon: MakeDaemon, push: Push, tmp_path: Path
) -> None:
    first = make_daemon()
    client = cloud.Client(api_key=first.key, url=first.url)
    app = cloud.Application.new(client=client, id=unique("recover"), name="recover")
    push(app, write_app(tmp_path / "probe", PROBE, PROBE_MANIFEST))
    cid = _collection(app, "e", unique("left-behind"))
    run_id = app.new_run(
        input={},
        instance_id="latest",
        options={"sleep": "60"},
        configuration=RunConfiguration(secrets_collection_id=cid),
    )
    secret_file = first.home / "runs" / run_id / "work" / "licence" / "key.lic"
    wait_for(secret_file.exists, 30)
    first.kill()
    again = make_daemon(home=first.home)
    app = cloud.Application(client=cloud.Client(api_key=again.key, url=again.url), id=app.id)
    assert app.run_information(run_id).metadata.status_v2.value == "failed"
    assert not secret_file.exists()


def test_batch_experiment_runs_get_their_instances_secrets(
    probe: cloud.Application, fast: PollingOptions
) -> None:
    env_value = unique("batch-secret")
    cid = _collection(probe, env_value, "f")
    instance = probe.new_instance(
        version_id=probe.new_version().id,
        id=unique("inst"),
        configuration=cloud.InstanceConfiguration(secrets_collection_id=cid),
    )
    seed = probe.new_run_with_result(input={}, instance_id="latest", polling_options=fast)
    input_set = probe.new_input_set(id=unique("is"), name="one", run_ids=[seed.id])
    batch_id = probe.new_batch_experiment(
        id=unique("batch"),
        name="with secrets",
        input_set_id=input_set.id,
        runs=[
            BatchExperimentRun(input_id=input_id, instance_id=instance.id)
            for input_id in input_set.input_ids
        ],
    )
    done = probe.batch_experiment_with_polling(batch_id, polling_options=fast)
    assert done.status == "completed" and done.runs
    for item in done.runs:
        result = probe.run_result(item.id)
        assert result.output["solution"]["env"] == _sha(env_value)
        assert result.metadata.secrets_collection_id == cid
