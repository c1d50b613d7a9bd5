"""The command registry: what a command is, how it is registered, checked, run and answered.

Commands are an explicit registry (never ``getattr`` on a request: supervisord CVE-2017-11610), filled
by the modules of this package (:mod:`foss_supervisor.commands` imports every one of them). Each
command's docstring is its user documentation; arguments are checked against the declared parameters
before the command runs, and every reply is plain JSON-able data. Transports (the control socket, the
dashboard) answer through :func:`answer`, the egress gate that redacts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from foss_supervisor.base.redact import Redactor
from foss_supervisor.config import Config
from foss_supervisor.core.actor import ACTOR, Actor
from foss_supervisor.core.eventlog import EventLog
from foss_supervisor.core.events import CommandCompleted, EventBus
from foss_supervisor.core.heartbeat import Heartbeat
from foss_supervisor.core.services import Services
from foss_supervisor.core.states import DaemonPhase
from foss_supervisor.core.supervisor import Supervisor
from foss_supervisor.errors import ProtocolError

if TYPE_CHECKING:
    from foss_supervisor.pipeline.service import PipelineService

__all__ = ["ACTOR", "COMMANDS", "Actor", "Command", "CommandContext", "answer", "audit_args", "dispatch"]


class CommandContext(Protocol):
    """What commands may use of the daemon."""

    supervisor: Supervisor
    services: Services
    heartbeat: Heartbeat
    bus: EventBus
    pipelines: PipelineService | None
    started_at: float
    phase: DaemonPhase
    changes: int  # state-changing commands run (done or refused): readers that share replies compare it
    redactor: Redactor  # the egress gate every reply passes (see answer)
    instance_id: str  # this daemon's id, also written in its PID lock file (pidfile.answers_as_holder)
    events: EventLog  # the last events, numbered and redacted (why reads a program's recent edges)

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


def command(
    command_name: str, *, mutating: bool = False, raw: bool = False, **params: tuple[type, Any]
) -> Callable[[Handler], Handler]:
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


AUDIT_TEXT = 256  # characters of a text argument an audit record keeps
AUDIT_ITEMS = 20  # items of a list or keys of an object it keeps


def audit_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` as an audit record keeps them: bounded in size (texts cut at :data:`AUDIT_TEXT`
    characters with the length said, at most :data:`AUDIT_ITEMS` items or keys, nothing nested deeper)."""

    def bounded(value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return value if len(value) <= AUDIT_TEXT else f"{value[:AUDIT_TEXT]}... ({len(value)} characters)"
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth >= 2:
            return f"<{type(value).__name__}>"
        if isinstance(value, Mapping):
            return {str(k)[:AUDIT_TEXT]: bounded(v, depth + 1) for k, v in list(value.items())[:AUDIT_ITEMS]}
        if isinstance(value, list | tuple):
            return [bounded(v, depth + 1) for v in value[:AUDIT_ITEMS]]
        return f"<{type(value).__name__}>"

    return {str(k)[:AUDIT_TEXT]: bounded(v, 1) for k, v in list(args.items())[:AUDIT_ITEMS]}


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
        actor = ACTOR.get()
        ctx.bus.publish(
            CommandCompleted(
                command=name,
                ok=not error,
                error=error,
                args=audit_args(args),
                via=actor.via,
                uid=actor.uid,
                pid=actor.pid,
            )
        )


async def answer(
    ctx: CommandContext,
    name: str,
    args: Mapping[str, Any],
    via: Callable[[Awaitable[Any]], Awaitable[Any]] | None = None,
) -> Any:
    """:func:`dispatch` behind the egress gate: what transports send. The reply is redacted by
    ``ctx.redactor`` (:mod:`foss_supervisor.base.redact`), and so is the message of an error it raises.

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
