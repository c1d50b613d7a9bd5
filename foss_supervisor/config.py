"""Typed configuration: frozen dataclasses and the one loader that builds them from YAML.

Every refusal is a :class:`~foss_supervisor.errors.ConfigError` naming the file, the line, the
dotted key and the reason, so an operator can fix a file without reading our code. Durations are
seconds (``5``, ``0.5``) or strings with a unit (``"500ms"``, ``"5s"``, ``"2m"``); sizes are bytes or
``"10MB"``-style strings. Relative paths are resolved against the config file's folder.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from foss_supervisor.backoff import BackoffPolicy
from foss_supervisor.errors import ConfigError
from foss_supervisor.interpolate import interpolate_config
from foss_supervisor.resources import (
    config_path,
    data_dir,
    default_config_path,
    default_state_dir,
    resolve_path,
)
from foss_supervisor.yamlload import MAX_FILE_BYTES, load_yaml

__all__ = [
    "DEPENDENCY_CONDITIONS",
    "EVENT_KINDS",
    "RLIMIT_NAMES",
    "RLIM_INFINITY",
    "Config",
    "DependencyCondition",
    "HealthConfig",
    "HookConfig",
    "LogConfig",
    "PipelineConfig",
    "ProgramConfig",
    "default_config_path",
    "default_state_dir",
    "load_config",
    "parse_config",
]

AutoRestart = Literal["always", "on-failure", "never"]
#: when a dependency counts as ready (Docker Compose's and process-compose's conditions)
DependencyCondition = Literal["started", "healthy", "completed_successfully"]
DEPENDENCY_CONDITIONS: tuple[DependencyCondition, ...] = ("started", "healthy", "completed_successfully")
#: the resource limits a program may set (the names ``prlimit(1)`` and ``setrlimit(2)`` use)
RLIMIT_NAMES = frozenset({
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
})  # fmt: skip
RLIM_INFINITY = -1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Where a program's output goes and how it rotates."""

    file: Path | None = None  # None: <state_dir>/logs/<name>.log
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3
    timestamps: bool = False


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """One probe: ``http`` (GET url, 2xx/3xx is healthy), ``tcp`` (connect) or ``exec`` (exit 0)."""

    kind: Literal["http", "tcp", "exec"]
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    command: tuple[str, ...] = ()
    interval_s: float = 5.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    start_period_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ProgramConfig:
    """One supervised program (each replica gets its own copy with its own name)."""

    name: str
    command: tuple[str, ...]
    shell: bool = False
    cwd: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    user: str | None = None
    autostart: bool = True
    autorestart: AutoRestart = "on-failure"
    exit_codes: frozenset[int] = frozenset({0})
    start_timeout_s: float = 1.0
    start_retries: int | None = 10  # None: forever, at the backoff cap; 10: about 50 s of retries
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout_s: float = 5.0
    kill_group: bool = True
    depends_on: tuple[str, ...] = ()
    dependency_conditions: Mapping[str, DependencyCondition] = field(default_factory=dict)  # missing: healthy
    umask: int | None = None  # None: the daemon's
    rlimits: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # name -> (soft, hard); -1: unlimited
    ready: Literal["running", "notify"] = "running"
    group: str = ""  # the program name before replicas were expanded
    replica: int = 0
    health: HealthConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    pidfile: Path | None = None  # a program that forks: supervise the main PID it writes here (Type=forking)

    def condition_for(self, dependency: str) -> DependencyCondition:
        """When ``dependency`` (one of ``depends_on``) counts as ready for this program."""
        return self.dependency_conditions.get(dependency, "healthy")


EVENT_KINDS = ("program_fatal", "program_exited", "program_unhealthy", "pipeline_failed", "pipeline_succeeded")


@dataclass(frozen=True, slots=True)
class HookConfig:
    """One hook: which event kinds (and programs or pipelines) it hears, and a command or a URL to tell."""

    name: str
    events: frozenset[str]
    command: tuple[str, ...] = ()
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    select: tuple[str, ...] = ()  # program selectors or pipeline names; empty: every one
    timeout_s: float = 10.0
    retries: int = 2


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    """When and on which folders the daemon runs one declared pipeline."""

    name: str
    file: Path  # the pipeline's YAML (steps, SQL files, reference folder)
    landing: Path  # where its input files land
    reference: Path | None = None  # None: the folder the pipeline's YAML names
    every_s: float = 0.0  # run on this interval; 0: never on a timer
    on_new_files: bool = True  # run when a file lands in ``landing``
    demo_data: bool = False  # on first start, write the sample data set into an empty landing folder
    cron: str | None = None  # also run on this cron schedule (5 fields, or 6 with seconds last), local time
    after: tuple[str, ...] = ()  # also run after each good run of these pipelines


@dataclass(frozen=True, slots=True)
class Config:
    """The whole daemon configuration."""

    source: Path
    state_dir: Path
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 5000
    debug: bool = False
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 3
    programs: Mapping[str, ProgramConfig] = field(default_factory=dict)
    pipelines: Mapping[str, PipelineConfig] = field(default_factory=dict)
    data_dir: Path | None = None  # None: <state_dir>/data (landing, warehouse, reports)
    watch_interval_s: float = 5.0  # how often landing folders are looked at
    worker_memory_limit: str | None = None  # DuckDB memory_limit of the pipeline worker
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> program (replica-set) names
    hooks: tuple[HookConfig, ...] = ()  # see foss_supervisor.hooks

    @property
    def replica_sets(self) -> dict[str, list[str]]:
        """Each program's name before replicas were expanded -> its programs' names, in config order."""
        out: dict[str, list[str]] = {}
        for prog in self.programs.values():
            out.setdefault(prog.group or prog.name, []).append(prog.name)
        return out

    @property
    def data_path(self) -> Path:
        return self.data_dir or self.state_dir / "data"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "foss-supervisor.pid"

    @property
    def control_socket(self) -> Path:
        return self.state_dir / "control.sock"

    @property
    def dashboard_url(self) -> str:
        host = f"[{self.dashboard_host}]" if ":" in self.dashboard_host else self.dashboard_host
        return f"http://{host}:{self.dashboard_port}/"


# --------------------------------------------------------------------------------------------
# Validation helpers


class _Reader:
    """Reads keys out of one mapping, refusing unknown keys and wrong types with a located error.

    With an ``errors`` list, unknown keys and wrong values are noted there and reading goes on (a
    wrong value reads as its default), so one pass finds every error of a file; :meth:`fail` still
    raises, for what the rest of a section cannot be read without.
    """

    def __init__(self, data: Any, path: str, file: str, lines: dict[str, int],
                 errors: list[ConfigError] | None = None) -> None:  # fmt: skip
        self.file, self.path, self.lines, self.errors = file, path, lines, errors
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.note("", f"must be a mapping, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, reason: str) -> ConfigError:
        key = self.key(name) if name else self.path
        return ConfigError(self.file, key, reason, self.lines.get(key) or self.lines.get(self.path))

    def fail(self, name: str, reason: str) -> None:
        raise self.error(name, reason)

    def note(self, name: str, reason: str) -> None:
        """Record an error and go on reading (raise it when no list collects errors)."""
        if self.errors is None:
            self.fail(name, reason)
        else:
            self.errors.append(self.error(name, reason))

    def only(self, allowed: set[str]) -> None:
        for name in self.data:
            if name not in allowed:
                hint = f"; known keys: {', '.join(sorted(allowed))}"
                self.note(name, f"unknown key{hint}")

    def get(self, name: str, convert: Callable[[Any], T], default: T) -> T:
        if name not in self.data or self.data[name] is None:
            return default
        try:
            return convert(self.data[name])
        except (TypeError, ValueError) as exc:
            self.note(name, str(exc))
            return default

    def sub(self, name: str) -> _Reader:
        return _Reader(self.data.get(name), self.key(name), self.file, self.lines, self.errors)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {value!r}")
    return value


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be >= {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be <= {maximum}, got {value}")
        return value

    return convert


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"must be a non-empty string, got {value!r}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}


def _duration(value: Any) -> float:
    """Seconds from a number or a string like ``500ms``, ``5s``, ``2m``, ``1h``."""
    if isinstance(value, bool):
        raise TypeError(f"must be a duration, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2) or "s"]
        seconds = float(m.group(1)) * scale
    else:
        raise TypeError(f"must be a duration in seconds or like '500ms', '5s', '2m', got {value!r}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return seconds


def _size(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    raise TypeError(f"must be a size in bytes or like '10MB', got {value!r}")


def _port(value: Any) -> int:
    return _int(1, 65535)(value)


def _signal(value: Any) -> signal.Signals:
    if not isinstance(value, str):
        raise TypeError(f"must be a signal name like TERM or SIGINT, got {value!r}")
    name = value.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def _argv(value: Any) -> tuple[str, ...]:
    """An argv list, or a string split the way a POSIX shell would (never run through a shell)."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split command: {exc}") from None
    elif isinstance(value, list) and all(isinstance(a, str | int | float) for a in value):
        argv = [str(a) for a in value]
    else:
        raise TypeError(f"must be a list of arguments or a string, got {value!r}")
    if not argv:
        raise ValueError("must not be empty")
    return tuple(argv)


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise TypeError(f"must be a mapping of names to values, got {value!r}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise TypeError(f"value of {k!r} must be a string or number, got {v!r}")
        out[str(k)] = str(v)
    return out


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise TypeError(f"must be a program name or a list of names, got {value!r}")


def _exit_codes(value: Any) -> frozenset[int]:
    items = value if isinstance(value, list) else [value]
    return frozenset(_int(0, 255)(v) for v in items)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_PROGRAMS = 2000  # replicas counted; each is a process with three pipes and a controller task


# --------------------------------------------------------------------------------------------
# Sections


def _parse_health(r: _Reader) -> HealthConfig:
    r.only({"http", "tcp", "exec", "interval", "timeout", "failure_threshold", "start_period"})
    kinds = [k for k in ("http", "tcp", "exec") if k in r.data]
    if len(kinds) != 1:
        r.fail("", "needs exactly one probe: http (url), tcp (host:port or port) or exec (command)")
    kind = kinds[0]
    common: dict[str, Any] = {
        "interval_s": r.get("interval", _duration, 5.0),
        "timeout_s": r.get("timeout", _duration, 2.0),
        "failure_threshold": r.get("failure_threshold", _int(1), 3),
        "start_period_s": r.get("start_period", _duration, 0.0),
    }
    if kind == "http":
        url = r.get("http", _str, "")
        if not url.startswith(("http://", "https://")):
            r.fail("http", f"must be an http:// or https:// URL, got {url!r}")
        return HealthConfig(kind="http", url=url, **common)
    if kind == "tcp":
        raw = r.data["tcp"]
        host, port_text = ("127.0.0.1", raw) if isinstance(raw, int) else (str(raw).rpartition(":")[::2])
        try:
            port = _port(int(port_text))
        except (TypeError, ValueError):
            r.fail("tcp", f"must be a port or host:port, got {raw!r}")
        return HealthConfig(kind="tcp", host=host or "127.0.0.1", port=port, **common)
    return HealthConfig(kind="exec", command=r.get("exec", _argv, ()), **common)


def _parse_log(r: _Reader, base: Path) -> LogConfig:
    r.only({"file", "max_bytes", "backups", "timestamps"})
    file = r.get("file", _str, "")
    return LogConfig(
        file=resolve_path(base, file) if file else None,
        max_bytes=r.get("max_bytes", _size, 10 * 1024 * 1024),
        backups=r.get("backups", _int(0, 100), 3),
        timestamps=r.get("timestamps", _bool, False),
    )


_PROGRAM_KEYS = {
    "command", "shell", "cwd", "env", "env_file", "user", "autostart", "autorestart", "exit_codes",
    "start_timeout", "start_retries", "backoff", "stop_signal", "stop_timeout", "kill_group",
    "depends_on", "replicas", "health", "log", "ready", "umask", "rlimits", "pidfile",
}  # fmt: skip


def _parse_program(name: str, r: _Reader, base: Path) -> list[ProgramConfig]:
    """One program section; each replica is parsed from its own copy with ``{replica}`` filled in everywhere."""
    r.only(_PROGRAM_KEYS)
    if not _NAME.match(name):
        r.fail("", "program names use letters, digits, '_', '.', '-' (at most 64)")
    if "command" not in r.data:
        r.fail("", "missing required key 'command'")
    replicas = r.get("replicas", _int(1, 1000), 1)
    if replicas == 1:
        return [_parse_replica(name, name, 0, _Reader(_fill_replica(r.data, "0"), r.path, r.file, r.lines), base)]
    return [
        _parse_replica(f"{name}-{i}", name, i, _Reader(_fill_replica(r.data, str(i)), r.path, r.file, r.lines), base)
        for i in range(replicas)
    ]


def _fill_replica(value: Any, replica: str) -> Any:
    """``value`` with ``{replica}`` replaced in every string it holds (command, env, paths, probes...)."""
    if isinstance(value, str):
        return value.replace("{replica}", replica)
    if isinstance(value, dict):
        return {k: _fill_replica(v, replica) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_replica(v, replica) for v in value]
    return value


def _parse_replica(name: str, group: str, replica: int, r: _Reader, base: Path) -> ProgramConfig:
    shell = r.get("shell", _bool, False)
    if shell:
        command: tuple[str, ...] = ("/bin/sh", "-c", r.get("command", _str, ""))
    else:
        command = r.get("command", _argv, ())
    autorestart = r.get("autorestart", str, "on-failure")
    if autorestart not in ("always", "on-failure", "never"):
        r.fail("autorestart", f"must be always, on-failure or never, got {autorestart!r}")
    forever = r.data.get("start_retries") == "forever"
    start_retries = None if forever else r.get("start_retries", _int(0), 10)
    env_file = r.get("env_file", _str, "")
    pidfile = r.get("pidfile", _str, "")
    cwd = r.get("cwd", _str, "")
    user = r.get("user", _str, "") or None
    if user is not None and os.geteuid() != 0:
        r.fail("user", "can only be set when the daemon runs as root")
    ready = r.get("ready", str, "running")
    if ready not in ("running", "notify"):
        r.fail("ready", f"must be running (up for start_timeout) or notify (sends READY=1), got {ready!r}")
    depends_on, conditions = _parse_depends_on(r)
    return ProgramConfig(
        name=name,
        command=command,
        shell=shell,
        cwd=resolve_path(base, cwd) if cwd else None,
        env=r.get("env", _str_map, {}),
        env_file=resolve_path(base, env_file) if env_file else None,
        pidfile=resolve_path(base, pidfile) if pidfile else None,
        user=user,
        autostart=r.get("autostart", _bool, True),
        autorestart=autorestart,  # type: ignore[arg-type]  # checked above
        exit_codes=r.get("exit_codes", _exit_codes, frozenset({0})),
        start_timeout_s=r.get("start_timeout", _duration, 1.0),
        start_retries=start_retries,
        backoff=_parse_backoff(r.sub("backoff")),
        stop_signal=r.get("stop_signal", _signal, signal.SIGTERM),
        stop_timeout_s=r.get("stop_timeout", _duration, 5.0),
        kill_group=r.get("kill_group", _bool, True),
        depends_on=depends_on,
        dependency_conditions=conditions,
        umask=r.get("umask", _umask, None),
        rlimits=_parse_rlimits(r.sub("rlimits")),
        ready=ready,  # type: ignore[arg-type]  # checked above
        group=group,
        replica=replica,
        health=_parse_health(r.sub("health")) if r.data.get("health") is not None else None,
        log=_parse_log(r.sub("log"), base),
    )


def _parse_backoff(b: _Reader) -> BackoffPolicy:
    b.only({"initial", "max", "multiplier", "jitter", "reset_after"})
    backoff = BackoffPolicy(
        initial_s=b.get("initial", _duration, 0.0),
        max_s=b.get("max", _duration, 30.0),
        multiplier=b.get("multiplier", float, 2.0),
        jitter=b.get("jitter", float, 0.1),
        reset_after_s=b.get("reset_after", _duration, 10.0),
    )
    if backoff.multiplier < 1.0:
        b.fail("multiplier", "must be >= 1")
    if not 0.0 <= backoff.jitter <= 1.0:
        b.fail("jitter", "must be between 0 and 1")
    return backoff


def _parse_depends_on(r: _Reader) -> tuple[tuple[str, ...], dict[str, DependencyCondition]]:
    """``db``, ``[db, cache]`` (each ``healthy``) or ``{db: {condition: healthy}, init: completed_successfully}``.

    Docker Compose's ``service_*`` and process-compose's ``process_*`` spellings are accepted too.
    """
    raw = r.data.get("depends_on")
    if raw is None:
        return (), {}
    if not isinstance(raw, dict):
        return r.get("depends_on", _names, ()), {}
    d = r.sub("depends_on")
    conditions: dict[str, DependencyCondition] = {}
    for dep, spec in d.data.items():
        if isinstance(spec, dict):
            s = d.sub(dep)
            s.only({"condition"})
            value, where = s.data.get("condition", "healthy"), s
            key = "condition"
        else:
            value, where, key = "healthy" if spec is None else spec, d, dep
        text = str(value).removeprefix("service_").removeprefix("process_")
        if text not in DEPENDENCY_CONDITIONS:
            where.fail(key, f"must be one of {', '.join(DEPENDENCY_CONDITIONS)}, got {value!r}")
        conditions[dep] = text  # type: ignore[assignment]  # checked above
    return tuple(conditions), conditions


def _umask(value: Any) -> int:
    """An octal mode: ``"027"`` (a string is read as octal) or YAML's octal ``027``."""
    if isinstance(value, str) and re.fullmatch(r"(0o)?[0-7]{1,4}", value.strip()):
        mask = int(value.strip().removeprefix("0o"), 8)
    elif isinstance(value, int) and not isinstance(value, bool):
        mask = value
    else:
        raise TypeError(f"must be an octal mode like '022' or '027', got {value!r}")
    if not 0 <= mask <= 0o777:
        raise ValueError(f"must be between 000 and 777 (octal), got {value!r}")
    return mask


def _parse_rlimits(r: _Reader) -> dict[str, tuple[int, int]]:
    """``{nofile: 4096, core: 0, nproc: "512:1024", memlock: unlimited}``: one value sets soft and hard."""
    out: dict[str, tuple[int, int]] = {}
    for name, raw in r.data.items():
        if name not in RLIMIT_NAMES:
            r.note(name, f"unknown resource limit; known: {', '.join(sorted(RLIMIT_NAMES))}")
            continue
        parts = raw.split(":") if isinstance(raw, str) else [raw]
        try:
            if len(parts) > 2:
                raise ValueError(f"must be a number, 'unlimited' or 'soft:hard', got {raw!r}")
            soft, hard = _rlimit_value(parts[0]), _rlimit_value(parts[-1])
            if hard != RLIM_INFINITY and (soft == RLIM_INFINITY or soft > hard):
                raise ValueError(f"soft limit must not exceed the hard limit, got {raw!r}")
        except (TypeError, ValueError) as exc:
            r.note(name, str(exc))
            continue
        out[name] = (soft, hard)
    return out


def _rlimit_value(value: Any) -> int:
    if isinstance(value, str) and value.strip() in ("unlimited", "infinity"):
        return RLIM_INFINITY
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TypeError(f"must be a number, 'unlimited' or 'soft:hard', got {value!r}")


def _check_dependencies(programs: dict[str, ProgramConfig], groups: dict[str, list[str]], file: str,
                        lines: dict[str, int]) -> dict[str, ProgramConfig]:  # fmt: skip
    """Expand group names in ``depends_on`` to replica names and refuse unknown names and cycles."""
    expanded: dict[str, ProgramConfig] = {}
    for name, prog in programs.items():
        deps: list[str] = []
        conditions: dict[str, DependencyCondition] = {}
        for dep in prog.depends_on:
            if dep not in groups:
                key = f"programs.{prog.group}.depends_on"
                raise ConfigError(file, key, f"unknown program {dep!r}", lines.get(f"{key}.{dep}") or lines.get(key))
            deps.extend(groups[dep])
            conditions.update(dict.fromkeys(groups[dep], prog.condition_for(dep)))
        expanded[name] = replace(prog, depends_on=tuple(deps), dependency_conditions=conditions)
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str, chain: list[str]) -> None:
        if name in done:
            return
        if name in visiting:
            key = f"programs.{expanded[name].group}.depends_on"
            raise ConfigError(file, key, f"dependency cycle: {' -> '.join([*chain, name])}", lines.get(key))
        visiting.add(name)
        for dep in expanded[name].depends_on:
            visit(dep, [*chain, name])
        visiting.discard(name)
        done.add(name)

    for name in expanded:
        visit(name, [])
    return expanded


def _parse_pipelines(r: _Reader, base: Path, data_dir: Path) -> dict[str, PipelineConfig]:
    out = {}
    for name in r.data:
        p = r.sub(str(name))
        p.only({"file", "landing", "reference", "every", "on_new_files", "demo_data", "cron", "after"})
        if not _NAME.match(str(name)):
            p.fail("", "pipeline names use letters, digits, '_', '.', '-' (at most 64)")
        file = p.get("file", _str, "")
        path = resolve_path(base, file) if file else shipped_pipeline_file(str(name))
        if not path.is_file():
            p.fail("file", f"no pipeline file at {path}")
        landing = p.get("landing", _str, "")
        reference = p.get("reference", _str, "")
        out[str(name)] = PipelineConfig(
            name=str(name),
            file=path,
            landing=resolve_path(base, landing) if landing else data_dir / "landing" / str(name),
            reference=resolve_path(base, reference) if reference else None,
            every_s=p.get("every", _duration, 0.0),
            on_new_files=p.get("on_new_files", _bool, True),
            demo_data=p.get("demo_data", _bool, False),
            cron=p.get("cron", _cron, None),
            after=p.get("after", _names, ()),
        )
    for name, pc in out.items():
        p = r.sub(name)
        for other in pc.after:
            if other not in out or other == name:
                p.fail("after", f"{other!r} is not another configured pipeline")
        seen, todo = set(), list(pc.after)
        while todo:  # runs started by other runs must not loop back
            current = todo.pop()
            if current == name:
                p.fail("after", "pipelines triggering each other in a loop")
            if current not in seen:
                seen.add(current)
                todo.extend(out[current].after)
    if out:
        # Each pipeline's own YAML and SQL are part of the config: refused here, they exit 2 with their
        # file:line (not at daemon start, with exit 1). Imported here: a config without pipelines pays nothing.
        from foss_supervisor.pipeline.spec import check_isolation, load_for_daemon

        check_isolation(
            [load_for_daemon(pc.file, name=pc.name, landing=pc.landing, reference=pc.reference, data_dir=data_dir)
             for pc in out.values()]
        )  # fmt: skip
    return out


def _cron(value: Any) -> str:
    from croniter import croniter  # only configs with a schedule pay for the import

    text = _str(value)
    if not croniter.is_valid(text):
        raise ValueError(f"{text!r} is not a cron expression like '*/15 * * * *'")
    return text


def shipped_pipeline_file(name: str) -> Path:
    """A pipeline without ``file:`` is the one shipped under that name (``configs/pipelines/NAME.yaml``)."""
    return data_dir("configs") / "pipelines" / f"{name}.yaml"


def parse_config(text: str, file: Path, environ: Mapping[str, str] | None = None,
                 replicas: Mapping[str, int] | None = None) -> Config:  # fmt: skip
    """Build a :class:`Config` from YAML text; environment overrides win over the file.

    ``replicas`` overrides programs' ``replicas:`` (``ctl scale``). Raises one ConfigError that lists
    every error found (``.errors``), each with file, line and key.
    """
    environ = os.environ if environ is None else environ
    label = str(file)
    data, lines = load_yaml(text, label)
    errors: list[ConfigError] = []
    base = file.parent.resolve()
    if isinstance(data, dict):
        _override_replicas(data, replicas or {})
        interpolate_config(data, lines, label, base, environ, errors)
    root = _Reader(data, "", label, lines, errors)
    root.only({"state_dir", "dashboard", "debug", "log", "programs", "groups", "hooks", "pipelines", "data_dir",
               "warehouse"})  # fmt: skip
    state_dir_text = environ.get("FOSS_SUPERVISOR_STATE_DIR") or root.get("state_dir", _str, "")
    state_dir = resolve_path(base, state_dir_text) if state_dir_text else default_state_dir()
    dash = root.sub("dashboard")
    dash.only({"host", "port"})
    host = environ.get("FOSS_SUPERVISOR_HOST") or dash.get("host", _str, "127.0.0.1")
    port = dash.get("port", _port, 5000)
    if env_port := environ.get("FOSS_SUPERVISOR_PORT"):
        try:
            port = _port(int(env_port))
        except (TypeError, ValueError):
            errors.append(ConfigError("environment", "FOSS_SUPERVISOR_PORT", f"must be a port, got {env_port!r}"))
    debug = root.get("debug", _bool, False) or environ.get("FOSS_SUPERVISOR_DEBUG", "") not in ("", "0", "false")
    log = root.sub("log")
    log.only({"max_bytes", "backups"})
    programs, groups = _parse_programs(root.sub("programs"), base)
    program_groups = _parse_groups(root.sub("groups"), groups)
    hooks = _parse_hooks(root.sub("hooks"))
    data_dir_text = root.get("data_dir", _str, "")
    data_path = resolve_path(base, data_dir_text) if data_dir_text else state_dir / "data"
    wh = root.sub("warehouse")
    wh.only({"watch_interval", "memory_limit"})
    pipelines: dict[str, PipelineConfig] = {}
    try:
        pipelines = _parse_pipelines(root.sub("pipelines"), base, data_path)
        if not errors:  # a program that failed to parse would show up again as an unknown dependency
            programs = _check_dependencies(programs, groups, label, lines)
    except ConfigError as exc:
        errors.append(exc)
    config = Config(
        source=file,
        state_dir=state_dir,
        dashboard_host=host,
        dashboard_port=port,
        debug=debug,
        log_max_bytes=log.get("max_bytes", _size, 10 * 1024 * 1024),
        log_backups=log.get("backups", _int(0, 100), 3),
        programs=programs,
        pipelines=pipelines,
        data_dir=resolve_path(base, data_dir_text) if data_dir_text else None,
        watch_interval_s=wh.get("watch_interval", _duration, 5.0) or 5.0,
        worker_memory_limit=wh.get("memory_limit", _str, "") or None,
        groups=program_groups,
        hooks=hooks,
    )
    if errors:
        raise ConfigError.collected(errors)
    return config


def _parse_hooks(r: _Reader) -> tuple[HookConfig, ...]:
    out = []
    for name in r.data:
        h = r.sub(str(name))
        h.only({"on", "command", "url", "headers", "select", "timeout", "retries"})
        on: tuple[str, ...] = h.get("on", _names, ())
        events = frozenset(EVENT_KINDS) if on == ("all",) else frozenset(on)
        if not events or events - set(EVENT_KINDS):
            h.note("on", f"must be 'all' or event kinds among {', '.join(EVENT_KINDS)}, got {list(on)!r}")
        command: tuple[str, ...] = h.get("command", _argv, ())
        url = h.get("url", _str, "")
        if bool(command) == bool(url):
            h.note("", "needs exactly one of command (argv) or url (http:// or https://)")
        elif url and not url.startswith(("http://", "https://")):
            h.note("url", f"must be an http:// or https:// URL, got {url!r}")
        out.append(HookConfig(
            name=str(name), events=events, command=command, url=url, headers=h.get("headers", _str_map, {}),
            select=h.get("select", _names, ()), timeout_s=h.get("timeout", _duration, 10.0) or 10.0,
            retries=h.get("retries", _int(0, 10), 2),
        ))  # fmt: skip
    return tuple(out)


def _override_replicas(data: dict[str, Any], replicas: Mapping[str, int]) -> None:
    programs = data.get("programs")
    for name, count in replicas.items():
        if isinstance(programs, dict) and isinstance(programs.get(name), dict):
            programs[name]["replicas"] = count


def _parse_groups(r: _Reader, replica_sets: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """``groups: {NAME: [program, ...]}`` (also ``{programs: [...]}`` or ``"a,b"``, as supervisord writes it)."""
    out: dict[str, tuple[str, ...]] = {}
    for name, value in r.data.items():
        key = str(name)
        members = value.get("programs") if isinstance(value, dict) else value
        if isinstance(value, dict) and set(value) - {"programs"}:
            r.note(key, "a group takes only 'programs' (a list of program names)")
        if isinstance(members, str):
            members = [m.strip() for m in members.split(",") if m.strip()]
        if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
            r.note(key, f"must be a list of program names, got {members!r}")
            continue
        if not _NAME.match(key) or key == "all":
            r.note(key, "group names use letters, digits, '_', '.', '-' (at most 64), and 'all' is taken")
        elif key in replica_sets:
            r.note(key, f"group {key!r} has the name of a program")
        for member in members:
            if member not in replica_sets:
                r.note(key, f"unknown program {member!r}")
        out[key] = tuple(members)
    return out


def _parse_programs(progs: _Reader, base: Path) -> tuple[dict[str, ProgramConfig], dict[str, list[str]]]:
    """Every program (replicas expanded) and each program name's replica names; errors go to the reader."""
    programs: dict[str, ProgramConfig] = {}
    groups: dict[str, list[str]] = {}
    for name in progs.data:
        if not isinstance(progs.data[name], dict):
            progs.note(str(name), f"must be a mapping, got {type(progs.data[name]).__name__}")
            continue
        try:
            expanded = _parse_program(str(name), progs.sub(str(name)), base)
        except ConfigError as exc:
            if progs.errors is None:
                raise
            progs.errors.append(exc)
            continue
        if len(programs) + len(expanded) > MAX_PROGRAMS:
            progs.fail(str(name), f"more than {MAX_PROGRAMS} programs (replicas counted)")
        groups[str(name)] = [p.name for p in expanded]
        for prog in expanded:
            if prog.name in programs:
                progs.note(str(name), f"replica name {prog.name!r} clashes with another program")
            programs[prog.name] = prog
    return programs, groups


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None,
                replicas: Mapping[str, int] | None = None) -> Config:  # fmt: skip
    """Load ``path``, else ``$FOSS_SUPERVISOR_CONFIG``, else the embedded default config."""
    environ = os.environ if environ is None else environ
    path = config_path(path, environ)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)  # never more: a config may be any file an operator points at
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError(str(path), "", f"larger than {MAX_FILE_BYTES} bytes")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), "", f"not UTF-8 text: {exc}") from None
    return parse_config(text, path, environ, replicas)
