"""The dashboard's server: the web app on its own thread and event loop, started and stopped from the core.

Why a thread: on the core's loop, a hundred clients asking for pages queue their handlers ahead of a
crashed program's SIGCHLD, and restarts took 300-800 ms under load instead of ~13 ms. On its own loop the
web layer still shares the interpreter (the GIL), but aiohttp lets go of it at every socket call, so the
core's loop runs within a few milliseconds of having work. The web reaches the core only through
:class:`~foss_supervisor.web.core.Core` (commands and events across threads).

``await WebServer(ctx, bus, token, sock).start()`` on the core's loop; ``await server.close()`` there too.
A failure of the web loop after start is reported through ``on_failure`` (called on the core's loop).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import resource
import socket
import threading
import time
from collections.abc import Callable

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from foss_supervisor.commands import CommandContext
from foss_supervisor.daemon import LoopErrorLog
from foss_supervisor.events import EventBus
from foss_supervisor.web.app import create_app
from foss_supervisor.web.core import Core
from foss_supervisor.web.keys import GUARD
from foss_supervisor.web.limits import GuardedSockSite, Limits

__all__ = ["ClientErrorFilter", "WebServer", "default_limits"]

log = structlog.get_logger("foss_supervisor.web")

MAX_REQUEST_LINE = 64 * 1024  # bytes of a request line, its query string included
JOIN_TIMEOUT_S = 15.0  # aiohttp's own shutdown_timeout (5 s) plus the app's cleanup, with room


class ClientErrorFilter(logging.Filter):
    """Keeps malformed requests (a 10 KB query string, a bad header) out of the daemon's log as errors.

    aiohttp logs each at ERROR ("Error handling request") though the client got its 400: any client
    could fill the log, and a log filter on "error" would show nothing but them. Such records are
    counted instead, and every ``every_s`` one info line says how many there were. Errors of our own
    (a handler that raised: 500) are logged as before.
    """

    def __init__(self, every_s: float = 60.0) -> None:
        super().__init__()
        self.every_s = every_s
        self.refused = 0
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError) or (exc.code or 400) >= 500:
            return True
        self.refused += 1
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            log.info("http_requests_refused", malformed=self.refused, last=f"{type(exc).__name__}: {exc.message}")
        return False


def default_limits() -> Limits:
    """The connection cap is 512 or a quarter of the open-files limit, whichever is lower: the programs'
    pipes and the control socket need descriptors too."""
    return Limits(max_connections=max(16, min(512, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)))


class WebServer:
    """Serves the dashboard on ``sock`` (already bound and listening) from a thread of its own."""

    def __init__(
        self,
        ctx: CommandContext,
        bus: EventBus,
        token: str,
        sock: socket.socket,
        limits: Limits | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._ctx, self._bus, self._token, self._sock = ctx, bus, token, sock
        self._dashboard_host = ctx.config.dashboard_host  # read here, on the core's thread
        self._limits = limits or default_limits()
        self._on_failure = on_failure
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._core: Core | None = None

    async def start(self) -> None:
        """Start the thread and wait until the site listens; raises what setting up the app raised."""
        server_log = logging.getLogger("aiohttp.server")
        if not any(isinstance(f, ClientErrorFilter) for f in server_log.filters):
            server_log.addFilter(ClientErrorFilter())
        core_loop = asyncio.get_running_loop()
        self._core = Core(self._ctx, self._bus, core_loop)
        self._thread = threading.Thread(target=self._main, args=(core_loop,), name="dashboard", daemon=True)
        self._thread.start()
        await asyncio.wrap_future(self._ready)

    async def close(self) -> None:
        """Stop serving (open streams end, requests in progress get aiohttp's shutdown grace) and join."""
        loop, stop, thread = self._loop, self._stop, self._thread
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the web loop already ended (it failed)
                loop.call_soon_threadsafe(stop.set)
        if thread is not None:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.error("dashboard_stop_timeout", timeout_s=JOIN_TIMEOUT_S)

    def _main(self, core_loop: asyncio.AbstractEventLoop) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        loop.set_exception_handler(LoopErrorLog())  # the same rate-limited report as the core's loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the core, never lost with the thread
            if not self._ready.done():
                self._ready.set_exception(exc)
            elif self._on_failure is not None:
                with contextlib.suppress(RuntimeError):  # the core's loop is gone too: nobody to tell
                    core_loop.call_soon_threadsafe(self._on_failure, exc)
        finally:
            assert self._core is not None
            self._core.close()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _serve(self) -> None:
        assert self._core is not None
        self._stop = asyncio.Event()
        name = self._sock.getsockname()
        inet = self._sock.family in (socket.AF_INET, socket.AF_INET6)
        bound = (str(name[0]), int(name[1])) if inet else ("127.0.0.1", 0)
        app = create_app(self._core, self._token, dashboard_host=self._dashboard_host, bound=bound,
                         limits=self._limits)  # fmt: skip
        runner = web.AppRunner(
            app,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=5.0,
            keepalive_timeout=self._limits.idle_timeout_s,
            max_line_size=MAX_REQUEST_LINE,  # an export link carries its SQL (8 KiB by default)
        )
        await runner.setup()
        try:
            await GuardedSockSite(runner, self._sock, app[GUARD]).start()
            self._ready.set_result(None)
            await self._stop.wait()
        finally:
            await runner.cleanup()
