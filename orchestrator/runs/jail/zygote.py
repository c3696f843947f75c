"""The zygote: one Python per daemon that pays the interpreter's start-up once.

It answers requests on a ``SOCK_SEQPACKET`` socket (its fd on the command line), one message
each. ``plan`` (JSON) hands it a shared plan and gets the plan's number back;
``standby\0<number>\0<the standby's own fields, marshal>`` (with the standby's command
and report pipes attached) clones a standby that is the *daemon's* child, which adds
its own fields to the plan itself; ``probe`` (JSON) tries each protection in a
throw-away child and says which work. EOF means the daemon is gone: it exits.

Between two clones the zygote runs as little Python as it can: a clone write-protects
all of its memory, so every page it writes afterwards costs it a page fault (and a
copy while a standby still shares the page). A standby's request is split with
``bytes.split`` and answered with ``%``-formatting; no JSON (see ``spawner``).

Started as ``python -I -S -c BOOT <runs dir> zygote <fd>`` (see ``launch``), or
``... single <fd>`` for one standby without a zygote (plan and command on stdin,
the report pipe on ``fd``).
"""

from __future__ import annotations

import contextlib
import gc
import json
import marshal
import os
import socket
import sys
from collections.abc import Callable
from typing import Any

from . import landlock, seccomp, sysc
from .enter import Template, single, standby
from .view import View, enter_namespaces

MAX_MESSAGE = 1 << 20
STANDBY = b"standby\0"
"""How a standby's request starts (the others are JSON)."""


def serve(control: socket.socket) -> None:
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 2)
        except OSError:
            return
        if not data:
            return
        try:
            if data.startswith(STANDBY):
                reply = _standby(data, fds, control)
            else:
                reply = json.dumps(_handle(json.loads(data))).encode()
        except Exception as exc:
            reply = json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode()
        finally:
            for fd in fds:
                _close(fd)
        control.send(reply)


_plans: list[tuple[dict[str, Any], Template | None]] = []
"""The shared plans the daemon handed over (a plan's number is its index), each with
its view's template."""


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    if request.get("op") == "probe":
        return {"probe": probe(request["plan"])}
    if request.get("op") == "plan":
        plan = request["plan"]
        if plan.get("seccomp", True) and not seccomp.installed():
            _filter_self()
        _plans.append((plan, _template(plan) if plan.get("mount") else None))
        return {"plan": len(_plans) - 1}
    return {"error": f"unknown request {request.get('op')!r}"}


def _standby(data: bytes, fds: list[int], control: socket.socket) -> bytes:
    _, number, own = data.split(b"\0", 2)
    plan, template = _plans[int(number)]
    if len(fds) != 2:
        return b'{"error": "a standby needs its two pipes"}'
    commands, report = fds
    pid = sysc.fork_sibling()
    if pid == 0:  # the standby: never returns into this loop
        try:
            control.close()
            standby({**plan, **marshal.loads(own)}, commands, report, template)
        finally:
            os._exit(126)
    return b'{"pid": %d}' % pid


def _filter_self() -> None:
    """The seccomp filter for the zygote itself, so that every standby is born with it
    (see ``seccomp.ensure``). It changes nothing the zygote does (none of its calls is
    filtered). When it fails, each standby tries again and refuses its run with the
    reason: a model never starts without the filter its plan asks for."""
    with contextlib.suppress(OSError):
        seccomp.ensure()


_VIEW_KEYS = (
    "mount", "userns", "system", "read", "proc_hidden", "hide", "tmp_size_mb", "cgroup_fs"
)  # fmt: skip
_templates: dict[str, Template | None] = {}


def _template(plan: dict[str, Any]) -> Template | None:
    """The view of ``plan``, built once in a child and kept as namespace descriptors.

    ``None`` when it cannot be built: each standby then builds its own (and says why).
    """
    key = json.dumps({k: plan.get(k) for k in _VIEW_KEYS}, sort_keys=True)
    if key not in _templates:
        _templates[key] = _build_template(plan)
    return _templates[key]


def _build_template(plan: dict[str, Any]) -> Template | None:
    built, done = os.pipe(), os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            enter_namespaces(user=bool(plan.get("userns")), net=False, ipc=False)
            View(plan).base(plan)
            os.write(built[1], b"ok")
            os.read(done[0], 1)  # held until the zygote has the namespaces open
        finally:
            os._exit(0)
    os.close(built[1])  # a child that fails closes its end: our read sees EOF
    try:
        if os.read(built[0], 2) != b"ok":
            return None
        users = None
        if plan.get("userns"):
            users = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
        return os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY | os.O_CLOEXEC), users
    except OSError:
        return None
    finally:
        os.write(done[1], b"x")
        os.waitpid(pid, 0)
        for fd in (built[0], *done):
            os.close(fd)


def probe(plan: dict[str, Any]) -> dict[str, Any]:
    """What works on this host, each tried in a child of its own so nothing sticks.

    ``mount`` builds the whole view (minus /proc); ``proc_hidden`` then mounts a
    procfs with hidepid; ``cgroup_ns`` builds it in a cgroup namespace and mounts each
    hierarchy a run's groups lie in (the probe's own groups are the daemon's, but the
    child and its mounts go at once); ``seccomp`` installs the filter and tries
    ``fallocate``; the others only create their namespace.
    """
    user = bool(plan.get("userns"))
    base = {k: v for k, v in plan.items() if k != "proc_hidden"}

    def view(hidden_proc: bool, cgroup: bool = False) -> None:
        enter_namespaces(user=user, net=False, ipc=False, cgroup=cgroup)
        jail = View(base)
        jail.base({**base, "proc_hidden": hidden_proc})
        if cgroup:
            jail.cgroups([point for point, _, _ in jail.cgroup_fs])

    def alone(flag: int) -> Callable[[], None]:
        return lambda: sysc.unshare(flag | (sysc.CLONE_NEWUSER if user else 0))

    results: dict[str, Any] = {"landlock": landlock.abi()}
    results["mount"] = _attempt(lambda: view(False))
    results["proc_hidden"] = _attempt(lambda: view(True)) if not user else "needs root"
    results["cgroup_ns"] = (
        _attempt(lambda: view(False, cgroup=True))
        if base.get("cgroup_fs")
        else "no per-run cgroup here: a model's group would be the daemon's"
    )
    results["net_ns"] = _attempt(alone(sysc.CLONE_NEWNET))
    results["ipc_ns"] = _attempt(alone(sysc.CLONE_NEWIPC))
    results["seccomp"] = _attempt(seccomp.check)
    results["fork_sibling"] = "ok"  # this very zygote answers: it could clone
    return results


def _attempt(action: Callable[[], None]) -> str:
    """ "ok", or why not, from a forked child (the zygote has no thread to worry about)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            action()
            message = "ok"
        except BaseException as exc:
            message = str(exc) or type(exc).__name__
        os.write(write, message.encode()[:4000])
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 4096):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode(errors="replace") or "the probe died"


def _close(fd: int) -> None:
    try:  # noqa: SIM105 - contextlib.suppress's objects are pages written between clones
        os.close(fd)
    except OSError:
        pass


def main(argv: list[str]) -> None:
    # Every standby is a copy-on-write clone of this process: a garbage collection in
    # one would touch (and so copy) every object. Nothing here makes cycles worth it.
    gc.disable()
    gc.freeze()
    if len(argv) == 2 and argv[0] == "zygote" and argv[1].isdigit():
        serve(socket.socket(fileno=int(argv[1])))
    elif len(argv) == 2 and argv[0] == "single" and argv[1].isdigit():
        single(0, int(argv[1]))
    else:
        sys.exit(f"usage: zygote FD | single FD (got {argv})")
