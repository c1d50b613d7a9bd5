"""``/chat``: the API reference (from the OpenAPI description) and a console; ``/api/v1/openapi.json``."""

from __future__ import annotations

from aiohttp import web

from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond

__all__ = ["api_reference", "openapi_json"]


async def api_reference(request: web.Request) -> web.StreamResponse:
    from foss_supervisor.web.openapi import build_openapi  # built when first asked for, not at start

    commands = await request.app[CORE].call("help", {})
    spec = build_openapi(request.app)
    endpoints = [
        {
            "path": path,
            "method": method.upper(),
            "summary": op.get("summary", ""),
            "description": op.get("description", ""),
            "auth": bool(op.get("security")),
            "id": op["operationId"],
        }
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
    ]
    data = {"commands": commands, "endpoints": endpoints, "events": spec["components"]["x-sse-events"]}
    if request.query.get("format") == "json":
        return web.json_response(commands)  # the command reference, as before; the full description is below
    return await respond(request, "chat.html", data)


async def openapi_json(request: web.Request) -> web.Response:
    from foss_supervisor.web.openapi import build_openapi

    return web.json_response(build_openapi(request.app))
