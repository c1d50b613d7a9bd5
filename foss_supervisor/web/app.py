"""The web app, a leaf of the daemon: ``create_app(ctx, bus, token, bound_host)`` and :func:`serve`.

No globals; views reach the core only through the commands; every HTML page has a JSON twin; the
routes are one table (:mod:`foss_supervisor.web.routes`); every request passes the guard of
:mod:`foss_supervisor.web.security`, and every connection the bounds of :mod:`foss_supervisor.web.limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from foss_supervisor.commands import CommandContext
from foss_supervisor.events import EventBus
from foss_supervisor.resources import data_dir
from foss_supervisor.web import security
from foss_supervisor.web.history import History
from foss_supervisor.web.keys import CTX, EVENTS, EXPOSED, GUARD, HISTORY, JINJA, QUERIES, TOKEN
from foss_supervisor.web.limits import ConnectionGuard, GuardedSockSite, Limits, PerClient
from foss_supervisor.web.responder import make_jinja
from foss_supervisor.web.routes import ROUTES
from foss_supervisor.web.sse import EventLog

__all__ = ["create_app", "serve"]

log = structlog.get_logger("foss_supervisor.web")


def create_app(
    ctx: CommandContext, bus: EventBus, token: str, bound_host: str = "127.0.0.1", limits: Limits | None = None
) -> web.Application:
    """The application for a server bound to ``bound_host`` (beyond loopback, every read needs ``token``)."""
    guard = ConnectionGuard(limits or Limits())
    app = web.Application(
        client_max_size=1024 * 1024,
        middlewares=[guard.middleware, security.guard(security.allowed_hosts(ctx.config.dashboard_host))],
    )
    app[CTX] = ctx
    app[TOKEN] = token
    app[EXPOSED] = not security.is_loopback(bound_host)
    app[EVENTS] = EventLog(bus)
    app[GUARD] = guard
    app[QUERIES] = PerClient()
    app[JINJA] = make_jinja()
    # programs' figures only while a page is open (an SSE stream): they are the idle daemon's main cost
    app[HISTORY] = History(ctx, watched=lambda: app[EVENTS].open_streams > 0)
    app.cleanup_ctx.append(_sampling)
    app.on_response_prepare.append(security.set_security_headers)
    app.on_shutdown.append(app[EVENTS].close)
    for route in ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
    app.router.add_static("/static", data_dir("ui_templates") / "static")
    if app[EXPOSED]:
        log.warning(
            "dashboard_exposed",
            host=bound_host,
            port=ctx.config.dashboard_port,
            detail="listening beyond loopback: every request but /health and /login needs the API token",
        )
    return app


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    """The chart history samples in the background while the app runs."""
    task = asyncio.create_task(app[HISTORY].run(), name="web-history")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def serve(
    ctx: CommandContext, bus: EventBus, token: str, sock: socket.socket, limits: Limits | None = None
) -> web.AppRunner:
    """Serve the dashboard on ``sock`` (already bound and listening) until the runner is cleaned up.

    Without ``limits``, the connection cap is 512 or a quarter of the open-files limit, whichever is
    lower: the programs' pipes and the control socket need descriptors too.
    """
    limits = limits or Limits(max_connections=max(16, min(512, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 4)))
    host = str(sock.getsockname()[0]) if sock.family in (socket.AF_INET, socket.AF_INET6) else "127.0.0.1"
    app = create_app(ctx, bus, token, host, limits)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=5.0, keepalive_timeout=limits.idle_timeout_s
    )
    await runner.setup()
    try:
        await GuardedSockSite(runner, sock, app[GUARD]).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
