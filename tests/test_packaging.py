"""Manifest parsing, package building, hostile-package unpacking and Python envs.

Everything is real: files in tmp_path, tar archives crafted member by member, a
real installer against PyPI for the env tests (shared across the module).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib.util
import io
import json
import os
import re
import stat
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from orchestrator import environments
from orchestrator.config import Settings
from orchestrator.errors import TooLarge, Unprocessable
from orchestrator.home import Home
from orchestrator.packaging import build, bytecode, pyenv
from orchestrator.packaging.build import FileChanged, build_package
from orchestrator.packaging.manifest import Manifest, MultiFile
from orchestrator.packaging.pyenv import (
    EnvBuild,
    build_env,
    daemon_site_packages,
    env_key,
    requirements_of,
    shared_env,
)
from orchestrator.packaging.unpack import inspect_and_unpack, safe_extract
from orchestrator.store import Store
from tests.helpers import write_tree

PY_MANIFEST = "type: python\nfiles: [main.py]\n"
MiB = 1024 * 1024


def member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def make_tar(
    path: Path, members: list[tuple[tarfile.TarInfo, bytes]], *, gz: bool = True, app: bool = True
) -> Path:
    """A package with a valid python app (unless ``app=False``) plus ``members``."""
    base = [member("app.yaml", PY_MANIFEST.encode()), member("main.py", b"print(1)\n")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in (base if app else []) + members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(buf.getvalue()) if gz else buf.getvalue())
    return path


def unpack(archive: Path, dest: Path, max_bytes: int = 10 * MiB, max_files: int = 100):
    return inspect_and_unpack(archive, dest, max_bytes=max_bytes, max_files=max_files)


# --- manifest ---------------------------------------------------------------------------------


def test_minimal_manifest_gets_defaults() -> None:
    m = Manifest.from_yaml(PY_MANIFEST)
    assert (m.type, m.entrypoint, m.content_format, m.cwd) == ("python", "main.py", "json", None)
    assert m.runtime == "ghcr.io/nextmv-io/runtime/python:3.11"
    assert m.options == [] and not m.strict_options and m.pip_requirements is None
    assert m.raw == {"type": "python", "files": ["main.py"]}


def test_full_manifest() -> None:
    m = Manifest.from_yaml(
        """
type: go
runtime: ghcr.io/nextmv-io/runtime/default:latest
pre-push: go build -o bin/app .
build: {command: make, environment: {A: 1}}
files: [bin/app, "!*.go"]
python: {pip-requirements: [six, "nextmv>=1"]}
execution: {entrypoint: ./bin/app, cwd: ./bin/}
released: 2024-05-01
configuration:
  content:
    format: multi-file
    multi-file:
      input: {path: data/in/}
      output: {solutions: out/sol, metrics: out/m.json}
  options:
    strict: true
    validation: {enforce: all}
    items:
      - {name: duration, type: string, default: 30s, ui: {control_type: input}}
      - name: iterations
        option_type: int
        default: 10
        required: false
        additional_attributes: {min: 0, max: 100, step: 1}
      - {name: ratio, option_type: float, default: 1}
      - {name: verbose, option_type: bool, default: "true", description: Talk.}
"""
    )
    assert (m.entrypoint, m.cwd, m.pip_requirements) == ("bin/app", "bin", ["six", "nextmv>=1"])
    assert m.multi_file == MultiFile(
        input_path="data/in", solutions="out/sol", metrics="out/m.json"
    )
    assert m.strict_options and m.enforce_options
    assert [(o.name, o.option_type) for o in m.options] == [
        ("duration", "string"),
        ("iterations", "int"),
        ("ratio", "float"),
        ("verbose", "bool"),
    ]
    spec = m.option_spec("iterations")
    assert (
        spec is not None
        and spec.default == 10
        and spec.additional_attributes
        == {
            "min": 0,
            "max": 100,
            "step": 1,
        }
    )
    assert m.option_spec("nope") is None
    assert m.raw["pre-push"] == "go build -o bin/app ." and m.raw["released"] == "2024-05-01"
    json.dumps(m.raw)  # stored as JSON as is


OPTS = "type: python\nfiles: [main.py]\nconfiguration:\n  options:\n    items:\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("type: python\nfiles: [main.py\n", "app.yaml is not valid YAML"),
        ("- a\n- b\n", "app.yaml must be a mapping of settings, but it is a list"),
        ("", "app.yaml must be a mapping of settings, but it is empty"),
        ("files: [main.py]", "app.yaml: type is required (one of python, go, java, binary)"),
        ("type: rust\nfiles: [x]", "app.yaml: type 'rust' is not one of python, go, java, binary"),
        ("type: python", "app.yaml: files is required"),
        ("type: python\nfiles: main.py", "app.yaml: files must be a non-empty list of globs"),
        ("type: python\nfiles: []", "app.yaml: files must be a non-empty list of globs"),
        ("type: python\nfiles: [main.py, 3]", "app.yaml: files[1] must be a non-empty glob"),
        (
            OPTS + "    - {name: a, option_type: int}\n    - {name: b, option_type: int}\n"
            "    - {name: c, option_type: integer}\n",
            "app.yaml: configuration.options.items[2].option_type 'integer' is not one of "
            "bool, float, int, string",
        ),
        (OPTS + "    - {name: a, type: str}\n", "items[0].type 'str' is not one of"),
        (OPTS + "    - {name: a}\n", "items[0].option_type is required"),
        (OPTS + "    - {option_type: int}\n", "configuration.options.items[0].name is required"),
        (OPTS + "    - {name: a, option_type: int, default: abc}\n", "default 'abc' is not a "),
        (OPTS + "    - {name: a, option_type: int, default: 1.5}\n", "1.5 is not a valid int"),
        (OPTS + "    - {name: a, option_type: bool, default: 3}\n", "3 is not a valid bool"),
        (OPTS + "    - {name: a, option_type: float, default: [1]}\n", "not a valid float"),
        (OPTS + "    - {name: a, option_type: bool, required: 'yes'}\n", "must be true or false"),
        (OPTS + "    - {name: a, type: int}\n    - {name: a, type: int}\n", "'a' is repeated"),
        ("type: python\nfiles: [x]\nexecution: {cwd: ../up}", "execution.cwd '../up' points out"),
        ("type: go\nfiles: [x]\nexecution: {entrypoint: /bin/sh}", "must be a relative path"),
        ("type: java\nfiles: [x]\nconfiguration: {content: {format: xml}}", "format 'xml' is not"),
        ("type: python\nfiles: [x]\npython: {pip-requirements: 3}", "python.pip-requirements"),
        ("type: python\nfiles: [x]\nconfiguration: [1]", "configuration must be a mapping"),
        ("type: python\nfiles: [x]\nruntime: 3", "runtime must be a non-empty string"),
    ],
)
def test_malformed_manifests(text: str, message: str) -> None:
    with pytest.raises(Unprocessable) as info:
        Manifest.from_yaml(text)
    assert message in info.value.message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "type: python\nfiles: [main.py\n",
            "expected ',' or ']', but got '<stream end>' at line 3, column 1 "
            "(while parsing a flow sequence at line 2, column 8)",
        ),
        (
            "type: python\nfiles:\n\t- main.py\n",
            "found character '\\t' that cannot start any token at line 3, column 1 "
            "(while scanning for the next token)",
        ),
        (
            "type: python\n\x07\n",
            "unacceptable character #x0007: special characters are not allowed at line 2, column 1",
        ),
    ],
)
def test_invalid_yaml_is_one_line_saying_where(text: str, message: str) -> None:
    with pytest.raises(Unprocessable) as info:
        Manifest.from_yaml(text)
    assert info.value.message == f"app.yaml is not valid YAML: {message}"


def test_an_app_yaml_that_is_not_utf8_says_where() -> None:
    with pytest.raises(Unprocessable) as info:
        Manifest.from_yaml(b"type: python\nfiles: [caf\xe9.py]\n")
    assert info.value.message == (
        "app.yaml is not UTF-8 text: byte 0xe9 at line 2, column 12 (invalid continuation byte)"
    )


def test_yaml_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    with pytest.raises(Unprocessable, match="more than 100000 values"):
        Manifest.from_yaml(PY_MANIFEST + "\n".join(lines))


def test_entrypoint_argv() -> None:
    def argv(text: str, **kw: Path) -> list[str]:
        return Manifest.from_yaml(text).entrypoint_argv("/py", **kw)

    assert argv(PY_MANIFEST) == ["/py", "main.py"]
    assert argv("type: go\nfiles: [main]") == ["./main"]
    assert argv("type: binary\nfiles: [x]\nexecution: {entrypoint: bin/x}") == ["./bin/x"]
    assert argv("type: java\nfiles: [main.jar]") == ["java", "-jar", "main.jar"]
    assert argv("type: go\nfiles: [main]", package_dir=Path("/pkg")) == ["/pkg/main"]


def test_sdk_templates_parse() -> None:
    spec = importlib.util.find_spec("nextmv")
    if spec is None or spec.origin is None:
        pytest.skip("nextmv is not installed")
    templates = Path(spec.origin).parent / "templates"
    manifests = sorted(templates.rglob("*.yaml"))
    if not manifests:
        pytest.skip("this nextmv has no templates folder")
    assert any(p.name == "app.yaml" for p in manifests)
    for path in manifests:
        Manifest.load(path)


# --- build ------------------------------------------------------------------------------------


def sample_app(root: Path, manifest: str) -> Path:
    return write_tree(
        root,
        {
            "app.yaml": manifest,
            "main.py": "print('hi')\n",
            "requirements.txt": "six\n",
            "util/helpers.py": "X = 1\n",
            "util/__pycache__/helpers.cpython-311.pyc": b"\0",
            "data/a.json": "{}",
            "data/secret.json": "{}",
            "data/deep/b.csv": "x\n",
            "data/.hidden": "h",
            "notes.md": "n",
            ".env": "TOKEN=1",
            ".git/config": "[core]",
            ".venv/bin/python": "",
            "lib/x/y/z.txt": "z",
            "lib/x/skip_me.txt": "s",
        },
    )


SELECT = """type: python
python: {pip-requirements: requirements.txt}
files: ["*.py", "util", "data/", "!data/secret.json", "lib/**/*.txt", "!**/skip_*"]
"""


def test_build_selects_with_globs_and_excludes(tmp_path: Path) -> None:
    app = sample_app(tmp_path / "app", SELECT)
    result = build_package(app, tmp_path / "pkg.tar.gz")
    assert result.files == [
        "app.yaml",
        "data/.hidden",
        "data/a.json",
        "data/deep/b.csv",
        "lib/x/y/z.txt",
        "main.py",
        "requirements.txt",
        "util/helpers.py",
    ]
    with tarfile.open(result.path) as tar:
        assert sorted(tar.getnames()) == result.files
        info = tar.getmember("main.py")
        assert (info.mtime, info.uid, info.uname, info.mode) == (0, 0, "", 0o644)


def test_build_is_deterministic(tmp_path: Path) -> None:
    app = sample_app(tmp_path / "app", SELECT)
    first = build_package(app, tmp_path / "one.tar.gz")
    os.utime(app / "main.py", (1, 1))
    (app / "main.py").chmod(0o600)  # not an exec-bit change: same package
    second = build_package(app, tmp_path / "two.tar.gz")
    assert first.sha256 == second.sha256
    assert first.sha256 == hashlib.sha256(first.path.read_bytes()).hexdigest()
    assert first.size == first.path.stat().st_size
    (app / "main.py").write_text("print('changed')\n")
    assert build_package(app, tmp_path / "three.tar.gz").sha256 != first.sha256


def test_build_does_not_package_itself(tmp_path: Path) -> None:
    app = write_tree(tmp_path, {"app.yaml": "type: python\nfiles: ['**']\n", "main.py": ""})
    first = build_package(app, app / "pkg.tar.gz")
    second = build_package(app, app / "pkg.tar.gz")
    assert first.sha256 == second.sha256 and "pkg.tar.gz" not in second.files


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("type: python\nfiles: [main.py, 'x/*.py']", "files: pattern 'x/*.py' matched nothing"),
        ("type: go\nfiles: [main.py]", "the entrypoint 'main' is not among the files"),
        ("type: python\nfiles: [main.py]\npython: {pip-requirements: r.txt}", "'r.txt' does not"),
    ],
)
def test_build_errors(tmp_path: Path, manifest: str, message: str) -> None:
    app = write_tree(tmp_path / "app", {"app.yaml": manifest, "main.py": ""})
    with pytest.raises(Unprocessable, match=re.escape(message)):
        build_package(app, tmp_path / "pkg.tar.gz")
    assert not (tmp_path / "pkg.tar.gz").exists()


@pytest.mark.parametrize(
    "change",
    [b"", b"x" * (2 * MiB), b"y" * MiB],
    ids=["shrinks", "grows", "same-size"],
)
def test_a_file_that_changes_while_packaged_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: bytes
) -> None:
    files = {"app.yaml": "type: python\nfiles: ['**']\n", "main.py": "", "data/big.bin": b"x" * MiB}
    app = write_tree(tmp_path / "app", files)
    os.utime(app / "data/big.bin", (1_000_000_000, 1_000_000_000))  # a save changes it
    add = tarfile.TarFile.addfile

    def saved_meanwhile(tar: tarfile.TarFile, info: tarfile.TarInfo, fileobj: object) -> None:
        if info.name == "data/big.bin":
            (app / "data/big.bin").write_bytes(change)
        add(tar, info, fileobj)  # type: ignore[arg-type]

    monkeypatch.setattr(tarfile.TarFile, "addfile", saved_meanwhile)
    with pytest.raises(FileChanged) as info:
        build_package(app, tmp_path / "out" / "pkg.tar.gz")
    assert info.value.message == "data/big.bin changed while it was packaged; push again"
    assert list((tmp_path / "out").iterdir()) == []


def test_a_file_removed_before_it_is_packaged_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = {"app.yaml": "type: python\nfiles: ['**']\n", "main.py": "", "swap.tmp": "x"}
    app = write_tree(tmp_path / "app", files)
    check = build.check_selected

    def removed_meanwhile(root: Path, names: list[str]) -> None:
        check(root, names)
        if "swap.tmp" in names:  # the selection's check (app.yaml's own comes first)
            (app / "swap.tmp").unlink()  # an editor's temporary file, gone after its save

    monkeypatch.setattr(build, "check_selected", removed_meanwhile)
    with pytest.raises(
        FileChanged, match=r"^swap\.tmp was removed while it was packaged; push again$"
    ):
        build_package(app, tmp_path / "pkg.tar.gz")


def test_build_then_unpack_round_trip(tmp_path: Path) -> None:
    app = write_tree(tmp_path / "app", {"app.yaml": "type: go\nfiles: [main, conf/]\n"})
    write_tree(app, {"main": "#!/bin/sh\necho '{}'\n", "conf/c.json": "{}"})
    (app / "main").chmod(0o755)
    built = build_package(app, tmp_path / "pkg.tar.gz")
    dest = tmp_path / "executables" / built.sha256
    result = unpack(built.path, dest)
    assert (result.files, result.manifest.type) == (3, "go")
    assert stat.S_IMODE((dest / "main").stat().st_mode) == 0o555
    assert stat.S_IMODE((dest / "conf/c.json").stat().st_mode) == 0o444
    assert stat.S_IMODE((dest / "conf").stat().st_mode) == 0o555
    assert stat.S_IMODE(dest.stat().st_mode) == 0o555
    run = subprocess.run(result.manifest.entrypoint_argv("py"), cwd=dest, capture_output=True)
    assert run.stdout == b"{}\n"
    if os.geteuid() != 0:
        with pytest.raises(PermissionError):
            (dest / "conf/c.json").write_text("tampered")
        with pytest.raises(PermissionError):
            (dest / "new.txt").write_text("x")


# --- unpack -----------------------------------------------------------------------------------


def assert_rejected(archive: Path, error: type[Exception], match: str, **limits: int) -> None:
    """The package is refused with ``match`` and nothing is left next to ``dest``."""
    parent = archive.parent / "executables"
    parent.mkdir()
    with pytest.raises(error, match=match):
        unpack(archive, parent / "sha", **limits)
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([member("../x", b"x")], "member '../x' has a '..' path component"),
        ([member("a/../../x", b"x")], "has a '..' path component"),
        ([member("/etc/passwd", b"x")], "member '/etc/passwd' has an absolute path"),
        ([member("etc", type=tarfile.SYMTYPE, linkname="/etc")], "to the absolute path '/etc'"),
        (
            [member("a/b", type=tarfile.SYMTYPE, linkname="../../x")],
            "symlink 'a/b' points to '../../x', outside the package",
        ),
        (
            [
                member("s", type=tarfile.SYMTYPE, linkname="."),
                member("x", type=tarfile.SYMTYPE, linkname="s/.."),
            ],
            "symlink 'x' resolves to a path outside the package",
        ),
        (
            [
                member("d", type=tarfile.DIRTYPE),
                member("l", type=tarfile.SYMTYPE, linkname="d"),
                member("l/evil.py", b"x"),
            ],
            "'l/evil.py' would be written inside 'l', which is a symlink",
        ),
        (
            [member("pw", type=tarfile.LNKTYPE, linkname="/etc/passwd")],
            "hard link 'pw' points to '/etc/passwd', which is not a regular file earlier",
        ),
        ([member("up", type=tarfile.LNKTYPE, linkname="../x")], "hard link 'up' points to"),
        (
            [
                member("s", type=tarfile.SYMTYPE, linkname="main.py"),
                member("h", type=tarfile.LNKTYPE, linkname="s"),
            ],
            "hard link 'h' points to 's', which is not a regular file",
        ),
        ([member("tty", type=tarfile.CHRTYPE)], "member 'tty' is a character device"),
        ([member("disk", type=tarfile.BLKTYPE)], "member 'disk' is a block device"),
        ([member("pipe", type=tarfile.FIFOTYPE)], "member 'pipe' is a FIFO"),
        ([member("d", type=tarfile.DIRTYPE), member("d", b"x")], "'d' would replace a directory"),
        ([member("util/x.py"), member("util", b"x")], "'util' would replace a directory"),
        ([member("main.py", b"again")], "member 'main.py' appears more than once"),
        ([member("x", b"x", pax_headers={"path": "a\0b"})], "contains a NUL character"),
    ],
)
def test_hostile_members_are_rejected(tmp_path: Path, members: list, match: str) -> None:
    assert_rejected(make_tar(tmp_path / "p.tgz", members), Unprocessable, match)


def test_links_inside_the_package_are_kept(tmp_path: Path) -> None:
    members = [
        member("data/real.json", b"{}"),
        member("data/alias.json", type=tarfile.SYMTYPE, linkname="real.json"),
        member("copy.json", type=tarfile.LNKTYPE, linkname="data/real.json"),
    ]
    dest = tmp_path / "x" / "sha"
    result = unpack(make_tar(tmp_path / "p.tgz", members), dest)
    assert (dest / "data/alias.json").is_symlink() and (dest / "copy.json").read_text() == "{}"
    assert result.files == 4 and result.size == len(PY_MANIFEST) + len(b"print(1)\n") + 4


def test_too_many_files(tmp_path: Path) -> None:
    members = [member(f"f{i}.txt", b"x") for i in range(10)]
    archive = make_tar(tmp_path / "p.tgz", members)
    assert_rejected(archive, TooLarge, "more than 5 files", max_files=5)


def test_too_many_bytes_over_several_files(tmp_path: Path) -> None:
    members = [member(f"f{i}.bin", b"x" * 400_000) for i in range(3)]
    archive = make_tar(tmp_path / "p.tgz", members)
    assert_rejected(archive, TooLarge, f"more than {MiB} bytes", max_bytes=MiB)


def test_hard_link_copies_count_towards_the_limit(tmp_path: Path) -> None:
    members = [member("big", b"x" * 600_000), member("big2", type=tarfile.LNKTYPE, linkname="big")]
    archive = make_tar(tmp_path / "p.tgz", members)
    assert_rejected(archive, TooLarge, f"more than {MiB} bytes", max_bytes=MiB)


def test_gzip_bomb_fails_fast(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.tgz"
    with gzip.open(archive, "wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        info, data = member("app.yaml", PY_MANIFEST.encode())
        tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("zeros.bin")
        info.size = 50 * MiB
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert archive.stat().st_size < MiB
    started = time.monotonic()
    assert_rejected(archive, TooLarge, f"more than {MiB} bytes", max_bytes=MiB)
    assert time.monotonic() - started < 2


def test_huge_pax_header_is_cut_off(tmp_path: Path) -> None:
    members = [member("x", b"x", pax_headers={"comment": "c" * (8 * MiB)})]
    archive = make_tar(tmp_path / "p.tgz", members)
    assert_rejected(archive, TooLarge, "more than", max_bytes=MiB, max_files=10)


def test_truncated_gzip(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "p.tgz", [member("big.txt", os.urandom(200_000))])
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert_rejected(archive, Unprocessable, "package is corrupt or truncated")


def test_gzip_of_something_else(tmp_path: Path) -> None:
    archive = tmp_path / "p.tgz"
    archive.write_bytes(gzip.compress(b"just some text, not a tar" * 100))
    assert_rejected(archive, Unprocessable, "package is corrupt or truncated")


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"hello, I am a text file", "it is text, starting 'hello, I am a te'"),
        (b'  {"a": 1}', "it is JSON text"),
        (bytes(range(200, 216)), "it starts with the bytes c8 c9 ca cb cc cd ce cf"),
    ],
)
def test_not_an_archive(tmp_path: Path, content: bytes, said: str) -> None:
    archive = tmp_path / "p.tar.gz"
    archive.write_bytes(content)
    assert_rejected(archive, Unprocessable, f"not a tar.gz or tar archive .{said}.$")


def test_zip_is_named(tmp_path: Path) -> None:
    archive = tmp_path / "p.tar.gz"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("app.yaml", PY_MANIFEST)
    assert_rejected(archive, Unprocessable, "it is a zip file")


def test_missing_app_yaml(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "p.tgz", [member("main.py", b"")], app=False)
    assert_rejected(archive, Unprocessable, r"no app.yaml at its root \(found: main.py\)")


def test_missing_entrypoint(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "p.tgz", [member("app.yaml", b"type: go\nfiles: [main]")], app=False
    )
    assert_rejected(archive, Unprocessable, "the entrypoint 'main' .* is missing from the package")


def test_invalid_manifest_in_package(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "p.tgz", [member("app.yaml", b"type: cobol\nfiles: [x]")], app=False
    )
    assert_rejected(archive, Unprocessable, "app.yaml: type 'cobol' is not one of")


def test_single_top_folder_is_stripped(tmp_path: Path) -> None:
    members = [
        member("myapp", type=tarfile.DIRTYPE, mode=0o755),
        member("myapp/app.yaml", b"type: binary\nfiles: [main]"),
        member("myapp/main", b"#!/bin/sh\n"),  # exec bit lost: still made runnable
    ]
    dest = tmp_path / "ex" / "sha"
    result = unpack(make_tar(tmp_path / "p.tar", members, gz=False, app=False), dest)
    assert result.manifest.type == "binary" and (dest / "app.yaml").is_file()
    assert os.access(dest / "main", os.X_OK)
    assert [p.name for p in dest.parent.iterdir()] == ["sha"]


def test_two_top_folders_are_not_guessed(tmp_path: Path) -> None:
    members = [member("a/app.yaml", PY_MANIFEST.encode()), member("b/main.py", b"")]
    archive = make_tar(tmp_path / "p.tgz", members, app=False)
    assert_rejected(archive, Unprocessable, r"no app.yaml at its root \(found: a, b\)")


def test_existing_dest_is_reused(tmp_path: Path) -> None:
    archive = make_tar(tmp_path / "p.tgz", [member("data.txt", b"abc")])
    dest = tmp_path / "ex" / "sha"
    first = unpack(archive, dest)
    archive.unlink()  # a second call must not even read it
    second = unpack(archive, dest)
    assert (second.files, second.size, second.manifest) == (first.files, first.size, first.manifest)


def test_safe_extract_unpacks_input_folders_and_refuses_escapes(tmp_path: Path) -> None:
    files = [member("a.json", b"{}"), member("sub/b.csv", b"x,y")]
    good = make_tar(tmp_path / "in.tgz", files, app=False)
    size = safe_extract(good, tmp_path / "ok", max_bytes=MiB, max_files=10)
    assert size == 5
    assert (tmp_path / "ok" / "sub" / "b.csv").read_bytes() == b"x,y"
    bad = make_tar(tmp_path / "bad.tgz", [member("../escape.txt", b"x")], app=False)
    with pytest.raises(Unprocessable, match="input archive member"):
        safe_extract(bad, tmp_path / "no", max_bytes=MiB, max_files=10)
    assert not (tmp_path / "no").exists()
    assert not (tmp_path / "escape.txt").exists()


# --- python environments ----------------------------------------------------------------------


def test_requirements_of(tmp_path: Path) -> None:
    pkg = write_tree(
        tmp_path,
        {
            "requirements.txt": "# top\nsix==1.16.0  # pinned\n\n-r more/extra.txt\n"
            "attrs \\\n  >=23\n",
            "more/extra.txt": "idna\n",
            "pyproject.toml": "[project]\nname='x'\ndependencies = ['nextmv>=1.7', 'plotly']\n",
            "evil.txt": "-r ../outside.txt\n",
        },
    )

    def of(spec: str) -> list[str] | None:
        return requirements_of(Manifest.from_yaml(PY_MANIFEST + spec), pkg)

    assert of("") is None
    assert of("python: {pip-requirements: [' six ', '# c', '']}") == ["six"]
    assert of("python: {pip-requirements: requirements.txt}") == [
        "six==1.16.0",
        "idna",
        "attrs >=23",
    ]
    assert of("python: {pip-requirements: pyproject.toml}") == ["nextmv>=1.7", "plotly"]
    with pytest.raises(Unprocessable, match=r"'nope\.txt' is missing from the package"):
        of("python: {pip-requirements: nope.txt}")
    with pytest.raises(Unprocessable, match=r"'-r \.\./outside\.txt' includes a file outside"):
        of("python: {pip-requirements: evil.txt}")


def test_env_key_ignores_order_and_comments() -> None:
    py = sys.executable
    assert env_key(["b", "a  # c"], py) == env_key(["a", "b", ""], py)
    assert env_key(["a"], py) != env_key(["a==2"], py)


@pytest.fixture(scope="module")
def envs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envs")


async def test_build_env_installs_once(envs_dir: Path) -> None:
    builds = await asyncio.gather(
        *(build_env(["six==1.16.0"], envs_dir, sys.executable, install_timeout=300) for _ in "ab")
    )
    assert all(b.ok for b in builds) and builds[0].path == builds[1].path, builds
    env = builds[0]
    check = "import six; print(six.__version__)\n"
    check += "try:\n import yaml\nexcept ImportError: print('isolated')"
    argv = [str(env.python), "-c", check]
    out = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1.16.0", "isolated"]
    again = await build_env(["six==1.16.0  # same set"], envs_dir, sys.executable)
    assert (again.ok, again.path, again.message) == (True, env.path, "ready")


async def test_build_env_failure_reports_installer_output(envs_dir: Path) -> None:
    bad = ["this-package-does-not-exist-orch==0.0.1"]
    result = await build_env(bad, envs_dir, sys.executable, install_timeout=300)
    assert not result.ok
    assert "this-package-does-not-exist-orch" in result.message
    assert len(result.message.splitlines()) <= 20
    assert not (result.path / ".ready").exists()


async def test_build_env_timeout(envs_dir: Path) -> None:
    result = await build_env(["six==1.15.0"], envs_dir, sys.executable, install_timeout=0.001)
    assert not result.ok and "timed out after 0.001 s" in result.message


async def test_the_shared_env_sees_the_daemons_packages_but_not_orch(envs_dir: Path) -> None:
    """One path line to the daemon's site-packages: ``nextmv`` imports, the daemon's ``.pth``
    files do not run (so the editable install's finder is not imported, nor is orch found),
    and the interpreter starts without them."""
    built, again = [await shared_env(envs_dir, sys.executable) for _ in "ab"]
    assert built.ok and again.path == built.path, built.message
    assert built.path.name == env_key([], sys.executable, daemon_site_packages())
    assert built.path.name != env_key([], sys.executable)  # not the plain env of no requirements
    check = (
        "import importlib.util, sys, nextmv\n"
        "print(importlib.util.find_spec('orchestrator') is None)\n"
        "print(any('__editable__' in name for name in sys.modules))\n"
        "print(sys.prefix)"
    )
    argv = [str(built.python), "-c", check]
    out = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, check=True, cwd=envs_dir
    )  # not from the checkout, whose orchestrator/ a ``-c`` would find in its cwd
    assert out.stdout.split() == ["True", "False", str(built.path)]


async def test_a_shared_env_that_cannot_be_made_leaves_the_daemons_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(envs_dir: Path, python: str) -> EnvBuild:
        return EnvBuild(envs_dir / "x", envs_dir / "x" / "bin" / "python", False, "no venv")

    monkeypatch.setattr(pyenv, "shared_env", broken)
    settings = Settings(home=Home(tmp_path / "home"))
    envs = environments.Environments(Store(tmp_path / "orch.db"), settings)
    assert await envs.shared() == sys.executable
    await envs.stop()


def test_a_python_package_is_byte_compiled_before_it_turns_read_only(tmp_path: Path) -> None:
    """Runs cannot write the shared package: its modules' bytecode is made at unpack,
    so a run imports them without compiling (a module that does not compile is left to
    fail at run time, with the model's own traceback)."""
    archive = make_tar(
        tmp_path / "p.tar.gz",
        [member("helper/solve.py", b"def solve():\n    return 1\n"),
         member("broken.py", b"def (:\n")],
    )  # fmt: skip
    unpack(archive, tmp_path / "pkg")
    tag = sys.implementation.cache_tag
    assert (tmp_path / "pkg" / "helper" / "__pycache__" / f"solve.{tag}.pyc").is_file()
    assert not (tmp_path / "pkg" / "__pycache__" / f"broken.{tag}.pyc").exists()
    assert (tmp_path / "pkg" / "broken.py").is_file()


def costly(items: int) -> bytes:
    """A module that is cheap to ship and costly to compile: ~370 MB of memory per MB."""
    return b"x = [" + b"1," * items + b"]\n"


def test_a_module_over_the_compile_memory_limit_is_left_to_run_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Compiling happens in a child under an address-space limit: a module over it gets
    no bytecode (the model compiles it, as one that does not compile), the others do,
    and the package is kept."""
    monkeypatch.setattr(bytecode, "MEMORY_MB", 64)
    archive = make_tar(
        tmp_path / "p.tar.gz",
        [member("helper/solve.py", b"def solve():\n    return 1\n"),
         member("big.py", costly(150_000))],
    )  # fmt: skip
    unpack(archive, tmp_path / "pkg")
    tag = sys.implementation.cache_tag
    assert (tmp_path / "pkg" / "helper" / "__pycache__" / f"solve.{tag}.pyc").is_file()
    assert (tmp_path / "pkg" / "__pycache__" / f"main.{tag}.pyc").is_file()
    assert not (tmp_path / "pkg" / "__pycache__" / f"big.{tag}.pyc").exists()
    assert (tmp_path / "pkg" / "big.py").read_bytes() == costly(150_000)
    assert "1 module(s) over the 64 MB compile limit" in caplog.text


def test_a_compile_past_its_deadline_is_stopped_and_the_package_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Six modules of ~0.2 s each against a 0.3 s deadline: the worker is killed, what
    it had not compiled is compiled at run time, and nothing half-written stays."""
    monkeypatch.setattr(bytecode, "TIMEOUT_SECONDS", 0.3)
    archive = make_tar(
        tmp_path / "p.tar.gz", [member(f"slow{n}.py", costly(100_000 + n)) for n in range(6)]
    )
    started = time.monotonic()
    unpack(archive, tmp_path / "pkg")
    assert time.monotonic() - started < 0.3 + 2  # well before the ~1.2 s of a full compile
    assert "byte-compiling stopped: the 0.3 s deadline passed" in caplog.text
    cache = tmp_path / "pkg" / "__pycache__"
    made = [p.name for p in cache.iterdir()] if cache.is_dir() else []
    assert len([n for n in made if n.startswith("slow")]) < 6
    assert all(n.endswith(".pyc") for n in made), made  # no py_compile temporary files
    assert len(list((tmp_path / "pkg").glob("slow*.py"))) == 6


def test_a_compiler_that_cannot_run_never_fails_a_push(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(bytecode, "WORKER", tmp_path / "missing.py")
    unpack(make_tar(tmp_path / "p.tar.gz", []), tmp_path / "pkg")
    assert (tmp_path / "pkg" / "main.py").is_file()
    assert "byte-compiling stopped: the compiler ended early" in caplog.text
