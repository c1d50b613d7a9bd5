"""The web app, a leaf of the daemon: ``create_app(ctx, bus)``, no globals, handlers call the commands."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from foss_supervisor.commands import CommandContext, dispatch
from foss_supervisor.events import EventBus
from foss_supervisor.states import Health, ProcessState

__all__ = ["CTX", "create_app", "health_report"]

CTX = web.AppKey("ctx", CommandContext)
BUS = web.AppKey("bus", EventBus)


def health_report(ctx: CommandContext) -> tuple[bool, dict[str, Any]]:
    """Healthy when the daemon is ready and no wanted program is FATAL or unhealthy."""
    problems = []
    if ctx.phase != "ready":
        problems.append(f"daemon is {ctx.phase}")
    for proc in ctx.supervisor.processes.values():
        if proc.state is ProcessState.FATAL:
            problems.append(f"{proc.name} is FATAL: {proc.reason}")
        elif proc.health is Health.UNHEALTHY:
            problems.append(f"{proc.name} is unhealthy: {proc.health_detail}")
    counts: dict[str, int] = {}
    for proc in ctx.supervisor.processes.values():
        counts[str(proc.state)] = counts.get(str(proc.state), 0) + 1
    ok = not problems
    return ok, {"status": "healthy" if ok else "unhealthy", "phase": ctx.phase, "problems": problems,
                "programs": counts}  # fmt: skip


async def health(request: web.Request) -> web.Response:
    ok, body = health_report(request.app[CTX])
    return web.json_response(body, status=200 if ok else 503)


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await dispatch(request.app[CTX], "status", {}))


def create_app(ctx: CommandContext, bus: EventBus) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    app[CTX] = ctx
    app[BUS] = bus
    app.router.add_get("/health", health)
    app.router.add_get("/api/status", api_status)
    return app
