"""``/health``: 200 healthy, 503 not; JSON for probes, HTML for people (command ``health``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from foss_supervisor.web import auth
from foss_supervisor.web.keys import CORE, EXPOSED, TOKEN
from foss_supervisor.web.responder import respond, wants_json

__all__ = ["health", "health_json"]


async def _report(request: web.Request) -> dict[str, Any]:
    body: dict[str, Any] = await request.app[CORE].read("health")
    if request.app[EXPOSED] and not auth.is_authorized_reader(request, request.app[TOKEN]):
        # beyond loopback an anonymous probe learns the verdict, not program names or reasons
        body = {"ok": body["ok"], "status": body["status"], "phase": body["phase"]}
    return body


async def health_json(request: web.Request) -> web.StreamResponse:
    """``/api/v1/health``: the report as JSON whatever the client accepts (for probes and load balancers)."""
    body = await _report(request)
    return web.json_response(body, status=200 if body["ok"] else 503)


async def health(request: web.Request) -> web.StreamResponse:
    body = await _report(request)
    code = 200 if body["ok"] else 503
    if "problems" not in body or wants_json(request, default_json=True):
        return web.json_response(body, status=code)  # the twin is the health report itself
    return await respond(request, "health.html", {"health": body}, status=code)
