"""The machine endpoints: ``/api/status``, ``/api/commands/{name}``, ``/api/events``, ``/metrics``, the icon."""

from __future__ import annotations

import json

from aiohttp import web

from foss_supervisor.base.resources import data_dir
from foss_supervisor.commands import COMMANDS
from foss_supervisor.errors import CommandError, NoAnswer, NotRunning, ProtocolError, SupervisorError
from foss_supervisor.web import access, auth
from foss_supervisor.web.keys import CORE, EVENTS, QUERIES, TOKEN
from foss_supervisor.web.limits import read_body

__all__ = ["api_command", "api_status", "events", "favicon", "prometheus"]

WAREHOUSE_COMMANDS = frozenset({"query", "export"})  # they take the worker's query threads


async def api_status(request: web.Request) -> web.Response:
    return web.json_response(await request.app[CORE].call("status", {}))


async def api_command(request: web.Request) -> web.Response:
    """POST a JSON object of arguments to run one command; errors come back as JSON with a 4xx status."""
    name = request.match_info["name"]
    command = COMMANDS.get(name)
    if command is None:
        return _error(404, ProtocolError(f"unknown command {name!r}"))
    if command.mutating and not auth.is_authorized(request, request.app[TOKEN]):
        if access.role(request) is auth.Role.VIEWER:
            return _error(
                403,
                CommandError(
                    "this command changes state: the viewer token only reads; "
                    "send the owner's API token (STATE_DIR/api-token)"
                ),
            )
        if auth.is_logged_in(request, request.app[TOKEN]):  # the cookie alone: a cross-site request looks so
            why = f"this command changes state: a logged-in browser must also send the {auth.CSRF_HEADER} header"
            return _error(403, CommandError(why + " of the page it was loaded with (reload the page)"))
        return _error(
            403,
            CommandError(
                "this command changes state: log in, or send the API token "
                "(Authorization: Bearer $(cat STATE_DIR/api-token))"
            ),
        )
    body = await read_body(request, 15.0)
    try:
        args = json.loads(body) if body.strip() else {}
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return _error(400, ProtocolError(f"body is not valid JSON: {exc}"))
    if not isinstance(args, dict):
        return _error(400, ProtocolError("body must be a JSON object of arguments"))
    try:
        if name in WAREHOUSE_COMMANDS:  # bounded per client: one client's long queries cannot starve the rest
            with request.app[QUERIES].slot(request):
                result = await request.app[CORE].call(name, args)
        else:
            result = await request.app[CORE].call(name, args)
        return web.json_response({"ok": True, "result": result})
    except ProtocolError as exc:
        return _error(400, exc)
    except (NoAnswer, NotRunning):
        raise  # the daemon busy or gone: a 503 (web.app), not a refusal of the command
    except SupervisorError as exc:
        return _error(409, exc)


def _error(status: int, exc: Exception) -> web.Response:
    return web.json_response({"ok": False, "error": {"type": type(exc).__name__, "message": str(exc)}}, status=status)


async def events(request: web.Request) -> web.StreamResponse:
    return await request.app[EVENTS].stream(request)


async def prometheus(request: web.Request) -> web.Response:
    from foss_supervisor.web import metrics  # prometheus_client: imported on the first scrape, not at start

    body = await metrics.render(request.app[CORE])
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        data_dir("ui_templates") / "static" / "favicon.svg", headers={"Content-Type": "image/svg+xml"}
    )
