"""The web app, a leaf of the daemon: ``create_app(core, token, bound_host)``; served by
:mod:`foss_supervisor.web.serve` in a process of its own (or in-process by tests).

No globals; views reach the core only through the commands; every HTML page has a JSON twin; the
routes are one table (:mod:`foss_supervisor.web.routes`); every request passes the guard of
:mod:`foss_supervisor.web.security`, and every connection the bounds of :mod:`foss_supervisor.web.limits`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import structlog
from aiohttp import web

from foss_supervisor.base.resources import data_dir
from foss_supervisor.errors import NoAnswer, NotRunning
from foss_supervisor.web import access, security
from foss_supervisor.web.core import Core
from foss_supervisor.web.history import History
from foss_supervisor.web.journalcharts import JournalCharts
from foss_supervisor.web.keys import (
    CHARTS,
    CHARTS_READER,
    CORE,
    EVENTS,
    EXPOSED,
    GUARD,
    HISTORY,
    JINJA,
    PARTS,
    PUBLIC,
    QUERIES,
    ROUTE_TABLE,
    TOKEN,
)
from foss_supervisor.web.limits import ConnectionGuard, Limits, PerClient
from foss_supervisor.web.pagecache import PAGES, PageCache
from foss_supervisor.web.public import PublicParts
from foss_supervisor.web.routes import ROUTES
from foss_supervisor.web.sse import EventLog
from foss_supervisor.web.templates import Templates
from foss_supervisor.web.views.session import login_required

__all__ = ["create_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = structlog.get_logger("foss_supervisor.web")


def create_app(
    core: Core,
    token: str,
    *,
    dashboard_host: str,
    bound: tuple[str, int] = ("127.0.0.1", 0),
    limits: Limits | None = None,
    history_dir: Path | None = None,
) -> web.Application:
    """The application for a server bound to ``bound`` (host, port), answering requests whose Host names
    ``dashboard_host`` (the config's) or loopback; every read needs ``token`` or the viewer token derived
    from it, but for the parts the config's ``dashboard.public`` opens (read through ``core``).
    ``history_dir``: the daemon's journal (``<state_dir>/history``), which the 24 h and 7 d charts read
    (None: those charts are empty).

    Call it on the loop that will serve it: the event stream follows the core's events from there.
    """
    bound_host, port = bound
    guard = ConnectionGuard(limits or Limits())
    events = EventLog(core)
    app = web.Application(
        client_max_size=1024 * 1024,
        middlewares=[
            guard.middleware,
            security.guard(security.allowed_hosts(dashboard_host), login_required),
            events.mark,
            _daemon_unreachable,
        ],
    )
    app[CORE] = core
    app[ROUTE_TABLE] = ROUTES
    app[PARTS] = access.route_parts(ROUTES)
    app[TOKEN] = token
    app[EXPOSED] = not security.is_loopback(bound_host)
    app[EVENTS] = events
    app[GUARD] = guard
    app[QUERIES] = PerClient()
    app[PAGES] = PageCache()
    app[JINJA] = Templates()  # jinja2 is imported when the first page is rendered
    # programs' figures only while a page is open (an SSE stream): they are the idle daemon's main cost
    app[HISTORY] = History(core, watched=lambda: app[EVENTS].open_streams > 0)
    app[CHARTS] = JournalCharts(history_dir)
    app[CHARTS_READER] = asyncio.Lock()
    app[PUBLIC] = PublicParts(core)
    app.cleanup_ctx.append(app[PUBLIC].follow)
    app.cleanup_ctx.append(_sampling)
    app.on_response_prepare.append(security.set_security_headers)
    app.on_shutdown.append(app[EVENTS].close)
    for route in ROUTES:
        if route.method == "GET":  # and HEAD, as HTTP asks of every GET (RFC 9110 9.3.2), behind the same gate
            app.router.add_get(route.path, route.handler, allow_head=True)
        else:
            app.router.add_route(route.method, route.path, route.handler)
    app.router.add_static("/static", data_dir("ui_templates") / "static")
    if app[EXPOSED]:
        log.warning(
            "dashboard_exposed",
            host=bound_host,
            port=port,
            detail="listening beyond loopback: the token goes over the network in clear unless a TLS proxy "
            "stands in front",
        )
    return app


@web.middleware
async def _daemon_unreachable(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A daemon that is busy (at its cap of control connections) or gone is a 503 with ``Retry-After``
    (the JSON error shape ``{"ok": false, "error": {"type", "message"}}``), never a 500 or a refusal."""
    try:
        return await handler(request)
    except (NoAnswer, NotRunning) as exc:  # DaemonBusy is a NoAnswer
        error = {"type": type(exc).__name__, "message": str(exc)}
        return web.json_response({"ok": False, "error": error}, status=503, headers={"Retry-After": "1"})


async def _sampling(app: web.Application) -> AsyncIterator[None]:
    """The chart history samples in the background while the app runs."""
    task = asyncio.create_task(app[HISTORY].run(), name="web-history")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
