"""Every key of the daemon config and of a pipeline file, and the one gate each value passes.

:data:`SCHEMA` is the daemon config (``config.yaml``) and :data:`PIPELINE_SCHEMA` a pipeline file, as trees:
a leaf is a :class:`~foss_supervisor.config.gates.Gate`, a nested mapping is a section, and :class:`Each` is a
section of named entries (``programs.<name>``) whose names pass their own gate. The readers take their
keys, their gates and the list of known keys from here and nowhere else (:class:`~foss_supervisor.
config_reader.Reader`), so a key without a gate cannot be read, and ``tests/unit/test_gates.py`` walks both
trees with each kind's hostile values. The ranges below are the documented ones (README, Configuration).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from foss_supervisor.config import gates
from foss_supervisor.config.gates import Gate, GateError, shown
from foss_supervisor.config.model import (
    ALERT_RULES,
    DASHBOARD_PARTS,
    DEPENDENCY_CONDITIONS,
    EMAIL_TLS,
    EVENT_KINDS,
    RLIMIT_NAMES,
    UptimeObjective,
)

__all__ = [
    "DAY",
    "FOLDERS",
    "GROUP_NAME",
    "PIPELINE_NAME",
    "PIPELINE_SCHEMA",
    "PROGRAM_NAME",
    "SCHEMA",
    "SHELL_COMMAND",
    "STEP_NAME",
    "Each",
    "Section",
    "leaves",
]

DAY = 86400.0
HOUR = 3600.0
TIB = 2**40

PROGRAM_NAME = gates.name(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "letters, digits, '_', '.', '-' (at most 64)")
GROUP_NAME = PROGRAM_NAME
PIPELINE_NAME = PROGRAM_NAME
HOOK_NAME = PROGRAM_NAME
STEP_NAME = gates.name(r"[A-Za-z_][A-Za-z0-9_-]{0,63}", "a letter or '_', then letters, digits, '_', '-' (at most 64)")
SCHEMA_NAME = gates.name(r"[a-z_][a-z0-9_]{0,62}", "a lower-case schema name (letters, digits, _)")
TABLE_NAME = gates.name(
    r"[a-z_][a-z0-9_]{0,62}(?:\.[a-z_][a-z0-9_]{0,62})?", "a lower-case schema or schema.table name"
)
#: a published table's Hive partition column: ``schema.table.column``
PARTITION_COLUMN = gates.name(
    r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}\.[A-Za-z_][A-Za-z0-9_]{0,62}", "schema.table.column"
)
#: a table a program reads (``needs:``), written as the warehouse names it
QUALIFIED_TABLE = gates.name(r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}", "a lower-case schema.table name")
#: what a program writes (``feeds:``): a table, or a folder (a landing folder) written as a path with a slash
DATA_TARGET = gates.name(
    r"[a-z_][a-z0-9_]{0,62}\.[a-z_][a-z0-9_]{0,62}|\.{0,2}/[^\x00-\x1f\x7f]{0,4093}",
    "a lower-case schema.table name, or a folder path starting with /, ./ or ../",
)
#: a selector of programs (``web``, ``api-*``, ``group:backend``) or a pipeline name
SELECTOR = gates.name(r"[A-Za-z0-9_.:*?\[\]!-]{1,128}", "a program or pipeline name or selector like 'api-*'")


def _start_retries(value: Any) -> int | None:
    if value == "forever":
        return None
    return _RETRIES(value)


_RETRIES = gates.count(0, 10_000)
START_RETRIES: Gate[int | None] = Gate("retries", "0 to 10000, or forever", _start_retries, bounds=(0, 10_000))


def _dependencies(value: Any) -> tuple[tuple[str, ...], dict[str, str], frozenset[str]]:
    """``db``, ``[db, cache]`` (each ``healthy``) or ``{db: {condition: healthy, restart: true}, init:
    completed_successfully}``: (names, name -> condition, the names whose stop or restart the program follows).

    Docker Compose's ``service_*`` and process-compose's ``process_*`` spellings are accepted too; ``restart:
    true`` is compose's (systemd's ``PartOf=``).
    """
    if not isinstance(value, dict):
        listed = _NAMES(value)
        return listed, dict.fromkeys(listed, "healthy"), frozenset()
    conditions: dict[str, str] = {}
    part_of: set[str] = set()
    for dep, spec in value.items():
        PROGRAM_NAME(dep)
        where = f".{dep}"
        if isinstance(spec, dict):
            if set(spec) - {"condition", "restart"}:
                raise GateError("a dependency takes only 'condition' and 'restart'", where)
            if spec.get("restart", False) is True:
                part_of.add(dep)
            elif spec.get("restart", False) is not False:
                raise GateError(f"must be true or false, got {shown(spec['restart'])}", f"{where}.restart")
            spec, where = spec.get("condition", "healthy"), f"{where}.condition"
        text = "healthy" if spec is None else spec
        if isinstance(text, str):
            text = text.removeprefix("service_").removeprefix("process_")
        if text not in DEPENDENCY_CONDITIONS:
            raise GateError(f"must be one of {', '.join(DEPENDENCY_CONDITIONS)}, got {shown(spec)}", where)
        conditions[dep] = text
    return tuple(conditions), conditions, frozenset(part_of)


_NAMES = gates.names(PROGRAM_NAME)
DEPENDENCIES: Gate[tuple[tuple[str, ...], dict[str, str], frozenset[str]]] = Gate(
    "dependencies",
    "a program name, a list of them, or {name: {condition: started|healthy|..., restart: true|false}}",
    _dependencies,
)


def _ready(value: Any) -> tuple[str, str]:
    """``running``, ``notify`` or ``{log: REGEX}`` (ready once a line of output matches, RE2) as (kind, pattern)."""
    if isinstance(value, dict):
        if set(value) != {"log"}:
            raise GateError(f"a mapping takes only 'log' (a regular expression), got {shown(value)}")
        try:
            return "log", _LOG_PATTERN(value["log"])
        except GateError as exc:
            raise GateError(exc.reason, ".log") from None
    return _READY_KIND(value), ""


_READY_KIND = gates.choice(("running", "notify"))
_LOG_PATTERN = gates.regex()
READY: Gate[tuple[str, str]] = Gate(
    "ready", "running, notify, or {log: REGEX} (RE2)", _ready, options=("running", "notify")
)


def _tcp(value: Any) -> tuple[str, int]:
    """``8080`` or ``host:port`` (``[::1]:8080`` for IPv6) as (host, port)."""
    if not isinstance(value, str):
        return "127.0.0.1", _PORT(value)
    host, sep, port_text = value.rpartition(":")
    if not sep or not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise GateError(f"must be a port or host:port, got {shown(value)}")
    if host.startswith("[") != host.endswith("]"):
        raise GateError(f"an IPv6 host is written in brackets, [::1]:8080, got {shown(value)}")
    host = host[1:-1] if host.startswith("[") else host or "127.0.0.1"
    return _HOST(host), _PORT(int(port_text))


_PORT = gates.port()
_HOST = gates.host()
TCP_ADDRESS: Gate[tuple[str, int]] = Gate("address", "a port, or host:port with a port from 1 to 65535", _tcp)


def _exit_codes(value: Any) -> frozenset[int]:
    items = value if isinstance(value, list) else [value]
    if len(items) > 256:
        raise GateError("at most 256 exit codes")
    return frozenset(_EXIT_CODE(v) for v in items)


_EXIT_CODE = gates.count(0, 255)
EXIT_CODES: Gate[frozenset[int]] = Gate("exit codes", "exit codes from 0 to 255 (one or a list)", _exit_codes)


def _members(value: Any) -> tuple[str, ...]:
    """``[a, b]``, ``{programs: [a, b]}`` or ``"a,b"`` (supervisord's spelling)."""
    if isinstance(value, dict):
        if set(value) != {"programs"}:
            raise GateError("a group takes only 'programs' (a list of program names)")
        value = value["programs"]
    if isinstance(value, str):
        value = [m.strip() for m in value.split(",") if m.strip()]
    if not isinstance(value, list) or not value:
        raise GateError(f"must be a list of program names, got {shown(value)}")
    return _NAMES(value)


GROUP_MEMBERS: Gate[tuple[str, ...]] = Gate(
    "members", "a non-empty list of program names", _members, pattern=PROGRAM_NAME.pattern
)


def _on(value: Any) -> frozenset[str]:
    listed = _EVENT_NAMES(value)
    if listed == ("all",):
        return frozenset(EVENT_KINDS)
    unknown = [e for e in listed if e not in EVENT_KINDS]
    if not listed or unknown:
        raise GateError(f"must be 'all' or event kinds among {', '.join(EVENT_KINDS)}, got {shown(value)}")
    return frozenset(listed)


_EVENT_NAMES = gates.names(gates.name(r"[a-z_]{1,32}", "an event kind"))
EVENTS: Gate[frozenset[str]] = Gate("events", f"all, or a list of {', '.join(EVENT_KINDS)}", _on, options=EVENT_KINDS)


_PERCENT = gates.percent()
#: how far back an uptime objective looks: a minute to a year
UPTIME_WINDOW = gates.duration(60, 366 * DAY)
#: how stale a table or a pipeline may be: a second to a year
FRESH_WITHIN = gates.duration(1, 366 * DAY)


def _uptime(value: Any) -> UptimeObjective:
    """``99.5%`` (over the default window, 7 days) or ``{target: 99.5%, window: 7d}``."""
    if not isinstance(value, dict):
        return UptimeObjective(_PERCENT(value))
    if "target" not in value or set(value) - {"target", "window"}:
        raise GateError(f"a mapping takes 'target' (a percentage) and optionally 'window', got {shown(value)}")
    try:
        target = _PERCENT(value["target"])
    except GateError as exc:
        raise GateError(exc.reason, ".target") from None
    if "window" not in value:
        return UptimeObjective(target)
    try:
        return UptimeObjective(target, UPTIME_WINDOW(value["window"]))
    except GateError as exc:
        raise GateError(exc.reason, ".window") from None


UPTIME: Gate[UptimeObjective] = Gate(
    "uptime", "a percentage above 0, at most 100, or {target: 99.5%, window: 1m to 366d}", _uptime, bounds=(0, 100)
)


@dataclass(frozen=True, slots=True)
class Each:
    """A section of named entries: each key passes ``key`` and each value is read as ``section``."""

    key: Gate[str]
    section: Section | Gate[Any]


Section = Mapping[str, Union["Gate[Any]", "Section", Each]]

#: ``command`` when ``shell: true``: the text handed to ``/bin/sh -c``
SHELL_COMMAND = gates.text()
_PATH = gates.path()
_BOOL = gates.boolean()
_ARGV = gates.argv()
_DURATION_PROBE = gates.duration(0.01, HOUR)

HEALTH: Section = {
    "http": gates.url(),
    "tcp": TCP_ADDRESS,
    "exec": _ARGV,
    "interval": gates.duration(0.01, DAY),
    "timeout": _DURATION_PROBE,
    "failure_threshold": gates.count(1, 1000),
    "start_period": gates.duration(0, DAY),
    "send": gates.text(4096),  # tcp probes: written once connected
    "expect": gates.text(4096),  # tcp probes: the answer must hold this within the timeout
}
LOG: Section = {
    "file": _PATH,
    "max_bytes": gates.size(0, TIB),
    "backups": gates.count(0, 100),
    "timestamps": _BOOL,
}
BACKOFF: Section = {
    "initial": gates.duration(0, HOUR),
    "max": gates.duration(0, DAY),
    "multiplier": gates.factor(1, 10),
    "jitter": gates.factor(0, 1),
    "reset_after": gates.duration(0, DAY),
}
PROGRAM: Section = {
    "command": _ARGV,
    "shell": _BOOL,
    "cwd": _PATH,
    "env": gates.env_map(),
    "env_file": _PATH,
    "user": gates.name(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?|[0-9]{1,10}", "a user name or a numeric uid"),
    "autostart": _BOOL,
    "autorestart": gates.choice(("always", "on-failure", "never")),
    "exit_codes": EXIT_CODES,
    "start_timeout": gates.duration(0, DAY),
    "start_retries": START_RETRIES,
    "backoff": BACKOFF,
    "stop_signal": gates.signal_name(),
    "stop_timeout": gates.duration(0, DAY),
    "kill_group": _BOOL,
    "depends_on": DEPENDENCIES,
    "replicas": gates.count(1, 1000),
    "health": HEALTH,
    "log": LOG,
    "ready": READY,
    "disabled": _BOOL,
    "umask": gates.mode(),
    "rlimits": dict.fromkeys(sorted(RLIMIT_NAMES), gates.rlimit()),
    "pidfile": _PATH,
    # the graph's links between a program and the data (foss_supervisor.graph): never used to run it
    "feeds": gates.names(DATA_TARGET),
    "needs": gates.names(QUALIFIED_TABLE),
    "uptime": UPTIME,  # its uptime objective (foss_supervisor.alerting.objectives)
}
#: an email address as SMTP takes it: local@domain, ASCII, no quoting or comments, at most 5 domain labels
EMAIL_ADDRESS = gates.name(
    r"[A-Za-z0-9._+=-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?){0,4}",
    "an email address (local@domain.example)",
)
EMAIL: Section = {
    "to": gates.names(EMAIL_ADDRESS),
    "from": EMAIL_ADDRESS,
    "smtp": TCP_ADDRESS,  # host:port of the SMTP server; a bare port is on 127.0.0.1
    "tls": gates.choice(EMAIL_TLS),
    # it goes on an SMTP command line: printable ASCII, no CR LF
    "username": gates.name(r"[!-~][ -~]{0,255}", "an SMTP user name (printable ASCII, at most 256 characters)"),
    "password": gates.text(1024),
}
HOOK: Section = {
    "on": EVENTS,
    "command": _ARGV,
    "url": gates.url(),
    "ntfy": gates.url(),  # an ntfy-style topic URL (https://ntfy.sh/TOPIC or a self-hosted one)
    "email": EMAIL,
    "headers": gates.http_headers(),
    "select": gates.names(SELECTOR),
    "timeout": _DURATION_PROBE,
    "retries": gates.count(0, 10),
}
PIPELINE: Section = {
    "file": _PATH,
    "landing": _PATH,
    "reference": _PATH,
    "every": gates.duration(0, 366 * DAY),
    "on_new_files": _BOOL,
    "demo_data": _BOOL,
    "cron": gates.cron(),
    "after": gates.names(PIPELINE_NAME),
    "fresh_within": FRESH_WITHIN,  # its freshness objective: a good run at least this often
}
#: ``tables.<schema.table>``: objectives on a table, whatever writes it (a pipeline's step, a program's ``feeds:``)
#: and ``contract``: the columns and types it promises its readers (docs/graph.md, "Impact before a change")
TABLE: Section = {"fresh_within": FRESH_WITHIN, "contract": gates.column_types()}
ALERTS: Section = {
    "on": gates.names(gates.choice(ALERT_RULES)),
    "renotify_after": gates.duration(60, 30 * DAY),
    "backoff_for": gates.duration(1, DAY),
    "regression_min": gates.duration(0, DAY),  # a step regression opens an incident only this much slower
}
SCHEMA: Section = {
    "state_dir": _PATH,
    "data_dir": _PATH,
    "debug": _BOOL,
    "dashboard": {"host": gates.host(), "port": _PORT, "public": gates.names(gates.choice(DASHBOARD_PARTS))},
    "log": {"max_bytes": gates.size(0, TIB), "backups": gates.count(0, 100)},
    # the durable journal of events (see foss_supervisor.core.eventjournal): kept this many days, at most this size
    "history": {
        "enabled": _BOOL,  # false: no journal and no resource samples (no history, no durable audit)
        "retention_days": gates.count(1, 3650),
        "max_bytes": gates.size(2**20, TIB),
        "sample_interval": gates.duration(0, DAY),  # 0: no resource samples
    },
    "warehouse": {
        "watch_interval": gates.duration(0.01, HOUR),
        "memory_limit": gates.size(64 * 2**20, 2**50),  # 1 PiB: past it the worker's RLIMIT_DATA would not fit
        "max_temp_directory_size": gates.size(0, 2**50),
        "recycle_rss": gates.size(0, 2**50),
        "recycle_after": gates.duration(0, DAY),
    },
    "programs": Each(PROGRAM_NAME, PROGRAM),
    "groups": Each(GROUP_NAME, GROUP_MEMBERS),
    "hooks": Each(HOOK_NAME, HOOK),
    "pipelines": Each(PIPELINE_NAME, PIPELINE),
    "tables": Each(QUALIFIED_TABLE, TABLE),
    "alerts": ALERTS,
    "config_generations": gates.count(0, 1000),  # saved config files kept (see commands_config)
    # values redacted wherever they appear (see foss_supervisor.base.redact: MIN_LITERAL, MAX_LITERAL)
    "secrets": gates.secrets(4, 4096),
}

#: Python a pipeline names: a module's function, or a function of a file beside the pipeline's YAML
CALLABLE = gates.name(
    r"(?:[A-Za-z_][\w.]{0,200}|[\w./-]{0,200}\.py):[A-Za-z_]\w{0,100}",
    "'package.module:function' or 'file.py:function' (relative to the pipeline file)",
)
STEP: Section = {
    "name": STEP_NAME,
    "kind": gates.choice(("sql", "python", "quality", "deduplicate")),
    "sql": _PATH,
    "callable": CALLABLE,
    "depends_on": gates.names(STEP_NAME),
    "timeout_s": gates.duration(0.001, DAY),
    "retries": gates.count(0, 20),
    "modes": gates.names(gates.choice(("run", "replay"))),
    "layer": gates.choice(("bronze", "silver", "gold")),
}
FOLDERS: Section = {"landing": _PATH, "reference": _PATH, "warehouse": _PATH, "reports": _PATH}
#: a pipeline's partition key: the named group ``key`` of ``from_file`` in a landing file's name
PARTITION: Section = {
    "key": gates.name(r"[a-z_][a-z0-9_]{0,62}", "a lower-case identifier like 'day'"),
    "from_file": gates.regex(),
    "date_format": gates.text(64),
}
#: a pipeline file; ``steps`` is a list of :data:`STEP`; ``params`` are checked by their step kind
PIPELINE_SCHEMA: Section = {
    "name": STEP_NAME,
    "description": gates.text(64 * 1024),
    "folders": FOLDERS,
    "setup": _PATH,
    "steps": STEP,
    "checks": gates.text(4096),
    "schemas": gates.names(SCHEMA_NAME),
    "inputs": gates.names(TABLE_NAME),
    "ledger": SCHEMA_NAME,
    "patterns": gates.names(gates.glob()),
    "publish": gates.names(TABLE_NAME),
    "publish_partition_by": gates.names(PARTITION_COLUMN),  # Hive partitions of published tables (publish.py)
    "publish_keep": gates.count(1, 100),  # published runs kept on disk, the current one included
    "publish_format": gates.choice(("parquet", "delta")),  # Parquet run folders, or Delta tables (publishdelta.py)
    "snapshot_keep": gates.count(0, 100),  # run snapshots kept for diff and rollback (snapshots.py); 0: none
    "demo_data": CALLABLE,  # its sample data generator: generate(landing, orders=, seed=, prefix=)
    "partition": PARTITION,  # partitions taken from landing file names, for backfills (pipeline/engine/partition.py)
}


def leaves(section: Section, prefix: str = "") -> list[tuple[str, Gate[Any]]]:
    """Every (dotted key, gate) of ``section``; an :class:`Each` entry is spelled ``<name>``."""
    out: list[tuple[str, Gate[Any]]] = []
    for key, value in section.items():
        dotted = f"{prefix}.{key}" if prefix and key else prefix or key
        if isinstance(value, Gate):
            out.append((dotted, value))
        elif isinstance(value, Each):
            out.append((f"{dotted}.<name>", value.key))
            if isinstance(value.section, Gate):
                out.append((f"{dotted}.<name>", value.section))
            else:
                out.extend(leaves(value.section, f"{dotted}.<name>"))
        else:
            out.extend(leaves(value, dotted))
    return out
