"""A standby: prepared ahead of any run, then turned into one run's model by its command.

``plan`` (per daemon, JSON) says which protections to build; the *command* (per
run, ``marshal`` data read from the standby's pipe) names the model and the run's paths.
Every step either succeeds or the standby reports why on its report pipe and
exits 126 without running anything: a model never starts less protected than
the plan says. Just before ``exec`` the report carries the CPU the jail itself
used, so the daemon can leave it out of the model's figures; with ``steps`` in
the plan (benchmarks), also how that CPU divides between the jail's steps.
"""

from __future__ import annotations

import contextlib
import errno
import json
import marshal
import os
import resource
import signal
from collections.abc import Callable
from typing import Any, NoReturn

from . import landlock, seccomp, sysc
from .view import SRC, View, enter_namespaces

KEEP_MICROSECONDS = 10_000
"""How long the memory keeper holds the jail's memory (``sysc.MemoryKeeper``): ten times
what an ``exec`` takes, short enough that most runs outlive it (the daemon kills and
reaps one that a run did not outlive). Meanwhile it is a second task in the run's
cgroup (its pids and memory counters), the run's uid, doing nothing."""

REFUSED = 126
"""Exit code of a jail that could not set up (the report says why)."""
NOT_FOUND = 127


Template = tuple[int, int | None]
"""A view built once: its mount namespace, and the user namespace that owns it (if any)."""


class Standby:
    """One jail: ``prepare`` before its run is known, ``run`` once its command came."""

    def __init__(self, plan: dict[str, Any], report: int, template: Template | None = None) -> None:
        self.plan, self.report, self.template = plan, report, template
        self.view = View(plan) if plan.get("mount") else None
        self.ruleset: landlock.Ruleset | None = None
        self.peak_fd: int | None = None
        self.uid: int | None = plan.get("uid")
        self.keeper: sysc.MemoryKeeper | None = None
        """Made ready in ``prepare``; holds the jail's memory through ``exec``."""
        self.marks: list[tuple[str, float]] | None = [] if plan.get("steps") else None
        """(step, the process's CPU seconds when it ended), when the plan asks."""

    def prepare(self) -> None:
        """Everything that does not depend on the run, in the order the kernel needs.

        The cgroup namespace comes after joining the run's groups, so that they are its
        root; its cgroup mounts after the view, where they go (``View.cgroups``).

        The seccomp filter (``seccomp``: no call that allocates disk faster than the
        ``disk_mb`` sampler can see) comes with the zygote's clone, or is installed
        here; none of the jail's own steps is one it filters. A plan without
        ``seccomp`` gets it: only a plan that says ``false`` goes without, as one
        without ``landlock`` goes without Landlock.
        """
        plan = self.plan
        self._mark("clone")  # a clone's CPU starts at zero: its page faults so far
        for path in plan.get("cgroups", []):  # first: nothing below may run outside the group
            _write(os.path.join(path, "cgroup.procs"), str(os.getpid()))
        self._mark("cgroup")
        if plan.get("peak_file"):
            self.peak_fd = os.open(plan["peak_file"], os.O_WRONLY | os.O_CLOEXEC)
        user, net, ipc = (
            bool(plan.get("userns")),
            bool(plan.get("net_ns")),
            bool(plan.get("ipc_ns")),
        )
        cgroup = self.view is not None and bool(plan.get("cgroup_ns"))  # after joining: its root
        if self.view is not None and self.template is not None:
            flags = (sysc.CLONE_NEWNET if net else 0) | (sysc.CLONE_NEWIPC if ipc else 0)
            self.view.copy(*self.template, flags | (sysc.CLONE_NEWCGROUP if cgroup else 0))
        elif self.view is not None:
            enter_namespaces(user=user, net=net, ipc=ipc, cgroup=cgroup)
            self.view.base(plan)
        elif net or ipc:
            sysc.unshare((sysc.CLONE_NEWNET if net else 0) | (sysc.CLONE_NEWIPC if ipc else 0))
        self._mark("view")
        if cgroup and self.view is not None:
            self.view.cgroups(plan.get("cgroups", []))
            self._mark("cgroupfs")
        rules = plan.get("landlock")
        if rules:
            self.ruleset = landlock.Ruleset(
                int(rules["abi"]), files=bool(rules.get("fs")),
                network=bool(rules.get("net")), scope=bool(rules.get("scope")),
            )  # fmt: skip
            for path, rights in _rules(plan):
                self._allow(path, rights)
        self._mark("landlock")
        if plan.get("seccomp", True):
            seccomp.ensure()  # inherited from the zygote, as a rule: nothing to do
        self._mark("seccomp")
        self.keeper = sysc.MemoryKeeper()
        _warm()
        self._mark("warm")

    def run(self, command: dict[str, Any]) -> NoReturn:
        """Add the run's paths, open its files, seal the view, drop, restrict, exec."""
        self._mark("command")
        if self.uid is not None:  # its input was unpacked private to root (in a private home)
            for path in command.get("readable", []):
                _readable((SRC if self.view is not None else "") + path)
        if self.view is not None:
            for target, source, writable in command.get("binds", []):
                self.view.add(target, source, writable=bool(writable))
            self._mark("binds")
            self.view.seal()
            self._mark("seal")
        self._own(command)
        self._stdio(command)
        os.chdir(command["cwd"])
        self._mark("files")
        if self.ruleset is not None:
            for path in command.get("read", []):
                self._allow(path, landlock.READ)
            for path in command.get("write", []):
                self._allow(path, landlock.WRITE)
            for path in command.get("write_files", []):
                self._allow(path, landlock.READ_FILE | landlock.WRITE_FILE | landlock.TRUNCATE)
        self._mark("rules")
        if self.peak_fd is not None:  # the jail's own pages must not count as the model's peak
            os.write(self.peak_fd, b"0")
            os.close(self.peak_fd)
        _close_others(keep={self.report, self.ruleset.fd if self.ruleset else -1})
        for number, soft, hard in command.get("rlimits", []):
            resource.setrlimit(number, (soft, hard))
        self._drop()
        self._mark("drop")
        self._exec(command["argv"], command["env"])

    # -- steps ---------------------------------------------------------------------

    def _mark(self, step: str) -> None:
        if self.marks is not None:
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.marks.append((step, usage.ru_utime + usage.ru_stime))

    def _allow(self, path: str, rights: int) -> None:
        """A rule; without a view, never one that would cover the daemon's home."""
        assert self.ruleset is not None
        if not os.path.exists(path):
            return  # e.g. /lib32 on a host without it
        hidden = None if self.view is not None else self.plan.get("hide")
        landlock.allow_avoiding(self.ruleset, path, rights, hidden)

    def _own(self, command: dict[str, Any]) -> None:
        """The run's uid must own what it writes: its folders (and the folders the
        daemon made in them) and its two output files; and it must be able to read
        its input (see ``run``)."""
        if self.uid is None:
            return
        uid, gid = self.uid, int(self.plan.get("gid", self.uid))
        for folder in command.get("write", []):
            if not os.path.isdir(folder):
                continue
            os.chown(folder, uid, gid)
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):  # a link swapped in since: its own
                        os.chown(entry.path, uid, gid, follow_symlinks=False)
        outputs = {command["stdout"], command["stderr"]}  # owned as they are opened
        for path in command.get("write_files", []):
            if path not in outputs:
                if not os.path.exists(path):
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
                os.chown(path, uid, gid)

    def _stdio(self, command: dict[str, Any]) -> None:
        """The model's stdin, stdout and stderr; the outputs belong to its uid, so
        that ``> /dev/stderr`` (a reopen) works for it too."""
        stdin = command.get("stdin")
        out, err = command["stdout"], command["stderr"]
        fds = [
            os.open(stdin or "/dev/null", os.O_RDONLY),
            os.open(out, _TRUNC_WRITE, 0o644),
        ]
        fds.append(fds[1] if err == out else os.open(err, _TRUNC_WRITE, 0o644))
        if self.uid is not None:
            for fd in set(fds[1:]):
                os.fchown(fd, self.uid, int(self.plan.get("gid", self.uid)))
        for number, fd in enumerate(fds):
            os.dup2(fd, number)  # dup2 clears close-on-exec on the copy
        for fd in set(fds):
            if fd > 2:
                os.close(fd)

    def _drop(self) -> None:
        """Root gives up everything before the model runs: groups, gid, uid; then no
        exec may ever gain privileges again, and Landlock seals the rest. (The
        seccomp filter is in place since ``prepare``.)"""
        if self.uid is not None:
            gid = int(self.plan.get("gid", self.uid))
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(self.uid, self.uid, self.uid)
        sysc.no_new_privs()
        if self.ruleset is not None:
            self.ruleset.restrict()

    def _exec(self, argv: list[str], env: dict[str, str]) -> NoReturn:
        for number in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; a model must not
            signal.signal(number, signal.SIG_DFL)
        keeper = self.keeper.hold(KEEP_MICROSECONDS) if self.keeper is not None else None
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu = usage.ru_utime + usage.ru_stime
        report = b'{"exec": true, "cpu": %r, "maxrss": %d, "keeper": %d}\n' % (
            cpu, usage.ru_maxrss, keeper or 0,
        )  # fmt: skip
        if self.marks is not None:
            report += json.dumps({"steps": _steps(self.marks)}).encode() + b"\n"
        with contextlib.suppress(OSError):  # by hand: the JSON encoder's first use is slow
            os.write(self.report, report)
        try:
            os.execve(argv[0], argv, env)
        except OSError as exc:
            _say(self.report, {"error": _exec_error(argv[0], exc), "exec_failed": True})
            os._exit(NOT_FOUND if exc.errno == 2 else REFUSED)


_TRUNC_WRITE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC


def _exec_error(path: str, exc: OSError) -> str:
    """Why ``path`` could not be executed, in terms of the package: the kernel answers
    ENOENT for a script whose ``#!`` interpreter is missing (and a binary whose loader
    is), which named the script, there all along, as the file not found."""
    if exc.errno not in (errno.ENOENT, errno.ENOEXEC) or not os.path.isfile(path):
        return f"{path}: {exc.strerror}"
    if exc.errno == errno.ENOEXEC:
        return f"{path}: not a program this machine runs (a script needs a #! line)"
    words: list[bytes] = []
    with contextlib.suppress(OSError), open(path, "rb") as fh:
        head = fh.readline(256)
        words = head[2:].split() if head.startswith(b"#!") else []
    if words:
        name = words[0].decode(errors="replace")
        return f"{path}: its interpreter {name} (the #! line) does not exist here"
    return f"{path}: {exc.strerror} (the file is there: the loader it needs is missing)"


def standby(
    plan: dict[str, Any], commands: int, report: int, template: Template | None = None
) -> NoReturn:
    """The standby's whole life: prepare, wait for the command (EOF: the daemon is
    gone or dropped us), become the model. Never returns."""
    os.set_inheritable(commands, False)

    def command() -> bytes:
        data = _read_all(commands)
        os.close(commands)
        return data

    _become(plan, command, report, template)


def single(commands: int = 0, report: int = 3) -> NoReturn:
    """Without a zygote: the plan is the first line on ``commands``, the command the
    rest; the plan is applied as soon as it arrives, as a standby does."""
    buffer = b""
    while b"\n" not in buffer and (chunk := os.read(commands, 1 << 16)):
        buffer += chunk
    head, _, rest = buffer.partition(b"\n")
    try:
        plan = json.loads(head)
    except ValueError as exc:
        _say(report, {"error": f"bad plan: {exc}"})
        os._exit(REFUSED)
    _become(plan, lambda: rest + _read_all(commands), report)


def _become(
    plan: dict[str, Any],
    command: Callable[[], bytes],
    report: int,
    template: Template | None = None,
) -> NoReturn:
    try:
        os.setpgid(0, 0)  # its own process group, as Popen(process_group=0) gave
        os.set_inheritable(report, False)
        jail = Standby(plan, report, template)
        jail.prepare()
        data = command()
        if not data:
            os._exit(0)  # EOF: the daemon dropped this standby (or is gone)
        jail.run(marshal.loads(data))
    except BaseException as exc:
        _say(report, {"error": _describe(exc)})
        os._exit(REFUSED)


def _warm() -> None:
    """Run, once ahead, what each run will: a standby is a copy-on-write clone of the
    zygote, and the first use of each call costs page faults on the run's path."""
    sample = {"argv": ["/x"], "env": {"A": "b"}, "binds": [("/a", "/b", True)], "cpu": 0.5}
    marshal.loads(marshal.dumps(sample))
    resource.getrusage(resource.RUSAGE_SELF)
    resource.getrlimit(resource.RLIMIT_NOFILE)


def _steps(marks: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Each step's own CPU seconds: the difference to the mark before it."""
    starts = [0.0, *(cpu for _, cpu in marks)]
    return [(step, end - start) for (step, end), start in zip(marks, starts, strict=False)]


def _rules(plan: dict[str, Any]) -> list[tuple[str, int]]:
    """The run-independent Landlock rules: read the system and the interpreter,
    use a few devices, write the private /tmp and /dev/shm when there is a view."""
    rules = [(str(path), landlock.READ) for path in plan.get("read_rules", [])]
    rules.append(("/proc", landlock.READ_FILE | landlock.READ_DIR))
    rules.append(("/dev", landlock.READ_DIR))
    rules += [(f"/dev/{name}", landlock.DEVICE) for name in ("null", "zero", "full")]
    rules += [(f"/dev/{name}", landlock.READ_FILE) for name in ("random", "urandom")]
    if plan.get("mount"):  # the view holds nothing else: listing any folder of it is harmless
        rules += [("/", landlock.READ_DIR), ("/tmp", landlock.WRITE), ("/dev/shm", landlock.WRITE)]
    return rules


def _readable(top: str) -> None:
    """Readable (and folders searchable) by anyone who can reach them: the model's uid."""
    for folder, _, files in os.walk(top):
        os.chmod(folder, os.stat(folder).st_mode & 0o7777 | 0o555)
        for name in files:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if mode & 0o444 != 0o444 and not os.path.islink(path):
                os.chmod(path, mode & 0o7777 | 0o444)
    if os.path.isfile(top):
        os.chmod(top, os.stat(top).st_mode & 0o7777 | 0o444)


def _close_others(keep: set[int]) -> None:
    """Only stdin, stdout, stderr (and ``keep``, close-on-exec) may reach the model.

    ``closerange`` is one ``close_range`` call per gap (Linux 5.9+); no descriptor can
    lie above the current limit, since the run's lower one is only set after this.
    """
    low = 3
    for fd in sorted(k for k in keep if k > 2):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _say(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # nobody listens any more
        os.write(fd, (json.dumps(message) + "\n").encode())


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__
