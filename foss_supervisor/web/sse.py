"""Server-sent events: the bus, as JSON, to every open dashboard, resumable with ``Last-Event-ID``.

:class:`EventLog` numbers each bus event (``<boot>-<seq>``, ``boot`` new per daemon start) and keeps
the last ``size`` of them. A browser that reconnects sends the id it saw last: it gets what it missed,
or a ``resync`` event when the daemon restarted or the events it missed are gone, which makes the page
fetch its figures afresh. Every ``tick_s`` a ``tick`` event carries nothing but the time, for figures
that move without a bus event (CPU, memory, uptime).

Streams are tracked so shutdown closes them; aiohttp does not cancel a handler whose client went away,
so each stream looks every second and ends itself. At most ``max_streams`` are open at once (503 beyond).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from foss_supervisor.base.jsonable import jsonable
from foss_supervisor.web.core import EVENT_TYPES, LISTED_EVENTS, RESYNC, Core
from foss_supervisor.web.icons import event_line

__all__ = ["EVENT_TYPES", "SINCE", "EventLog"]

SINCE = "foss_events_since"  # request key: the newest event id when the request came in

KEEPALIVE_S = 15.0


class EventLog:
    """The last ``size`` bus events with ids, and the open SSE streams that read them."""

    def __init__(self, core: Core, size: int = 1000, max_streams: int = 100, tick_s: float = 5.0) -> None:
        """Call it on the loop that serves the app: it follows ``core``'s events from there."""
        self._core = core
        self.boot = core.boot
        self._seq = core.seq
        self._events: deque[tuple[int, dict[str, Any], bytes]] = deque(maxlen=size)  # (seq, event, SSE frame)
        self._changed = asyncio.Event()
        self._streams: set[asyncio.Task[Any]] = set()
        self.max_streams = max_streams
        self.tick_s = tick_s
        core.on_event(self._append)

    def _append(self, event: dict[str, Any]) -> None:
        name, seq = str(event.get("type", "")), event.get("seq")
        if not isinstance(seq, int):
            return
        if name == RESYNC:  # events were missed: streams behind this point resync, then go on from here
            self.boot = str(event.get("boot") or self.boot)
            self._events.clear()
            self._seq = seq
        else:
            shown = {**event, "line": event_line(event)} if name in LISTED_EVENTS else event  # the list's words
            payload = json.dumps(shown, default=jsonable)
            self._seq = seq
            self._events.append((seq, event, f"id: {self.boot}-{seq}\nevent: {name}\ndata: {payload}\n\n".encode()))
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def last_id(self) -> str:
        """The id of the newest event (``<boot>-<seq>``): a page rendered now is up to date to it."""
        return f"{self.boot}-{self._seq}"

    @web.middleware
    async def mark(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Note on each request the newest event before its view reads anything (``request[SINCE]``): a page
        passes it to its event stream (``?since=``), which sends what happened between render and connect."""
        request[SINCE] = self.last_id
        return await handler(request)

    def recent(self, count: int) -> list[dict[str, Any]]:
        """The last ``count`` events as JSON-able data, newest first (for a page's first render)."""
        return [event for _, event, _ in list(self._events)[-count:]][::-1] if count > 0 else []

    def _since(self, last: int) -> tuple[list[bytes], bool]:
        """Frames after ``last``, and whether some were already dropped from the log."""
        if last >= self._seq:
            return [], False
        if not self._events:
            return [], True
        first = self._events[0][0]  # sequence numbers in the log are consecutive
        return [
            frame for _, _, frame in itertools.islice(self._events, max(0, last + 1 - first), None)
        ], first > last + 1

    def _resume_point(self, last_event_id: str) -> tuple[int, bool]:
        """(sequence to continue after, resync needed) for a client's ``Last-Event-ID``."""
        boot, _, seq = last_event_id.partition("-")
        if boot == self.boot and seq.isdigit() and int(seq) <= self._seq:
            return int(seq), False
        return self._seq, bool(last_event_id)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """Write events until the client leaves or the app shuts down (:meth:`close` cancels streams)."""
        if len(self._streams) >= self.max_streams:
            raise web.HTTPServiceUnavailable(text="too many open event streams\n", headers={"Retry-After": "5"})
        # a reconnect sends the Last-Event-ID header; a page's first connection names its render's ?since=
        last, resync = self._resume_point(request.headers.get("Last-Event-ID") or request.query.get("since", ""))
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        task = asyncio.current_task()
        assert task is not None
        self._streams.add(task)
        try:
            await response.write(f"retry: 2000\nid: {self.boot}-{last}\nevent: hello\ndata: {{}}\n\n".encode())
            if resync:
                await response.write(b"event: resync\ndata: {}\n\n")
            next_tick = time.monotonic() + self.tick_s
            idle_since = time.monotonic()
            while True:
                frames, gap = self._since(last)
                if gap:
                    await response.write(b"event: resync\ndata: {}\n\n")
                if frames:
                    await response.write(b"".join(frames))
                if frames or gap:
                    last = self._seq
                    idle_since = time.monotonic()
                now = time.monotonic()
                if now >= next_tick:
                    await response.write(f'event: tick\ndata: {{"at": {time.time():.3f}}}\n\n'.encode())
                    next_tick, idle_since = now + self.tick_s, now
                elif now - idle_since >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    idle_since = now
                with contextlib.suppress(TimeoutError):  # wake at least every second to see if the client left
                    await asyncio.wait_for(self._changed.wait(), min(1.0, max(0.05, next_tick - time.monotonic())))
                if request.transport is None or request.transport.is_closing():
                    break  # the client left: let go of the slot now, not at the next write
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._streams.discard(task)
        return response

    @property
    def open_streams(self) -> int:
        """Streams being served now."""
        return len(self._streams)

    async def close(self, _app: web.Application | None = None) -> None:
        """Cancel every open stream (``on_shutdown``)."""
        for task in tuple(self._streams):
            task.cancel()
