"""The composition root: open the store, recover, start the engine and serve HTTP.

Start-up order matters and is spelled out in ``_start``: check the home
(writable, room to record anything; the reserve where it fits), take the home lock before touching
anything else, recover before the scheduler picks up work, and publish
``daemon.json`` only once the socket is listening, so a client that finds the
file can always connect. A start that fails raises ``CannotStart`` with one
line, after closing what it opened (a store left open keeps its thread, and
the process, alive). Signals only set a flag; the serve loop does the
stopping.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import os
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import uvicorn
from fastapi import FastAPI

from orchestrator import daemon_log
from orchestrator.api.app import create_app, outermost
from orchestrator.api.coalesce import HttpProtocol
from orchestrator.config import Settings
from orchestrator.console import stop_streams
from orchestrator.lifecycle import (
    CannotStart,
    HomeLock,
    HomeTaken,
    StartPhases,
    check_home,
    load_or_create_api_key,
    take_reserve,
    why_not_started,
)
from orchestrator.loopwatch import LoopWatch
from orchestrator.ports import listen, record_tls
from orchestrator.wiring import Engine, build_engine

log = logging.getLogger("orch.daemon")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Daemon:
    def __init__(self, settings: Settings, on_listening: Callable[[], None] = lambda: None) -> None:
        settings.check()
        self.settings = settings
        self.lock = HomeLock(settings.home)
        self._server: _Server | None = None
        self._app: FastAPI | None = None
        self._engine: Engine | None = None
        self._stop_requested = False
        self._on_listening = on_listening
        self.on_note: Callable[[str], None] = lambda line: None
        """Told a line the starting CLI shows besides its URL (a disk full at start)."""
        self.phases = StartPhases()

    def request_stop(self) -> None:
        self._stop_requested = True
        self.lock.mark_stopping()  # it answers a while yet: ``orch daemon start`` waits
        if self._server is not None:
            self._server.should_exit = True
        if self._app is not None:
            stop_streams(self._app)  # open console pages must not hold the stop up
        if self._engine is not None:
            self._engine.services.runs.events.release_all()  # nor long-polls (``--wait``)

    async def serve(self) -> None:
        try:
            try:
                sock, app = await self._start()
            except HomeTaken:
                raise  # its own exit code: a racing ``orch daemon start`` finds that daemon
            except Exception as exc:
                raise CannotStart(why_not_started(exc, self.settings)) from exc
            # No proxy stands in front of a loopback daemon: X-Forwarded-* headers are
            # a client's claim, not a fact, and the middleware that reads them costs a layer.
            # uvicorn's loggers go to the root logger (log_config=None): one handler holds
            # what a full disk refuses (``daemon_log``).
            config = uvicorn.Config(
                outermost(app), log_level="warning", access_log=False, lifespan="off",
                timeout_keep_alive=30, proxy_headers=False, log_config=None,
                http=HttpProtocol,
                # a request still open then (a slow upload) is cut: the stop is bounded
                timeout_graceful_shutdown=math.ceil(self.settings.shutdown_grace_seconds),
            )  # fmt: skip
            self._use_certificate(config)
            self._server = _Server(config)
            self._install_signals()
            scheme = "https" if self.settings.tls else "http"
            url = f"{scheme}://127.0.0.1:{sock.getsockname()[1]}"
            self.lock.publish(url)
            self._on_listening()
            log.warning("orch daemon listening on %s (home %s)", url, self.settings.home.root)
            # What exists now lives as long as the daemon (~100k objects: the app, its
            # routes and schemas, the store). Every full collection walked them all: ~50 ms
            # of CPU, the loop paused, about once in 600 runs. Frozen, they are skipped.
            # (``orch daemon run`` switched collections off for the start: on again.)
            gc.freeze()
            gc.enable()
            if not self._stop_requested:
                await self._server.serve(sockets=[sock])
            log.warning("orch daemon stopped")
        finally:
            await self._stop_engine()
            self.lock.release()

    async def _start(self) -> tuple[socket.socket, FastAPI]:
        """Everything up to a listening socket; what it opened is closed by ``serve``."""
        settings, home, phase = self.settings, self.settings.home, self.phases.phase
        with phase("checking the home"):
            disk = check_home(settings)
            self.lock.acquire()
            if (full := take_reserve(disk)) is not None:  # it starts, refusing new data
                log.warning("%s", full)
                self.on_note(full)
            api_key = load_or_create_api_key(home)
            if settings.tls:  # before the engine: a home that cannot hold a key fails early
                _prepare_certificates(settings)
        disk.when_space_returns(_flush_logs)
        with phase("opening the database and the backend"):
            self._engine = await build_engine(settings, disk)
        await self._engine.start(phase)
        sock = listen(settings.host, home, settings.port)
        record_tls(home, settings.tls)
        app = self._app = create_app(self._engine.services, api_key)
        app.state.inbox = self._engine.inbox  # /healthz says when push/ cannot be watched
        if settings.loop_monitor:
            watch = LoopWatch()
            watch.start()
            app.state.loop_watch = watch
        return sock, app

    def _use_certificate(self, config: uvicorn.Config) -> None:
        """HTTPS with the files ``_start`` made sure of (uvicorn loads them in ``load``)."""
        if self.settings.tls:
            from orchestrator.tls import TlsFiles

            files = TlsFiles.of(self.settings.home)
            config.ssl_certfile, config.ssl_keyfile = str(files.cert), str(files.key)

    async def _stop_engine(self) -> None:
        engine, self._engine = self._engine, None
        if engine is None:
            return
        try:
            await engine.stop()
        except Exception:  # stopping must finish: the lock and daemon.json go next
            log.exception("the engine did not stop cleanly")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)


def _prepare_certificates(settings: Settings) -> None:
    """The CA, the certificate and the CA bundle of a ``--tls`` daemon. Imported here:
    ``cryptography`` costs ~30 ms, which a plain daemon's start need not pay."""
    from orchestrator.tls import ensure_certificates, write_ca_bundle

    ensure_certificates(settings.home)
    write_ca_bundle(settings.home)


def _flush_logs() -> None:
    """Write the log lines a full disk held back (``daemon_log``)."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def run(settings: Settings, status_fd: int | None = None) -> None:
    """Run the daemon in the foreground until SIGTERM/SIGINT.

    ``status_fd`` (from ``orch daemon start``) is a pipe the starting CLI reads: it gets
    the one line of a failed start, and is closed once the daemon listens. The log
    (stderr) may sit on the very disk that is full, so the pipe is how the reason
    reaches the CLI.
    """
    handler = daemon_log.install()
    handler.quiet()  # until it listens: a start that fails says one line, nothing more
    status = _StatusPipe(status_fd)

    def listening() -> None:
        status.close()
        handler.speak()

    daemon = Daemon(settings, on_listening=listening)
    daemon.on_note = status.tell  # ``orch daemon start`` prints it once the daemon answers
    _say_where_when_stopped(daemon.phases, handler, status)
    try:
        _loop_run(daemon.serve())
    except CannotStart as exc:
        handler.drop()
        status.tell(exc.message)
        raise
    finally:
        status.close()
        handler.flush()


def _say_where_when_stopped(
    phases: StartPhases, handler: daemon_log.HoldingHandler, status: _StatusPipe
) -> None:
    """A SIGTERM before the daemon listens (``orch daemon start`` giving up on it) ends it
    at once, saying in daemon.log and to the starting CLI which step it was in: before,
    such a start left not a line (what it logged was held, then lost with it). The
    daemon's own handler (``Daemon._install_signals``) takes over once it serves."""

    def stopped(signum: int, _frame: object) -> None:
        line = phases.interrupted(f"stopped by {signal.Signals(signum).name}")
        log.warning("%s", line)
        status.tell(line)
        handler.speak()  # with the lines held so far
        os._exit(128 + signum)  # nothing is published yet: the lock goes with the process

    with contextlib.suppress(ValueError):  # not the main thread (a test's): no handler
        signal.signal(signal.SIGTERM, stopped)


def _loop_run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(main)
    else:
        uvloop.run(main)


class _StatusPipe:
    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        if fd is not None:
            os.set_inheritable(fd, False)  # models and helpers never hold it open

    def tell(self, line: str) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.fd, line.encode() + b"\n")

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
