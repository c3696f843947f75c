"""Python environments of executables: built at push time, awaited by runs.

A push of a python app with ``pip-requirements`` starts its environment build
in the background (status ``building``), so the first run does not pay for
it; a run that arrives during the build waits for it; a failed build fails
its runs with the installer's own message. Apps without requirements run in one
shared environment that imports the daemon's packages without paying its
start-up (``pyenv.shared_env``), made when the daemon starts; should it fail,
they run on the daemon's interpreter, as before it existed. ``python_envs =
"daemon"`` in the settings skips all of this and runs apps on the daemon's
interpreter, for fully offline machines.

A build of an app's requirements runs its installer in the sandbox (``BuildJail``):
installing runs package code (an sdist's ``setup.py``, a local folder's build
backend), which must reach no more of the daemon's than a model does. The shared env
is made by the daemon itself: ``uv venv`` of its own interpreter, nothing of an app's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from orchestrator.config import Settings
from orchestrator.errors import OrchError
from orchestrator.models import EnvStatus, Executable, Limits
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.pyenv import (
    TIMED_OUT,
    build_env,
    child_env,
    requirements_of,
    shared_python,
)
from orchestrator.runs.access import build_access
from orchestrator.runs.process import ProcessResult, ProcessSpec
from orchestrator.runs.sandbox import Sandbox
from orchestrator.store import Store

log = logging.getLogger("orch.environments")


class EnvFailed(OrchError):
    """The run cannot start: its environment did not build (``detail``: the installer's words)."""

    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(f"python environment failed to build:\n{detail}")
        self.detail = detail


_NOT_PASSED = ("ORCH_", "NEXTMV_")
"""The daemon's own variables (its settings, keys, endpoints): never a build's."""
_OWN_VARS = ("HOME", "TMPDIR", "UV_CACHE_DIR", "PIP_CACHE_DIR", "XDG_CACHE_HOME")
_FIND_LINKS = ("UV_FIND_LINKS", "PIP_FIND_LINKS")


def build_prefix(root: Path, owner: str = "") -> str:
    """The label prefix of the builds of ``owner`` under ``root`` (``BuildJail.prefix``)."""
    name = str(root.absolute()) + (f"\0{owner}" if owner else "")
    return f"build-{hashlib.sha256(name.encode()).hexdigest()[:8]}-"


@dataclass(frozen=True)
class BuildJail:
    """Installer steps of the builds of a daemon (or a Dask worker), each in a jail of
    its sandbox.

    A build reads the interpreter and the system as runs do, its app's ``package``,
    ``read_paths`` (the daemon's ``[isolation] read_paths``), the installer and the
    local folders the index settings name; it writes only the env folder it builds, a
    cache of its own under ``root`` (``cache/uv`` or ``cache/pip``: nothing else of the
    daemon's home, or of the worker's cache folder, is there) and its ``TMPDIR``, which
    is also its ``HOME``. The network is open to it. Its processes carry a label
    (``prefix`` and the env's name) that a restarted daemon kills by (``start``), a
    worker's by the sweep of its dead ``owner`` (``WorkerCache.sweep``): nothing of a
    killed daemon's (or worker's) build outlives it.
    """

    sandbox: Sandbox
    root: Path
    """The daemon's home, or the worker's cache folder."""
    read_paths: tuple[str, ...] = ()
    memory_mb: int | None = None
    """The runs' default memory."""
    owner: str = ""
    """Who builds among the processes sharing ``root`` (a worker process); "" for the
    daemon, alone on its home."""
    package: str | None = None

    @classmethod
    def of_settings(cls, sandbox: Sandbox, settings: Settings) -> BuildJail:
        """The daemon's builds: its home, its ``read_paths``, its runs' default memory."""
        return cls(
            sandbox, settings.home.root, settings.isolation.read_paths, settings.limits.memory_mb
        )

    @classmethod
    def start(cls, sandbox: Sandbox, settings: Settings) -> BuildJail:
        """The builds of a daemon that starts: what a killed one left of its own goes."""
        jail = cls.of_settings(sandbox, settings)
        if killed := sandbox.kill_builds(jail.prefix):
            log.warning("killed %d process(es) of environment builds a stopped daemon left", killed)
        return jail

    def of(self, package: str) -> BuildJail:
        """This jail for builds of the executable whose package folder is ``package``."""
        return replace(self, package=package)

    @property
    def prefix(self) -> str:
        return build_prefix(self.root, self.owner)

    async def run(
        self, argv: list[str], env: Path, tool: str, log: BinaryIO, seconds: float
    ) -> str | None:
        work = env.parent / f".{env.name}.build"
        cache = self.root / "cache" / tool
        await asyncio.to_thread(_fresh, work, cache)
        variables = _build_vars(str(work / "tmp"), str(cache), tool)
        access = build_access(str(work), str(env), str(cache), argv[0], self._reads(variables))
        out = access.write_files[0]
        spec = ProcessSpec(
            argv=argv,
            cwd=str(env),
            env=variables,
            stdin=None,
            stdout=out,
            stderr=out,
            # the runs' default memory; no task cap (an installer's threads on a big host)
            limits=Limits(memory_mb=self.memory_mb, timeout_seconds=seconds),
            label=self.prefix + env.name,
            access=access,
        )
        try:
            result = await self.sandbox.build(spec)
        finally:
            _append(out, log)
            await asyncio.to_thread(shutil.rmtree, work, True)
        return _failure(result, Path(argv[0]).name, self.memory_mb)

    def _reads(self, variables: dict[str, str]) -> list[str]:
        found = list(self.read_paths)
        if self.package is not None:
            found.append(self.package)
        for name in _FIND_LINKS:  # local folders of wheels the daemon's settings name
            for entry in variables.get(name, "").replace(",", " ").split():
                entry = entry.removeprefix("file://")
                if entry.startswith("/"):
                    found.append(entry)
        for name in ("UV_CONFIG_FILE", "PIP_CONFIG_FILE"):
            if variables.get(name, "").startswith("/"):
                found.append(variables[name])
        resolver = os.path.realpath("/etc/resolv.conf")  # a link to /run/... on many hosts
        if os.path.exists(resolver):
            found.append(resolver)
        return found


def _build_vars(tmp: str, cache: str, tool: str) -> dict[str, str]:
    """What the installer gets: the daemon's proxies and index settings (``child_env``),
    none of its own variables, ``tmp`` as its home, and its cache."""
    env = {
        k: v for k, v in child_env().items() if not k.startswith(_NOT_PASSED) and k not in _OWN_VARS
    }
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    home = Path.home()
    configs = {  # the daemon's user-level installer settings: its home is not the build's
        "UV_CONFIG_FILE": [home / ".config/uv/uv.toml"],
        "PIP_CONFIG_FILE": [home / ".config/pip/pip.conf", home / ".pip/pip.conf"],
    }
    for name, candidates in configs.items():
        if name not in env and (found := next((p for p in candidates if p.is_file()), None)):
            env[name] = str(found)
    env.update(HOME=tmp, TMPDIR=tmp)
    env["UV_CACHE_DIR" if tool == "uv" else "PIP_CACHE_DIR"] = cache
    return env


def _fresh(work: Path, cache: Path) -> None:
    shutil.rmtree(work, ignore_errors=True)
    (work / "tmp").mkdir(parents=True)
    cache.mkdir(parents=True, exist_ok=True)


def _append(out: str, log: BinaryIO) -> None:
    """The step's output into the env's log; never through a link."""
    with contextlib.suppress(OSError):
        fd = os.open(out, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as fh:
            shutil.copyfileobj(fh, log)
    log.flush()


def _failure(result: ProcessResult, name: str, memory_mb: int | None) -> str | None:
    if result.spawn_error is not None:
        return f"could not start {name} in its jail: {result.spawn_error}"
    if result.breach == "timeout_seconds":
        return TIMED_OUT
    if result.breach == "memory":
        return f"{name} went over the build's memory limit ({memory_mb} MB)"
    if result.breach is not None:
        return f"{name} went over the build's {result.breach} limit"
    if result.signal is not None:
        return f"{name} was killed by signal {result.signal}"
    return None if result.exit_code == 0 else f"{name} exited with code {result.exit_code}"


class Environments:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.jail: BuildJail | None = None
        """Where builds of apps' requirements run (the local backend's sandbox, or on a
        cluster's daemon one of builds only); None: as children of the daemon (tests of
        this class alone)."""
        self.owns_jail = False
        """Whether ``stop`` closes the jail's sandbox (one no backend closes)."""
        self._builds: dict[str, asyncio.Task[None]] = {}
        self._shared: asyncio.Task[str] | None = None
        """The interpreter of apps without requirements, once made (see ``shared``)."""

    def _requirements(self, exe: Executable) -> list[str] | None:
        if exe.type != "python" or self.settings.python_envs == "daemon":
            return None
        manifest = Manifest.from_dict(exe.manifest)
        return requirements_of(manifest, self.settings.home.executables / exe.id)

    async def on_new_executable(self, exe: Executable) -> None:
        """Start the build for a freshly pushed executable, if it needs one."""
        requirements = self._requirements(exe)
        if requirements is None:
            return
        async with self.store.write() as w:
            await w.executables.set_env(exe.id, EnvStatus.BUILDING, "installing requirements")
        self._start(exe.id, requirements)

    async def resume(self) -> None:
        """Restart builds a previous daemon left half-done, and make the shared env."""
        if self.settings.python_envs != "daemon":
            self._shared_task()
        for exe in await self.store.read.executables.with_env_status(EnvStatus.BUILDING):
            requirements = self._requirements(exe)
            if requirements is not None:
                self._start(exe.id, requirements)

    def _start(self, exe_id: str, requirements: list[str]) -> None:
        if exe_id not in self._builds or self._builds[exe_id].done():
            self._builds[exe_id] = asyncio.create_task(self._build(exe_id, requirements))

    async def _build(self, exe_id: str, requirements: list[str]) -> None:
        home = self.settings.home
        jail = self.jail.of(home.package_path(exe_id)) if self.jail is not None else None
        result = await build_env(requirements, home.envs, sys.executable, jail=jail)
        status = EnvStatus.READY if result.ok else EnvStatus.FAILED
        message = "ready" if result.ok else result.message
        async with self.store.write() as w:
            await w.executables.set_env(exe_id, status, message, str(result.python))
        log.warning("environment of %s: %s", exe_id[:12], status.value)

    def building(self, exe_id: str) -> bool:
        """Whether this daemon is building ``exe_id``'s environment now."""
        build = self._builds.get(exe_id)
        return build is not None and not build.done()

    async def settled(self, exe_id: str) -> Executable | None:
        """``exe_id`` as recorded once the build of its environment under way has ended (at
        once if none is): how a push that did not wait for the build (the push directory's)
        learns how it went. None if the executable is gone."""
        build = self._builds.get(exe_id)
        if build is not None:
            await asyncio.shield(build)
        return await self.store.read.executables.get(exe_id)

    async def interpreter(self, exe: Executable) -> str:
        """The python a run of ``exe`` uses, waiting for its environment if needed."""
        if exe.type != "python" or self.settings.python_envs == "daemon":
            return sys.executable
        if exe.env_status == EnvStatus.NONE:
            return await self.shared()
        build = self._builds.get(exe.id)
        if build is not None:
            await asyncio.shield(build)
        current = await self.store.read.executables.get(exe.id)
        if current is None or current.env_status == EnvStatus.FAILED or not current.env_path:
            message = current.env_message if current else "executable was removed"
            raise EnvFailed(message)
        if current.env_status == EnvStatus.BUILDING:  # daemon restarted mid-build
            await self.resume()
            return await self.interpreter(current)
        return current.env_path

    async def shared(self) -> str:
        """The interpreter of apps without requirements: the shared env's, or the daemon's."""
        return await asyncio.shield(self._shared_task())

    def _shared_task(self) -> asyncio.Task[str]:
        """The one making of the shared env (``pyenv.shared_python``), started once."""
        if self._shared is None:
            home = self.settings.home
            self._shared = asyncio.create_task(shared_python(home.envs, sys.executable))
        return self._shared

    async def stop(self) -> None:
        tasks = [*self._builds.values(), *([self._shared] if self._shared else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.owns_jail and self.jail is not None:
            await asyncio.to_thread(self.jail.sandbox.close)
