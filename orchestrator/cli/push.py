"""``orch app push``: build the package from app.yaml, push it, wait for its environment.

A push is only done when the app can run: for a python app with pip requirements the
daemon builds an environment after the upload, and a requirement that cannot be
installed would otherwise surface only at the next run. So the push waits for that
build (``--no-wait`` skips it) and fails naming the requirement. ``--watch`` pushes
again on every saved change; a push that fails, the first one included, is reported and
the watching goes on, since the next save is usually the fix. An app that does not exist
(a wrong ID, an app deleted meanwhile) ends the watching at once with exit 1: no save can
fix that.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import typer
import watchfiles

from orchestrator.cli.context import AppOption, HomeOption, JsonOption, client
from orchestrator.cli.output import errors_to_exit, fail, live, print_json, record, say
from orchestrator.cli.status import StatusLine
from orchestrator.cli.version import environment_line, short
from orchestrator.client import ClientError, OrchClient
from orchestrator.client.types import Executable, Pushed
from orchestrator.errors import OrchError
from orchestrator.packaging.build import SKIPPED_DIRS, BuildResult, build_package
from orchestrator.packaging.manifest import MANIFEST_FILE, Manifest
from orchestrator.packaging.pyenv import requirements_of

app = typer.Typer()

EXECUTABLE_FIELDS = [
    ("executable", "short_id"),
    ("type", "requirements.executable_type"),
    ("runtime", "requirements.runtime"),
    ("size", "size"),
    ("environment", "environment_line"),
]
POLL_SECONDS = 0.2
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class EnvFailed(Exception):
    """The push landed, but the app cannot run: its python environment did not build."""


@app.command("push")
def push(
    app_id: str = AppOption,
    app_dir: Path = typer.Option(
        Path("."), "--app-dir", file_okay=False, exists=True, help="Folder holding app.yaml."
    ),
    wait: bool = typer.Option(
        True,
        "--wait/--no-wait",
        help="Wait until the python environment is built (and fail if it cannot be).",
    ),
    watch: bool = typer.Option(
        False, "--watch", help="Keep watching the folder and push again on every change."
    ),
    max_pushes: int | None = typer.Option(None, "--max-pushes", hidden=True, min=1),
    home: Path | None = HomeOption,
    as_json: bool = JsonOption,
) -> None:
    """Build the package from app.yaml's files and push it: devint runs it right away."""
    pusher = Pusher(app_id, app_dir, wait, as_json)
    with errors_to_exit(), client(home) as api, tempfile.TemporaryDirectory() as tmp:
        if watch:
            _watch(pusher, api, Path(tmp), max_pushes)
            return
        try:
            pusher.push(api, Path(tmp), brief=False)
        except EnvFailed as exc:
            fail(str(exc))


class Pusher:
    """One folder to one app: build, upload, then wait for the environment if asked."""

    def __init__(self, app_id: str, app_dir: Path, wait: bool, as_json: bool) -> None:
        self.app_id, self.app_dir, self.wait, self.as_json = app_id, app_dir, wait, as_json

    def build(self, workdir: Path) -> tuple[BuildResult, Manifest]:
        built = build_package(self.app_dir, workdir / "package.tar.gz")
        return built, Manifest.load(self.app_dir / MANIFEST_FILE)

    def push(self, api: OrchClient, workdir: Path, brief: bool) -> BuildResult:
        started = time.monotonic()
        built, manifest = self.build(workdir)
        self.upload(api, built, manifest, started, brief)
        return built

    def upload(
        self,
        api: OrchClient,
        built: BuildResult,
        manifest: Manifest,
        started: float,
        brief: bool,
    ) -> None:
        pushed = api.apps.push(self.app_id, built.path, manifest.type, manifest.runtime)
        # The push's answer is the executable as stored, before the daemon started its
        # environment build: the status is read again, and awaited if asked.
        exe = wait_environment(api, self.app_id, pushed["executable"], self.wait)
        self.report(pushed | {"executable": exe}, time.monotonic() - started, brief)
        if exe["environment"]["status"] == "failed":
            raise EnvFailed(env_failure(exe, self._requirements(manifest)))

    def report(self, pushed: Pushed, seconds: float, brief: bool) -> None:
        exe = pushed["executable"]
        if self.as_json:
            print_json(pushed)
        elif not brief:
            view = {**exe, "short_id": short(exe["id"]), "environment_line": environment_line(exe)}
            record(view, EXECUTABLE_FIELDS)
        tail = {
            "building": "; its python environment is still building (--no-wait)",
            "ready": "; its python environment is ready",
        }.get(exe["environment"]["status"], "")
        if pushed.get("unchanged"):  # devint ran it already: the daemon recorded no move
            say(unchanged(exe["id"]) + tail)
            return
        say(
            f"pushed {short(exe['id'])} to app {self.app_id} (devint now runs it) "
            f"in {seconds:.2f} s{tail}"
        )

    def _requirements(self, manifest: Manifest) -> list[str]:
        try:
            return requirements_of(manifest, self.app_dir) or []
        except OrchError:
            return []


def unchanged(sha256: str) -> str:
    """A push, or a save under ``--watch``, of the package devint runs already."""
    return f"unchanged: devint is still {short(sha256)} (the last push)"


def wait_environment(api: OrchClient, app_id: str, pushed: Executable, wait: bool) -> Executable:
    """The executable with its environment's current status; with ``wait``, once it is
    built or failed. Ctrl-C stops waiting (the build goes on in the daemon), exit 130."""
    status = StatusLine(sys.stderr) if wait and live(sys.stderr) else None
    started = time.monotonic()
    try:
        while True:
            exe = api.apps.executable(app_id)
            if exe["id"] != pushed["id"]:
                say(f"another push replaced {short(pushed['id'])}; not waiting for its environment")
                return pushed
            if not wait or exe["environment"]["status"] != "building":
                return exe
            if status is not None:
                status.show(f"building the python environment… {time.monotonic() - started:.1f} s")
            time.sleep(POLL_SECONDS)
    except KeyboardInterrupt:
        say(
            f"stopped waiting; the environment keeps building. "
            f"See it with: orch app get -a {app_id}"
        )
        raise typer.Exit(130) from None
    finally:
        if status is not None:
            status.clear()


def env_failure(exe: Executable, requirements: list[str]) -> str:
    """What failed, naming the requirements the installer's message names."""
    message = exe["environment"]["message"].strip()
    named = failed_requirements(requirements, message)
    if len(named) == 1:
        what = f"requirement {named[0]!r} could not be installed"
    elif named:
        what = f"requirements {', '.join(repr(n) for n in named)} could not be installed"
    else:
        what = "its requirements could not be installed"
    return (
        f"pushed {short(exe['id'])}, but its python environment failed to build: {what}; "
        f"runs of it will fail until a push fixes it.\n{message}"
    )


def failed_requirements(requirements: list[str], message: str) -> list[str]:
    """The requirement lines whose project name the installer's message mentions."""
    text = _normalized(message)
    named = []
    for line in requirements:
        match = _NAME.match(line)
        if match and re.search(
            rf"(?<![a-z0-9-]){re.escape(_normalized(match[1]))}(?![a-z0-9])", text
        ):
            named.append(line)
    return named


def _normalized(name: str) -> str:
    """PEP 503: case and runs of ``-_.`` do not tell project names apart."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Watched:
    """What ``--watch`` remembers between saves: the package pushed last, and whether the
    attempt after it failed (its ``error: ...`` is then the last line on the screen)."""

    def __init__(self) -> None:
        self.last: str | None = None
        self.failed = False


def _watch(pusher: Pusher, api: OrchClient, workdir: Path, max_pushes: int | None) -> None:
    """Push, then push again on every saved change that alters the package, until
    ``max_pushes`` have landed; a failed push is reported, the first one too, and the
    watching goes on. Ctrl-C ends it with exit 0, or 1 if the last save did not push:
    devint does not run what is in the folder then, and a script must not think it does.
    An unknown app ends it at once, the first push not tried (``errors_to_exit``: exit 1)."""
    api.apps.get(pusher.app_id)
    state = Watched()
    pushes = int(_push_watched(pusher, api, workdir, state))
    if max_pushes is not None and pushes >= max_pushes:
        return
    say(f"watching {pusher.app_dir} for changes (Ctrl-C to stop)")
    try:
        for _changes in watchfiles.watch(pusher.app_dir, watch_filter=_filter(pusher.app_dir)):
            if not _push_watched(pusher, api, workdir, state):
                continue
            pushes += 1
            if max_pushes is not None and pushes >= max_pushes:
                return
    except KeyboardInterrupt:
        pass
    if state.failed:
        runs = f"devint still runs {short(state.last)}" if state.last else "nothing was pushed"
        say(f"stopped watching; the last save did not push ({runs})")
        raise typer.Exit(1)
    say("stopped watching")


def _push_watched(pusher: Pusher, api: OrchClient, workdir: Path, state: Watched) -> bool:
    """Whether this save landed a push (``state.last`` is then its sha256). Not when it
    failed (reported as ``error: ... (still watching)``) or the package is the one pushed
    last: silent, unless the attempt before failed, since its error would otherwise stay
    the last line although the app is back to what devint runs. An app deleted meanwhile
    ends the watching with exit 1: saving cannot bring it back."""
    try:
        started = time.monotonic()
        built, manifest = pusher.build(workdir)
        if built.sha256 == state.last:  # saved, but nothing the package holds changed
            if state.failed:
                say(unchanged(built.sha256))
                state.failed = False
            return False
        pusher.upload(api, built, manifest, started, brief=True)
    except (ClientError, OrchError) as exc:
        if isinstance(exc, ClientError) and exc.status == 404 and _gone(api, pusher.app_id):
            fail(f"{exc.message} (stopped watching)")
        say(f"error: {exc.message} (still watching)")
        state.failed = True
        return False
    except EnvFailed as exc:
        say(f"error: {exc} (still watching)")  # pushed all the same: its error stays true
    state.last, state.failed = built.sha256, False
    return True


def _gone(api: OrchClient, app_id: str) -> bool:
    """Whether the app no longer exists (a push answered 404: the app, or what it named)."""
    try:
        api.apps.get(app_id)
    except ClientError as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _filter(app_dir: Path) -> Callable[[watchfiles.Change, str], bool]:
    """Ignore tooling state and dot files: editors and git touch them without changing the app."""
    root = app_dir.resolve()

    def keep(_change: watchfiles.Change, path: str) -> bool:
        try:
            parts = Path(path).resolve().relative_to(root).parts
        except ValueError:
            return False
        return not any(p.startswith(".") or p in SKIPPED_DIRS for p in parts)

    return keep
