"""``/config``: the effective config (secrets redacted) and, logged in, an editor that checks before saving."""

from __future__ import annotations

import json

from aiohttp import web

from foss_supervisor.commands import dispatch
from foss_supervisor.web.keys import CTX
from foss_supervisor.web.responder import respond

__all__ = ["config_page"]


async def config_page(request: web.Request) -> web.StreamResponse:
    """The running config; the file itself is fetched by the page with the token (it may hold secrets)."""
    shown = await dispatch(request.app[CTX], "config_show", {})
    return await respond(request, "config.html", {**shown, "pretty": json.dumps(shown["config"], indent=2)})
