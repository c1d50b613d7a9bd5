"""Bounded resources per client: slow and idle connections are closed, and connections are capped.

aiohttp keeps an idle keep-alive connection for 3,630 s by default and has no deadline for a client
that trickles its request headers, so enough slow or idle clients exhaust the daemon's descriptors
(then ``/health`` and the CLI fail). :class:`ConnectionGuard` fixes that by kind:

- a connection with no request in progress (idle keep-alive, or still sending its headers) is closed
  after ``idle_timeout_s``;
- at ``max_connections``, a new connection first evicts the connection idle the longest, so a flood
  of idle clients cannot lock out a health probe;
- a request body must arrive within ``body_timeout_s`` (see :func:`read_body`).

Requests in progress (an SSE stream, a long query) are never cut; their number is bounded elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["ConnectionGuard", "GuardedSockSite", "Limits", "PerClient", "read_body"]

log = structlog.get_logger("foss_supervisor.web")


class PerClient:
    """At most ``limit`` warehouse requests (queries, table pages, exports) at once per client address.

    One client's long queries can then never take every query slot of the daemon (four concurrent
    long queries once held ``SELECT 42`` of another client back 4.5 s); past its limit a client gets
    429 at once. Bounded memory: an address is forgotten when its last request ends.
    """

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit
        self._busy: dict[str, int] = {}

    @contextlib.contextmanager
    def slot(self, request: web.Request) -> Iterator[None]:
        who = request.remote or "unknown"
        if self._busy.get(who, 0) >= self.limit:
            raise web.HTTPTooManyRequests(
                text=f"at most {self.limit} queries or exports at once per client; wait for one to finish\n"
            )
        self._busy[who] = self._busy.get(who, 0) + 1
        try:
            yield
        finally:
            self._busy[who] -= 1
            if not self._busy[who]:
                del self._busy[who]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-client bounds of the dashboard server (seconds and counts)."""

    idle_timeout_s: float = 15.0
    body_timeout_s: float = 15.0
    max_connections: int = 512
    sweep_every_s: float = 1.0


class ConnectionGuard:
    """Tracks connections of one aiohttp server: when each was last busy, and which have a request running."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.server: web.Server | None = None  # set by GuardedSockSite once the runner made it
        self.limits = limits
        self._clock = clock
        self._idle_since: dict[RequestHandler, float] = {}
        self._busy: dict[RequestHandler, int] = {}
        self.closed_idle = 0
        self.evicted = 0

    def protocol_factory(self) -> RequestHandler:
        """What the listening socket calls per accepted connection: make room if at the cap, then track."""
        assert self.server is not None, "serve through GuardedSockSite"
        self._make_room(1)
        handler = self.server()
        self._idle_since[handler] = self._clock()
        return handler

    def _open(self) -> tuple[int, list[RequestHandler]]:
        """(connections open or being accepted, the idle ones among them oldest first)."""
        now, count, idle = self._clock(), 0, []
        for h, since in self._idle_since.items():
            if h.transport is None:
                count += now - since < 1.0  # accepted, connection_made still to come
            elif not h.transport.is_closing():
                count += 1
                if not self._busy.get(h):
                    idle.append(h)
        idle.sort(key=self._idle_since.__getitem__)
        return count, idle

    def _make_room(self, incoming: int) -> None:
        if len(self._idle_since) + incoming <= self.limits.max_connections:
            return  # an upper bound of what is open: no need to look closer
        count, idle = self._open()
        for handler in idle[: max(0, count + incoming - self.limits.max_connections)]:
            self._close(handler)
            self.evicted += 1

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Awaitable[Any]]) -> Any:
        """Marks the connection busy while its request runs."""
        proto = request.protocol
        self._busy[proto] = self._busy.get(proto, 0) + 1
        try:
            return await handler(request)
        finally:
            left = self._busy.get(proto, 1) - 1
            if left:
                self._busy[proto] = left
            else:
                self._busy.pop(proto, None)
                if proto in self._idle_since:
                    self._idle_since[proto] = self._clock()

    def sweep(self) -> None:
        """Close connections idle past the timeout, and the longest idle beyond the cap; forget closed ones."""
        deadline = self._clock() - self.limits.idle_timeout_s
        for handler, since in tuple(self._idle_since.items()):
            if handler.transport is None or handler.transport.is_closing():
                if since < self._clock() - 1.0:  # gone (or never made): forget it
                    self._idle_since.pop(handler, None)
                    self._busy.pop(handler, None)
                continue
            if not self._busy.get(handler) and since < deadline:
                self._close(handler)
                self.closed_idle += 1
        self._make_room(0)

    def _close(self, handler: RequestHandler) -> None:
        self._idle_since.pop(handler, None)
        self._busy.pop(handler, None)
        if handler.transport is not None:
            handler.transport.close()

    @property
    def connections(self) -> int:
        """Connections currently open."""
        return self._open()[0]

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            await asyncio.sleep(self.limits.sweep_every_s)
            self.sweep()


class GuardedSockSite(web.SockSite):
    """``web.SockSite`` whose accepted connections go through a :class:`ConnectionGuard`."""

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard) -> None:
        super().__init__(runner, sock)
        guard.server = runner.server
        self._guard = guard
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await web.BaseSite.start(self)  # SockSite.start, with our protocol factory instead of the server's
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._guard.protocol_factory, sock=self._sock)
        self._sweeper = asyncio.create_task(self._guard.run(), name="web-connection-sweeper")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        await super().stop()


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The request body, or 408 when the client does not send it within ``timeout_s``."""
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        log.warning("http_body_timeout", peer=request.remote, path=request.path)
        raise web.HTTPRequestTimeout(text="the request body did not arrive in time\n") from None
