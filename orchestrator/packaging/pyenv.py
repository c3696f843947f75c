"""Python environments: one per requirement set, and one shared by apps without any.

One virtual environment per distinct (requirements, interpreter, app), shared by
every version of the app that asks for the same set: pushing a new version of an
app with unchanged requirements must not reinstall anything. Never by two apps: a
build runs package code that may write anything into the env it builds and into its
app's build cache, so what one app's push wrote must reach no other app's runs (an
env built from a cache an app poisoned would, shared, run that app's code in
another's). Envs are plain venvs, so an app sees none of the daemon's own packages.

Apps without requirements share one more venv (``shared_env``): empty, but its
``site-packages`` holds one ``.pth`` path line to the daemon's, so they import
what the daemon has installed (``nextmv``) as they always did. What they no
longer pay is the daemon's start-up: its venv runs the ``.pth`` files of its
installs, and an editable install of orch imports a finder (``pathlib``, ``re``,
``urllib``) in every interpreter it starts, ~13 ms of CPU per model on the
benchmark VM. A path line is only added to ``sys.path``; the ``.pth`` files it
leads to are not run, so orch itself is not importable there either.

Venvs are not relocatable (scripts carry absolute shebangs), so an env is built
in place under a lock, and the ``.ready`` marker, written atomically last, is the
commit point: a directory without it is a failed or interrupted build and is
wiped before the next attempt.

Installing runs package code (an sdist's ``setup.py``, a local folder's build
backend), so a daemon's builds of apps' requirements take a ``jail``
(``environments.BuildJail``): each installer step then runs in the sandbox, writing
only the env folder it builds. The env folder is the build's to write: what the
daemon reads back from it or writes into it afterwards never follows a link there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import platform
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tomllib
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Protocol

from orchestrator import trees
from orchestrator.errors import Unprocessable
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.requirements import logical_lines, read_requirements

log = logging.getLogger("orch.pyenv")

READY_MARKER = ".ready"
LOG_FILE = "orch-build.log"
REQUIREMENTS_FILE = "orch-requirements.txt"
CONSTRAINTS_FILE = "orch-constraints.txt"
CONSTRAINT = "--orch-constraint "
"""Marks a line of an included ``-c`` file in a requirement list: the list is what an env
is keyed and built from, and a constraint must limit versions, not install anything."""
DEFAULT_TIMEOUT = 900.0
TAIL_LINES = 20
_KEY_VERSION = "orch-env-1"
SHARED_PTH = "orch-daemon-packages.pth"
"""The one file in the shared env's ``site-packages``: the daemon's, as path lines."""
_SCRUBBED_ENV = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PIP_USER")


TIMED_OUT = "timed out"
"""What ``BuildJail.run`` says of a step that ran out of time."""


class BuildJail(Protocol):
    """Runs an installer step of a build in a jail, its output appended to ``log``."""

    async def run(
        self, argv: list[str], env: Path, tool: str, log: BinaryIO, seconds: float
    ) -> str | None:
        """Run ``argv`` (of ``tool``, "uv" or "pip") building ``env``, for at most
        ``seconds``; None if it succeeded, ``TIMED_OUT``, or why it failed."""
        ...


@dataclass(frozen=True)
class EnvBuild:
    path: Path
    python: Path
    ok: bool
    message: str
    """On failure, the installer's last lines: what users see as the env status."""


def requirements_of(manifest: Manifest, package_dir: Path) -> list[str] | None:
    """The app's requirement lines, or None when ``python.pip-requirements`` is not set.

    Included files (``-r``, ``-c``) are inlined because the installer runs on a copy of
    the lines in the env directory, where relative includes would not resolve; the lines
    of ``-c`` files come marked ``CONSTRAINT`` (``_prepare`` makes them a file again).
    """
    spec = manifest.pip_requirements
    if spec is None:
        return None
    if isinstance(spec, list):
        return clean_requirements(spec)
    path = package_dir / spec
    if not path.is_file():
        raise Unprocessable(f"python.pip-requirements file {spec!r} is missing from the package")
    if path.suffix == ".toml":
        return _pyproject_dependencies(path, spec)
    found = read_requirements(package_dir, spec, "the package")
    return found.requirements + [CONSTRAINT + line for line in found.constraints]


def clean_requirements(lines: list[str]) -> list[str]:
    """Requirement lines without comments, blanks and line continuations."""
    return [line for _number, line in logical_lines("\n".join(lines))]


def _pyproject_dependencies(path: Path, spec: str) -> list[str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise Unprocessable(f"python.pip-requirements {spec!r} is not valid TOML: {exc}") from None
    deps = data.get("project", {}).get("dependencies")
    if not isinstance(deps, list) or not all(isinstance(d, str) for d in deps):
        raise Unprocessable(
            f"python.pip-requirements {spec!r} has no [project].dependencies list of strings"
        )
    return clean_requirements(deps)


def env_key(requirements: list[str], python: str, sees: tuple[str, ...] = (), app: str = "") -> str:
    """Identical requirement sets on the same interpreter share one env (order-insensitive);
    an env that sees other ``site-packages`` (``sees``), or of another ``app`` (see the
    module), is another env."""
    lines = sorted(set(clean_requirements(requirements)))
    seen = [f"sees {path}" for path in sees]
    owner = [f"app {app}"] if app else []
    payload = "\n".join([_KEY_VERSION, interpreter_tag(python), *lines, *seen, *owner])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def daemon_site_packages() -> tuple[str, ...]:
    """The folders this interpreter installs packages into (not the user's own)."""
    return tuple(p for p in dict.fromkeys(site.getsitepackages()) if os.path.isdir(p))


async def shared_env(envs_dir: Path, python: str) -> EnvBuild:
    """The environment of apps without requirements (see the module): built once."""
    return await build_env([], envs_dir, python, sees=daemon_site_packages())


async def shared_python(envs_dir: Path, python: str) -> str:
    """The interpreter apps without requirements run on: the shared env's, or ``python``
    itself (logged) when the env cannot be made, as before the shared env existed."""
    built = await shared_env(envs_dir, python)
    if built.ok:
        return str(built.python)
    log.warning("apps without requirements run on %s: no shared env: %s", python, built.message)
    return python


@lru_cache(maxsize=32)
def interpreter_tag(python: str) -> str:
    """Implementation, version and machine of ``python``; an env built by one is not another's."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        return f"{sys.implementation.name}-{platform.python_version()}-{platform.machine()}"
    code = "import sys,platform;print(f'{sys.implementation.name}-{platform.python_version()}-"
    code += "{platform.machine()}')"
    try:
        done = subprocess.run(
            [python, "-c", code], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return f"unknown-{python}"  # the build itself will report the broken interpreter
    return done.stdout.strip()


async def build_env(
    requirements: list[str],
    envs_dir: Path,
    python: str,
    *,
    install_timeout: float = DEFAULT_TIMEOUT,
    sees: tuple[str, ...] = (),
    app: str = "",
    jail: BuildJail | None = None,
) -> EnvBuild:
    """Build (once) the env for ``requirements``; installer failures come back as ``ok=False``.

    ``install_timeout`` (seconds) bounds the whole build, venv creation included;
    ``sees``: other ``site-packages`` folders the env imports from (after its own);
    ``app``: whose env it is ("" only for the daemon's own, ``shared_env``);
    ``jail``: where the installer steps run (default: children of this process).
    """
    key = await asyncio.to_thread(env_key, requirements, python, sees, app)
    path = envs_dir / key
    if not _is_ready(path):
        async with _task_lock(key):
            await asyncio.to_thread(envs_dir.mkdir, parents=True, exist_ok=True)
            async with _file_lock(envs_dir / f".{key}.lock"):
                if not _is_ready(path):
                    lines = clean_requirements(requirements)
                    return await _build(lines, path, python, install_timeout, sees, app, jail)
    return EnvBuild(path=path, python=_env_python(path), ok=True, message="ready")


def built_python(requirements: list[str], envs_dir: Path, python: str, app: str) -> Path | None:
    """The interpreter of ``app``'s env for ``requirements`` if it is built, else None."""
    path = envs_dir / env_key(requirements, python, (), app)
    return _env_python(path) if _is_ready(path) else None


def remove_envs_of(envs_dir: Path, app: str) -> list[Path]:
    """Remove the envs built for ``app`` (its name in their ``.ready`` marker, which the
    daemon writes after the build): an app made again under the same id starts afresh,
    not with what the deleted one's builds left. The removed folders."""
    removed = []
    for entry in os.scandir(envs_dir) if envs_dir.is_dir() else ():
        if entry.is_dir(follow_symlinks=False) and _marker(Path(entry.path)).get("app") == app:
            trees.remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def remove_shared_envs(envs_dir: Path) -> list[Path]:
    """Remove the envs of requirements built before envs were an app's own (their marker
    names no app; the shared env of apps without requirements names none either, and has
    no requirements: it stays). No run uses them any more: each app builds its own."""
    removed = []
    for entry in os.scandir(envs_dir) if envs_dir.is_dir() else ():
        info = _marker(Path(entry.path)) if entry.is_dir(follow_symlinks=False) else {}
        if info.get("requirements") and "app" not in info:
            trees.remove(Path(entry.path))
            removed.append(Path(entry.path))
    return removed


def _marker(path: Path) -> dict[str, object]:
    """What the ``.ready`` marker of the env ``path`` says; {} if none (never via a link)."""
    try:
        fd = os.open(path / READY_MARKER, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            info = json.loads(fh.read(1024 * 1024))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _is_ready(path: Path) -> bool:
    return (path / READY_MARKER).is_file()


def _env_python(path: Path) -> Path:
    return path / "bin" / "python"


_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _task_lock(key: str) -> asyncio.Lock:
    """Per key and per event loop: an asyncio lock cannot be shared between loops."""
    locks = _locks.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(key, asyncio.Lock())


@contextlib.asynccontextmanager
async def _file_lock(path: Path) -> AsyncIterator[None]:
    """Serializes builders in other processes (two daemons on one home); polled, so cancellable."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.2)
        yield
    finally:
        os.close(fd)


async def _build(
    requirements: list[str],
    path: Path,
    python: str,
    limit: float,
    sees: tuple[str, ...],
    app: str,
    jail: BuildJail | None,
) -> EnvBuild:
    requirements_file = await asyncio.to_thread(_prepare, path, requirements)
    installs = [line for line in requirements if not line.startswith(CONSTRAINT)]
    tool, steps = _commands(path, python, requirements_file, install=bool(installs))
    deadline = asyncio.get_running_loop().time() + limit
    # read back through this descriptor only: a jailed build may swap the name for a link
    with (path / LOG_FILE).open("a+b") as log:
        for argv in steps:
            failure = await _step(argv, path, tool, log, deadline, limit, jail)
            if failure:
                log.write(f"orch: {failure}\n".encode())
                log.flush()
                message = _tail(log)
                return EnvBuild(path=path, python=_env_python(path), ok=False, message=message)
        if sees and (failure := _see(path, sees)):
            log.write(f"orch: {failure}\n".encode())
            return EnvBuild(path=path, python=_env_python(path), ok=False, message=failure)
    _write_marker(path, requirements, python, tool, app)
    message = f"ready: {len(installs)} requirement(s) installed with {tool}"
    return EnvBuild(path=path, python=_env_python(path), ok=True, message=message)


def _prepare(path: Path, requirements: list[str]) -> Path:
    """A fresh env directory holding the requirement lines the installer will read, and
    the constraints beside them, included by a path that resolves there."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    lines = [line for line in requirements if not line.startswith(CONSTRAINT)]
    marked = [line for line in requirements if line.startswith(CONSTRAINT)]
    constraints = [line.removeprefix(CONSTRAINT) for line in marked]
    if constraints:
        (path / CONSTRAINTS_FILE).write_text("".join(f"{line}\n" for line in constraints))
        lines.append(f"-c {CONSTRAINTS_FILE}")
    requirements_file = path / REQUIREMENTS_FILE
    requirements_file.write_text("".join(f"{line}\n" for line in lines))
    return requirements_file


def _see(path: Path, sees: tuple[str, ...]) -> str | None:
    """Write the path lines of ``sees`` into the new env's ``site-packages``; the failure."""
    found = sorted(path.glob("lib/*/site-packages"))
    if len(found) != 1:
        return f"no single site-packages folder in the new environment {path}"
    (found[0] / SHARED_PTH).write_text("".join(f"{folder}\n" for folder in sees))
    return None


def _commands(
    path: Path, python: str, requirements: Path, *, install: bool
) -> tuple[str, list[list[str]]]:
    """uv when available (fast, cached); otherwise the stdlib venv plus the env's own pip."""
    env_python = str(_env_python(path))
    if uv := _find_uv():
        create = [uv, "venv", "--allow-existing", "--python", python, str(path)]
        # Bytecode now, once: the environment is shared read-only by runs that cannot write
        # it (``import six`` cost 9 ms a run without, 2.5 ms with, measured).
        add = [uv, "pip", "install", "--compile-bytecode", "--python", env_python]
        add += ["-r", str(requirements)]
        return "uv", [create, add] if install else [create]
    create = [python, "-m", "venv", str(path)] + ([] if install else ["--without-pip"])
    add = [env_python, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    add += ["-r", str(requirements)]
    return "pip", [create, add] if install else [create]


def _find_uv() -> str | None:
    if found := shutil.which("uv"):
        return found
    beside = Path(sys.executable).parent / "uv"
    return str(beside) if os.access(beside, os.X_OK) else None


async def _step(
    argv: list[str],
    path: Path,
    tool: str,
    log: BinaryIO,
    deadline: float,
    limit: float,
    jail: BuildJail | None,
) -> str | None:
    """Run one installer step with output into ``log``; the failure reason, or None."""
    left = deadline - asyncio.get_running_loop().time()
    if left <= 0:
        return f"the environment build timed out after {limit:g} s"
    log.write(f"$ {shlex.join(argv)}\n".encode())
    log.flush()
    if jail is None:
        return await _run(argv, log, left, limit)
    failure = await jail.run(argv, path, tool, log, left)
    return f"the environment build timed out after {limit:g} s" if failure == TIMED_OUT else failure


async def _run(argv: list[str], log: BinaryIO, left: float, limit: float) -> str | None:
    """Run one installer step as a child of this process; the failure reason, or None."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(),
            start_new_session=True,
        )
    except OSError as exc:
        return f"could not start {argv[0]}: {exc}"
    try:
        code = await asyncio.wait_for(proc.wait(), left)
    except BaseException as exc:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await asyncio.shield(proc.wait())
        if isinstance(exc, TimeoutError):
            return f"the environment build timed out after {limit:g} s"
        raise
    return None if code == 0 else f"{Path(argv[0]).name} exited with code {code}"


def child_env() -> dict[str, str]:
    """The daemon's environment (proxies, index settings) minus what would leak its venv."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    return env


def _tail(log: BinaryIO) -> str:
    log.flush()
    size = log.seek(0, os.SEEK_END)
    log.seek(max(0, size - 64 * 1024))
    text = log.read().decode("utf-8", errors="replace")
    return "\n".join(text.rstrip().splitlines()[-TAIL_LINES:])


def _write_marker(path: Path, requirements: list[str], python: str, tool: str, app: str) -> None:
    """Made afresh (``O_EXCL``): whatever a build left under the temporary name goes."""
    info = {"requirements": requirements, "python": python, "installer": tool, "app": app}
    tmp = path / f"{READY_MARKER}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(info, indent=2))
    os.replace(tmp, path / READY_MARKER)
