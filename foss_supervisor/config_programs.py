"""The ``programs``, ``groups`` and ``hooks`` sections: each program (and replica) as a ProgramConfig."""

from __future__ import annotations

import os
import re
import signal
from dataclasses import replace
from pathlib import Path
from typing import Any

from foss_supervisor.backoff import BackoffPolicy
from foss_supervisor.config_model import (
    DEPENDENCY_CONDITIONS,
    EVENT_KINDS,
    RLIM_INFINITY,
    RLIMIT_NAMES,
    DependencyCondition,
    HealthConfig,
    HookConfig,
    LogConfig,
    ProgramConfig,
)
from foss_supervisor.config_reader import (
    MAX_PROGRAMS,
    NAME_RE,
    Reader,
    as_argv,
    as_bool,
    as_duration,
    as_exit_codes,
    as_int,
    as_names,
    as_port,
    as_signal,
    as_size,
    as_str,
    as_str_map,
)
from foss_supervisor.errors import ConfigError
from foss_supervisor.resources import resolve_path

__all__ = ["check_dependencies", "parse_groups", "parse_hooks", "parse_programs"]


def _parse_health(r: Reader) -> HealthConfig:
    r.only({"http", "tcp", "exec", "interval", "timeout", "failure_threshold", "start_period", "send", "expect"})
    kinds = [k for k in ("http", "tcp", "exec") if k in r.data]
    if len(kinds) != 1:
        r.fail("", "needs exactly one probe: http (url), tcp (host:port or port) or exec (command)")
    kind = kinds[0]
    for key in ("send", "expect"):
        if key in r.data and kind != "tcp":
            r.note(key, f"only a tcp probe sends and expects text; this one is {kind}")
    common: dict[str, Any] = {
        "interval_s": r.get("interval", as_duration, 5.0),
        "timeout_s": r.get("timeout", as_duration, 2.0),
        "failure_threshold": r.get("failure_threshold", as_int(1), 3),
        "start_period_s": r.get("start_period", as_duration, 0.0),
    }
    if kind == "http":
        url = r.get("http", as_str, "")
        if not url.startswith(("http://", "https://")):
            r.fail("http", f"must be an http:// or https:// URL, got {url!r}")
        return HealthConfig(kind="http", url=url, **common)
    if kind == "tcp":
        raw = r.data["tcp"]
        host, port_text = ("127.0.0.1", raw) if isinstance(raw, int) else (str(raw).rpartition(":")[::2])
        try:
            port = as_port(int(port_text))
        except (TypeError, ValueError):
            r.fail("tcp", f"must be a port or host:port, got {raw!r}")
        send, expect = r.get("send", _probe_text, ""), r.get("expect", _probe_text, "")
        return HealthConfig(kind="tcp", host=host or "127.0.0.1", port=port, send=send, expect=expect, **common)
    return HealthConfig(kind="exec", command=r.get("exec", as_argv, ()), **common)


def _probe_text(value: Any) -> str:
    """A tcp probe's ``send`` or ``expect``: a non-empty string of at most 4096 characters."""
    text = as_str(value)
    if len(text) > 4096:
        raise ValueError(f"must be at most 4096 characters, got {len(text)}")
    return text


def _parse_log(r: Reader, base: Path) -> LogConfig:
    r.only({"file", "max_bytes", "backups", "timestamps"})
    file = r.get("file", as_str, "")
    return LogConfig(
        file=resolve_path(base, file) if file else None,
        max_bytes=r.get("max_bytes", as_size, 10 * 1024 * 1024),
        backups=r.get("backups", as_int(0, 100), 3),
        timestamps=r.get("timestamps", as_bool, False),
    )


_PROGRAM_KEYS = {
    "command", "shell", "cwd", "env", "env_file", "user", "autostart", "autorestart", "exit_codes",
    "start_timeout", "start_retries", "backoff", "stop_signal", "stop_timeout", "kill_group",
    "depends_on", "replicas", "health", "log", "ready", "umask", "rlimits", "pidfile",
}  # fmt: skip


def _parse_program(name: str, r: Reader, base: Path) -> list[ProgramConfig]:
    """One program section; each replica is parsed from its own copy with ``{replica}`` filled in everywhere."""
    r.only(_PROGRAM_KEYS)
    if not NAME_RE.match(name):
        r.fail("", "program names use letters, digits, '_', '.', '-' (at most 64)")
    if "command" not in r.data:
        r.fail("", "missing required key 'command'")
    replicas = r.get("replicas", as_int(1, 1000), 1)
    if replicas == 1:
        return [_parse_replica(name, name, 0, Reader(_fill_replica(r.data, "0"), r.path, r.file, r.lines), base)]
    return [
        _parse_replica(f"{name}-{i}", name, i, Reader(_fill_replica(r.data, str(i)), r.path, r.file, r.lines), base)
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


def _parse_replica(name: str, group: str, replica: int, r: Reader, base: Path) -> ProgramConfig:
    shell = r.get("shell", as_bool, False)
    if shell:
        command: tuple[str, ...] = ("/bin/sh", "-c", r.get("command", as_str, ""))
    else:
        command = r.get("command", as_argv, ())
    autorestart = r.get("autorestart", str, "on-failure")
    if autorestart not in ("always", "on-failure", "never"):
        r.fail("autorestart", f"must be always, on-failure or never, got {autorestart!r}")
    forever = r.data.get("start_retries") == "forever"
    start_retries = None if forever else r.get("start_retries", as_int(0), 10)
    env_file = r.get("env_file", as_str, "")
    pidfile = r.get("pidfile", as_str, "")
    cwd = r.get("cwd", as_str, "")
    user = r.get("user", as_str, "") or None
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
        env=r.get("env", as_str_map, {}),
        env_file=resolve_path(base, env_file) if env_file else None,
        pidfile=resolve_path(base, pidfile) if pidfile else None,
        user=user,
        autostart=r.get("autostart", as_bool, True),
        autorestart=autorestart,  # type: ignore[arg-type]  # checked above
        exit_codes=r.get("exit_codes", as_exit_codes, frozenset({0})),
        start_timeout_s=r.get("start_timeout", as_duration, 1.0),
        start_retries=start_retries,
        backoff=_parse_backoff(r.sub("backoff")),
        stop_signal=r.get("stop_signal", as_signal, signal.SIGTERM),
        stop_timeout_s=r.get("stop_timeout", as_duration, 5.0),
        kill_group=r.get("kill_group", as_bool, True),
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


def _parse_backoff(b: Reader) -> BackoffPolicy:
    b.only({"initial", "max", "multiplier", "jitter", "reset_after"})
    backoff = BackoffPolicy(
        initial_s=b.get("initial", as_duration, 0.0),
        max_s=b.get("max", as_duration, 30.0),
        multiplier=b.get("multiplier", float, 2.0),
        jitter=b.get("jitter", float, 0.1),
        reset_after_s=b.get("reset_after", as_duration, 10.0),
    )
    if backoff.multiplier < 1.0:
        b.fail("multiplier", "must be >= 1")
    if not 0.0 <= backoff.jitter <= 1.0:
        b.fail("jitter", "must be between 0 and 1")
    return backoff


def _parse_depends_on(r: Reader) -> tuple[tuple[str, ...], dict[str, DependencyCondition]]:
    """``db``, ``[db, cache]`` (each ``healthy``) or ``{db: {condition: healthy}, init: completed_successfully}``.

    Docker Compose's ``service_*`` and process-compose's ``process_*`` spellings are accepted too.
    """
    raw = r.data.get("depends_on")
    if raw is None:
        return (), {}
    if not isinstance(raw, dict):
        return r.get("depends_on", as_names, ()), {}
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


def _parse_rlimits(r: Reader) -> dict[str, tuple[int, int]]:
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


def check_dependencies(programs: dict[str, ProgramConfig], groups: dict[str, list[str]], file: str,
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


def parse_hooks(r: Reader) -> tuple[HookConfig, ...]:
    out = []
    for name in r.data:
        h = r.sub(str(name))
        h.only({"on", "command", "url", "headers", "select", "timeout", "retries"})
        on: tuple[str, ...] = h.get("on", as_names, ())
        events = frozenset(EVENT_KINDS) if on == ("all",) else frozenset(on)
        if not events or events - set(EVENT_KINDS):
            h.note("on", f"must be 'all' or event kinds among {', '.join(EVENT_KINDS)}, got {list(on)!r}")
        command: tuple[str, ...] = h.get("command", as_argv, ())
        url = h.get("url", as_str, "")
        if bool(command) == bool(url):
            h.note("", "needs exactly one of command (argv) or url (http:// or https://)")
        elif url and not url.startswith(("http://", "https://")):
            h.note("url", f"must be an http:// or https:// URL, got {url!r}")
        out.append(HookConfig(
            name=str(name), events=events, command=command, url=url, headers=h.get("headers", as_str_map, {}),
            select=h.get("select", as_names, ()), timeout_s=h.get("timeout", as_duration, 10.0) or 10.0,
            retries=h.get("retries", as_int(0, 10), 2),
        ))  # fmt: skip
    return tuple(out)


def parse_groups(r: Reader, replica_sets: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
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
        if not NAME_RE.match(key) or key == "all":
            r.note(key, "group names use letters, digits, '_', '.', '-' (at most 64), and 'all' is taken")
        elif key in replica_sets:
            r.note(key, f"group {key!r} has the name of a program")
        for member in members:
            if member not in replica_sets:
                r.note(key, f"unknown program {member!r}")
        out[key] = tuple(members)
    return out


def parse_programs(progs: Reader, base: Path) -> tuple[dict[str, ProgramConfig], dict[str, list[str]]]:
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
