"""Events: their one base and registry, the core's own events, and the one-way bus that carries them.

Every event is a frozen dataclass deriving from :class:`Event`, the core's below and the pipeline engine's
(:mod:`foss_supervisor.pipeline.events`). Each class is known outside the daemon by its ``type`` (its class
name: the ``type`` of its JSON, the ``event:`` of its server-sent event; ``name`` is taken, by the program a
:class:`StateChanged` is about) and is entered in :data:`EVENTS` when defined: the one list from which the
dashboard's event stream, its page script, the OpenAPI description and ``docs/dashboard.md`` take theirs.
Two class-level flags say how the dashboard treats an event: ``listed`` (shown in its list of recent events,
and the page refreshes on it) and ``moves`` (it may change a command's reply, so shared replies are asked
again).

Observers (log, metrics, SSE, sd_notify, history) subscribe; they never call back into the core
except through the commands. A slow observer cannot block the core: async subscribers get a
bounded queue that drops its oldest event when full, and counts what it dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from foss_supervisor.base.jsonable import dataclass_to_json
from foss_supervisor.base.processstates import DaemonPhase, Health, ProcessState

__all__ = [
    "EVENTS",
    "AlertNotice",
    "CommandCompleted",
    "ConfigReloaded",
    "DaemonStateChanged",
    "Event",
    "EventBus",
    "HealthChanged",
    "HookDelivered",
    "ResourcesSampled",
    "StateChanged",
    "Subscription",
    "event_to_json",
]

#: every event class by its ``type``, in the order they were defined (the core's, then the pipeline's once
#: :mod:`foss_supervisor.pipeline.events` is imported)
EVENTS: dict[str, type[Event]] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event; ``at`` is wall-clock seconds since the epoch.

    A subclass is registered in :data:`EVENTS` under its ``type`` unless it declares ``base = True`` itself
    (a family's base, such as the pipeline's).
    """

    #: the name the event is known by outside the daemon (set from the class name)
    type: ClassVar[str] = "Event"
    #: shown in the dashboard's list of recent events (and its page refreshes on it)
    listed: ClassVar[bool] = True
    #: may change a command's reply (readers that share replies ask again)
    moves: ClassVar[bool] = True
    #: a family's base, not an event of its own (not registered)
    base: ClassVar[bool] = True

    at: float = field(default_factory=time.time)

    def __init_subclass__(cls) -> None:  # no super(): the slotted class dataclass makes is another class
        cls.type = cls.__name__
        if not cls.__dict__.get("base", False):  # again for the slotted copy, which then replaces the first
            cls.base = False
            EVENTS[cls.type] = cls


def event_to_json(event: Event) -> dict[str, Any]:
    """An event as JSON-able data: its fields (:func:`~foss_supervisor.base.jsonable.jsonable`: enums by value,
    tuples as lists) and its ``type``. Raises ``TypeError`` for anything but an event."""
    if not isinstance(event, Event):
        raise TypeError(f"not an event: {event!r}")
    return dataclass_to_json(event) | {"type": event.type}


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(Event):
    """A program took an edge of the state table.

    On an edge its child's exit caused (to EXITED, BACKOFF, FATAL, or STOPPED after a stop), ``ran_s`` is how
    long that child ran (s) and ``last_lines`` the last lines it printed (at most 2, 200 characters each);
    otherwise None and ()."""

    name: str
    old: ProcessState
    new: ProcessState
    pid: int | None = None
    exit_code: int | None = None
    reason: str = ""
    retry_in_s: float | None = None
    ran_s: float | None = None
    last_lines: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChanged(Event):
    """A program's probes crossed a threshold."""

    name: str
    old: Health
    new: Health
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded(Event):
    """A new config was applied.

    ``added``, ``changed``, ``removed``: the programs; ``diff``: the unified diff of the config file from the
    version running before to this one (bounded: :func:`foss_supervisor.config.history.reload_diff`; "" when
    the file did not change, e.g. a scale)."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    diff: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStateChanged(Event):
    """The daemon itself is starting, ready, reloading or stopping (an edge of ``PHASE_TRANSITIONS``)."""

    state: DaemonPhase
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandCompleted(Event):
    """A state-changing command ran (any transport), done (``ok``) or refused (``error``): the audit record.

    Who asked: ``via`` (``control``: the CLI or a tool on the control socket; ``web``: the dashboard, which
    admits changes only with the owner's token; ``daemon``: the daemon itself), the peer's ``uid`` and
    ``pid``; ``args`` as given (each text cut at 256 characters; redacted like every event)."""

    listed: ClassVar[bool] = False  # what it did shows as the events it caused

    command: str
    ok: bool
    error: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    via: str = "daemon"
    uid: int | None = None
    pid: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HookDelivered(Event):
    """A hook delivery ended: taken by the receiver (``ok``) or given up after its retries (``error``).

    ``hook`` its name, ``kind`` the event kind delivered, ``attempts`` tries made, ``duration_s`` from the
    first try to the end (retry pauses included)."""

    listed: ClassVar[bool] = False
    moves: ClassVar[bool] = False  # no command's reply depends on it

    hook: str
    kind: str
    ok: bool
    attempts: int
    duration_s: float
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcesSampled(Event):
    """A periodic sample of CPU and memory, kept by the journal (``history.sample_interval``).

    ``programs`` and ``services``: ``[{name, pid, processes, rss_bytes, cpu_percent}]``, one per whole
    process tree; ``daemon``, ``worker`` (null without pipelines): one such tree; ``host``: the
    ``resources`` command's host figures (CPU, memory, load, the state dir's disk)."""

    listed: ClassVar[bool] = False
    moves: ClassVar[bool] = False

    programs: list[dict[str, Any]] = field(default_factory=list)
    services: list[dict[str, Any]] = field(default_factory=list)
    daemon: dict[str, Any] = field(default_factory=dict)
    worker: dict[str, Any] | None = None
    host: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertNotice(Event):
    """An alert was told: an incident opened, was told again after its quiet period, or resolved.

    ``notice`` is ``alert_firing`` (``repeat``: told again) or ``alert_resolved`` (see alerting/alerts.py); ``id``
    the incident, ``key`` its stable key, ``rule`` what opened it, ``subject`` the graph node it is about,
    ``opened_at`` Unix seconds, ``notices`` firing notices so far."""

    notice: str
    repeat: bool = False
    id: int
    key: str
    rule: str
    subject: str
    summary: str
    opened_at: float
    notices: int = 0
    acked: bool = False


class Subscription:
    """An async iterator over events with a bounded buffer (oldest dropped first)."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        """Wait for the next event."""
        return await self._queue.get()

    def drain(self) -> list[Event]:
        """Take every event already queued, without waiting."""
        events = []
        while not self._queue.empty():
            events.append(self._queue.get_nowait())
        return events

    def close(self) -> None:
        """Stop receiving events."""
        self._bus._subscriptions.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.get()


class EventBus:
    """Synchronous fan-out: callbacks run in publish order; async subscribers get queues.

    Observers that only record (the daemon's log lines, the numbered event feed and its journal) can be
    registered ``deferred``: they run at the end of the loop step that published, all pending events in
    publish order, so the step itself (a crashed program's respawn: its EXITED and STARTING edges are published
    right before the fork) is not held up by them. The command surface flushes them before a command runs and
    before its reply (:func:`foss_supervisor.commands.registry.dispatch`), and the event log before every read,
    so a reply never runs ahead of the feed the dashboard and followers read. (Running them 20 ms later instead
    was measured twice: 1.5 ms off a restart once, nothing in 28 interleaved kills the second time: README,
    issue 17's targets.)
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[[Event], None]] = []
        self._deferred: list[Callable[[Event], None]] = []
        self._pending: list[Event] = []  # published, not yet given to the deferred observers
        self._subscriptions: set[Subscription] = set()

    def on(self, callback: Callable[[Event], None], *, deferred: bool = False) -> None:
        """Call ``callback(event)`` for every event; it must be quick and must not raise. ``deferred``: at the end
        of the publishing loop step (:meth:`flush` at once; without a running loop, at once)."""
        (self._deferred if deferred else self._callbacks).append(callback)

    def off(self, callback: Callable[[Event], None]) -> None:
        """Stop calling ``callback`` (no error if it was not registered)."""
        self._callbacks = [c for c in self._callbacks if c is not callback]
        self._deferred = [c for c in self._deferred if c is not callback]

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        """Return a bounded async subscription; close it when done."""
        sub = Subscription(self, maxsize)
        self._subscriptions.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        """Deliver ``event`` to every observer (the deferred ones at the end of this loop step)."""
        for callback in self._callbacks:
            callback(event)
        if self._deferred:
            self._pending.append(event)
            if len(self._pending) == 1:
                try:
                    asyncio.get_running_loop().call_soon(self.flush)
                except RuntimeError:  # no loop (a command-line tool, a test): now
                    self.flush()
        for sub in tuple(self._subscriptions):
            sub._offer(event)

    def flush(self) -> None:
        """Give every pending event to the deferred observers now, in publish order (also before a shutdown's
        last writes: the journal must have what was published)."""
        while self._pending:
            pending, self._pending = self._pending, []
            for event in pending:
                for callback in self._deferred:
                    callback(event)
