"""Which protections models get here: tried once at start, then decided by the config.

The jail probes each mechanism the way it will use it (``Spawner.probe``);
``decide`` turns the answers and ``[isolation]`` into the protections every run
gets, or into a *refusal* when the config requires more than the host offers,
or when a root daemon could only run models as root. ``jail_plan`` is what
every standby is told to build. A run records the protections it ran under.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.config import MECHANISMS, PROTECTIONS, REQUIREMENT_GROUPS, IsolationSettings
from orchestrator.runs.access import interpreter_roots
from orchestrator.runs.cgroups import detect as detect_cgroups
from orchestrator.runs.cgroups import hierarchy_mounts
from orchestrator.runs.jail import sysc
from orchestrator.runs.jail.view import CGROUP, beneath
from orchestrator.runs.spawner import Spawner

log = logging.getLogger(__name__)

NET_NS_COST = (
    "not needed: Landlock already denies TCP; a network namespace per run costs ~0.5 ms of "
    "CPU more (name it in [isolation] use to have it anyway)"
)
"""Why ``use = "auto"`` leaves the network namespace out where Landlock covers TCP."""
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/sys")
"""Read-only in every model's view: programs, libraries, configuration, sysfs (whose
``/sys/fs/cgroup`` the view replaces: only the run's own groups with ``cgroup-ns``, an
empty folder without it)."""


@dataclass(frozen=True)
class Isolation:
    """What every run gets on this host; ``refusal`` set means no model may run."""

    protections: tuple[str, ...]
    landlock_abi: int = 0
    network: str = "none"
    refusal: str | None = None
    unavailable: dict[str, str] = field(default_factory=dict)
    """Mechanism -> why it is not used (the probe's answer, or the config)."""
    uid_range: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        """For /healthz, ``orch daemon status`` and logs."""
        return {
            "protections": list(self.protections),
            "landlock_abi": self.landlock_abi,
            "network": self.network,
            "refused": self.refusal,
            "unavailable": dict(self.unavailable),
            "uids": list(self.uid_range) if self.uid_range else None,
        }


def detect(
    spawner: Spawner, config: IsolationSettings, home: Path | None, tmp_size_mb: int
) -> tuple[Isolation, dict[str, Any]]:
    """Probe the host with everything on, decide, and return the plan to apply."""
    root = os.geteuid() == 0
    everything = Isolation(("mount-ns", "cgroup-ns", *(("proc-hidden",) if root else ())))
    try:
        probe = spawner.probe(jail_plan(everything, config, home, tmp_size_mb, spawner.python))
    except OSError as exc:
        isolation = Isolation((), refusal=f"the jail does not start: {exc}")
        return isolation, {}
    isolation = decide(config, probe, root=root)
    _report(isolation)
    return isolation, jail_plan(isolation, config, home, tmp_size_mb, spawner.python)


def decide(config: IsolationSettings, probe: dict[str, Any], *, root: bool) -> Isolation:
    """The protections the config asks for and the probe found working (pure)."""
    wanted = set(config.use if config.use is not None else MECHANISMS)
    abi = int(probe.get("landlock") or 0)
    got: set[str] = {"no-new-privs"}
    why: dict[str, str] = {}
    if "landlock" in wanted:
        got |= _landlock(abi, config.network, why)
    if config.use is None and "landlock-net" in got:
        wanted.discard("net-ns")  # see NET_NS_COST
        why["net-ns"] = NET_NS_COST
    if "mount-ns" in wanted:
        _probed("mount-ns", probe.get("mount"), got, why)
        if root and "mount-ns" in got:
            _probed("proc-hidden", probe.get("proc_hidden"), got, why)
        elif not root:
            why["proc-hidden"] = "needs a root daemon (a user namespace cannot mount /proc)"
    namespaced = root or "mount-ns" in got  # unprivileged, they need the user namespace
    if "net-ns" in wanted and config.network == "none" and namespaced:
        _probed("net-ns", probe.get("net_ns"), got, why)
    if "ipc-ns" in wanted and namespaced:
        _probed("ipc-ns", probe.get("ipc_ns"), got, why)
    if "seccomp" in wanted:  # fallocate & co.: faster than the disk_mb sampler can see
        _probed("seccomp", probe.get("seccomp"), got, why)
    for name in MECHANISMS:
        if name not in wanted:
            why.setdefault(name, "left out by [isolation] use")
    if root:
        got.add("uid")
    _cgroup_ns(probe.get("cgroup_ns"), got, why)
    protections = tuple(p for p in PROTECTIONS if p in got)
    uids = (config.uid_base, config.uid_base + config.uid_count - 1) if root else None
    return Isolation(protections, abi, config.network, _refusal(config, got, why, root), why, uids)


def for_builds(isolation: Isolation, config: IsolationSettings) -> Isolation:
    """What an environment build gets: the runs' protections less the network rules (it
    must reach the package index), run as one uid of its own (a root daemon's), the first
    past the models' range: never root, never a model's, the same for every build, so
    the build cache it writes stays its own. A host that refuses models refuses builds."""
    protections = tuple(p for p in isolation.protections if p not in ("landlock-net", "net-ns"))
    uid = config.uid_base + config.uid_count
    uids = (uid, uid) if isolation.uid_range is not None else None
    return replace(isolation, protections=protections, network="open", uid_range=uids)


def jail_plan(
    isolation: Isolation,
    config: IsolationSettings,
    home: Path | None,
    tmp_size_mb: int,
    python: str,
) -> dict[str, Any]:
    """What every standby builds (its cgroups and uid are added per standby)."""
    has = set(isolation.protections)
    own_cgroups = "cgroup-ns" in has and "mount-ns" in has
    system = [[p, os.path.realpath(p)] for p in SYSTEM_PATHS if os.path.lexists(p)]
    trees = [*interpreter_roots(python), *interpreter_roots(sys.executable)]
    trees += map(os.path.normpath, config.read_paths)
    read = [[p, os.path.realpath(p)] for p in dict.fromkeys(trees) if os.path.exists(p)]
    landlock = None
    if "landlock-fs" in has:
        landlock = {
            "abi": isolation.landlock_abi,
            "fs": True,
            "net": "landlock-net" in has,
            "scope": "landlock-signal" in has,
        }
    return {
        "mount": "mount-ns" in has,
        "userns": "mount-ns" in has and os.geteuid() != 0,
        "net_ns": "net-ns" in has,
        "ipc_ns": "ipc-ns" in has,
        "proc_hidden": "proc-hidden" in has,
        "system": system,
        "read": read,
        "read_rules": [target for target, _ in system + read],
        "hide": str(home.absolute()) if home is not None else None,
        "tmp_size_mb": tmp_size_mb,
        "landlock": landlock,
        "seccomp": "seccomp" in has,
        "cgroup_ns": own_cgroups,
        "cgroup_fs": _cgroup_mounts() if own_cgroups else [],
    }


def harden_daemon() -> None:
    """No process of our uid may read our memory or environment through /proc or
    ptrace: cheap insurance where Landlock's scoping is missing."""
    try:
        sysc.not_dumpable()
    except OSError as exc:
        log.warning("could not mark the daemon non-dumpable: %s", exc)


def _landlock(abi: int, network: str, why: dict[str, str]) -> set[str]:
    if abi < 1:
        why["landlock"] = "this kernel offers no Landlock (Linux 5.13+, enabled at boot)"
        return set()
    got = {"landlock-fs"}
    if network == "none" and abi >= 4:
        got.add("landlock-net")
    elif network == "none":
        why["landlock-net"] = f"needs Landlock ABI 4 (Linux 6.7), this kernel has {abi}"
    if abi >= 6:
        got |= {"landlock-signal", "landlock-unix"}
    else:
        why["landlock-signal"] = f"needs Landlock ABI 6 (Linux 6.12), this kernel has {abi}"
    return got


def _cgroup_ns(answer: object, got: set[str], why: dict[str, str]) -> None:
    """``cgroup-ns``: a model's /sys/fs/cgroup shows only its run's own groups. Without
    it the reason says what models see there instead: the host's tree (no view of their
    own), or an empty folder."""
    if "mount-ns" not in got:
        why["cgroup-ns"] = "needs mount-ns: models see the host's /sys/fs/cgroup"
    elif answer == "ok":
        got.add("cgroup-ns")
    else:
        why["cgroup-ns"] = f"models see an empty /sys/fs/cgroup ({answer or 'not probed'})"


def _cgroup_mounts() -> list[list[str]]:
    """The hierarchies the runs' groups lie in, as the view can show them: under
    /sys/fs/cgroup (a jail mounts nothing elsewhere)."""
    return [list(m) for m in hierarchy_mounts(detect_cgroups()) if beneath(m[0], CGROUP)]


def _probed(name: str, answer: object, got: set[str], why: dict[str, str]) -> None:
    """A protection the probe tried in a jail: had if it answered "ok", else its reason."""
    if answer == "ok":
        got.add(name)
    else:
        why[name] = str(answer or "not probed")


def _refusal(
    config: IsolationSettings, got: set[str], why: dict[str, str], root: bool
) -> str | None:
    if root and "mount-ns" not in got:
        reason = why.get("mount-ns", "")
        return (
            "the daemon runs as root, so models must run as another user, which needs a "
            f"mount namespace ({reason}); run the daemon as an ordinary user instead"
        )
    missing = [need for need in config.require if not _met(need, got)]
    if not missing:
        return None
    reasons = "; ".join(f"{name}: {text}" for name, text in why.items())
    return f"[isolation] require lists {', '.join(missing)}, which this host does not offer" + (
        f" ({reasons})" if reasons else ""
    )


def _met(need: str, got: set[str]) -> bool:
    return any(name in got for name in REQUIREMENT_GROUPS.get(need, (need,)))


def _report(isolation: Isolation) -> None:
    if isolation.refusal:
        log.error("MODELS WILL NOT RUN: %s", isolation.refusal)
    elif set(isolation.protections) <= {"no-new-privs", "uid", "seccomp"}:
        log.error(
            "MODELS RUN UNPROTECTED: this host offers no file-system isolation (%s)",
            "; ".join(f"{k}: {v}" for k, v in isolation.unavailable.items()),
        )
    else:
        log.info("model isolation: %s", ", ".join(isolation.protections))
    if isolation.refusal is None and "cgroup-ns" not in isolation.protections:
        log.info("models' cgroups: %s", isolation.unavailable.get("cgroup-ns"))
