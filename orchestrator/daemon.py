"""The composition root: open the store, recover, start the engine and serve HTTP.

Start-up order matters and is spelled out in ``serve``: take the home lock
before touching anything, recover before the scheduler picks up work, and
publish ``daemon.json`` only once the socket is listening, so a client that
finds the file can always connect. Signals only set a flag; the serve loop
does the stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from orchestrator.api.app import create_app
from orchestrator.config import Settings
from orchestrator.console import stop_streams
from orchestrator.lifecycle import HomeLock, load_or_create_api_key
from orchestrator.loopwatch import LoopWatch
from orchestrator.ports import listen
from orchestrator.wiring import Engine, build_engine

log = logging.getLogger("orch.daemon")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    def __init__(self, settings: Settings) -> None:
        if settings.host != "127.0.0.1":
            raise ValueError("orch listens on 127.0.0.1 only")
        self.settings = settings
        self.lock = HomeLock(settings.home)
        self._server: _Server | None = None
        self._app: FastAPI | None = None
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True
        if self._server is not None:
            self._server.should_exit = True
        if self._app is not None:
            stop_streams(self._app)  # open console pages must not hold the stop up

    async def serve(self) -> None:
        home = self.settings.home
        home.create()
        self.lock.acquire()
        engine: Engine | None = None
        try:
            api_key = load_or_create_api_key(home)
            engine = await build_engine(self.settings)
            await engine.start()
            sock = listen(self.settings.host, home, self.settings.port)
            port = sock.getsockname()[1]
            app = self._app = create_app(engine.services, api_key)
            if self.settings.loop_monitor:
                watch = LoopWatch()
                watch.start()
                app.state.loop_watch = watch
            # No proxy stands in front of a loopback daemon: X-Forwarded-* headers are
            # a client's claim, not a fact, and the middleware that reads them costs a layer.
            config = uvicorn.Config(
                app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30,
                proxy_headers=False,
            )  # fmt: skip
            self._server = _Server(config)
            self._install_signals()
            self.lock.publish(f"http://127.0.0.1:{port}")
            log.warning("orch daemon listening on http://127.0.0.1:%d (home %s)", port, home.root)
            if not self._stop_requested:
                await self._server.serve(sockets=[sock])
        finally:
            if engine is not None:
                await engine.stop()
            self.lock.release()
            log.warning("orch daemon stopped")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)


def run(settings: Settings) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(Daemon(settings).serve())
    else:
        uvloop.run(Daemon(settings).serve())
