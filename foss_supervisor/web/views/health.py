"""``/health``: 200 healthy, 503 not; JSON for probes, HTML for people (command ``health``).

Without a token (and unless ``dashboard.public`` names ``health``) the answer is the summary of
:func:`foss_supervisor.web.access.health_summary`: the status code and counts, nothing naming a program.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from foss_supervisor.web import access
from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond, wants_json

__all__ = ["health", "health_json"]


async def _report(request: web.Request) -> dict[str, Any]:
    body: dict[str, Any] = await request.app[CORE].read("health")
    # without a token a probe learns the verdict and counts, not program names or reasons
    return body if access.full_health(request) else access.health_summary(body)


async def health_json(request: web.Request) -> web.StreamResponse:
    """``/api/v1/health``: the report as JSON whatever the client accepts (for probes and load balancers)."""
    body = await _report(request)
    return web.json_response(body, status=200 if body["ok"] else 503)


async def health(request: web.Request) -> web.StreamResponse:
    as_json = wants_json(request, default_json=True)  # a bad ?format= is a 400 before anything is read
    body = await _report(request)
    code = 200 if body["ok"] else 503
    if as_json or "problems" not in body:
        return web.json_response(body, status=code)  # the twin is the health report itself
    return await respond(request, "health.html", {"health": body}, status=code)
