"""Bounded resources per client: slow and idle connections are closed, and connections are admitted up to a cap.

aiohttp keeps an idle keep-alive connection for 3,630 s by default and has no deadline for a client
that trickles its request headers, so enough slow or idle clients exhaust the server's descriptors.
:class:`ConnectionGuard` fixes that by kind:

- a connection with no request in progress (idle keep-alive, or still sending its headers) is closed
  after ``idle_timeout_s``;
- admission, not eviction: at ``max_connections`` a new connection is answered at once with
  ``503 Service Unavailable`` and ``Retry-After`` (:class:`BusyProtocol`) once its request head arrived,
  and closed; a connection already admitted is never dropped to make room (dropping idle keep-alive
  connections at the cap cut requests that were already on their way). Health probes
  (``GET /health``, ``GET /api/v1/health``) beyond the cap are still served, on up to
  ``health_reserve`` connections more (PostgreSQL's reserved connections): a flood never makes a
  monitor see the host as down;
- a request body must arrive within ``body_timeout_s`` (see :func:`read_body`);
- a descriptor budget (``max_descriptors``): :class:`GuardedSockSite` accepts with a loop of its own; while
  the connections it holds (admitted, and refused ones still being answered) would leave fewer than
  ``FILE_RESERVE`` descriptors for files, a new connection is answered 503 at once and closed (a health
  probe whose request already arrived is served from the reserve), so the process never runs out of
  descriptors for files (404 for a static file, 500 for ``/proc``) and the backlog drains at full speed.

Requests in progress (an SSE stream, a long query) are never cut; their number is bounded elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

__all__ = ["BusyProtocol", "ConnectionGuard", "GuardedSockSite", "Limits", "PerClient", "read_body"]

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
    retry_after_s: int = 1  # what a refused connection is told to wait
    health_reserve: int = 32  # connections beyond the cap kept for health probes
    max_descriptors: int = 0  # connections held at most (admitted + being refused); 0: no budget


FILE_RESERVE = 64  # descriptors the budget leaves for files, logs and the daemon's control connections
ACCEPT_PAUSE_S = 0.05  # how long the accept loop waits after the system refused it a descriptor


HEALTH_PATHS = (b"/health", b"/api/v1/health")


BUSY_HEAD_LIMIT = 16 * 1024  # bytes of a refused connection's request head read before the 503
BUSY_HEAD_TIMEOUT_S = 2.0  # a refused connection that sends no complete head gets the 503 after this
SHED_HEAD_TIMEOUT_S = 0.2  # past the descriptor budget, the (shorter) wait for a health probe's head
SHED_WAITING = 16  # past the descriptor budget, connections waiting that long at most at once
BUSY_LINGER_S = 2.0  # after the 503: how long what the client still sends is read and dropped


def busy_reply(retry_after_s: int) -> bytes:
    """The 503 of a connection past the cap (its text names the limit, so a client can tell it apart)."""
    body = b"the dashboard is at its connection limit; retry shortly\n"
    return (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
        + f"Retry-After: {retry_after_s}\r\nContent-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
        + body
    )


def head_arrived(conn: socket.socket) -> bool:
    """Whether a request head's first bytes are already waiting on ``conn`` (non-blocking)."""
    try:
        return bool(conn.recv(1, socket.MSG_PEEK))
    except OSError:
        return False


def is_health_probe(head: bytes) -> bool:
    """Whether a request head is a GET or HEAD of a health path (served past the cap, from the reserve)."""
    method, _, rest = head.partition(b" ")
    return method in (b"GET", b"HEAD") and rest.split(b" ", 1)[0].split(b"?", 1)[0] in HEALTH_PATHS


class BusyProtocol(asyncio.Protocol):
    """A connection over the cap: read its request head (bounded), answer 503 with Retry-After, close.

    Closing a socket with unread bytes makes the kernel send RST, and a client that gets the reset before it
    reads the answer sees a connection error instead of the 503. So the head is read before the answer, and
    after a complete head the connection lingers (Apache's lingering close): the 503 goes out with a FIN,
    and whatever the client still sends (a request body, in the chaos suite 4 MB POSTs) is read and dropped
    until it closes its side, for ``BUSY_LINGER_S`` at most. A client that sent no complete head within
    ``BUSY_HEAD_TIMEOUT_S`` (silent, or trickling its headers) is closed right after its 503.
    """

    def __init__(
        self,
        retry_after_s: int,
        admit: Callable[[], RequestHandler | None] = lambda: None,
        gone: Callable[[], None] = lambda: None,
        head_timeout_s: float = BUSY_HEAD_TIMEOUT_S,
    ) -> None:
        """``admit()`` returns a handler to serve a health probe with (None: no room in the reserve);
        ``gone()`` is called once the connection is closed (the guard counts those being refused);
        ``head_timeout_s``: how long a request head may take to arrive before the 503 goes out anyway."""
        self._retry_after_s = retry_after_s
        self._admit = admit
        self._gone = gone
        self._head_timeout_s = head_timeout_s
        self._transport: asyncio.Transport | None = None
        self._head = b""
        self._timer: asyncio.TimerHandle | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._timer = asyncio.get_running_loop().call_later(self._head_timeout_s, self._answer)

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # a body (or more requests) after the 503: dropped, so that the close is not a reset
        self._head = (self._head + data)[:BUSY_HEAD_LIMIT]
        complete = b"\r\n\r\n" in self._head or len(self._head) >= BUSY_HEAD_LIMIT
        if complete and not self._hand_over():
            self._answer()

    def _hand_over(self) -> bool:
        """A health probe: serve it on a reserved connection (the handler takes over the transport)."""
        transport = self._transport
        if not is_health_probe(self._head) or transport is None:
            return False
        handler = self._admit()
        if handler is None:
            return False
        if self._timer is not None:
            self._timer.cancel()
        self._transport = None
        self._gone()  # no longer a refused connection: the handler is counted as admitted
        transport.set_protocol(handler)
        handler.connection_made(transport)
        handler.data_received(self._head)
        return True

    def eof_received(self) -> bool:
        self._answer()
        return False  # the transport closes once the 503 is written

    def _answer(self) -> None:
        transport = self._transport
        if self._answered or transport is None or transport.is_closing():
            return
        self._answered = True
        if self._timer is not None:
            self._timer.cancel()
        transport.write(busy_reply(self._retry_after_s))
        if b"\r\n\r\n" in self._head and transport.can_write_eof():  # a client whose body may follow
            transport.write_eof()  # the 503 and a FIN; the client closes its side once it has read it
            self._timer = asyncio.get_running_loop().call_later(BUSY_LINGER_S, transport.close)
        else:  # silent or trickling: nothing more is worth waiting for
            transport.close()  # after the buffered reply is written

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:  # still ours (not handed over to a handler)
            self._gone()
        self._transport = None
        if self._timer is not None:
            self._timer.cancel()


class ConnectionGuard:
    """Tracks connections of one aiohttp server: when each was last busy, and which have a request running."""

    def __init__(self, limits: Limits, clock: Callable[[], float] = time.monotonic) -> None:
        self.server: web.Server | None = None  # set by GuardedSockSite once the runner made it
        self.limits = limits
        self._clock = clock
        self._idle_since: dict[RequestHandler, float] = {}
        self._busy: dict[RequestHandler, int] = {}
        self._accepting: set[RequestHandler] = set()  # made by protocol_factory, connection_made to come
        self.closed_idle = 0
        self.refused = 0  # connections answered 503 at the cap
        self.refusing = 0  # refused connections still open (being answered, or lingering)
        self.shed = 0  # connections answered 503 at once at the descriptor budget
        self.shedding = 0  # past the budget, connections given a moment for a health probe's head

    def protocol_factory(self) -> asyncio.Protocol:
        """What the listening socket calls per accepted connection: served and tracked, or 503 at the cap."""
        assert self.server is not None, "serve through GuardedSockSite"
        if len(self._idle_since) >= self.limits.max_connections and self._open() >= self.limits.max_connections:
            self.refused += 1
            self.refusing += 1
            return BusyProtocol(self.limits.retry_after_s, self._admit_refused, self._refused_gone)
        return self._track(self.server())

    def _refused_gone(self) -> None:
        self.refusing -= 1

    def shed_gone(self) -> None:
        self.shedding -= 1

    def has_room(self) -> bool:
        """Whether one more connection fits the descriptor budget (always, without one)."""
        budget = self.limits.max_descriptors
        held = self.refusing + self.shedding
        if not budget or len(self._idle_since) + held < budget:
            return True  # an upper bound of what is held: no need to look closer
        # a closing transport still holds its descriptor until its connection is lost
        return sum(1 for h in self._idle_since if h in self._accepting or h.transport is not None) + held < budget

    def _track(self, handler: RequestHandler) -> RequestHandler:
        self._idle_since[handler] = self._clock()
        # Being accepted until its connection_made: the transport queues that call right after this one (both
        # from the same accept step), so a burst of accepts counts every connection not yet made.
        self._accepting.add(handler)
        asyncio.get_running_loop().call_soon(self._accepting.discard, handler)
        return handler

    def admit_reserved(self) -> RequestHandler | None:
        """A handler for a health probe beyond the cap, while the reserve has room."""
        assert self.server is not None
        if self._open() >= self.limits.max_connections + self.limits.health_reserve:
            return None
        return self._track(self.server())

    def _admit_refused(self) -> RequestHandler | None:
        """:meth:`admit_reserved` for a connection first refused (a health probe after all)."""
        handler = self.admit_reserved()
        if handler is not None:
            self.refused -= 1
        return handler

    def _open(self) -> int:
        """Connections open or being accepted; forgets those already gone.

        A handler without a transport is either being accepted or already closed (aiohttp drops the
        transport in ``connection_lost``): only the first kind counts. Counting every handler without a
        transport for a second, as before, counted closed ``Connection: close`` clients as open and refused
        new ones far below the cap.
        """
        count = 0
        for handler in tuple(self._idle_since):
            transport = handler.transport
            if handler in self._accepting or (transport is not None and not transport.is_closing()):
                count += 1
            elif transport is None:
                self._forget(handler)
        return count

    def _forget(self, handler: RequestHandler) -> None:
        self._idle_since.pop(handler, None)
        self._busy.pop(handler, None)

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
        """Close connections idle past the timeout; forget closed ones."""
        deadline = self._clock() - self.limits.idle_timeout_s
        for handler, since in tuple(self._idle_since.items()):
            if handler in self._accepting:
                continue
            if handler.transport is None or handler.transport.is_closing():
                if handler.transport is None:  # gone
                    self._forget(handler)
                continue
            if not self._busy.get(handler) and since < deadline:
                self._forget(handler)
                handler.transport.close()
                self.closed_idle += 1

    @property
    def connections(self) -> int:
        """Connections currently open."""
        return self._open()

    async def run(self) -> None:
        """Sweep until cancelled."""
        while True:
            await asyncio.sleep(self.limits.sweep_every_s)
            self.sweep()


class GuardedSockSite(web.SockSite):
    """``web.SockSite`` whose connections are accepted by a loop of its own and go through a :class:`ConnectionGuard`.

    At the guard's descriptor budget the loop answers new connections itself (:meth:`_shed`): 503 at once,
    or a health probe served from the reserve; it never holds a descriptor it cannot afford.
    """

    def __init__(self, runner: web.BaseRunner, sock: socket.socket, guard: ConnectionGuard) -> None:
        super().__init__(runner, sock)
        guard.server = runner.server
        self._guard = guard
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await web.BaseSite.start(self)  # SockSite.start, with our own accept loop instead of a loop.create_server
        self._tasks = [
            asyncio.create_task(self._accept(), name="web-accept"),
            asyncio.create_task(self._guard.run(), name="web-connection-sweeper"),
        ]

    async def _accept(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.warning("http_accept_out_of_resources", error=str(exc))
                    await asyncio.sleep(ACCEPT_PAUSE_S)
                    continue
                if exc.errno == errno.EINVAL:  # the daemon shut the port down: it is stopping
                    return
                raise
            factory: Callable[[], asyncio.Protocol] | None = self._guard.protocol_factory
            if not self._guard.has_room():
                factory = self._shed(conn)
            if factory is None:
                continue
            try:
                await loop.connect_accepted_socket(factory, conn)
            except OSError:  # the client left before its transport was made
                conn.close()

    def _shed(self, conn: socket.socket) -> Callable[[], asyncio.Protocol] | None:
        """At the descriptor budget: a health probe is served from the reserve (its head already arrived, or
        arrives within ``SHED_HEAD_TIMEOUT_S``, for up to ``SHED_WAITING`` connections at once); any other
        connection gets the 503 at once and is closed, holding its descriptor for no time."""
        guard = self._guard
        with contextlib.suppress(OSError):
            head = conn.recv(BUSY_HEAD_LIMIT, socket.MSG_PEEK)  # what the client sent already, left unread
            if is_health_probe(head) and (handler := guard.admit_reserved()) is not None:
                return lambda: handler
        if guard.shedding < SHED_WAITING and not head_arrived(conn):
            guard.shedding += 1
            retry_after = guard.limits.retry_after_s
            return lambda: BusyProtocol(retry_after, guard.admit_reserved, guard.shed_gone, SHED_HEAD_TIMEOUT_S)
        guard.shed += 1
        with contextlib.suppress(OSError):
            conn.send(busy_reply(guard.limits.retry_after_s))
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):  # unread bytes would make the close a reset that could beat the 503
                pass
        conn.close()
        return None

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await super().stop()


async def read_body(request: web.Request, timeout_s: float) -> bytes:
    """The request body, at most ``request.client_max_size`` bytes (the app's ``client_max_size``).

    Raises 413 when the body is larger: at once, reading nothing of it, when its Content-Length says so;
    when a chunked body outgrows the limit, with a fresh exception, so that nothing keeps the bytes read
    (aiohttp holds a refused request's handler for its lingering close, 10 s even after the client left,
    and with it what the traceback of its own 413 holds: each 4 MB upload kept 1.3 MB of the dashboard
    for that long, 370 MB under the chaos suite). Raises 408 when the body does not arrive within
    ``timeout_s``. The body read stays available to ``request.post()`` and ``request.json()``.
    """
    limit = request.client_max_size
    if limit and request.content_length is not None and request.content_length > limit:
        raise _too_large(limit, f"its Content-Length is {request.content_length}")
    timed_out = False
    try:
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        timed_out = True
    except web.HTTPRequestEntityTooLarge:
        pass
    # raised out here: raised in the except blocks, our exception would keep aiohttp's as its context, and
    # with it the frame that holds the bytes read
    if timed_out:
        log.warning("http_body_timeout", peer=request.remote, path=request.path)
        raise web.HTTPRequestTimeout(text="the request body did not arrive in time\n")
    raise _too_large(limit, "it is larger")


def _too_large(limit: int, why: str) -> web.HTTPRequestEntityTooLarge:
    return web.HTTPRequestEntityTooLarge(
        max_size=limit, actual_size=-1, text=f"a request body may have at most {limit} bytes; {why}\n"
    )
