"""The configuration's types: frozen dataclasses with units in their names (the loader is :mod:`config`)."""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from foss_supervisor.base.resources import control_socket_path

__all__ = [
    "ALERT_RULES",
    "DASHBOARD_PARTS",
    "DEPENDENCY_CONDITIONS",
    "EVENT_KINDS",
    "RLIMIT_NAMES",
    "RLIM_INFINITY",
    "AlertsConfig",
    "AutoRestart",
    "BackoffPolicy",
    "Config",
    "DependencyCondition",
    "HealthConfig",
    "HookConfig",
    "LogConfig",
    "PipelineConfig",
    "ProgramConfig",
    "UptimeObjective",
]

AutoRestart = Literal["always", "on-failure", "never"]
#: when a dependency counts as ready (Docker Compose's and process-compose's conditions)
DependencyCondition = Literal["started", "healthy", "completed_successfully"]
DEPENDENCY_CONDITIONS: tuple[DependencyCondition, ...] = ("started", "healthy", "completed_successfully")
#: the resource limits a program may set (the names ``prlimit(1)`` and ``setrlimit(2)`` use)
RLIMIT_NAMES = frozenset(
    {
        "as",
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
    }
)
RLIM_INFINITY = -1
#: parts of the dashboard that ``dashboard.public`` may open to clients without a token (docs/security.md)
DASHBOARD_PARTS = ("health", "metrics", "overview", "events", "pipelines", "data", "logs", "config", "reference")


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """How restart delays grow; units in the names."""

    initial_s: float = 0.0
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.1
    # a run at least this long resets the delay to ``initial_s``
    reset_after_s: float = 10.0


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Where a program's output goes and how it rotates."""

    file: Path | None = None  # None: <state_dir>/logs/<name>.log
    max_bytes: int = 10 * 1024 * 1024
    backups: int = 3
    timestamps: bool = False


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """One probe: ``http`` (GET url, 2xx/3xx is healthy), ``tcp`` (connect; with ``send``/``expect``, an
    answer too) or ``exec`` (exit 0). See :mod:`foss_supervisor.core.health`."""

    kind: Literal["http", "tcp", "exec"]
    url: str = ""
    host: str = "127.0.0.1"
    port: int = 0
    send: str = ""  # tcp: written once connected (e.g. "PING\r\n")
    expect: str = ""  # tcp: the answer must hold this text; with send alone, any answer passes
    command: tuple[str, ...] = ()
    interval_s: float = 5.0
    timeout_s: float = 2.0
    failure_threshold: int = 3
    start_period_s: float = 0.0


@dataclass(frozen=True, slots=True)
class UptimeObjective:
    """``uptime:`` of a program: at least ``target_percent`` of the last ``window_s`` seconds in RUNNING."""

    target_percent: float
    window_s: float = 7 * 86400.0


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
    ready: Literal["running", "notify", "log"] = "running"
    ready_log: str = ""  # ready: log: the RE2 pattern a line of output must match
    disabled: bool = False  # listed, never started but by an operator naming it (process-compose's disabled)
    part_of: frozenset[str] = frozenset()  # dependencies whose stop or restart this follows (systemd PartOf=)
    group: str = ""  # the program name before replicas were expanded
    replica: int = 0
    health: HealthConfig | None = None
    log: LogConfig = field(default_factory=LogConfig)
    pidfile: Path | None = None  # a program that forks: supervise the main PID it writes here (Type=forking)
    watchdog_s: float | None = None  # ready: notify programs: WATCHDOG=1 at least this often, or restarted
    nice: int | None = None  # scheduling priority set on the child after spawn (systemd Nice=); None: inherit
    pass_fds: tuple[int, ...] = ()  # descriptors the child inherits (the dashboard's listening socket)
    # the graph's links to the data (schema.table names, or absolute folder paths): what it writes and reads;
    # not compared, so a change of them alone never restarts the program
    feeds: tuple[str, ...] = field(default=(), compare=False)
    needs: tuple[str, ...] = field(default=(), compare=False)
    # its uptime objective (foss_supervisor.alerting.objectives); never used to run it, so not compared either
    uptime: UptimeObjective | None = field(default=None, compare=False)

    def condition_for(self, dependency: str) -> DependencyCondition:
        """When ``dependency`` (one of ``depends_on``) counts as ready for this program."""
        return self.dependency_conditions.get(dependency, "healthy")


EVENT_KINDS = (
    "program_fatal",
    "program_exited",
    "program_unhealthy",
    "pipeline_failed",
    "pipeline_succeeded",
    "step_regressed",
    "alert_firing",
    "alert_resolved",
)
#: what can open an alert (``alerts.on``; see foss_supervisor.alerting.alerts)
ALERT_RULES = ("objective", "fatal", "backoff", "pipeline_failed", "quality", "regression")


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """The ``alerts:`` section: which rules open incidents, how often an open one is told again."""

    rules: frozenset[str] = frozenset(ALERT_RULES)
    renotify_after_s: float = 4 * 3600.0  # the quiet period: an open, unacknowledged incident is told again after it
    backoff_for_s: float = 300.0  # a program in BACKOFF this long is an incident
    regression_min_s: float = 1.0  # a step regression is an incident only when the step is this much slower


#: a hook's ``email.tls``: ``auto`` upgrades with STARTTLS when the server offers it, ``starttls`` requires it,
#: ``implicit`` speaks TLS from the first byte (port 465), ``none`` never encrypts (a local MTA)
EMAIL_TLS = ("auto", "starttls", "implicit", "none")


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """Where an email hook sends: recipients, sender, the SMTP server and how to reach it."""

    to: tuple[str, ...]
    sender: str = ""  # the From address; "": foss-supervisor@<host name>
    host: str = "127.0.0.1"  # the SMTP server (default: the host's own MTA on port 25)
    port: int = 25
    tls: str = "auto"  # one of EMAIL_TLS
    username: str = ""  # AUTH when set (with password)
    password: str = ""


@dataclass(frozen=True, slots=True)
class HookConfig:
    """One hook: which event kinds (and programs or pipelines) it hears, and what tells them: a command, a URL
    (the event as JSON), an ntfy-style topic URL (a titled text message) or email."""

    name: str
    events: frozenset[str]
    command: tuple[str, ...] = ()
    url: str = ""
    ntfy: str = ""  # an ntfy topic URL: POST the message as text, with Title, Priority and Tags headers
    email: EmailConfig | None = None
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
    # its freshness objective: a good run at least this often (seconds); None: none. Not compared: never reruns it
    fresh_within_s: float | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole daemon configuration."""

    source: Path
    state_dir: Path
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = 5000
    dashboard_public: tuple[str, ...] = ()  # parts of DASHBOARD_PARTS open without a token
    debug: bool = False
    log_max_bytes: int = 10 * 1024 * 1024
    log_backups: int = 3
    history_enabled: bool = True  # the event journal and the resource samples are kept (history.enabled)
    history_retention_days: int = 30  # the event journal's files older than this are removed
    history_max_bytes: int = 2**30  # ... and the oldest while all of them together are larger
    history_sample_interval_s: float = 60.0  # a ResourcesSampled event this often (0: none)
    programs: Mapping[str, ProgramConfig] = field(default_factory=dict)
    pipelines: Mapping[str, PipelineConfig] = field(default_factory=dict)
    data_dir: Path | None = None  # None: <state_dir>/data (landing, warehouse, reports)
    watch_interval_s: float = 5.0  # how often landing folders are looked at
    worker_memory_limit: int | None = None  # DuckDB memory_limit of the pipeline worker (bytes); None: default
    worker_max_temp_size: int | None = None  # DuckDB's spill space, max_temp_directory_size (bytes); None: default
    worker_recycle_rss: int | None = None  # recycle the idle worker above this RSS (bytes; 0: never); None: default
    worker_recycle_after_s: float | None = None  # ... once it stayed above for this long; None: default
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # group -> program (replica-set) names
    hooks: tuple[HookConfig, ...] = ()  # see foss_supervisor.alerting.hooks
    config_generations: int = 10  # earlier versions of the file a save keeps (see commands_config)
    secrets: tuple[str, ...] = ()  # values redacted wherever they appear (see foss_supervisor.base.redact)
    tables: Mapping[str, float] = field(default_factory=dict)  # schema.table -> fresh_within_s (``tables:``)
    contracts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # schema.table -> column -> type
    alerts: AlertsConfig = field(default_factory=AlertsConfig)

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
        """``<state_dir>/control.sock``, or a short path when that is too long (see resources.control_socket_path)."""
        return control_socket_path(self.state_dir)

    @property
    def dashboard_url(self) -> str:
        host = f"[{self.dashboard_host}]" if ":" in self.dashboard_host else self.dashboard_host
        return f"http://{host}:{self.dashboard_port}/"
