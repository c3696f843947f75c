"""Daemon settings: defaults, overridden by ``<home>/config.toml``, then by ``ORCH_*`` variables.

Example ``config.toml``::

    concurrency = 4
    executor = "dask://127.0.0.1:8786"  # run models on a Dask cluster (default "local")
    python_envs = "daemon"          # run python apps on the daemon's interpreter (offline)
    max_upload_mb = 500

    [limits]                        # defaults for every run
    memory_mb = 2048
    timeout_seconds = 3600

    [execution_classes.small]       # named profiles an instance can pick
    memory_mb = 512
    cpu_seconds = 60
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import Invalid
from orchestrator.home import Home, default_home
from orchestrator.models import Limits

DEFAULT_LIMITS = Limits(
    memory_mb=4096,
    timeout_seconds=3600,
    output_mb=1024,
    open_files=1024,
    processes=256,
    retries=0,
)
DEFAULT_EXECUTION_CLASSES = {
    "small": Limits(memory_mb=512, cpu_seconds=300, timeout_seconds=300, processes=64),
    "medium": Limits(memory_mb=2048, cpu_seconds=1800, timeout_seconds=1800),
    "large": Limits(memory_mb=8192, timeout_seconds=3600 * 4, processes=1024),
}


@dataclass
class Settings:
    home: Home = field(default_factory=lambda: Home(default_home()))
    host: str = "127.0.0.1"
    port: int = 0
    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    limits: Limits = DEFAULT_LIMITS
    execution_classes: dict[str, Limits] = field(
        default_factory=lambda: dict(DEFAULT_EXECUTION_CLASSES)
    )
    python_envs: str = "isolated"  # "isolated": a venv per requirements set; "daemon": none
    max_upload_mb: int = 500
    max_package_mb: int = 200
    max_package_files: int = 10_000
    inline_output_bytes: int = 5 * 1024 * 1024
    statistics_parse_bytes: int = 16 * 1024 * 1024
    upload_url_ttl_seconds: int = 3600
    memory_sample_seconds: float = 0.05
    shutdown_grace_seconds: float = 5.0
    loop_monitor: bool = False
    """Measure event-loop stalls and report them in /healthz (benchmarks)."""
    executor: str = "local"
    """Where models run: ``local`` (this machine's sandbox) or ``dask://HOST:PORT``."""

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
            values.update(_from_toml(home.config_file.read_text()))
        values.update(_from_env())
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(home=home, **values)


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
    host, _, port = where.rpartition(":") if ":" in where else (where, "", "")
    if not host or "/" in host or (port and not port.isdigit()):
        raise Invalid(f"executor {executor!r}: expected dask://HOST:PORT")
    return f"tcp://{host}:{port or DASK_DEFAULT_PORT}"


def _from_toml(text: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise Invalid(f"config.toml is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    known = set(Settings.__dataclass_fields__) - {"home", "limits", "execution_classes"}
    for key, raw in data.items():
        if key == "limits":
            values["limits"] = Limits.from_dict(raw).over(DEFAULT_LIMITS)
        elif key == "execution_classes":
            values["execution_classes"] = {
                name: Limits.from_dict(spec) for name, spec in raw.items()
            }
        elif key in known:
            values[key] = raw
        else:
            raise Invalid(f"config.toml: unknown setting {key!r}")
    return values


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
