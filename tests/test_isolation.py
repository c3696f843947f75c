"""Hostile models against a live daemon: every escape is tried by a model of its own.

Each model gets what it needs to attack in its input (the daemon's home, port and
pid, another run's input path...), tries one thing, and reports what happened as
JSON on stdout: ``{"escaped": false, "errno": 2}``, or ``{"escaped": true, ...}``
with what it got. The test asserts the attempt failed, the run itself succeeded
(the jail does not get in the way of a model that handles the failure), and,
where the attempt leaves a trace on the host, that there is none. Before each
attempt the test checks on the host that the target is real (the key file exists
and holds the key...), so a wrong path cannot pass for a blocked escape; and
``test_isolation_hosts`` runs the same kind of model with isolation switched off
on an unprivileged daemon, where it does escape.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import MakeDaemon
from tests.helpers import Daemon, create_app, push_dir, run_and_wait, unique, write_app
from tests.hostile import assert_blocked, hostile


@pytest.fixture(scope="module")
def jailed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A daemon of its own: these models try to take it down."""
    home = tmp_path_factory.mktemp("jailed-home")
    secrets_env = {"NEXTMV_API_KEY": "nextmv-secret-env", "ORCH_API_KEY": "orch-secret-env"}
    d = Daemon.start(home, env=secrets_env)
    yield d
    d.stop()


@pytest.fixture
def api(jailed: Daemon) -> Iterator[httpx.Client]:
    with jailed.client() as client:
        yield client


def key_of(d: Daemon) -> str:
    key = (d.home / "api-key").read_text().strip()
    assert len(key) > 16  # the target is real
    return key


# -- the daemon's files ----------------------------------------------------------------


def test_reading_the_key_by_walking_up_from_cwd_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = """
    here = os.getcwd()
    while True:
        for name in ("api-key", "orch.db", "daemon.json"):
            try:
                return open(os.path.join(here, name)).read()
            except FileNotFoundError:
                pass
        if here == "/":
            raise FileNotFoundError(2, "no secret on the way up")
        here = os.path.dirname(here)
    """
    assert_blocked(hostile(api, tmp_path, body, {}), key_of(jailed))


def test_reading_the_key_by_absolute_path_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = 'return open(target["path"]).read()'
    key = key_of(jailed)
    report = hostile(api, tmp_path, body, {"path": str(jailed.home / "api-key")})
    assert_blocked(report, key)


def test_reading_the_key_through_the_daemons_proc_root_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = "return open(f\"/proc/{target['pid']}/root{target['path']}\").read()"
    target = {"pid": jailed.process.pid, "path": str(jailed.home / "api-key")}
    assert_blocked(hostile(api, tmp_path, body, target), key_of(jailed))


@pytest.mark.parametrize("name", ["orch.db", "daemon.json"])
def test_reading_the_database_and_daemon_file_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path, name: str
) -> None:
    path = jailed.home / name
    assert path.stat().st_size > 0
    body = 'return open(target["path"], "rb").read(200)'
    assert_blocked(hostile(api, tmp_path, body, {"path": str(path)}))


def test_listing_the_home_shows_nothing_of_the_daemon(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = """
    seen = set(os.listdir(target["home"]))
    if seen & {"api-key", "orch.db", "daemon.json", "blobs", "uploads", "push"}:
        return sorted(seen)
    raise PermissionError(13, f"only {sorted(seen)}")
    """
    assert {"api-key", "blobs", "uploads"} <= set(os.listdir(jailed.home))
    assert_blocked(hostile(api, tmp_path, body, {"home": str(jailed.home)}))


def test_reading_another_runs_input_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    other = create_app(api)
    push_dir(api, other, write_app(tmp_path / "other", "print('{}')\n"), tmp_path)
    run = run_and_wait(api, other, {"input": {"secret": "other-run-secret-4711"}})
    path = jailed.home / "runs" / run["id"] / "input"
    assert "other-run-secret-4711" in path.read_text()
    body = 'return open(target["path"]).read()'
    assert_blocked(hostile(api, tmp_path, body, {"path": str(path)}), "other-run-secret-4711")


def test_reading_another_apps_package_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    other = create_app(api)
    push_dir(api, other, write_app(tmp_path / "pkg", "# package-secret-0815\n"), tmp_path)
    sha = api.get(f"/v1/applications/{other}/executable").json()["id"]
    path = jailed.home / "executables" / sha / "main.py"
    assert "package-secret-0815" in path.read_text()
    body = 'return open(target["path"]).read()'
    assert_blocked(hostile(api, tmp_path, body, {"path": str(path)}), "package-secret-0815")


# -- writing where it must not ----------------------------------------------------------


def test_writing_into_its_own_package_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = """
    package = os.path.dirname(os.path.realpath("main.py"))
    with open(os.path.join(package, "planted.py"), "w") as fh:
        fh.write("planted")
    return package
    """
    report = hostile(api, tmp_path, body, {})
    assert_blocked(report)
    assert not list((jailed.home / "executables").glob("*/planted.py"))


def test_writing_into_another_apps_package_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    other = create_app(api)
    push_dir(api, other, write_app(tmp_path / "victim", "print('{}')\n"), tmp_path)
    sha = api.get(f"/v1/applications/{other}/executable").json()["id"]
    folder = jailed.home / "executables" / sha
    assert (folder / "main.py").is_file()
    body = """
    with open(os.path.join(target["folder"], "main.py"), "a") as fh:
        fh.write("import os; os.system('echo owned')")
    """
    assert_blocked(hostile(api, tmp_path, body, {"folder": str(folder)}))
    assert (folder / "main.py").read_text() == "print('{}')\n"
    assert run_and_wait(api, other, {"input": {}})["metadata"]["status_v2"] == "succeeded"


def test_writing_into_its_python_environment_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    body = """
    with open(os.path.join(sys.prefix, "planted.pth"), "w") as fh:
        fh.write("import os")
    return sys.prefix
    """
    report = hostile(api, tmp_path, body, {})
    assert_blocked(report)


@pytest.mark.parametrize(
    "where", ["home", "runs", "root", "etc", "usr", "var-tmp", "tmp"], ids=lambda w: w
)
def test_writing_outside_its_folders_leaves_no_file(
    api: httpx.Client, jailed: Daemon, tmp_path: Path, where: str
) -> None:
    name = f"planted-{unique(where)}"
    folders = {
        "home": jailed.home,
        "runs": jailed.home / "runs",
        "root": Path("/root"),
        "etc": Path("/etc"),
        "usr": Path("/usr/local"),
        "var-tmp": Path("/var/tmp"),
        "tmp": Path("/tmp"),
    }
    path = folders[where] / name
    body = 'open(target["path"], "w").write("planted")'
    report = hostile(api, tmp_path, body, {"path": str(path)})
    assert not path.exists()
    if where == "tmp":  # the model's /tmp is a tmpfs of its own: the write lands there
        assert report["escaped"] is True
    else:
        assert_blocked(report)


def test_every_mount_beneath_the_system_folders_is_read_only(
    api: httpx.Client, tmp_path: Path
) -> None:
    """A remount made only the top of each recursive bind read-only: ``/sys``'s own mounts
    (``/sys/kernel/tracing``, ``/sys/fs/bpf``...) stayed writable in the view, held back by
    the run's uid and Landlock alone."""
    body = """
    beneath, writable = 0, []
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        point, options = fields[4], fields[5].split(",")
        if point.split("/")[1] in ("usr", "etc", "sys"):
            beneath += point.startswith("/sys/")
            writable += [] if "ro" in options else [point]
    return f"{beneath} {' '.join(writable[:3])}"
    """
    report = hostile(api, tmp_path, body, {})
    beneath, *writable = report["got"].strip("'").split()  # the harness reports repr(got)
    assert int(beneath) > 0, "the host has mounts under /sys: the view shows some"
    assert writable == []


# -- the daemon's port and processes ------------------------------------------------------


def test_connecting_to_the_daemons_port_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    port = int(jailed.url.rsplit(":", 1)[1])
    body = 'return socket.create_connection(("127.0.0.1", target["port"]), timeout=5)'
    assert_blocked(hostile(api, tmp_path, body, {"port": port}))


def test_reaching_healthz_fails(api: httpx.Client, jailed: Daemon, tmp_path: Path) -> None:
    assert httpx.get(jailed.url + "/healthz").status_code == 200
    body = 'return urllib.request.urlopen(target["url"] + "/healthz", timeout=5).read()'
    report = hostile(api, tmp_path, body, {"url": jailed.url})
    assert report["escaped"] is False, report  # urllib wraps the OSError: no errno to check


@pytest.mark.parametrize("name", ["environ", "cmdline", "status"])
def test_reading_the_daemons_proc_files_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path, name: str
) -> None:
    pid = jailed.process.pid
    assert Path(f"/proc/{pid}/{name}").read_bytes()
    body = 'return open(f"/proc/{target[\'pid\']}/" + target["name"], "rb").read()'
    report = hostile(api, tmp_path, body, {"pid": pid, "name": name})
    assert_blocked(report, "nextmv-secret-env")


def test_signalling_the_daemon_fails(api: httpx.Client, jailed: Daemon, tmp_path: Path) -> None:
    body = 'os.kill(target["pid"], signal.SIGKILL)'
    assert_blocked(hostile(api, tmp_path, body, {"pid": jailed.process.pid}))
    assert jailed.process.poll() is None
    assert httpx.get(jailed.url + "/healthz").status_code == 200


def test_the_daemons_pid_is_invisible(api: httpx.Client, jailed: Daemon, tmp_path: Path) -> None:
    body = """
    pid = target["pid"]
    if os.path.exists(f"/proc/{pid}") or str(pid) in os.listdir("/proc"):
        return "visible"
    raise FileNotFoundError(2, f"{pid} not in /proc")
    """
    assert_blocked(hostile(api, tmp_path, body, {"pid": jailed.process.pid}))


def test_the_model_sees_only_its_own_processes_and_is_not_root(
    api: httpx.Client, tmp_path: Path
) -> None:
    body = """
    mine = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    if os.getuid() == 0 or os.getgid() == 0 or os.getgroups() or mine != [os.getpid()]:
        return {"uid": os.getuid(), "groups": os.getgroups(), "pids": mine}
    raise PermissionError(13, f"uid {os.getuid()}, only pid {mine}")
    """
    assert_blocked(hostile(api, tmp_path, body, {}))


def test_the_daemons_secrets_are_not_in_the_environment(api: httpx.Client, tmp_path: Path) -> None:
    body = """
    leaked = {k: v for k, v in os.environ.items() if "secret" in v or k.endswith("API_KEY")}
    if leaked:
        return leaked
    raise PermissionError(13, "nothing")
    """
    assert_blocked(hostile(api, tmp_path, body, {}), "secret-env")


# -- the disk ------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["work", "tmpdir"])
def test_allocating_disk_without_writing_fails(
    api: httpx.Client, jailed: Daemon, tmp_path: Path, where: str
) -> None:
    """``fallocate`` reserves ~1 GiB per millisecond, faster than the ``disk_mb`` sampler
    assumes a run can grow: refused as by a file system without it (``EOPNOTSUPP``);
    ``posix_fallocate`` then writes instead (``tests/test_seccomp.py``)."""
    body = """
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    folder = "." if target["where"] == "work" else os.environ["TMPDIR"]
    fd = os.open(os.path.join(folder, "reserved"), os.O_CREAT | os.O_WRONLY, 0o644)
    if libc.fallocate(fd, 0, ctypes.c_long(0), ctypes.c_long(8 << 20)) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))
    return os.fstat(fd).st_blocks * 512
    """
    report = hostile(api, tmp_path, body, {"where": where})
    assert (report["escaped"], report["errno"]) == (False, errno.EOPNOTSUPP), report


# -- what a legitimate model still does ---------------------------------------------------

LEGIT = """\
import json, os, sys, tempfile
import nextmv  # from the daemon's environment
data = json.load(sys.stdin)
with tempfile.NamedTemporaryFile("w", delete=False) as fh:  # TMPDIR
    fh.write("scratch")
scratch = open(fh.name).read()
cache = os.path.join(os.path.expanduser("~"), ".cache", "model")
os.makedirs(cache, exist_ok=True)
open(os.path.join(cache, "c"), "w").write("cached")
open("notes.txt", "w").write("in the working folder")
print(json.dumps({
    "items": len(data["items"]),
    "scratch": scratch,
    "tmp": fh.name.startswith(os.environ["TMPDIR"]),
    "notes": open("notes.txt").read(),
    "nextmv": nextmv.__version__,
    "statistics": {"result": {"value": sum(data["items"])}},
}))
"""


def test_a_legitimate_model_reads_writes_and_imports(api: httpx.Client, tmp_path: Path) -> None:
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "legit", LEGIT), tmp_path)
    res = run_and_wait(api, app_id, {"input": {"items": [3, 4, 5]}})
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    out = res["output"]
    assert (out["items"], out["scratch"], out["tmp"]) == (3, "scratch", True)
    assert out["notes"] == "in the working folder" and out["nextmv"]
    assert res["metadata"]["statistics"] == {"result": {"value": 12}}
    health = api.get("/healthz").json()["isolation"]
    assert res["metadata"]["isolation"] == health["protections"]  # recorded with the run
    assert "landlock-fs" in res["metadata"]["isolation"]


MULTI = """\
import json, os, pathlib
rows = {name: open(os.path.join("inputs", name)).read() for name in sorted(os.listdir("inputs"))}
try:
    open(os.path.join("inputs", "planted"), "w").write("x")
    planted = True
except OSError:
    planted = False
out = pathlib.Path("outputs")
(out / "solutions").mkdir(parents=True, exist_ok=True)
(out / "solutions" / "echo.json").write_text(json.dumps(rows))
(out / "statistics.json").write_text(json.dumps({"result": {"value": len(rows)},
                                                 "custom": {"planted": planted}}))
"""


def test_a_multi_file_model_reads_inputs_and_writes_outputs_only(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    manifest = (
        "type: python\nruntime: r\nfiles: [main.py]\n"
        "configuration:\n  content:\n    format: multi-file\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "multi", MULTI, manifest), tmp_path)
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    archive = tmp_path / "in.tar.gz"
    _tar(archive, {"a.csv": "1,2\n", "b.csv": "3,4\n"})
    assert httpx.put(up["upload_url"], content=archive.read_bytes()).status_code == 200
    r = api.post(f"/v1/applications/{app_id}/runs", json={"upload_id": up["upload_id"]})
    res = api.get(f"/v1/applications/{app_id}/runs/{r.json()['run_id']}", params={"wait": 60})
    meta = res.json()["metadata"]
    assert meta["status_v2"] == "succeeded", meta["error"]
    assert meta["statistics"] == {"result": {"value": 2}, "custom": {"planted": False}}
    solution = jailed.home / "runs" / res.json()["id"] / "work" / "outputs" / "solutions"
    assert json.loads((solution / "echo.json").read_text()) == {"a.csv": "1,2\n", "b.csv": "3,4\n"}


ENV_MAIN = """\
import json, os, sys, six
try:
    open(os.path.join(os.path.dirname(six.__file__), "planted.py"), "w").write("x")
    planted = True
except OSError:
    planted = False
print(json.dumps({"six": six.__version__, "prefix": sys.prefix, "planted": planted}))
"""


def test_a_model_imports_from_its_built_environment_and_cannot_change_it(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    manifest = (
        "type: python\nruntime: r\nfiles: [main.py, requirements.txt]\n"
        "python:\n  pip-requirements: requirements.txt\n"
    )
    folder = write_app(tmp_path / "with-env", ENV_MAIN, manifest)
    (folder / "requirements.txt").write_text("six==1.16.0\n")
    app_id = create_app(api)
    push_dir(api, app_id, folder, tmp_path)
    res = run_and_wait(api, app_id, {"input": {}}, timeout=300)
    assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
    assert res["output"]["six"] == "1.16.0" and res["output"]["planted"] is False
    assert res["output"]["prefix"].startswith(str(jailed.home / "envs"))


def test_healthz_and_daemon_status_say_which_protections_apply(jailed: Daemon) -> None:
    isolation = httpx.get(jailed.url + "/healthz").json()["isolation"]
    assert isolation["refused"] is None and isolation["landlock_abi"] >= 0
    expected = {"landlock-fs", "mount-ns", "uid", "no-new-privs"} if os.geteuid() == 0 else set()
    assert expected <= set(isolation["protections"])
    argv = [sys.executable, "-m", "orchestrator", "daemon", "status", "--json", "--home",
            str(jailed.home)]  # fmt: skip
    status = json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)
    shown = ", ".join(isolation["protections"])
    if any(p.startswith("landlock") for p in isolation["protections"]):
        shown += f" (Landlock ABI {isolation['landlock_abi']})"  # what landlock-* can do
    assert status["isolation"] == shown


def _tar(path: Path, files: dict[str, str]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


LINKER = """\
import json, os
target = json.load(open(os.path.join("inputs", "target.json")))
os.rmdir("outputs")
os.symlink(target["home"], "outputs")  # the daemon would archive its own home
os.symlink(target["daemon_json"], "statistics.json")  # and read this as statistics
"""


def test_links_left_in_the_working_folder_do_not_make_the_daemon_read_its_files(
    api: httpx.Client, jailed: Daemon, tmp_path: Path
) -> None:
    manifest = (
        "type: python\nruntime: r\nfiles: [main.py]\n"
        "configuration:\n  content:\n    format: multi-file\n"
        "  multi_file:\n    output:\n      statistics: statistics.json\n"
    )
    app_id = create_app(api)
    push_dir(api, app_id, write_app(tmp_path / "linker", LINKER, manifest), tmp_path)
    target = {"home": str(jailed.home), "daemon_json": str(jailed.home / "daemon.json")}
    archive = tmp_path / "in.tar.gz"
    _tar(archive, {"target.json": json.dumps(target)})
    up = api.post(f"/v1/applications/{app_id}/runs/uploadurl").json()
    assert httpx.put(up["upload_url"], content=archive.read_bytes()).status_code == 200
    run_id = api.post(f"/v1/applications/{app_id}/runs", json={"upload_id": up["upload_id"]})
    res = api.get(f"/v1/applications/{app_id}/runs/{run_id.json()['run_id']}", params={"wait": 60})
    meta = res.json()["metadata"]
    assert meta["status_v2"] == "succeeded", meta["error"]
    assert "url" not in json.dumps(meta.get("statistics") or {})  # daemon.json holds the url
    assert meta["output_size"] == 0
    output = httpx.get(res.json()["output"]["url"]).content
    with tarfile.open(fileobj=io.BytesIO(output)) as tar:
        assert tar.getnames() == []  # not the daemon's home


def test_read_paths_under_tmp_stay_visible_beneath_the_private_tmp(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    """A model's ``/tmp`` is a tmpfs of its own; what it may read under the host's
    ``/tmp`` (``read_paths``, or orch itself installed there, as a clone in ``/tmp``
    is) is bound again on top of it, read-only."""
    shared = Path("/tmp") / unique("orch-shared")
    shared.mkdir()
    try:
        (shared / "licence.txt").write_text("granted")
        d = make_daemon(config=f'[isolation]\nread_paths = ["{shared}"]\n')
        with d.client() as client:
            app_id = create_app(client)
            main = (
                "import json, pathlib, sys\n"
                f"p = pathlib.Path({str(shared)!r})\n"
                "try:\n    (p / 'planted').write_text('x'); planted = True\n"
                "except OSError:\n    planted = False\n"
                "json.dump({'text': (p / 'licence.txt').read_text(), 'planted': planted,"
                " 'tmp': sorted(x.name for x in pathlib.Path('/tmp').iterdir())}, sys.stdout)\n"
            )
            push_dir(client, app_id, write_app(tmp_path / "reader", main), tmp_path)
            res = run_and_wait(client, app_id, {"input": {}})
        assert res["metadata"]["status_v2"] == "succeeded", res["metadata"]["error"]
        assert res["output"]["text"] == "granted" and res["output"]["planted"] is False
        assert shared.name in res["output"]["tmp"]
        assert not (shared / "planted").exists()
    finally:
        for child in shared.iterdir():
            child.unlink()
        shared.rmdir()
