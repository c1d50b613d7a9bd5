"""The one command surface. The control socket, the web handlers and the tests all call :func:`dispatch`.

Commands are an explicit registry (never ``getattr`` on a request: supervisord CVE-2017-11610).
Each command's docstring is its user documentation; arguments are checked against the declared
parameters before the command runs, and every reply is plain JSON-able data.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from foss_supervisor import __version__
from foss_supervisor.config import Config
from foss_supervisor.errors import CommandError, ProtocolError
from foss_supervisor.logsink import tail_lines
from foss_supervisor.redact import redact_env
from foss_supervisor.supervisor import Supervisor

__all__ = ["COMMANDS", "Command", "CommandContext", "dispatch"]


class CommandContext(Protocol):
    """What commands may use of the daemon."""

    supervisor: Supervisor
    started_at: float
    phase: str  # starting | ready | reloading | stopping

    @property
    def config(self) -> Config: ...

    async def reload(self, dry_run: bool) -> dict[str, Any]: ...

    def request_shutdown(self) -> None: ...


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its parameters as name -> (type, default); ``...`` marks required."""

    name: str
    handler: Handler
    params: Mapping[str, tuple[type, Any]]
    mutating: bool

    @property
    def doc(self) -> str:
        return (self.handler.__doc__ or "").strip()


COMMANDS: dict[str, Command] = {}


def command(command_name: str, *, mutating: bool = False, **params: tuple[type, Any]) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[command_name] = Command(command_name, handler, params, mutating)
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
    return await cmd.handler(ctx, **_check(cmd, args))


# ------------------------------------------------------------------------------------------


@command("ping")
async def ping(ctx: CommandContext) -> dict[str, Any]:
    """Liveness: answers at once with the daemon's PID and phase (starting, ready, reloading, stopping)."""
    return {"pong": True, "pid": os.getpid(), "phase": ctx.phase, "version": __version__}


@command("status")
async def status(ctx: CommandContext) -> dict[str, Any]:
    """The daemon and every program: state, health, PID, uptime, exit code, restarts, redacted env."""
    cfg = ctx.config
    programs = []
    for proc in ctx.supervisor.processes.values():
        snap = proc.snapshot()
        snap["env"] = redact_env(proc.cfg.env)
        programs.append(snap)
    return {
        "daemon": {
            "pid": os.getpid(),
            "version": __version__,
            "phase": ctx.phase,
            "uptime_s": round(time.time() - ctx.started_at, 3),
            "config": str(cfg.source),
            "state_dir": str(cfg.state_dir),
            "dashboard_url": cfg.dashboard_url,
        },
        "programs": programs,
    }


@command("start", mutating=True, names=(list, ...), wait_s=(float, 30.0))
async def start(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Start programs (a group name starts all its replicas); waits up to wait_s for RUNNING."""
    return await ctx.supervisor.start(names, wait_s)


@command("stop", mutating=True, names=(list, ...), wait_s=(float, 60.0))
async def stop(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Stop programs; they stay stopped, across daemon restarts too, until started by hand."""
    return await ctx.supervisor.stop(names, wait_s)


@command("restart", mutating=True, names=(list, ...), wait_s=(float, 60.0))
async def restart(ctx: CommandContext, names: list[str], wait_s: float) -> list[dict[str, Any]]:
    """Stop programs (stop_signal, then SIGKILL after stop_timeout) and start them again."""
    return await ctx.supervisor.restart(names, wait_s)


@command("reload", mutating=True, dry_run=(bool, False))
async def reload(ctx: CommandContext, dry_run: bool) -> dict[str, Any]:
    """Re-read the config file: restart changed programs, start new ones, stop removed ones.

    A broken file is refused with the reason and the running config stays. With dry_run the plan
    is returned and nothing changes.
    """
    return await ctx.reload(dry_run)


@command("logs", name=(str, ...), lines=(int, 100))
async def logs(ctx: CommandContext, name: str, lines: int) -> dict[str, Any]:
    """The last lines of a program's log file (and its path, which ``logs -f`` follows)."""
    proc = ctx.supervisor.get(name)
    if not 0 <= lines <= 100_000:
        raise CommandError("lines must be between 0 and 100000")
    return {"name": name, "file": str(proc.log_path), "lines": tail_lines(proc.log_path, lines)}


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
