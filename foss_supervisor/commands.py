"""The one command surface. The control socket, the web handlers and the tests all call :func:`dispatch`.

Commands are an explicit registry (never ``getattr`` on a request: supervisord CVE-2017-11610).
Each command's docstring is its user documentation; arguments are checked against the declared
parameters before the command runs, and every reply is plain JSON-able data.
"""

from __future__ import annotations

import asyncio
import os
import signal as signal_module
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from foss_supervisor import __version__
from foss_supervisor.config import Config
from foss_supervisor.errors import CommandError, ProtocolError
from foss_supervisor.events import CommandCompleted, EventBus
from foss_supervisor.heartbeat import Heartbeat
from foss_supervisor.logview import DAEMON, PIPELINE, LogSource, select_sources, tail
from foss_supervisor.redact import Redactor
from foss_supervisor.services import Services
from foss_supervisor.supervisor import Supervisor
from foss_supervisor.verdict import assess

if TYPE_CHECKING:
    from foss_supervisor.pipeline_service import PipelineService

__all__ = ["COMMANDS", "Command", "CommandContext", "answer", "dispatch"]


class CommandContext(Protocol):
    """What commands may use of the daemon."""

    supervisor: Supervisor
    services: Services
    heartbeat: Heartbeat
    bus: EventBus
    pipelines: PipelineService | None
    started_at: float
    phase: str  # starting | ready | reloading | stopping
    changes: int  # state-changing commands run (done or refused): readers that share replies compare it
    redactor: Redactor  # the egress gate every reply passes (see answer)
    instance_id: str  # this daemon's id, also written in its PID lock file (pidfile.answers_as_holder)

    @property
    def config(self) -> Config: ...

    @property
    def problems(self) -> list[str]: ...  # the daemon's own, that make it unhealthy (a failed subsystem)

    @property
    def warnings(self) -> list[str]: ...  # the daemon's own, that make it degraded (refused reload, writes)

    async def reload(self, dry_run: bool, replicas: Mapping[str, int] | None = None) -> dict[str, Any]: ...

    def request_shutdown(self) -> None: ...


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its parameters as name -> (type, default); ``...`` marks required.

    ``raw``: the reply is the operator's own file, for the config editor (write role only), passed
    without redaction; every other reply is redacted (see :func:`answer`).
    """

    name: str
    handler: Handler
    params: Mapping[str, tuple[type, Any]]
    mutating: bool
    raw: bool = False

    @property
    def doc(self) -> str:
        return (self.handler.__doc__ or "").strip()


COMMANDS: dict[str, Command] = {}


def command(command_name: str, *, mutating: bool = False, raw: bool = False,
            **params: tuple[type, Any]) -> Callable[[Handler], Handler]:  # fmt: skip
    def register(handler: Handler) -> Handler:
        COMMANDS[command_name] = Command(command_name, handler, params, mutating, raw)
        return handler

    return register


def _check(cmd: Command, args: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(args) - set(cmd.params)
    if unknown:
        raise ProtocolError(f"{cmd.name}: unknown argument(s) {', '.join(sorted(unknown))}")
    out: dict[str, Any] = {}
    for pname, (ptype, default) in cmd.params.items():
        if pname not in args:
            if default is ...:
                raise ProtocolError(f"{cmd.name}: missing argument {pname!r}")
            out[pname] = default
            continue
        value = args[pname]
        ok = isinstance(value, ptype) and not (ptype in (int, float) and isinstance(value, bool))
        if ptype is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if ptype is list:
            ok = ok and all(isinstance(v, str) for v in value)
        if not ok:
            raise ProtocolError(f"{cmd.name}: argument {pname!r} must be {ptype.__name__}, got {value!r}")
        out[pname] = value
    return out


async def dispatch(ctx: CommandContext, name: str, args: Mapping[str, Any]) -> Any:
    """Run command ``name`` with ``args``; unknown names and bad arguments raise ProtocolError."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise ProtocolError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    if not cmd.mutating:
        return await cmd.handler(ctx, **_check(cmd, args))
    error = ""
    try:
        return await cmd.handler(ctx, **_check(cmd, args))
    except BaseException as exc:  # refused, failed, or cancelled (its caller went away)
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise
    finally:  # a refused command may change state too (a refused reload is shown as a problem)
        ctx.changes += 1
        ctx.bus.publish(CommandCompleted(command=name, ok=not error, error=error))


async def answer(ctx: CommandContext, name: str, args: Mapping[str, Any],
                 via: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None) -> Any:  # fmt: skip
    """:func:`dispatch` behind the egress gate: what transports send. The reply is redacted by
    ``ctx.redactor`` (:mod:`foss_supervisor.redact`), and so is the message of an error it raises.

    The control socket server and the web's ``Core`` answer through here and nowhere else, so no
    command redacts what it returns. ``via`` runs the command elsewhere (the web passes the core's
    loop) while the redaction is done here, on the caller's loop. Raises what :func:`dispatch` raises.
    """
    running = dispatch(ctx, name, args)
    try:
        reply = await (running if via is None else via(running))
    except Exception as exc:
        exc.args = ctx.redactor.data(exc.args)  # str(exc) is made of its args (the tree has no __str__)
        raise
    return reply if COMMANDS[name].raw else ctx.redactor.data(reply)


# ------------------------------------------------------------------------------------------


@command("ping")
async def ping(ctx: CommandContext) -> dict[str, Any]:
    """Liveness: answers at once with the daemon's PID, phase (starting, ready, reloading, stopping),
    config file, state dir and instance id (the one written in its PID lock file: proof that the daemon
    answering is the one holding the lock, so another ``start`` can tell whether it is the same instance)."""
    cfg = ctx.config
    return {"pong": True, "pid": os.getpid(), "phase": ctx.phase, "version": __version__, "config": str(cfg.source),
            "state_dir": str(cfg.state_dir), "instance": ctx.instance_id}  # fmt: skip


@command("status", names=(list, []))
async def status(ctx: CommandContext, names: list[str]) -> dict[str, Any]:
    """The daemon and its programs (all, or those names select: see ``selectors``).

    ``{"daemon": {pid, version, phase, uptime_s, config, state_dir, dashboard_url, health, problems,
    warnings, loop: {beats, last_beat_at, lag_s, max_lag_s, max_lag_ever_s, interval_s}}, "services": [the
    daemon's own children (``@dashboard``), each like a program],
    "programs": [{name, group, state, health, health_detail, pid, exit_code, completed, uptime_s,
    spawns, wanted ("running"|"stopped"), reason, next_attempt_at, retry_in_s, status_text, command,
    depends_on, dependency_conditions, log_file, env}]}`` (secrets redacted, as in every reply), plus,
    when pipelines are configured, ``"pipelines": {"worker": {pid, state, busy, uptime_s, rss_bytes,
    starts, memory_limit, warehouse, active_runs}}`` (see PipelineRunner.worker_status); ``status --json`` prints it.
    """
    cfg = ctx.config
    verdict = assess(ctx)
    programs = []
    for proc in ctx.supervisor.select(names) if names else ctx.supervisor.processes.values():
        snap = proc.snapshot()
        snap["env"] = dict(proc.cfg.env)
        programs.append(snap)
    result: dict[str, Any] = {
        "daemon": {
            "pid": os.getpid(),
            "version": __version__,
            "phase": ctx.phase,
            "uptime_s": round(time.time() - ctx.started_at, 3),
            "config": str(cfg.source),
            "state_dir": str(cfg.state_dir),
            "dashboard_url": cfg.dashboard_url,
            # the verdict /health gives (verdict.assess): healthy, degraded (warnings) or unhealthy (problems)
            "health": verdict["status"],
            "problems": verdict["problems"],
            "warnings": verdict["warnings"],
            # the supervision loop's heartbeat: how late it woke (what a SIGCHLD would have waited)
            "loop": ctx.heartbeat.snapshot(),
        },
        "services": ctx.services.snapshots(),
        "programs": programs,
    }
    if ctx.pipelines is not None:
        result["pipelines"] = {"worker": ctx.pipelines.worker_status()}
    return result


@command("start", mutating=True, names=(list, ...), wait_s=(float, 30.0))
async def start(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Start programs (a group name starts all its replicas); waits up to wait_s for RUNNING."""
    return await ctx.supervisor.act("start", names, wait_s)


@command("stop", mutating=True, names=(list, ...), wait_s=(float, 60.0))
async def stop(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Stop programs; they stay stopped, across daemon restarts too, until started by hand."""
    return await ctx.supervisor.act("stop", names, wait_s)


@command("restart", mutating=True, names=(list, ...), wait_s=(float, 60.0))
async def restart(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Stop programs (stop_signal, then SIGKILL after stop_timeout) and start them again."""
    return await ctx.supervisor.act("restart", names, wait_s)


@command("signal", mutating=True, signal=(str, ...), names=(list, ...))
async def signal_(ctx: CommandContext, signal: str, names: list[str]) -> list[dict[str, Any]]:
    """Send a signal (a name like HUP, SIGUSR1, or a number) to programs' process groups.

    Returns each selected program's name, pid and whether it was signalled (a stopped one is not).
    """
    sig = parse_signal(signal)
    out = []
    for proc in ctx.supervisor.select(names):
        sent = proc.signal(sig)
        out.append({"name": proc.name, "pid": proc.pid, "signal": sig.name, "sent": sent,
                    "reason": "" if sent else f"not running ({proc.state})"})  # fmt: skip
    return out


def parse_signal(text: str) -> signal_module.Signals:
    """A signal from ``HUP``, ``SIGHUP``, ``hup`` or ``1``; CommandError names the unknown one."""
    try:
        if text.isdigit():
            return signal_module.Signals(int(text))
        name = text.upper()
        return signal_module.Signals[name if name.startswith("SIG") else f"SIG{name}"]
    except (KeyError, ValueError):
        raise CommandError(f"unknown signal {text!r}; e.g. HUP, TERM, USR1, 9") from None


@command("reload", mutating=True, dry_run=(bool, False))
async def reload(ctx: CommandContext, dry_run: bool) -> dict[str, Any]:
    """Re-read the config file: restart changed programs, start new ones, stop removed ones.

    A broken file is refused with the reason and the running config stays. With dry_run the plan
    is returned and nothing changes.
    """
    return await ctx.reload(dry_run)


@command("scale", mutating=True, name=(str, ...), replicas=(int, ...))
async def scale(ctx: CommandContext, name: str, replicas: int) -> dict[str, Any]:
    """Run ``replicas`` copies of program ``name`` now (1 to 1000), as process-compose and PM2 scale.

    The config file is re-read with that count (replicas are named NAME-0, NAME-1...; one copy is
    named NAME); new copies start, surplus ones stop; other programs keep their running counts.
    Refused when the file holds other changes (reload those first). Lasts until the next reload or
    daemon restart, which use the file's counts.
    Returns the reload plan (added, changed, removed, unchanged).
    """
    sets = ctx.config.replica_sets
    if name not in sets:
        raise CommandError(f"no such program: {name!r}; known: {', '.join(sorted(sets))}")
    if not 1 <= replicas <= 1000:
        raise CommandError("replicas must be between 1 and 1000")
    wanted = {n: len(members) for n, members in sets.items()} | {name: replicas}  # earlier scales stay
    preview = await ctx.reload(True, wanted)
    ours = {name, *sets[name], *(f"{name}-{i}" for i in range(replicas))}
    others = sorted({*preview["added"], *preview["changed"], *preview["removed"]} - ours)
    if others or preview["needs_daemon_restart"]:
        pending = ", ".join(others + preview["needs_daemon_restart"])
        raise CommandError(f"the config file has other changes ({pending}); run `reload` first, then scale")
    return await ctx.reload(False, wanted)


@command("logs", names=(list, ["all"]), lines=(int, 100))
async def logs(ctx: CommandContext, names: list[str], lines: int) -> dict[str, Any]:
    """The last lines of the logs that names select: programs (any selector), ``daemon`` or ``pipeline``.

    Returns ``{"sources": [{"name", "file", "logger_prefix"}], "lines": {name: [line, ...]}}``; the
    files are what ``logs -f`` follows. Non-UTF-8 bytes come back as ``\\xNN`` escapes.
    """
    if not 0 <= lines <= 100_000:
        raise CommandError("lines must be between 0 and 100000")
    sup = ctx.supervisor
    program_logs = {name: proc.log_path for name, proc in sup.processes.items()}
    sources = select_sources(names, program_logs, ctx.config.state_dir, ctx.config.replica_sets, ctx.config.groups)
    tails = await asyncio.to_thread(lambda: {s.name: tail(s, lines) for s in sources})
    return {"sources": [s.as_dict() for s in sources], "lines": tails}


@command("shutdown", mutating=True)
async def shutdown(ctx: CommandContext) -> dict[str, Any]:
    """Stop every program in reverse dependency order, then the daemon (exit 0)."""
    ctx.request_shutdown()
    return {"stopping": True, "pid": os.getpid()}


@command("help")
async def help_(ctx: CommandContext) -> dict[str, Any]:
    """Every command with its parameters and documentation."""
    return {
        name: {
            "doc": cmd.doc,
            "mutating": cmd.mutating,
            "params": {p: {"type": t.__name__, "required": d is ...} for p, (t, d) in cmd.params.items()},
        }
        for name, cmd in sorted(COMMANDS.items())
    }


# ------------------------------------------------------------------------------------------
# Read-only views the dashboard and /metrics need, as plain data (transports never walk core objects).


@command("health")
async def health(ctx: CommandContext) -> dict[str, Any]:
    """Healthy, degraded or unhealthy, with the reasons: the one verdict (:func:`foss_supervisor.verdict.assess`,
    whose table says what counts) that ``/health``, ``status``, ``/metrics`` and the dashboard show.

    Unhealthy (``/health`` answers 503): something that should run is not running or not healthy, or a
    pipeline is failing or overdue. Degraded (200, under ``warnings``): a refused reload, failing
    writes, a program up again after crashes in a row. Returns ``{"ok": bool, "status":
    "healthy"|"degraded"|"unhealthy", "phase": str, "problems": [str], "warnings": [str],
    "programs": {state: count}}``.
    """
    return assess(ctx)


LOG_SOURCES = (DAEMON, PIPELINE)


def _log_source(ctx: CommandContext, name: str) -> LogSource:
    """One log by its exact name: a program, ``daemon`` or ``pipeline`` (CommandError if unknown)."""
    program_logs = {n: proc.log_path for n, proc in ctx.supervisor.processes.items()}
    if name not in program_logs and name not in LOG_SOURCES:
        raise CommandError(f"no such log: {name!r}; known: {', '.join([*program_logs, *LOG_SOURCES])}")
    [source] = select_sources([name], program_logs, ctx.config.state_dir, {}, {})
    return source


def _read_log(path: Path, offset: int, max_bytes: int) -> tuple[int, int, bytes, bool]:
    """(start, size, bytes) of whole lines from ``offset`` (-1: the last ``max_bytes``); rotated when it shrank."""
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            rotated = offset > size
            start = 0 if rotated else (max(0, size - max_bytes) if offset < 0 else offset)
            f.seek(start)
            data = f.read(max_bytes)
    except FileNotFoundError:
        return 0, 0, b"", False
    if offset < 0 and start > 0:  # tail: begin at a whole line
        cut = data.find(b"\n")
        start, data = (start + cut + 1, data[cut + 1 :]) if cut >= 0 else (start + len(data), b"")
    if len(data) == max_bytes and b"\n" in data:  # a full read: end at a whole line, the rest comes next time
        data = data[: data.rfind(b"\n") + 1]
    return start, size, data, rotated


@command("log_read", source=(str, ...), offset=(int, -1), max_bytes=(int, 65536), contains=(str, ""))
async def log_read(ctx: CommandContext, source: str, offset: int, max_bytes: int, contains: str) -> dict[str, Any]:
    """Lines of a log from a byte offset, for live viewers: a program's name, "daemon" or "pipeline".

    offset -1 reads the tail (the last max_bytes, at most 1 MiB, from a line start). Returns
    ``{"source", "file", "offset", "next_offset", "size", "rotated", "lines": [str]}``; ask again with
    next_offset to follow. "pipeline" is the daemon's log kept to the pipeline runner's and worker's lines;
    contains keeps only lines holding that text (case-insensitive). Non-UTF-8 bytes come back as \\xNN.
    """
    if not 1 <= max_bytes <= 1024 * 1024:
        raise CommandError("max_bytes must be between 1 and 1048576")
    log_source = _log_source(ctx, source)
    start, size, data, rotated = await asyncio.to_thread(_read_log, log_source.file, offset, max_bytes)
    lines = [line for line in data.decode("utf-8", "backslashreplace").splitlines() if log_source.keeps(line)]
    if contains:
        needle = contains.lower()
        lines = [line for line in lines if needle in line.lower()]
    return {"source": source, "file": str(log_source.file), "offset": start, "next_offset": start + len(data),
            "size": size, "rotated": rotated, "lines": lines}  # fmt: skip


from foss_supervisor import commands_config, commands_pipelines  # noqa: E402, F401
