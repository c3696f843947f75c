"""The official ``nextmv`` CLI (the pinned package's entry point), unchanged, against a
``--tls`` daemon, after ``eval "$(orch daemon env)"`` in a HOME of its own with a profile
made by ``nextmv configuration create``.

``CASES`` runs in order on one daemon and one app; each case is one command, checked by
what it prints (and, where a command only prints a message, by its effect). Adding a
command is one entry: ``{name}`` fields in its arguments come from ``State``, and its
check may record new ones for the cases after it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli_run import CLI, ENV
from tests.conftest import TEST_EXECUTOR
from tests.helpers import SAMPLES, Daemon, wait_for

pytestmark = pytest.mark.skipif(
    TEST_EXECUTOR != "local", reason="its daemon is its own, local: the first pass ran it"
)
NEXTMV = str(Path(sys.executable).parent / "nextmv")
State = dict[str, Any]
Done = subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class Case:
    args: str
    """After ``nextmv cloud``; ``{name}`` fields are filled from the state."""
    check: Callable[[Done, State], None]
    stdin: str | None = None
    """The state entry of a file fed to the command's stdin."""


class Shell:
    """What a person's shell holds after ``eval "$(orch daemon env)"``, and the CLI in it."""

    def __init__(self, daemon: Daemon, home: Path) -> None:
        env_cmd = shlex.join([*CLI, "daemon", "env", "--home", str(daemon.home)])
        dump = (
            f'eval "$({env_cmd})" && "$0" -c "import json, os; print(json.dumps(dict(os.environ)))"'
        )
        base = {k: v for k, v in ENV.items() if not k.startswith(("NEXTMV_", "REQUESTS_"))}
        base |= {"HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200"}
        done = subprocess.run(
            ["sh", "-c", dump, sys.executable], capture_output=True, text=True, env=base
        )
        assert done.returncode == 0, done.stderr
        self.env: dict[str, str] = json.loads(done.stdout)

    def nextmv(self, *args: str, timeout: float = 60, stdin: str = "") -> Done:
        return subprocess.run(
            [NEXTMV, *args], input=stdin, capture_output=True, text=True, env=self.env,
            timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    d: Daemon = Daemon.start(tmp_path_factory.mktemp("tls-home"), config="tls = true\n")
    yield d
    d.stop()


@pytest.fixture(scope="module")
def shell(tls_daemon: Daemon, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    """A fresh HOME whose one profile is made once, as the README says."""
    sh = Shell(tls_daemon, tmp_path_factory.mktemp("user"))
    made = sh.nextmv("configuration", "create", "--api-key", sh.env["NEXTMV_API_KEY"])
    assert made.returncode == 0, made.stdout + made.stderr
    return sh


@pytest.fixture(scope="module")
def state(tls_daemon: Daemon, shell: Shell, tmp_path_factory: pytest.TempPathFactory) -> State:
    folder = tmp_path_factory.mktemp("cli-app")
    knapsack = shutil.copytree(SAMPLES / "knapsack", folder / "knapsack")
    ca = ssl.create_default_context(cafile=tls_daemon.home / "tls" / "ca.pem")
    config = Path(shell.env["HOME"]) / ".nextmv" / "config.yaml"
    tracked = folder / "tracked-output.json"
    tracked.write_text(json.dumps({"solutions": [], "statistics": {"result": {"value": 7}}}))
    metrics = folder / "tracked-metrics.json"
    metrics.write_text(json.dumps({"result": {"value": 7}}))
    return {
        "tracked_output": tracked,
        "tracked_metrics": metrics,
        "app": "nextmv-cli",
        "url": tls_daemon.url,
        "ca": ca,
        "knapsack": knapsack,
        "input": knapsack / "input.json",
        "shell": shell,
        "config": config,
        "config_bytes": config.read_bytes(),
    }


def out(done: Done) -> Any:
    """The command's JSON on stdout (its progress messages go to stderr)."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def ids(done: Done) -> set[str]:
    return {item["id"] for item in out(done)}


def check_pushed(done: Done, s: State) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    assert "New version v1 created" in done.stderr
    assert "New instance prod created using version v1" in done.stderr


def check_waited_run(done: Done, s: State) -> None:
    result = out(done)
    assert result["metadata"]["status_v2"] == "succeeded" and result["output"]["solutions"]
    assert result["output"]["statistics"]["result"]["value"] > 0


def check_run_created(done: Done, s: State) -> None:
    s["run"] = out(done)["run_id"]
    assert s["run"].startswith("run-")


def check_run_result(done: Done, s: State) -> None:
    result = out(done)
    assert result["id"] == s["run"] and result["metadata"]["status_v2"] == "succeeded"
    assert result["metadata"]["application_instance_id"] == "staging"
    assert result["output"]["solutions"] and result["name"] == "named"


def check_slow_run(done: Done, s: State) -> None:
    s["slow"] = out(done)["run_id"]


def check_canceled(done: Done, s: State) -> None:
    assert done.returncode == 0, done.stdout + done.stderr

    def status() -> str:
        info = out(
            s["shell"].nextmv("cloud", "run", "information", "-a", s["app"], "-r", s["slow"])
        )
        return str(info["metadata"]["status_v2"])

    assert wait_for(lambda: status() == "canceled", timeout=30)


def check_upload(done: Done, s: State) -> None:
    """The URL has the scheme and host the CLI used, and takes a PUT over https."""
    answer = out(done)
    assert answer["upload_url"].startswith(f"{s['url']}/uploads/")
    put = httpx.put(answer["upload_url"], content=s["input"].read_bytes(), verify=s["ca"])
    assert put.status_code == 200, put.text
    s["upload"] = answer["upload_id"]


def check_input_set(done: Done, s: State) -> None:
    made = out(done)
    assert made["id"] == "set1" and made["name"] == "Set one" and len(made["input_ids"]) == 2
    s["set_input"] = made["input_ids"][0]


def check_batch_done(done: Done, s: State) -> None:
    batch = out(done)
    assert batch["id"] == "b1" and batch["status"] == "completed", batch
    assert batch["number_of_completed_runs"] == 1 and batch["instance_ids"] == ["prod"]
    assert batch["runs"][0]["application_instance_id"] == "prod"


def check_deleted_instance(done: Done, s: State) -> None:
    assert done.returncode == 0, done.stdout + done.stderr
    gone = s["shell"].nextmv("cloud", "instance", "exists", "-a", s["app"], "-i", "staging")
    assert gone.returncode == 1 and json.loads(gone.stdout) == {"exists": False}


def removed(*probe: str) -> Callable[[Done, State], None]:
    """The command says it deleted, and ``probe`` (a command) no longer finds the thing."""

    def check(done: Done, s: State) -> None:
        assert done.returncode == 0 and "deleted successfully" in done.stderr, done.stderr
        args = shlex.split(" ".join(probe).format(**{k: str(v) for k, v in s.items()}))
        after = s["shell"].nextmv("cloud", *args)
        assert after.returncode == 1 and "not found" in after.stderr, after.stdout + after.stderr

    return check


def check_clone(done: Done, s: State) -> None:
    clone = out(done)["run_id"]
    assert clone != s["run"]
    info = out(s["shell"].nextmv("cloud", "run", "information", "-a", s["app"], "-r", clone))
    assert info["name"] == "cloned" and info["metadata"]["application_instance_id"] == "staging"


def check_tracked(done: Done, s: State) -> None:
    """A tracked run is recorded as given: finished, with its own output, nothing run."""
    s["tracked"] = out(done)["run_id"]
    got = out(s["shell"].nextmv("cloud", "run", "get", "-a", s["app"], "-r", s["tracked"]))
    assert got["metadata"]["status_v2"] == "succeeded", got["metadata"]
    assert got["output"] == json.loads(s["tracked_output"].read_text())
    assert got["metadata"]["duration"] == 1234


def check_compared(done: Done, s: State) -> None:
    """Metrics side by side: the executed run's value and the tracked run's 7."""
    got = out(done)
    assert got["run_ids"] == [s["run"], s["tracked"]]
    values = got["metrics"]["result.value"]
    assert values[s["tracked"]] == 7 and values[s["run"]] > 7, values


def expect(**fields: Any) -> Callable[[Done, State], None]:
    """The printed object has these fields (values may name state: ``"{app}"``)."""

    def check(done: Done, s: State) -> None:
        got = out(done)
        for key, value in fields.items():
            want = value.format(**s) if isinstance(value, str) else value
            assert got[key] == want, f"{key}: {got[key]!r} != {want!r}"

    return check


def lists(*wanted: str) -> Callable[[Done, State], None]:
    def check(done: Done, s: State) -> None:
        assert {w.format(**s) for w in wanted} <= ids(done)

    return check


def logs_say(text: str) -> Callable[[Done, State], None]:
    def check(done: Done, s: State) -> None:
        assert done.returncode == 0 and text in done.stdout + done.stderr, done.stderr

    return check


def same_input(done: Done, s: State) -> None:
    assert out(done) == json.loads(s["input"].read_text())


RUNS_OF_BATCH = '{{"input_id": "{set_input}", "instance_id": "prod", "input_set_id": "set1"}}'

CASES: dict[str, Case] = {
    "app create": Case('app create -a {app} -n "CLI app" -d "by nextmv"', expect(id="{app}")),
    "app exists": Case("app exists -a {app}", expect(exists=True)),
    "app get": Case("app get -a {app}", expect(name="CLI app", description="by nextmv")),
    "app update": Case("app update -a {app} -n Renamed", expect(id="{app}", name="Renamed")),
    "app list": Case("app list", lists("{app}")),
    "app push": Case("app push -a {app} -d {knapsack} -y -v v1 -c prod", check_pushed),
    "version list": Case("version list -a {app}", lists("v1")),
    "version get": Case("version get -a {app} -v v1", expect(id="v1", application_id="{app}")),
    "version create": Case("version create -a {app} -v v2 -n Two", expect(id="v2", name="Two")),
    "version update": Case("version update -a {app} -v v2 -n Deux", expect(id="v2", name="Deux")),
    "instance list": Case("instance list -a {app}", lists("prod")),
    "instance get": Case("instance get -a {app} -i prod", expect(id="prod", version_id="v1")),
    "instance create": Case(
        "instance create -a {app} -i staging -v v2 -n Staging", expect(version_id="v2")
    ),
    "instance update": Case(
        "instance update -a {app} -i staging -n Stage", expect(id="staging", name="Stage")
    ),
    "run create --wait": Case(
        "run create -a {app} -i {input} --instance-id prod -w", check_waited_run
    ),
    "run create": Case(
        "run create -a {app} -i {input} --instance-id staging -n named", check_run_created
    ),
    "run get": Case("run get -a {app} -r {run}", check_run_result),
    "run information": Case("run information -a {app} -r {run}", expect(id="{run}")),
    "run input": Case("run input -a {app} -r {run}", same_input),
    "run logs": Case("run logs -a {app} -r {run}", logs_say("solving knapsack: ")),
    "run list": Case("run list -a {app}", lists("{run}")),
    "run track": Case(
        "run track -a {app} -s succeeded -o {tracked_output} --metrics {tracked_metrics}"
        " --duration 1234 --instance-id prod -n tracked",
        check_tracked,
        stdin="input",  # the 1.13.0 CLI reads a non-terminal stdin first, even when empty
    ),
    "run compare": Case("run compare -a {app} -r {run},{tracked} --flat", check_compared),
    "run create (slow)": Case(
        "run create -a {app} -i {input} --instance-id prod -o sleep=60", check_slow_run
    ),
    "run cancel": Case("run cancel -a {app} -r {slow}", check_canceled),
    "upload create": Case("upload create -a {app}", check_upload),
    "managed-input create (upload)": Case(
        'managed-input create -a {app} -u {upload} -m mi-up -n "From upload"',
        expect(id="mi-up", name="From upload"),
    ),
    "managed-input create (run)": Case(
        "managed-input create -a {app} -r {run} -m mi-run", expect(id="mi-run")
    ),
    "managed-input list": Case("managed-input list -a {app}", lists("mi-up", "mi-run")),
    "managed-input get": Case("managed-input get -a {app} -m mi-up", expect(id="mi-up")),
    "input-set create": Case(
        'input-set create -a {app} -s set1 -n "Set one" -r {run} -r {slow}', check_input_set
    ),
    "input-set list": Case("input-set list -a {app}", lists("set1")),
    "input-set get": Case("input-set get -a {app} -s set1", expect(id="set1", name="Set one")),
    "batch create --wait": Case(
        f"batch create -a {{app}} -b b1 -i set1 --runs '{RUNS_OF_BATCH}' -w", check_batch_done
    ),
    "batch get": Case("batch get -a {app} -b b1", expect(id="b1", status="completed")),
    "batch list": Case("batch list -a {app}", lists("b1")),
    "batch metadata": Case("batch metadata -a {app} -b b1", expect(id="b1", number_of_runs=1)),
    "batch update": Case("batch update -a {app} -b b1 -n Bee", expect(id="b1", name="Bee")),
    "batch delete": Case("batch delete -a {app} -b b1 -y", removed("batch get -a {app} -b b1")),
    "input-set update": Case("input-set update -a {app} -s set1 -n Two", expect(name="Two")),
    "input-set delete": Case(
        "input-set delete -a {app} -s set1 -y", removed("input-set get -a {app} -s set1")
    ),
    "managed-input update": Case(
        "managed-input update -a {app} -m mi-up -n Renamed", expect(id="mi-up", name="Renamed")
    ),
    "managed-input delete": Case(
        "managed-input delete -a {app} -m mi-up -y", removed("managed-input get -a {app} -m mi-up")
    ),
    # With its input given: the CLI (1.13.0) reads an empty, non-terminal stdin as no input.
    "run clone": Case(
        "run clone -a {app} -r {run} -i {input} -n cloned --instance-id staging", check_clone
    ),
    "run delete": Case(
        "run delete -a {app} -r {slow} -y", removed("run information -a {app} -r {slow}")
    ),
    "instance delete": Case("instance delete -a {app} -i staging -y", check_deleted_instance),
    "version exists": Case("version exists -a {app} -v v2", expect(exists=True)),
    "version delete": Case(
        "version delete -a {app} -v v2 -y", removed("version get -a {app} -v v2")
    ),
    "app delete": Case("app delete -a {app} -y", removed("app get -a {app}")),
}


@pytest.mark.parametrize("name", list(CASES))
def test_nextmv_cli(name: str, state: State) -> None:
    case = CASES[name]
    args = shlex.split(case.args.format(**{k: str(v) for k, v in state.items()}))
    stdin = Path(state[case.stdin]).read_text() if case.stdin else ""
    case.check(state["shell"].nextmv("cloud", *args, stdin=stdin), state)


def test_the_profile_is_left_as_it_was(state: State) -> None:
    """Runs after the cases: nothing orch or its CLI did rewrote the user's profiles."""
    assert state["config"].read_bytes() == state["config_bytes"]


def test_the_sdk_with_no_arguments_reaches_the_daemon(state: State, shell: Shell) -> None:
    """``cloud.Client()`` in the same shell: endpoint, key and CA all from the exports."""
    sdk = (
        "from nextmv import cloud; c = cloud.Client(); "
        "print(c.url, [a.id for a in cloud.list_applications(c)])"
    )
    done = subprocess.run(
        [sys.executable, "-c", sdk], capture_output=True, text=True, env=shell.env, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[0] == state["url"]


EXISTING = """\
apikey: my-real-cloud-key
endpoint: api.cloud.nextmv.io
work:
  apikey: another-key
  endpoint: api.cloud.nextmv.io
"""


def test_existing_profiles_are_kept_byte_for_byte(tls_daemon: Daemon, tmp_path: Path) -> None:
    """A user's own config.yaml (real cloud profiles) stays as it was; the exports win."""
    config = tmp_path / ".nextmv" / "config.yaml"
    config.parent.mkdir()
    config.write_text(EXISTING)
    sh = Shell(tls_daemon, tmp_path)
    listed = sh.nextmv("cloud", "app", "list")
    assert listed.returncode == 0, listed.stderr
    assert isinstance(json.loads(listed.stdout), list)
    assert "NEXTMV_ENDPOINT" in listed.stderr  # the CLI's own note: the env var wins
    assert config.read_text() == EXISTING


def test_orchs_cli_in_the_same_shell(state: State, shell: Shell) -> None:
    """``ORCH_URL`` (https) and ``ORCH_HOME`` from the exports: verified with orch's CA."""
    argv = [*CLI, "app", "list", "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, env=shell.env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert isinstance(json.loads(done.stdout), list)
    assert shell.env["ORCH_URL"] == state["url"]
