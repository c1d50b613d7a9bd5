"""The ``programs``, ``groups`` and ``hooks`` sections: each program (and replica) as a ProgramConfig."""

from __future__ import annotations

import os
import pwd
import signal
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, cast

from foss_supervisor.base.resources import resolve_path
from foss_supervisor.config.gates import format_duration
from foss_supervisor.config.model import (
    RLIMIT_NAMES,
    BackoffPolicy,
    DependencyCondition,
    EmailConfig,
    HealthConfig,
    HookConfig,
    LogConfig,
    ProgramConfig,
)
from foss_supervisor.config.reader import MAX_PROGRAMS, Reader
from foss_supervisor.config.schema import PROGRAM, SHELL_COMMAND
from foss_supervisor.errors import ConfigError

__all__ = [
    "check_dependencies",
    "check_single_writers",
    "parse_groups",
    "parse_hooks",
    "parse_programs",
    "user_account",
    "user_exists",
]


def _parse_health(r: Reader) -> HealthConfig:
    r.only()
    kinds = [k for k in ("http", "tcp", "exec") if r.has(k)]
    if len(kinds) != 1:
        r.fail("", "needs exactly one probe: http (url), tcp (host:port or port) or exec (command)")
    kind = kinds[0]
    for key in ("send", "expect"):
        if r.has(key) and kind != "tcp":
            r.note(key, f"only a tcp probe sends and expects text; this one is {kind}")
    common: dict[str, Any] = {
        "interval_s": r.get("interval", 5.0),
        "timeout_s": r.get("timeout", 2.0),
        "failure_threshold": r.get("failure_threshold", 3),
        "start_period_s": r.get("start_period", 0.0),
    }
    if kind == "http":
        return HealthConfig(kind="http", url=r.get("http", ""), **common)
    if kind == "tcp":
        host, port = r.get("tcp", ("127.0.0.1", 0))
        return HealthConfig(
            kind="tcp", host=host, port=port, send=r.get("send", ""), expect=r.get("expect", ""), **common
        )
    return HealthConfig(kind="exec", command=r.get("exec", ()), **common)


def _parse_log(r: Reader, base: Path) -> LogConfig:
    r.only()
    file = r.get("file", "")
    return LogConfig(
        file=resolve_path(base, file) if file else None,
        max_bytes=r.get("max_bytes", 10 * 1024 * 1024),
        backups=r.get("backups", 3),
        timestamps=r.get("timestamps", False),
    )


def _parse_program(name: str, r: Reader, base: Path, file_count: int | None = None) -> list[ProgramConfig]:
    """One program section; each replica is parsed from its own copy with ``{replica}`` filled in everywhere.

    Names follow the file's count (``file_count`` when ``ctl scale`` overrides ``replicas``): one copy is
    ``NAME``, and scaled up it stays ``NAME`` beside ``NAME-1``, ``NAME-2``...; several are ``NAME-0``...,
    scaled down to one it stays ``NAME-0``. So a scale adds and removes replicas, never renames one.
    """
    r.only()
    if not r.has("command"):
        r.fail("", "missing required key 'command'")
    replicas = r.get("replicas", 1)

    bare_first = (replicas if file_count is None else file_count) == 1

    def replica(i: int) -> ProgramConfig:
        """Replica ``i``; every error of its section raised at once (the first replica's are every one's)."""
        errors: list[ConfigError] = []
        section = Reader(_fill_replica(r.data, str(i)), r.path, r.file, r.lines, errors, PROGRAM)
        prog = _parse_replica(name if bare_first and i == 0 else f"{name}-{i}", name, i, section, base)
        if errors:
            raise ConfigError.collected(errors)
        return prog

    return [replica(i) for i in range(replicas)]


def _fill_replica(value: Any, replica: str) -> Any:
    """``value`` with ``{replica}`` replaced in every string it holds (command, env, paths, probes...)."""
    if isinstance(value, str):  # unchanged when it has none: a YamlNumber stays one for its gate
        return value.replace("{replica}", replica) if "{replica}" in value else value
    if isinstance(value, dict):
        return {k: _fill_replica(v, replica) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_replica(v, replica) for v in value]
    return value


def _parse_replica(name: str, group: str, replica: int, r: Reader, base: Path) -> ProgramConfig:
    shell = r.get("shell", False)
    if shell:
        command: tuple[str, ...] = ("/bin/sh", "-c", r.get("command", "", gate=SHELL_COMMAND))
    else:
        command = r.get("command", ())
    env_file = r.get("env_file", "")
    pidfile = r.get("pidfile", "")
    cwd = r.get("cwd", "")
    if cwd and not resolve_path(base, cwd).is_dir():  # found at load, not as a spawn failure in BACKOFF
        r.note("cwd", f"no such directory: {resolve_path(base, cwd)}")
    user = r.get("user", "") or None
    if user is not None and not user_exists(user):
        r.note("user", f"no such user on this host: {user!r}")
    elif user is not None and os.geteuid() != 0:
        r.fail("user", "can only be set when the daemon runs as root")
    no_dependencies: tuple[tuple[str, ...], dict[str, str], frozenset[str]] = ((), {}, frozenset())
    depends_on, conditions, part_of = r.get("depends_on", no_dependencies)
    ready, ready_log = r.get("ready", ("running", ""))
    return ProgramConfig(
        name=name,
        command=command,
        shell=shell,
        cwd=resolve_path(base, cwd) if cwd else None,
        env=r.get("env", {}),
        env_file=resolve_path(base, env_file) if env_file else None,
        pidfile=resolve_path(base, pidfile) if pidfile else None,
        user=user,
        autostart=r.get("autostart", True),
        autorestart=r.get("autorestart", "on-failure"),
        exit_codes=r.get("exit_codes", frozenset({0})),
        start_timeout_s=r.get("start_timeout", 1.0),
        start_retries=r.get("start_retries", 10),
        backoff=_parse_backoff(r.sub("backoff")),
        stop_signal=r.get("stop_signal", signal.SIGTERM),
        stop_timeout_s=r.get("stop_timeout", 5.0),
        kill_group=r.get("kill_group", True),
        depends_on=depends_on,
        dependency_conditions=cast(dict[str, DependencyCondition], conditions),
        part_of=part_of,
        disabled=r.get("disabled", False),
        umask=r.get("umask", None),
        rlimits=_parse_rlimits(r.sub("rlimits")),
        ready=cast(Literal["running", "notify", "log"], ready),
        ready_log=ready_log,
        group=group,
        replica=replica,
        health=_parse_health(r.sub("health")) if r.data.get("health") is not None else None,
        log=_parse_log(r.sub("log"), base),
        feeds=_feeds(r.get("feeds", ()), base),
        needs=r.get("needs", ()),
        uptime=r.get("uptime", None),
    )


def user_account(user: str) -> pwd.struct_passwd:
    """The user database's entry for a ``user:`` value, a name or a numeric uid (ASCII digits): the one
    lookup of the config's check and of the spawn. Raises KeyError when there is none."""
    try:
        return pwd.getpwuid(int(user)) if user.isascii() and user.isdigit() else pwd.getpwnam(user)
    except OverflowError:
        raise KeyError(user) from None


def _feeds(targets: tuple[str, ...], base: Path) -> tuple[str, ...]:
    """``feeds:`` with each folder (a path with a slash) resolved against the config file's folder."""
    return tuple(t if "/" not in t else str(resolve_path(base, t)) for t in targets)


def user_exists(user: str) -> bool:
    """A user name or numeric uid with an entry in the user database (what the spawn will look up)."""
    try:
        user_account(user)
    except KeyError:
        return False
    return True


def _parse_backoff(b: Reader) -> BackoffPolicy:
    b.only()
    initial_s, max_s = b.get("initial", 0.0), b.get("max", 30.0)
    if initial_s > max_s:
        b.note("initial", f"must not exceed backoff.max ({format_duration(max_s)}), got {format_duration(initial_s)}")
        initial_s = max_s
    return BackoffPolicy(
        initial_s=initial_s,
        max_s=max_s,
        multiplier=b.get("multiplier", 2.0),
        jitter=b.get("jitter", 0.1),
        reset_after_s=b.get("reset_after", 10.0),
    )


def _parse_rlimits(r: Reader) -> dict[str, tuple[int, int]]:
    """``{nofile: 4096, core: 0, nproc: "512:1024", memlock: unlimited}``: one value sets soft and hard."""
    r.only()
    out: dict[str, tuple[int, int]] = {}
    for name in r.data:
        if name in RLIMIT_NAMES and (limit := r.get(name, None)) is not None:
            out[name] = limit
    return out


def check_dependencies(
    programs: dict[str, ProgramConfig],
    groups: dict[str, list[str]],
    file: str,
    lines: dict[str, int],
    declared: AbstractSet[str] = frozenset(),
) -> tuple[dict[str, ProgramConfig], list[ConfigError]]:
    """Expand group names in ``depends_on`` to replica names; the refusals of unknown names (every one) and of
    a cycle (when every name is known). ``declared``: program names the file holds, also those that failed to
    parse (their own error is reported: naming them is not another one)."""
    problems: list[ConfigError] = []
    expanded: dict[str, ProgramConfig] = {}
    for name, prog in programs.items():
        deps: list[str] = []
        conditions: dict[str, DependencyCondition] = {}
        part_of: set[str] = set()
        for dep in prog.depends_on:
            # a program's name stands for all its replicas; a replica's name (web-0) for itself
            members = groups.get(dep) or ([dep] if dep in programs and dep != name else None)
            if members is None:
                key = f"programs.{prog.group}.depends_on"
                if dep not in declared or dep == name:
                    line = lines.get(f"{key}.{dep}") or lines.get(key)
                    problems.append(ConfigError(file, key, f"unknown program {dep!r}", line))
                continue
            deps.extend(m for m in members if m not in deps)
            conditions.update(dict.fromkeys(members, prog.condition_for(dep)))
            if dep in prog.part_of:
                part_of.update(members)
        expanded[name] = replace(
            prog, depends_on=tuple(deps), dependency_conditions=conditions, part_of=frozenset(part_of)
        )
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

    if problems:
        return expanded, problems
    try:
        for name in expanded:
            visit(name, [])
    except ConfigError as exc:
        problems.append(exc)
    return expanded, problems


_HOOK_SENDERS = ("command", "url", "ntfy", "email")


def _parse_email(r: Reader) -> EmailConfig:
    r.only()
    if not r.has("to"):
        r.note("to", "is required: the addresses to write to")
    host, port = r.get("smtp", ("127.0.0.1", 25))
    username, password = r.get("username", ""), r.get("password", "")
    if bool(username) != bool(password):
        r.note("password" if username else "username", "username and password go together (SMTP AUTH)")
    to: tuple[str, ...] = r.get("to", ())
    if r.has("to") and not to and isinstance(r.data.get("to"), list):
        r.note("to", "needs at least one address")
    return EmailConfig(
        to=to,
        sender=r.get("from", ""),
        host=host,
        port=port,
        tls=r.get("tls", "auto"),
        username=username,
        password=password,
    )


def parse_hooks(r: Reader) -> tuple[HookConfig, ...]:
    out = []
    for name, h in r.each():
        h.only()
        events: frozenset[str] = h.get("on", frozenset())
        if not h.has("on"):
            h.note("on", "is required: 'all' or a list of event kinds")
        command: tuple[str, ...] = h.get("command", ())
        url = h.get("url", "")
        if sum(h.has(key) for key in _HOOK_SENDERS) != 1:
            h.note(
                "",
                "needs exactly one of command (argv), url (JSON to http:// or https://), ntfy (a topic URL)"
                " or email (to: addresses)",
            )
        out.append(
            HookConfig(
                name=name,
                events=events,
                command=command,
                url=url,
                ntfy=h.get("ntfy", ""),
                email=_parse_email(h.sub("email")) if h.has("email") else None,
                headers=h.get("headers", {}),
                select=h.get("select", ()),
                timeout_s=h.get("timeout", 10.0),
                retries=h.get("retries", 2),
            )
        )
    return tuple(out)


def parse_groups(r: Reader, replica_sets: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    """``groups: {NAME: [program, ...]}`` (also ``{programs: [...]}`` or ``"a,b"``, as supervisord writes it)."""
    out: dict[str, tuple[str, ...]] = {}
    for key, members in r.each_value():
        if key == "all":
            r.note(key, "'all' is taken: it names every program")
        elif key in replica_sets:
            r.note(key, f"group {key!r} has the name of a program")
        for member in members:
            if member not in replica_sets:
                r.note(key, f"unknown program {member!r}")
        out[key] = members
    return out


def parse_programs(
    progs: Reader, base: Path, file_counts: Mapping[str, int] | None = None
) -> tuple[dict[str, ProgramConfig], dict[str, list[str]]]:
    """Every program (replicas expanded) and each program name's replica names; errors go to the reader.

    ``file_counts``: the file's own ``replicas`` of the programs ``ctl scale`` overrides (they name the replicas).
    """
    programs: dict[str, ProgramConfig] = {}
    groups: dict[str, list[str]] = {}
    for name, section in progs.each():
        if not isinstance(progs.data[name], dict):
            continue  # the reader noted it
        try:
            expanded = _parse_program(name, section, base, (file_counts or {}).get(name))
        except ConfigError as exc:
            if progs.errors is None:
                raise
            progs.errors.extend(exc.errors)
            continue
        if len(programs) + len(expanded) > MAX_PROGRAMS:
            progs.fail(name, f"more than {MAX_PROGRAMS} programs (replicas counted)")
        groups[name] = [p.name for p in expanded]
        for prog in expanded:
            if prog.name in programs:
                progs.note(name, f"replica name {prog.name!r} clashes with another program")
            programs[prog.name] = prog
    return programs, groups


def check_single_writers(
    programs: Mapping[str, ProgramConfig], state_dir: Path, file: str, lines: dict[str, int], errors: list[ConfigError]
) -> None:
    """One writer per file: refuse what two programs (or replicas) would each write on their own.

    A ``log.file`` may be shared, since the daemon is its one writer (:meth:`LogSink.shared`), but only with the
    same rotation (``max_bytes``, ``backups``, ``timestamps``), and never the daemon's own log. A ``pidfile``
    is written by the program itself, so two programs naming one would each adopt the other's PID: refused.
    """
    logs: dict[Path, ProgramConfig] = {}
    pidfiles: dict[Path, ProgramConfig] = {}
    own_log = state_dir / "foss-supervisor.log"

    def refuse(prog: ProgramConfig, key: str, reason: str) -> None:
        dotted = f"programs.{prog.group or prog.name}.{key}"
        errors.append(ConfigError(file, dotted, reason, lines.get(dotted) or lines.get(f"programs.{prog.group}")))

    for prog in programs.values():
        log = prog.log.file or state_dir / "logs" / f"{prog.name}.log"
        if log == own_log:
            refuse(prog, "log.file", f"{log} is the daemon's own log: give the program a file of its own")
        first = logs.setdefault(log, prog)
        rotation = (prog.log.max_bytes, prog.log.backups, prog.log.timestamps)
        if first is not prog and rotation != (first.log.max_bytes, first.log.backups, first.log.timestamps):
            refuse(
                prog,
                "log.file",
                f"{log} is also the log of program {first.name!r}, with another max_bytes, "
                "backups or timestamps; programs sharing a log file share its rotation: give them the same "
                "settings, or each its own file ({replica} in the path gives each replica one)",
            )
        if prog.pidfile is not None:
            other = pidfiles.setdefault(prog.pidfile, prog)
            if other is not prog:
                refuse(
                    prog,
                    "pidfile",
                    f"{prog.pidfile} is also the pidfile of program {other.name!r}: each "
                    "program writes its own main PID; give each its own file ({replica} in the path)",
                )
