"""``/alerts`` (a page and its JSON twin): the objectives' states, open and recent alert incidents, silences
(commands ``objectives`` and ``alerts``; acknowledging and silencing are the commands ``alert_ack`` and
``alert_silence``, from the CLI or ``POST /api/commands/...``)."""

from __future__ import annotations

from aiohttp import web

from foss_supervisor.errors import CommandError
from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond

__all__ = ["alerts_page"]


async def alerts_page(request: web.Request) -> web.StreamResponse:
    """``/alerts``: each objective with its state, the open incidents (acknowledged, silenced), the silences and
    the last resolved incidents. The JSON twin: ``{"objectives": [the objectives command's], "alerts": the
    alerts command's reply}``; 404 when the daemon does not watch objectives."""
    core = request.app[CORE]
    try:
        objectives = await core.call("objectives", {})
        alerts = await core.call("alerts", {})
    except CommandError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    return await respond(request, "alerts.html", {"objectives": objectives, "alerts": alerts})
