"""Secrets on the Dask backend: they travel inside the run's task, never in the dataset
published for a restarted daemon, and their files go with the worker's run folder; a
spec read back from that dataset never starts again without them."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.models import Run, Secret, SecretType
from orchestrator.runs.backends.dask.protocol import Blob, TaskSpec, UnpackCaps
from tests.dask_cluster import DaskCluster
from tests.helpers import Daemon, create_app, push_dir, unique, wait_for, wait_run, write_app

PROBE = """\
import hashlib, json, os, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
token = os.environ.get("TOKEN", "")
print("cwd=" + os.getcwd(), file=sys.stderr, flush=True)
time.sleep(float(args.get("-sleep", 0)))
json.dump({"env": hashlib.sha256(token.encode()).hexdigest(),
           "file": os.path.exists("keys/k.lic")}, sys.stdout)
"""
MANIFEST = """\
type: python
runtime: ghcr.io/nextmv-io/runtime/python:3.11
files: [main.py]
configuration:
  options:
    items:
      - {name: sleep, option_type: float, default: 0}
"""
SECRET = Secret(SecretType.ENV, "TOKEN", "the-value")


def _spec(secrets: tuple[Secret, ...], collection: str | None) -> TaskSpec:
    run = Run("run-x", "app", "devint", "e" * 64, secrets_collection_id=collection)
    blob = Blob("e" * 64, 1, folder=False)
    return TaskSpec(run, {}, blob, None, None, UnpackCaps(1, 1, 1), "ds", secrets=secrets)


def test_the_published_spec_holds_no_value_and_cannot_start_again() -> None:
    spec = _spec((SECRET,), "sc")
    assert spec.complete and "the-value" not in repr(spec)
    published = spec.published
    assert published.secrets == () and b"the-value" not in pickle.dumps(published)
    assert not published.complete
    assert _spec((), None).published.complete  # a run without secrets starts again as before


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    c = DaskCluster.start(tmp_path / "cluster", workers=1)
    yield c
    c.stop()


def test_a_run_on_the_cluster_gets_its_secrets_and_the_dataset_does_not(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    from distributed import Client

    d = Daemon.start(tmp_path / "home", config=f'executor = "{cluster.executor}"\n')
    try:
        value = unique("dask-secret")
        with d.client() as api:
            app_id = create_app(api)
            push_dir(api, app_id, write_app(tmp_path / "probe", PROBE, MANIFEST), tmp_path)
            body = {
                "id": "sc",
                "name": "sc",
                "secrets": [
                    {"type": "env", "location": "TOKEN", "value": value},
                    {"type": "file", "location": "keys/k.lic", "value": value},
                ],
            }
            assert api.post(f"/v1/applications/{app_id}/secrets", json=body).status_code == 201
            run = {
                "input": {},
                "options": {"sleep": "3"},
                "configuration": {"secrets_collection_id": "sc"},
            }
            r = api.post(f"/v1/applications/{app_id}/runs", json=run)
            assert r.status_code == 201, r.text
            run_id = r.json()["run_id"]
            log = f"/v1/applications/{app_id}/runs/{run_id}/logs"

            def cwd() -> str | None:
                text = str(api.get(log).json()["log"])
                return text.split("cwd=")[1].split()[0] if "cwd=" in text else None

            found = wait_for(cwd, 30)
            assert found is not None
            work = Path(found)
            assert (work / "keys" / "k.lic").read_text() == value  # on the worker, meanwhile
            with Client(f"tcp://127.0.0.1:{cluster.port}", timeout=30) as client:
                names = [n for n in client.list_datasets() if str(n).endswith(run_id)]
                assert names, client.list_datasets()
                record = client.get_dataset(names[0])
                assert value.encode() not in pickle.dumps({k: record[k] for k in ("spec",)})
            res = wait_run(api, app_id, run_id)
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
        digest = hashlib.sha256(value.encode()).hexdigest()
        assert res["output"] == {"env": digest, "file": True}
        assert not work.exists()  # the worker's run folder went, the secret file with it
        assert value not in json.dumps(res) and value not in d.log()
        assert value not in cluster.logs()
    finally:
        d.stop()
