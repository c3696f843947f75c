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
"""

from __future__ import annotations

import asyncio
import logging
import sys

from orchestrator.config import Settings
from orchestrator.errors import OrchError
from orchestrator.models import EnvStatus, Executable
from orchestrator.packaging.manifest import Manifest
from orchestrator.packaging.pyenv import build_env, requirements_of, shared_python
from orchestrator.store import Store

log = logging.getLogger("orch.environments")


class EnvFailed(OrchError):
    """The run cannot start: its environment did not build (``detail``: the installer's words)."""

    status = 409

    def __init__(self, detail: str) -> None:
        super().__init__(f"python environment failed to build:\n{detail}")
        self.detail = detail


class Environments:
    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
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
        result = await build_env(requirements, self.settings.home.envs, sys.executable)
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
