"""``/health``: 200 healthy, 503 not; JSON for probes, HTML for people (command ``health``)."""

from __future__ import annotations

from aiohttp import web

from foss_supervisor.commands import dispatch
from foss_supervisor.web import auth
from foss_supervisor.web.keys import CTX, EXPOSED, TOKEN
from foss_supervisor.web.responder import respond, wants_json

__all__ = ["health"]


async def health(request: web.Request) -> web.StreamResponse:
    body = await dispatch(request.app[CTX], "health", {})
    if request.app[EXPOSED] and not auth.is_authorized_reader(request, request.app[TOKEN]):
        # beyond loopback an anonymous probe learns the verdict, not program names or reasons
        body = {"ok": body["ok"], "status": body["status"], "phase": body["phase"]}
    code = 200 if body["ok"] else 503
    if "problems" not in body or wants_json(request, default_json=True):
        return web.json_response(body, status=code)  # the twin is the health report itself
    return await respond(request, "health.html", {"health": body}, status=code)
