"""The core's numbered event log: every bus event as JSON-able data with a sequence number, the last few kept.

Readers outside the core (the dashboard process, ``foss-supervisor events``, any tool on the control
socket) follow the daemon through it: :meth:`EventLog.since` gives what came after a sequence number,
:meth:`EventLog.wait` blocks until something newer arrives. Numbers are consecutive from 1 within one
daemon run, named by :attr:`EventLog.boot` (new per start): a reader holding ``(boot, seq)`` resumes exactly
where it left off, or learns that it must resynchronise (another boot, or events already dropped).

Events are kept as they leave the daemon, as :func:`~foss_supervisor.core.events.event_to_json` makes them:
``redact`` (the daemon's :class:`~foss_supervisor.base.redact.Redactor`) runs once per event, at
:meth:`EventLog.append`, so no subscriber ever reads a secret. Stdlib only; appending never blocks the publisher.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import deque
from collections.abc import Callable
from typing import Any

from foss_supervisor.core.events import Event, event_to_json

__all__ = ["EventLog"]


class EventLog:
    """The last ``size`` bus events, numbered; register :meth:`append` as a bus observer."""

    def __init__(
        self,
        redact: Callable[[dict[str, Any]], dict[str, Any]] = lambda d: d,
        size: int = 2000,
        sink: Callable[[dict[str, Any]], None] | None = None,
        catch_up: Callable[[], None] = lambda: None,
    ) -> None:
        """``sink`` receives each event as kept (redacted, numbered, with ``boot``): the durable journal.
        ``catch_up`` runs before every read, so a reader sees every event published so far: the bus's
        :meth:`~foss_supervisor.core.events.EventBus.flush`, as :meth:`append` is a deferred observer."""
        self.boot = secrets.token_hex(4)
        self._redact = redact
        self._sink = sink
        self._catch_up = catch_up
        self._seq = 0
        self._events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=size)
        self._newer = asyncio.Event()

    @property
    def seq(self) -> int:
        """The newest event's number (0: none yet)."""
        self._catch_up()
        return self._seq

    def append(self, event: Event) -> None:
        """Number and keep ``event`` (a bus callback: quick, never raises for an event)."""
        self._seq += 1
        data = self._redact(event_to_json(event))
        data["seq"] = self._seq
        self._events.append((self._seq, data))
        if self._sink is not None:
            self._sink(data | {"boot": self.boot})
        self._newer.set()
        self._newer = asyncio.Event()

    def since(self, seq: int) -> tuple[list[dict[str, Any]], bool]:
        """The events after ``seq`` (oldest first), and whether some of them were already dropped."""
        if not self._events or seq >= self.seq:  # (self.seq catches up first)
            return [], False
        first = self._events[0][0]  # numbers in the log are consecutive
        return [data for _, data in itertools.islice(self._events, max(0, seq + 1 - first), None)], first > seq + 1

    def recent(self, count: int) -> list[dict[str, Any]]:
        """The last ``count`` events, newest first."""
        self._catch_up()
        return [data for _, data in list(self._events)[-count:]][::-1] if count > 0 else []

    async def wait(self, seq: int, timeout_s: float) -> bool:
        """Wait until an event newer than ``seq`` exists (True) or ``timeout_s`` passed (False)."""
        if self.seq > seq:
            return True
        try:
            async with asyncio.timeout(timeout_s):
                await self._newer.wait()
        except TimeoutError:
            return False
        return True
