"""The command registry: what a command is, how it is registered, checked, run and answered.

Commands are an explicit registry (never ``getattr`` on a request: supervisord CVE-2017-11610), filled
by the modules of this package (:mod:`foss_supervisor.commands` imports every one of them). Each
command's docstring is its user documentation; arguments pass one gate (:func:`check_args`) against the
declared parameters before the command runs, on every transport: the type, then the parameter's
:class:`Limit` (its own, or its type's default in :data:`DEFAULT_LIMITS`): numbers finite and within a
range, strings and lists bounded in length, list items strings. Every reply is plain JSON-able data.
Transports (the control socket, the dashboard) answer through :func:`answer`, the egress gate that redacts.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from foss_supervisor.alerting.alertwatch import AlertWatch
from foss_supervisor.base.processstates import DaemonPhase
from foss_supervisor.base.redact import Redactor
from foss_supervisor.config import Config
from foss_supervisor.core.actor import ACTOR, Actor
from foss_supervisor.core.eventlog import EventLog
from foss_supervisor.core.events import CommandCompleted, EventBus
from foss_supervisor.core.heartbeat import Heartbeat
from foss_supervisor.core.services import Services
from foss_supervisor.core.supervisor import Supervisor
from foss_supervisor.errors import ProtocolError

if TYPE_CHECKING:
    from foss_supervisor.pipeline.engine.service import PipelineService

__all__ = [
    "ACTOR",
    "COMMANDS",
    "DEFAULT_LIMITS",
    "Actor",
    "Command",
    "CommandContext",
    "Limit",
    "answer",
    "audit_args",
    "check_args",
    "dispatch",
]


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
    def alert_watch(self) -> AlertWatch | None: ...  # objectives and alerts (alerting/alertwatch.py); None: not watched

    @property
    def problems(self) -> list[str]: ...  # the daemon's own, that make it unhealthy (a failed subsystem)

    @property
    def warnings(self) -> list[str]: ...  # the daemon's own, that make it degraded (refused reload, writes)

    async def reload(self, dry_run: bool, replicas: Mapping[str, int] | None = None) -> dict[str, Any]: ...

    def request_shutdown(self) -> None: ...


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Limit:
    """What a parameter's value may be beyond its type: numbers in ``[low, high]`` (and finite), strings of at
    most ``size`` characters, lists of at most ``size`` items (each a string of at most ``item_size``)."""

    low: float | None = None
    high: float | None = None
    size: int | None = None
    item_size: int = 4096

    def refusal(self, value: Any) -> str:
        """Why ``value`` is out of bounds ("" when it is within them)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                return "a finite number"
            if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
                return f"a number from {self.low:g} to {self.high:g}"
        if isinstance(value, str) and self.size is not None and len(value) > self.size:
            return f"a string of at most {self.size:,} characters"
        if isinstance(value, str) and not _is_text(value):
            return _NOT_TEXT
        if isinstance(value, list):
            if self.size is not None and len(value) > self.size:
                return f"a list of at most {self.size:,} items"
            if any(len(v) > self.item_size for v in value):
                return f"a list of strings of at most {self.item_size:,} characters"
            if not all(_is_text(v) for v in value):
                return f"a list of strings, each {_NOT_TEXT}"
        return ""


_NOT_TEXT = "text that UTF-8 can hold (no lone surrogate, no undecodable byte)"


def _is_text(value: str) -> bool:
    """Whether ``value`` encodes as UTF-8: a lone surrogate (a JSON ``\\udc80``, a byte of argv that did not
    decode) does not, and would fail every writer and page it reached."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


#: the bounds of a parameter that declares none, by its type
DEFAULT_LIMITS: dict[type, Limit] = {
    float: Limit(0.0, 86400.0),  # every float parameter is a duration in seconds: up to a day
    int: Limit(-(2**53), 2**53),  # exact in JSON and in a float
    str: Limit(size=4096),
    list: Limit(size=10_000),
    bool: Limit(),
}


@dataclass(frozen=True, slots=True)
class Command:
    """A registered command: its parameters as name -> (type, default); ``...`` marks required.

    ``raw``: the reply is the operator's own file, for the config editor (write role only), passed
    without redaction; every other reply is redacted (see :func:`answer`). ``bulky``: the reply grows with
    the config (every program's every setting), so it is redacted on a worker thread: the loop supervises
    meanwhile (the handler builds it off the loop too).
    """

    name: str
    handler: Handler
    params: Mapping[str, tuple[type, Any]]
    mutating: bool
    raw: bool = False
    bulky: bool = False
    limits: Mapping[str, Limit] = dataclasses.field(default_factory=dict)  # each parameter's, defaults filled in

    @property
    def doc(self) -> str:
        return (self.handler.__doc__ or "").strip()


COMMANDS: dict[str, Command] = {}


def command(
    command_name: str, *, mutating: bool = False, raw: bool = False, bulky: bool = False, **params: tuple[Any, ...]
) -> Callable[[Handler], Handler]:
    """Register a command; each parameter is ``(type, default)`` or ``(type, default, Limit)`` (``...``:
    required; without a Limit, the type's :data:`DEFAULT_LIMITS`)."""

    def register(handler: Handler) -> Handler:
        types = {name: (spec[0], spec[1]) for name, spec in params.items()}
        limits = {name: spec[2] if len(spec) > 2 else DEFAULT_LIMITS[spec[0]] for name, spec in params.items()}
        COMMANDS[command_name] = Command(command_name, handler, types, mutating, raw, bulky, limits)
        return handler

    return register


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_args(cmd: Command, args: Mapping[str, Any]) -> dict[str, Any]:
    """The one gate of every command's arguments: ``args`` with defaults filled in, each of its declared type
    and within its :class:`Limit`. Raises ProtocolError naming the argument, what it must be, and (cut to 80
    characters) what it was."""
    unknown = set(args) - set(cmd.params)
    if unknown:
        raise ProtocolError(f"{cmd.name}: unknown argument(s) {', '.join(sorted(map(_shown, unknown)))}")
    out: dict[str, Any] = {}
    for pname, (ptype, default) in cmd.params.items():
        if pname not in args:
            if default is ...:
                raise ProtocolError(f"{cmd.name}: missing argument {pname!r}")
            out[pname] = default
            continue
        value = args[pname]
        ok = isinstance(value, ptype) and not (ptype in (int, float) and isinstance(value, bool))
        if ptype is int and isinstance(value, float) and value.is_integer():  # JSON Schema: 1.0 is an integer
            value, ok = int(value), True
        if ptype is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value, ok = float(value), True
            except OverflowError:
                value, ok = float("inf"), True  # refused below as not finite
        if ptype is list:
            ok = ok and all(isinstance(v, str) for v in value)
        if not ok:
            raise ProtocolError(f"{cmd.name}: argument {pname!r} must be {ptype.__name__}, got {_shown(value)}")
        if why := cmd.limits.get(pname, DEFAULT_LIMITS[ptype]).refusal(value):
            raise ProtocolError(f"{cmd.name}: argument {pname!r} must be {why}, got {_shown(value)}")
        out[pname] = value
    return out


AUDIT_TEXT = 256  # characters of a text argument an audit record keeps
AUDIT_ITEMS = 20  # items of a list or keys of an object it keeps


def audit_args(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` as an audit record keeps them: bounded in size (texts and keys cut at :data:`AUDIT_TEXT`
    characters with the length said, at most :data:`AUDIT_ITEMS` items or keys, nothing nested deeper).
    A cut key never takes the place of another: it is longer than any key kept whole, and two cut alike
    are numbered (``#2``)."""

    def cut(text: str) -> str:
        # what UTF-8 cannot hold (a refused command's lone surrogate) is kept as "?": the record is shown and
        # written wherever audit records go
        text = text.encode("utf-8", "replace").decode("utf-8")
        return text if len(text) <= AUDIT_TEXT else f"{text[:AUDIT_TEXT]}... ({len(text)} characters)"

    def mapping(value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in list(value.items())[:AUDIT_ITEMS]:
            key = shown = cut(str(k))
            number = 2
            while key in out:
                key, number = f"{shown} #{number}", number + 1
            out[key] = bounded(v, depth)
        return out

    def bounded(value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return cut(value)
        if isinstance(value, bool | int | float) or value is None:
            return value
        if depth >= 2:
            return f"<{type(value).__name__}>"
        if isinstance(value, Mapping):
            return mapping(value, depth + 1)
        if isinstance(value, list | tuple):
            return [bounded(v, depth + 1) for v in value[:AUDIT_ITEMS]]
        return f"<{type(value).__name__}>"

    return mapping(args, 1)


async def dispatch(ctx: CommandContext, name: str, args: Mapping[str, Any]) -> Any:
    """Run command ``name`` with ``args``; unknown names and bad arguments raise ProtocolError.

    The bus's recorders (the event feed, its journal, the daemon's log lines) are given every event published so
    far before the command runs and again before it answers, so a reply never runs ahead of the feed that the
    dashboard and event followers read (:class:`~foss_supervisor.core.events.EventBus`)."""
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise ProtocolError(f"unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}")
    ctx.bus.flush()
    if not cmd.mutating:
        try:
            return await cmd.handler(ctx, **check_args(cmd, args))
        finally:
            ctx.bus.flush()
    error = ""
    try:
        return await cmd.handler(ctx, **check_args(cmd, args))
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
        ctx.bus.flush()


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
        ctx.redactor.exception(exc)  # its str(): args, and the attributes some build it of (OSError...)
        raise
    spec = COMMANDS[name]
    if spec.raw:
        return reply
    if spec.bulky:  # thousands of strings: the loop keeps supervising while they are read
        return await asyncio.to_thread(ctx.redactor.data, reply)
    return ctx.redactor.data(reply)


# ------------------------------------------------------------------------------------------
