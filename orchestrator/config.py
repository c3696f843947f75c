"""Daemon settings: defaults, overridden by ``<home>/config.toml``, then by ``ORCH_*`` variables.

Example ``config.toml``::

    concurrency = 4
    executor = "dask://127.0.0.1:8786"  # run models on a Dask cluster (default "local")
    python_envs = "daemon"          # run python apps on the daemon's interpreter (offline)
    max_upload_mb = 500
    tls = true                      # serve HTTPS (orch's own CA): the nextmv CLI needs it
    disk_low_mb = 128               # keep this much free: writes answer 507 below it

    [limits]                        # defaults for every run
    memory_mb = 2048
    timeout_seconds = 3600

    [execution_classes.small]       # named profiles an instance can pick
    memory_mb = 512
    cpu_seconds = 60

    [isolation]                     # the jail every model runs in (see README, Security)
    use = "auto"                    # or a subset of ["landlock", "mount-ns", "net-ns", "ipc-ns"]
    require = ["fs"]                # refuse to run models unless these apply
    network = "none"                # "open": models may use the network (and reach the daemon)
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.errors import Invalid
from orchestrator.home import Home, default_home
from orchestrator.models import Limits
from orchestrator.ports import recorded_tls

DEFAULT_LIMITS = Limits(
    memory_mb=4096,
    timeout_seconds=3600,
    output_mb=1024,
    open_files=1024,
    processes=256,
    disk_mb=10240,
    retries=0,
)
MECHANISMS = ("landlock", "mount-ns", "net-ns", "ipc-ns", "seccomp")
"""What ``[isolation] use`` may name; the uid of a root daemon's models is not optional."""
PROTECTIONS = (
    "landlock-fs",
    "landlock-net",
    "landlock-signal",
    "landlock-unix",
    "mount-ns",
    "proc-hidden",
    "cgroup-ns",
    "net-ns",
    "ipc-ns",
    "seccomp",
    "uid",
    "no-new-privs",
)
"""What a run can be protected by; each run records the ones that applied."""
REQUIREMENT_GROUPS = {"fs": ("landlock-fs", "mount-ns"), "net": ("landlock-net", "net-ns")}
"""``require`` may name a protection or a group, met by any one of its members."""


@dataclass(frozen=True)
class IsolationSettings:
    """The ``[isolation]`` table: which mechanisms to use and which the host must offer.

    ``use`` None means every mechanism the host offers. Models of a root daemon
    always run as a uid of ``uid_base .. uid_base + uid_count - 1``, never as root.
    """

    use: tuple[str, ...] | None = None
    require: tuple[str, ...] = ("fs",)
    network: str = "none"
    uid_base: int = 2_000_000_000
    uid_count: int = 1000
    read_paths: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IsolationSettings:
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise Invalid(
                f"config.toml [isolation]: unknown setting(s) {', '.join(sorted(unknown))}"
            )
        use = data.get("use", "auto")
        values = cls(
            use=None if use == "auto" else _names(use, MECHANISMS, "use"),
            require=_names(data.get("require", cls.require), (*PROTECTIONS, *REQUIREMENT_GROUPS),
                           "require"),
            network=str(data.get("network", cls.network)),
            uid_base=_integer(data, "uid_base", cls.uid_base),
            uid_count=_integer(data, "uid_count", cls.uid_count),
            read_paths=_paths(data.get("read_paths", [])),
        )  # fmt: skip
        if values.network not in ("none", "open"):
            raise Invalid(f'config.toml [isolation]: network must be "none" or "open", '
                          f"got {values.network!r}")  # fmt: skip
        if values.network == "open" and {"net", "landlock-net", "net-ns"} & set(values.require):
            raise Invalid('config.toml [isolation]: network = "open" cannot require net')
        if not all(p.startswith("/") for p in values.read_paths):
            raise Invalid("config.toml [isolation]: read_paths must be absolute")
        return values


def _names(raw: Any, known: tuple[str, ...], key: str) -> tuple[str, ...]:
    if not isinstance(raw, list | tuple) or not all(isinstance(name, str) for name in raw):
        raise Invalid(f'config.toml [isolation]: {key} must be a list of names (or use = "auto")')
    wrong = [name for name in raw if name not in known]
    if wrong:
        raise Invalid(
            f"config.toml [isolation]: unknown {key} {', '.join(wrong)}; known: {', '.join(known)}"
        )
    return tuple(raw)


def _paths(raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(path, str) for path in raw):
        raise Invalid("config.toml [isolation]: read_paths must be a list of absolute paths")
    return tuple(raw)


def _integer(data: dict[str, Any], key: str, default: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or value <= 0:
        raise Invalid(f"config.toml [isolation]: {key} must be a positive integer")
    return value


DEFAULT_EXECUTION_CLASSES = {
    "small": Limits(
        memory_mb=512, cpu_seconds=300, timeout_seconds=300, processes=64, disk_mb=1024
    ),
    "medium": Limits(memory_mb=2048, cpu_seconds=1800, timeout_seconds=1800),
    "large": Limits(memory_mb=8192, timeout_seconds=3600 * 4, processes=1024),
}


@dataclass
class Settings:
    home: Home = field(default_factory=lambda: Home(default_home()))
    host: str = "127.0.0.1"
    port: int | None = None  # None: the stable port (see ports.py); 0: any free one
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    limits: Limits = DEFAULT_LIMITS
    execution_classes: dict[str, Limits] = field(
        default_factory=lambda: dict(DEFAULT_EXECUTION_CLASSES)
    )
    python_envs: str = "isolated"
    """"isolated": a venv per requirements set, and one shared by apps without any
    (``pyenv.shared_env``); "daemon": none, every app on the daemon's interpreter."""
    max_upload_mb: int = 500
    max_package_mb: int = 200
    max_package_files: int = 10_000
    inline_output_bytes: int = 5 * 1024 * 1024
    statistics_parse_bytes: int = 16 * 1024 * 1024
    upload_url_ttl_seconds: int = 3600
    memory_sample_seconds: float = 0.05
    shutdown_grace_seconds: float = 5.0
    disk_low_mb: int = 128  # below this much free space, writes answer 507 and queued runs wait
    disk_reserve_mb: int = 16  # preallocated in the home; released when the disk fills up
    loop_monitor: bool = False
    """Measure event-loop stalls and report them in /healthz (benchmarks)."""
    isolation: IsolationSettings = field(default_factory=IsolationSettings)
    executor: str = "local"
    """Where models run: ``local`` (this machine's sandbox) or ``dask://HOST:PORT``."""
    tls: bool = False
    """Serve HTTPS with a certificate from orch's own CA (``tls.py``): the official
    ``nextmv`` CLI speaks nothing else."""

    def __post_init__(self) -> None:
        dask_address(self.executor)  # refuse a bad executor before anything starts

    def limits_for_class(self, name: str | None) -> Limits:
        """Limits of a named class; a name orch does not know adds none.

        Code written for Nextmv Cloud passes cloud class names (e.g.
        ``6c9500mb870s``); refusing them would break apps that must run
        unmodified, so they run with the daemon's defaults instead.
        """
        if name is None:
            return Limits()
        return self.execution_classes.get(name, Limits())

    @classmethod
    def load(cls, home: Home | None = None, **overrides: Any) -> Settings:
        """Defaults < ``config.toml`` < environment < explicit ``overrides``."""
        home = home or Home(default_home())
        values: dict[str, Any] = {}
        if home.config_file.exists():
            values.update(_from_toml(_read_config(home.config_file)))
        values.update(_from_env())
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "tls" not in values and (tls := recorded_tls(home)) is not None:
            values["tls"] = tls  # the scheme of the last start: the address stays (``ports``)
        settings = cls(home=home, **values)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse settings that cannot work, naming them (a start-up error, never a crash)."""
        if self.host != "127.0.0.1":
            raise Invalid(
                f"config: host = {self.host!r} is refused: orch listens on 127.0.0.1 only "
                "(its API key travels in clear text)"
            )
        if self.python_envs not in ("isolated", "daemon"):
            raise Invalid(
                f"config: python_envs must be 'isolated' or 'daemon', not {self.python_envs!r}"
            )
        for name in ("concurrency", "max_upload_mb", "max_package_mb", "max_package_files"):
            if getattr(self, name) < 1:
                raise Invalid(f"config: {name} must be at least 1")
        for name in ("disk_low_mb", "disk_reserve_mb", "port"):
            value = getattr(self, name)
            if value is not None and value < 0:  # port None: the stable port (``ports``)
                raise Invalid(f"config: {name} cannot be negative")


DASK_SCHEME = "dask://"
DASK_DEFAULT_PORT = 8786


def dask_address(executor: str) -> str | None:
    """The scheduler address (``tcp://HOST:PORT``) of a ``dask://HOST[:PORT]`` executor;
    None for ``local``. Plain text parsing: choosing dask imports nothing until used."""
    if executor == "local":
        return None
    if not executor.startswith(DASK_SCHEME):
        raise Invalid(f"executor {executor!r} is neither 'local' nor 'dask://HOST:PORT'")
    where = executor[len(DASK_SCHEME) :].rstrip("/")
    host, colon, port = where.rpartition(":") if ":" in where else (where, "", "")
    if not host or "/" in host or (port and not (port.isascii() and port.isdigit())):
        raise Invalid(f"executor {executor!r}: expected dask://HOST:PORT")
    if colon and not port:  # "dask://host:" with the port left out, not the default asked
        raise Invalid(f"executor {executor!r}: the port is empty (dask://HOST:PORT, or no ':')")
    if port and not 1 <= int(port) <= 65535:  # else it fails only when connecting, 10 s on
        raise Invalid(f"executor {executor!r}: the port must be 1-65535 (dask://HOST:PORT)")
    return f"tcp://{host}:{port or DASK_DEFAULT_PORT}"


def _read_config(path: Path) -> str:
    """The file's text; TOML is UTF-8 by definition, so other bytes are a config error."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise Invalid(
            f"config.toml is not valid TOML: line {line} is not UTF-8 "
            f"(byte {exc.object[exc.start : exc.start + 1]!r})"
        ) from None
    except OSError as exc:
        raise Invalid(f"config.toml cannot be read: {exc.strerror or exc}") from None


def _from_toml(text: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"config.toml is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    known = set(Settings.__dataclass_fields__) - {"home", "limits", "execution_classes"}
    for key, raw in data.items():
        if key == "isolation":
            values["isolation"] = _section("isolation", raw, IsolationSettings.from_dict)
        elif key == "limits":
            values["limits"] = _section("limits", raw, Limits.from_dict).over(DEFAULT_LIMITS)
        elif key == "execution_classes":
            values["execution_classes"] = {
                name: _section(f"execution_classes.{name}", spec, Limits.from_dict)
                for name, spec in _table("execution_classes", raw).items()
            }
        elif key in known:
            values[key] = _typed(key, raw)
        else:
            raise Invalid(f"config.toml: unknown setting {key!r}")
    return values


T = TypeVar("T")


def _table(name: str, raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise Invalid(f"config.toml: {name} must be a table ([{name}]), not {raw!r}")
    return raw


def _section(name: str, raw: Any, read: Callable[[dict[str, Any]], T]) -> T:
    """``read`` of the table ``[name]``; its errors say where they are in the file."""
    try:
        return read(_table(name, raw))
    except Invalid as exc:
        if exc.message.startswith("config.toml"):
            raise
        raise Invalid(f"config.toml [{name}]: {exc.message}") from None


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _typed(key: str, raw: Any) -> Any:
    """A setting's value if it has the setting's type (``concurrency = "4"`` is refused)."""
    kinds = _TYPES.get(str(Settings.__dataclass_fields__[key].type), (object,))
    if (isinstance(raw, bool) and bool not in kinds) or not isinstance(raw, kinds):
        expected = " or ".join(k.__name__ for k in kinds)
        raise Invalid(f"config.toml: {key} must be {expected}, not {raw!r}")
    return raw


def _flag(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


_ENV: dict[str, tuple[str, Callable[[str], Any]]] = {
    "ORCH_PORT": ("port", int),
    "ORCH_CONCURRENCY": ("concurrency", int),
    "ORCH_PYTHON_ENVS": ("python_envs", str),
    "ORCH_MAX_UPLOAD_MB": ("max_upload_mb", int),
    "ORCH_LOOP_MONITOR": ("loop_monitor", _flag),
    "ORCH_EXECUTOR": ("executor", str),
    "ORCH_TLS": ("tls", _flag),
}


def _from_env() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for var, (key, kind) in _ENV.items():
        if (raw := os.environ.get(var)) not in (None, ""):
            try:
                values[key] = kind(raw)
            except ValueError:
                expected = "flag (1/0, true/false)" if kind is _flag else kind.__name__
                raise Invalid(f"{var}={raw!r} is not a valid {expected}") from None
    return values
