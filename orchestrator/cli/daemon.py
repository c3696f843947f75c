"""``orch daemon start|run|stop|status|env``."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import typer

from orchestrator.cli.context import HomeOption, JsonOption, home_of
from orchestrator.cli.daemon_checks import (
    check_port,
    daemon_process,
    ended,
    forget,
    usable_home,
)
from orchestrator.cli.output import errors_to_exit, fail, print_json, record, say
from orchestrator.client import ClientError, OrchClient, ca_of
from orchestrator.config import Settings
from orchestrator.daemon_info import DaemonInfo
from orchestrator.home import Home
from orchestrator.lifecycle import HOME_TAKEN, HomeTaken, check_home, is_stopping, mark_stopping

app = typer.Typer(help="Start, stop and inspect the orch daemon.", no_args_is_help=True)

PortOption = typer.Option(
    None,
    "--port",
    envvar="ORCH_PORT",
    min=0,
    max=65535,
    help="TCP port on 127.0.0.1 (default: the one used last, else 6724; 0: any free one).",
)
ExecutorOption = typer.Option(
    None,
    "--executor",
    help="Where models run: 'local' (default) or a Dask cluster, dask://HOST:PORT "
    "(needs the dask extra). Also 'executor' in config.toml or ORCH_EXECUTOR.",
)
TlsOption = typer.Option(
    None,
    "--tls/--no-tls",
    help="Serve HTTPS with a certificate from orch's own CA, kept in the home (the official "
    "nextmv CLI needs it). Also 'tls = true' in config.toml or ORCH_TLS=1. Neither given: "
    "as the last start.",
    show_default=False,
)


def running(home: Home) -> DaemonInfo | None:
    """The daemon of this home if it is alive and answering."""
    info, _, silent = health(home)
    return info if silent is None else None


def health(home: Home) -> tuple[DaemonInfo | None, dict[str, Any], str | None]:
    """(the daemon of this home if its process lives, what its /healthz says, why it did
    not answer). A live daemon that does not answer (stopped with SIGSTOP, hung) is still
    the home's daemon: ``start`` refuses a second one, and ``status`` must say so."""
    info = DaemonInfo.read(home)
    if info is None or daemon_process(home, info) is None:
        return None, {}, None
    try:
        with OrchClient(info.url, api_key="", ca_file=ca_of(home)) as api:  # no key needed
            return info, dict(api.health()), None
    except ClientError as exc:
        return info, {}, str(exc)


StatusFdOption = typer.Option(
    None, "--status-fd", hidden=True, help="A pipe for the one line of a failed start."
)


@app.command("run")
def run_foreground(
    home: Path | None = HomeOption,
    port: int | None = PortOption,
    executor: str | None = ExecutorOption,
    tls: bool | None = TlsOption,
    status_fd: int | None = StatusFdOption,
) -> None:
    """Run the daemon in the foreground (logs to stderr) until Ctrl-C or SIGTERM."""
    # No collection until the daemon listens (it enables them again): importing the server
    # stack makes ~100k objects that live as long as the daemon, and walking them ~200
    # times on the way cost ~0.1 s of a ~0.7 s start.
    gc.disable()
    # Imported here, not at the top: the server stack (uvicorn, FastAPI) is only
    # needed by this command and would slow every other CLI call down.
    from orchestrator.daemon import run

    h = usable_home(home_of(home))
    with errors_to_exit():
        settings = Settings.load(h, port=port, executor=executor, tls=tls)
    if running(h) is None:  # else the daemon's own lock says which daemon runs there
        check_port(settings)
    with errors_to_exit():
        try:
            run(settings, status_fd)
        except HomeTaken as exc:  # a code of its own: a racing ``start`` reads it
            fail(exc.message, code=HOME_TAKEN)


@app.command("start")
def start(
    home: Path | None = HomeOption,
    port: int | None = PortOption,
    executor: str | None = ExecutorOption,
    tls: bool | None = TlsOption,
    timeout: float = typer.Option(20.0, help="Seconds to wait for the daemon to answer."),
) -> None:
    """Start the daemon in the background; returns once it answers, and prints its URL."""
    h = usable_home(home_of(home))
    with errors_to_exit():  # a bad config or executor, a read-only home, a full disk: one
        settings = Settings.load(h, port=port, executor=executor, tls=tls)  # line, no child
    if (info := running(h)) is not None and not is_stopping(h, info.pid):
        _already_running(info, settings.tls, port)
        return
    _wait_for_stop(h, timeout)
    check_port(settings)
    with errors_to_exit():
        check_home(settings)
    reason_pipe, status_fd = os.pipe()
    argv = [sys.executable, "-m", "orchestrator", "daemon", "run", "--home", str(h.root)]
    argv += ["--status-fd", str(status_fd)]
    if port is not None:
        argv += ["--port", str(port)]
    if executor is not None:
        argv += ["--executor", executor]
    if tls is not None:
        argv += ["--tls" if tls else "--no-tls"]
    with h.log_file.open("ab") as log:
        child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            pass_fds=(status_fd,),
        )  # fmt: skip
    os.close(status_fd)
    os.set_blocking(reason_pipe, False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = running(h)
        if info is not None and info.pid == child.pid:
            say(f"orch daemon started at {info.url} (pid {info.pid}, home {h.root})")
            if note := _reason(reason_pipe):  # e.g. it started on a full disk
                say(note)
            typer.echo(info.url)
            return
        if child.poll() is not None:
            if child.returncode == HOME_TAKEN and (other := _published(h, deadline)):
                _already_running(other, settings.tls, port)  # another start won the race
                return
            if child.returncode == HOME_TAKEN and (gone := _stopping(h)) is not None:
                fail(_still_stopping(h, gone[0].pid, "began to stop meanwhile"))
            fail(f"the daemon could not start: {_reason(reason_pipe) or _log_tail(h)}")
        time.sleep(0.05)
    _give_up(h, child)
    why = _reason(reason_pipe)
    stopped = f"the daemon did not answer within {timeout:g} s and was stopped"
    longer = "a longer --timeout may let it finish"
    fail(f"{stopped}: {why}; {longer}" if why else f"{stopped}; see {h.log_file}; {longer}")


def _published(home: Home, deadline: float) -> DaemonInfo | None:
    """The daemon that holds ``home``, once it says where it listens (by ``deadline``);
    not one that is stopping (it would be gone a moment after ``start`` named it)."""
    while time.monotonic() < deadline:
        if (info := running(home)) is not None:
            return None if is_stopping(home, info.pid) else info
        time.sleep(0.05)
    return None


def _stopping(home: Home) -> tuple[DaemonInfo, psutil.Process] | None:
    """The daemon of ``home`` if it lives and was asked to stop (``lifecycle.is_stopping``)."""
    info = DaemonInfo.read(home)
    if info is None or not is_stopping(home, info.pid):
        return None
    process = daemon_process(home, info)
    return None if process is None else (info, process)


def _wait_for_stop(home: Home, timeout: float) -> None:
    """A daemon still stopping holds the home: ``start`` waits (up to ``timeout``) for it
    to end, then starts the new one. Saying "already running" (exit 0) there left no
    daemon at all a moment later."""
    if (stopping := _stopping(home)) is None:
        return
    info, process = stopping
    say(f"orch daemon (pid {info.pid}) is stopping; waiting for it to end")
    if not ended(process, timeout):
        fail(_still_stopping(home, info.pid, f"did not end within {timeout:g} s"))


def _still_stopping(home: Home, pid: int, what: str) -> str:
    return (
        f"the orch daemon on {home.root} (pid {pid}) is stopping and {what}: nothing was "
        "started; start it again once it has ended (orch daemon status)"
    )


def _give_up(home: Home, child: subprocess.Popen[bytes]) -> None:
    """A daemon that does not answer in time goes: left running, it would hold the home
    (the next start finds it) while nothing can reach or stop it (no ``daemon.json`` yet).
    Its whole session goes with it (it was started in one of its own)."""
    for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, sig)
        try:
            child.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    info = DaemonInfo.read(home)
    if info is not None and info.pid == child.pid:
        forget(home, info)


def _already_running(info: DaemonInfo, tls: bool, port: int | None) -> None:
    """Nothing to start; but a daemon without the TLS asked for cannot serve the nextmv CLI,
    and one on another port than ``--port`` asked for is not where its caller will look."""
    if tls and not info.url.startswith("https://"):
        fail(
            f"orch daemon already running at {info.url} (pid {info.pid}) without TLS; "
            "stop it (orch daemon stop), then start it with --tls"
        )
    if port and urlsplit(info.url).port != port:
        fail(
            f"orch daemon already running at {info.url} (pid {info.pid}), not on port {port}; "
            f"stop it (orch daemon stop), then start it with --port {port}"
        )
    say(f"orch daemon already running at {info.url} (pid {info.pid})")
    typer.echo(info.url)


@app.command("stop")
def stop(
    home: Path | None = HomeOption,
    timeout: float = typer.Option(30.0, help="Seconds to wait before killing it."),
) -> None:
    """Stop the daemon gracefully (SIGTERM: running runs get a short grace, then end)."""
    h = home_of(home)
    info = DaemonInfo.read(h)
    process = None if info is None else daemon_process(h, info)
    if info is None or process is None:
        if info is not None:
            forget(h, info)
        say("no orch daemon is running")
        return
    mark_stopping(h, info.pid)  # before the signal: a start from now on waits for the end
    with contextlib.suppress(psutil.NoSuchProcess):  # it may have ended on its own just now
        process.terminate()
    if not ended(process, timeout):
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
        fail(f"the daemon did not stop within {timeout:.0f} s and was killed")
    say(f"orch daemon stopped (pid {info.pid})")


@app.command("status")
def status(home: Path | None = HomeOption, as_json: bool = JsonOption) -> None:
    """Show whether the daemon runs, where, since when, and the state of its disk."""
    h = home_of(home)
    info, healthz, silent = health(h)
    runs = healthz.get("runs") or {}
    disk = healthz.get("disk") or {}
    data = {
        "running": info is not None,
        "answering": info is not None and silent is None,
        "home": str(h.root),
        "url": info.url if info else None,
        "pid": info.pid if info else None,
        "uptime_seconds": round(time.time() - info.started_at, 1) if info else None,
        "runs_running": runs.get("running"),
        "runs_queued": runs.get("queued"),
        **_backend_fields(healthz.get("backend") or {}),
        "isolation": _isolation(healthz.get("isolation")),
        "disk_state": disk.get("state"),
        "disk_free_mb": _mb(disk.get("free_bytes")),
        "disk_low_threshold_mb": _mb(disk.get("low_threshold_bytes")),
        "api_key_file": str(h.api_key_file),
    }
    if problem := (healthz.get("inbox") or {}).get("problem"):
        data["push_directory"] = problem
    if as_json:
        print_json(data)
    else:
        record(data, [(k, k) for k in data])
    if info is not None and silent is not None:
        fail(f"the daemon (pid {info.pid}) runs but does not answer: {silent}")
    if info is None:
        raise typer.Exit(1)


@app.command("env")
def env(home: Path | None = HomeOption) -> None:
    """Print the shell exports that point the nextmv SDK and CLI, and orch, at this daemon.

    Use it as: eval "$(orch daemon env)". The key is printed: keep the output private.
    The official nextmv CLI needs a daemon started with --tls.
    """
    from orchestrator.cli.daemon_env import PLAIN_HTTP_NOTE, env_vars, is_tls, shell_exports

    h = home_of(home)
    info = running(h)
    if info is None:
        fail(f"no orch daemon is running for {h.root}; start one with: orch daemon start")
    try:
        key = h.api_key_file.read_text().strip()
    except OSError as exc:
        fail(f"cannot read the API key in {h.api_key_file}: {exc.strerror}")
    if is_tls(info.url) and not h.ca_bundle.is_file():
        fail(f"the CA bundle {h.ca_bundle} is missing; restart the daemon to write it again")
    sys.stdout.write(shell_exports(env_vars(h, info.url, key)))
    if not is_tls(info.url):
        say(PLAIN_HTTP_NOTE)


def _isolation(facts: dict[str, Any] | None) -> str | None:
    """The protections every model runs under, or why models are refused; on a cluster,
    those every worker gives, then each worker that differs, or why they are unknown."""
    if not facts:
        return None
    if facts.get("refused"):
        return f"MODELS REFUSED: {facts['refused']}"
    if facts.get("unknown"):
        return f"unknown: {facts['unknown']}"
    shown = _protections(facts) or "none"
    for worker, own in (facts.get("workers_differing") or {}).items():
        refused = own.get("refused")
        mine = f"MODELS REFUSED: {refused}" if refused else _protections(own)
        shown += f"; worker {worker}: {mine or 'none'}"
    return shown


def _protections(facts: dict[str, Any]) -> str:
    """The protections, and the Landlock ABI the kernel gives when Landlock is among them
    (what ``landlock-*`` can restrict depends on it)."""
    names = list(facts.get("protections") or [])
    shown = ", ".join(names)
    if (abi := facts.get("landlock_abi")) and any(n.startswith("landlock") for n in names):
        shown += f" (Landlock ABI {abi})"
    return shown


def _mb(size: int | None) -> float | None:
    return None if size is None else round(size / (1024 * 1024), 1)


def _reason(pipe: int) -> str:
    """The one line a daemon that could not start wrote to its status pipe."""
    try:
        return os.read(pipe, 65536).decode(errors="replace").strip()
    except OSError:  # nothing written (EAGAIN): it died before it could say why
        return ""
    finally:
        os.close(pipe)


def _backend_fields(backend: dict[str, Any]) -> dict[str, Any]:
    """Which backend runs the models, with its slots (and a cluster's workers)."""
    fields = {"executor": backend.get("name"), "slots": backend.get("slots")}
    if "workers" in backend:
        fields |= {"scheduler": backend.get("scheduler"), "workers": backend.get("workers")}
    if backend.get("connected") is False:
        fields["scheduler_unreachable"] = backend.get("unreachable")
    return fields


def _log_tail(home: Home, lines: int = 20) -> str:
    try:
        return "\n".join(home.log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
