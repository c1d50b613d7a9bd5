"""The web app, a leaf of the daemon: ``create_app(ctx, bus, token)``, no globals, handlers call the commands.

Every HTML page has a JSON twin; ``/api/commands/{name}`` exposes the whole command surface (the
same registry as the control socket), with the token required for every mutating command.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from foss_supervisor.commands import COMMANDS, CommandContext, dispatch
from foss_supervisor.errors import CommandError, ProtocolError, SupervisorError
from foss_supervisor.events import EventBus
from foss_supervisor.web import auth, metrics, pages, sse
from foss_supervisor.web.keys import BUS, CTX, REGISTRY, STREAMS, TOKEN

__all__ = ["create_app", "health_report"]


def health_report(ctx: CommandContext) -> tuple[bool, dict[str, Any]]:
    """Healthy when the daemon is ready and no program has a problem (FATAL, BACKOFF, unhealthy, stuck...)."""
    problems = []
    if ctx.phase != "ready":
        problems.append(f"daemon is {ctx.phase}")
    counts: dict[str, int] = {}
    for proc in ctx.supervisor.processes.values():
        counts[str(proc.state)] = counts.get(str(proc.state), 0) + 1
    problems.extend([*ctx.problems, *ctx.supervisor.problems()])
    ok = not problems
    return ok, {"status": "healthy" if ok else "unhealthy", "phase": ctx.phase, "problems": problems,
                "programs": counts}  # fmt: skip


def wants_html(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


async def health(request: web.Request) -> web.StreamResponse:
    ok, body = health_report(request.app[CTX])
    if wants_html(request) and request.query.get("format") != "json":
        return await pages.render(request, "health.html", {"health": body, "ok": ok}, status=200 if ok else 503)
    return web.json_response(body, status=200 if ok else 503)


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await dispatch(request.app[CTX], "status", {}))


async def api_command(request: web.Request) -> web.Response:
    """POST a JSON object of arguments to run one command; errors come back as JSON with a 4xx status."""
    name = request.match_info["name"]
    command = COMMANDS.get(name)
    if command is None:
        return _error(404, ProtocolError(f"unknown command {name!r}"))
    if command.mutating and not auth.is_authorized(request, request.app[TOKEN]):
        return _error(403, CommandError("this command changes state: send the API token (see state_dir/api-token)"))
    try:
        args = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as exc:
        return _error(400, ProtocolError(f"body is not valid JSON: {exc}"))
    if not isinstance(args, dict):
        return _error(400, ProtocolError("body must be a JSON object of arguments"))
    try:
        return web.json_response({"ok": True, "result": await dispatch(request.app[CTX], name, args)})
    except ProtocolError as exc:
        return _error(400, exc)
    except SupervisorError as exc:
        return _error(409, exc)


def _error(status: int, exc: Exception) -> web.Response:
    return web.json_response({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}, status=status)


async def events(request: web.Request) -> web.StreamResponse:
    return await sse.stream_events(request, request.app[BUS], request.app[STREAMS])


async def prometheus(request: web.Request) -> web.Response:
    body = metrics.render(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def login(request: web.Request) -> web.Response:
    """Exchange the token in the URL for an HttpOnly cookie, then go to the page asked for."""
    token = request.query.get("token", "")
    target = request.query.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if not auth.token_matches(token, request.app[TOKEN]):
        raise web.HTTPForbidden(text="wrong token")
    response = web.HTTPSeeOther(target)
    response.set_cookie(auth.COOKIE, token, httponly=True, samesite="Strict", path="/")
    raise response


async def _close_streams(app: web.Application) -> None:
    streams: set[asyncio.Task[object]] = app[STREAMS]
    for task in tuple(streams):
        task.cancel()


def create_app(ctx: CommandContext, bus: EventBus, token: str) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[CTX] = ctx
    app[BUS] = bus
    app[TOKEN] = token
    app[STREAMS] = set()
    app[REGISTRY] = metrics.build_registry(ctx)
    app.on_shutdown.append(_close_streams)
    pages.setup(app)
    app.router.add_get("/health", health)
    app.router.add_get("/api/status", api_status)
    app.router.add_post("/api/commands/{name}", api_command)
    app.router.add_get("/api/events", events)
    app.router.add_get("/metrics", prometheus)
    app.router.add_get("/login", login)
    return app
