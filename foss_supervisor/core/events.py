"""Events the core publishes, and the one-way bus that carries them to observers.

The bus carries any frozen event dataclass: the core's below and the pipeline engine's
(:mod:`foss_supervisor.pipeline.events`), which does not import the core.

Observers (log, metrics, SSE, sd_notify, history) subscribe; they never call back into the core
except through the commands. A slow observer cannot block the core: async subscribers get a
bounded queue that drops its oldest event when full, and counts what it dropped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from foss_supervisor.core.states import DaemonPhase, Health, ProcessState

__all__ = [
    "CommandCompleted",
    "ConfigReloaded",
    "DaemonStateChanged",
    "Event",
    "EventBus",
    "HealthChanged",
    "StateChanged",
    "Subscription",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event; ``at`` is wall-clock seconds since the epoch."""

    at: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(Event):
    """A program took an edge of the state table."""

    name: str
    old: ProcessState
    new: ProcessState
    pid: int | None = None
    exit_code: int | None = None
    reason: str = ""
    retry_in_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthChanged(Event):
    """A program's probes crossed a threshold."""

    name: str
    old: Health
    new: Health
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConfigReloaded(Event):
    """A new config was applied."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonStateChanged(Event):
    """The daemon itself is starting, ready, reloading or stopping (an edge of ``PHASE_TRANSITIONS``)."""

    state: DaemonPhase
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandCompleted(Event):
    """A state-changing command ran (from any transport): done (``ok``) or refused with ``error``."""

    command: str
    ok: bool
    error: str = ""


class Subscription:
    """An async iterator over events with a bounded buffer (oldest dropped first)."""

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize)
        self.dropped = 0

    def _offer(self, event: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> object:
        """Wait for the next event."""
        return await self._queue.get()

    def drain(self) -> list[object]:
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

    async def __anext__(self) -> object:
        return await self.get()


class EventBus:
    """Synchronous fan-out: callbacks run in publish order; async subscribers get queues."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[object], None]] = []
        self._subscriptions: set[Subscription] = set()

    def on(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(event)`` for every event; it must be quick and must not raise."""
        self._callbacks.append(callback)

    def off(self, callback: Callable[[object], None]) -> None:
        """Stop calling ``callback`` (no error if it was not registered)."""
        if callback in self._callbacks:
            self._callbacks = [c for c in self._callbacks if c is not callback]

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        """Return a bounded async subscription; close it when done."""
        sub = Subscription(self, maxsize)
        self._subscriptions.add(sub)
        return sub

    def publish(self, event: object) -> None:
        """Deliver ``event`` to every observer."""
        for callback in self._callbacks:
            callback(event)
        for sub in tuple(self._subscriptions):
            sub._offer(event)
