"""``/config``: the effective config (secrets redacted), each pipeline's YAML and SQL, and, logged in, an
editor of the config file that checks before saving."""

from __future__ import annotations

import json

from aiohttp import web

from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond
from foss_supervisor.web.views.overview import configured_pipelines

__all__ = ["config_page"]


async def config_page(request: web.Request) -> web.StreamResponse:
    """The running config; the file itself is fetched by the page with the token (it may hold secrets)."""
    core = request.app[CORE]
    shown = await core.call("config_show", {})
    sources = [await core.call("pipeline_sources", {"name": p["name"]}) for p in await configured_pipelines(core)]
    return await respond(
        request, "config.html", {**shown, "pretty": json.dumps(shown["config"], indent=2), "pipelines": sources}
    )
