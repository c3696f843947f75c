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
backend), which must reach no more of the daemon's than a model does, nor anything
another app's builds or runs use: each app builds in a cache of its own
(``app_cache``, gone with the app) into envs of its own (``pyenv``). A package pushed
by two apps (one executable, by its bytes) gets an env per app, each built by its own
app's push, or by its first run. The shared env is made by the daemon itself: ``uv
venv`` of its own interpreter, nothing of an app's.
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
from typing import Any, BinaryIO

from orchestrator import trees
from orchestrator.config import Settings
from orchestrator.errors import OrchError
from orchestrator.home import Home
from orchestrator.models import EnvStatus, Executable, Limits
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.pyenv import (
    TIMED_OUT,
    EnvBuild,
    build_env,
    built_python,
    child_env,
    remove_envs_of,
    remove_shared_envs,
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


def app_cache(root: Path, app: str) -> Path:
    """The build cache of ``app``'s builds under ``root`` (a daemon's home, a worker's cache
    folder): theirs alone to write. A build hook can rewrite what a cache holds (wheels,
    built artefacts), which the next build of that cache installs: one cache for all
    apps let one app's push poison the envs of the others."""
    return root / "cache" / "apps" / app


def forget_app(home: Home, app: str) -> None:
    """What ``app``'s builds left (its cache, its envs) goes with the app: an app made
    again under its id starts afresh."""
    trees.remove(app_cache(home.root, app))
    remove_envs_of(home.envs, app)


def forget_shared_builds(home: Home) -> None:
    """The build caches every app shared (``cache/uv``, ``cache/pip``) and the envs built
    from them, left by a daemon of before per-app builds: unused now, and a cache one
    app's build could have poisoned."""
    for tool in ("uv", "pip"):
        trees.remove(home.root / "cache" / tool)
    if removed := remove_shared_envs(home.envs):
        log.warning(
            "removed %d environment(s) shared between apps; each app builds its own", len(removed)
        )


def build_isolation(sandbox: Sandbox) -> dict[str, Any]:
    """What builds get in ``sandbox`` (``isolation.builds`` of /healthz): the runs' jail
    less the network rules, and their uid (None: not switched)."""
    builds = sandbox.builds
    uid = builds.uid_range[0] if builds.uid_range else None
    return {"protections": list(builds.protections), "network": "open", "uid": uid}


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
    local folders the index settings name; it writes only the env folder it builds, its
    ``app``'s cache under ``root`` (``app_cache``, ``uv/`` or ``pip/`` in it: nothing
    else of the daemon's home, of the worker's cache folder or of another app's cache is
    there) and its ``TMPDIR``, which is also its ``HOME``. The network is open to it.
    Its processes carry a label (``prefix`` and the env's name) that a restarted daemon
    kills by (``start``), a worker's by the sweep of its dead ``owner``
    (``WorkerCache.sweep``): nothing of a killed daemon's (or worker's) build outlives it.
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
    app: str = ""
    """Whose build it is (``of``): its cache is that app's."""

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

    def of(self, package: str, app: str) -> BuildJail:
        """This jail for ``app``'s builds of the executable whose package folder is
        ``package``."""
        return replace(self, package=package, app=app)

    @property
    def prefix(self) -> str:
        return build_prefix(self.root, self.owner)

    async def run(
        self, argv: list[str], env: Path, tool: str, log: BinaryIO, seconds: float
    ) -> str | None:
        if not self.app:  # its cache would be every app's
            raise ValueError("an environment build is one app's (BuildJail.of)")
        work = env.parent / f".{env.name}.build"
        cache = app_cache(self.root, self.app) / tool
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


BuildKey = tuple[str, str]
"""An environment build: (executable id, app id)."""


class Environments:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self.jail: BuildJail | None = None
        """Where builds of apps' requirements run (the local backend's sandbox, or on a
        cluster's daemon one of builds only); None: as children of the daemon (tests of
        this class alone)."""
        self.owns_jail = False
        """Whether ``stop`` closes the jail's sandbox (one no backend closes)."""
        self._builds: dict[BuildKey, asyncio.Task[EnvBuild]] = {}
        self._ready: dict[BuildKey, str] = {}
        """The interpreters of envs found built by ``interpreter``: read once, not per run."""
        self._shared: asyncio.Task[str] | None = None
        """The interpreter of apps without requirements, once made (see ``shared``)."""

    def _requirements(self, exe: Executable) -> list[str] | None:
        if exe.type != "python" or self.settings.python_envs == "daemon":
            return None
        manifest = Manifest.from_dict(exe.manifest)
        return requirements_of(manifest, self.settings.home.executables / exe.id)

    def _built(self, requirements: list[str], app_id: str) -> Path | None:
        return built_python(requirements, self.settings.home.envs, sys.executable, app_id)

    async def on_new_executable(self, exe: Executable) -> None:
        """Start the builds for a package pushed (or pushed again): one for each app it is
        the current executable of whose env of it is not built (the pushing app's, and
        those of a push that failed to build)."""
        requirements = self._requirements(exe)
        if requirements is None:
            return
        await self._build_for_apps(exe, requirements)

    async def resume(self) -> None:
        """Restart builds a previous daemon left half-done, and make the shared env; what
        builds of before envs were an app's own left goes (``forget_shared_builds``)."""
        await asyncio.to_thread(forget_shared_builds, self.settings.home)
        if self.settings.python_envs != "daemon":
            self._shared_task()
        for exe in await self.store.read.executables.with_env_status(EnvStatus.BUILDING):
            requirements = self._requirements(exe)
            if requirements is not None:
                await self._build_for_apps(exe, requirements)

    async def _build_for_apps(self, exe: Executable, requirements: list[str]) -> None:
        """Build ``exe``'s env of each app it is the current executable of; of a ready one,
        only those not built yet (another app pushed it first). One no app has as its
        current any more (another push moved it) is left ``building``: a run of it builds
        its app's env (``interpreter``)."""
        apps = [app.id for app in await self.store.read.apps.list() if app.executable_id == exe.id]
        if exe.env_status == EnvStatus.READY:
            built = [await asyncio.to_thread(self._built, requirements, a) for a in apps]
            apps = [app_id for app_id, python in zip(apps, built, strict=True) if python is None]
            if not apps:
                return
        async with self.store.write() as w:
            await w.executables.set_env(exe.id, EnvStatus.BUILDING, "installing requirements")
        for app_id in apps:
            self._start((exe.id, app_id), requirements)

    def _start(self, key: BuildKey, requirements: list[str]) -> asyncio.Task[EnvBuild]:
        if key not in self._builds or self._builds[key].done():
            self._ready.pop(key, None)
            self._builds[key] = asyncio.create_task(self._build(key, requirements))
        return self._builds[key]

    async def _build(self, key: BuildKey, requirements: list[str]) -> EnvBuild:
        (exe_id, app_id), home = key, self.settings.home
        jail = self.jail.of(home.package_path(exe_id), app_id) if self.jail else None
        result = await build_env(requirements, home.envs, sys.executable, app=app_id, jail=jail)
        status = EnvStatus.READY if result.ok else EnvStatus.FAILED
        message = "ready" if result.ok else result.message
        async with self.store.write() as w:
            await w.executables.set_env(exe_id, status, message, str(result.python))
        log.warning("environment of %s for app %s: %s", exe_id[:12], app_id, status.value)
        return result

    def _of(self, exe_id: str) -> list[asyncio.Task[EnvBuild]]:
        return [task for (exe, _app), task in self._builds.items() if exe == exe_id]

    def building(self, exe_id: str) -> bool:
        """Whether this daemon is building an environment of ``exe_id`` now."""
        return any(not build.done() for build in self._of(exe_id))

    async def settled(self, exe_id: str) -> Executable | None:
        """``exe_id`` as recorded once the builds of its environments under way have ended
        (at once if none is): how a push that did not wait for the build (the push
        directory's) learns how it went. None if the executable is gone."""
        for build in self._of(exe_id):
            await asyncio.shield(build)
        return await self.store.read.executables.get(exe_id)

    async def interpreter(self, exe: Executable, app_id: str) -> str:
        """The python a run of ``exe`` for ``app_id`` uses: that app's env of it, waiting
        for its build if needed (started here if it has none: a package another app
        pushed, or a daemon restarted mid-build)."""
        if exe.type != "python" or self.settings.python_envs == "daemon":
            return sys.executable
        if exe.env_status == EnvStatus.NONE:
            return await self.shared()
        key = (exe.id, app_id)
        if (found := self._ready.get(key)) is not None:
            return found
        build = self._builds.get(key)
        if build is None:
            current = await self.store.read.executables.get(exe.id)
            try:
                requirements = self._requirements(current) if current else None
            except OrchError as exc:  # its package folder was removed outside orch
                raise EnvFailed(str(exc)) from None
            if current is None or requirements is None:
                raise EnvFailed(current.env_message if current else "executable was removed")
            if (python := await asyncio.to_thread(self._built, requirements, app_id)) is not None:
                self._ready[key] = str(python)
                return str(python)
            if current.env_status == EnvStatus.FAILED:
                raise EnvFailed(current.env_message)
            build = self._start(key, requirements)
        built = await asyncio.shield(build)
        if not built.ok:
            raise EnvFailed(built.message)
        if self._builds.get(key) is build:  # not started again meanwhile
            self._ready[key] = str(built.python)
        return str(built.python)

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
