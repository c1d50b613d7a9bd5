"""``/graph`` (a page and its JSON twin) and ``/api/v1/graph``: the graph of programs, pipelines, steps, folders
and tables (command ``graph``)."""

from __future__ import annotations

import re

from aiohttp import web

from foss_supervisor.errors import CommandError
from foss_supervisor.web.keys import CORE
from foss_supervisor.web.responder import respond
from foss_supervisor.web.views.overview import configured_pipelines

__all__ = ["GRAPH_FORMATS", "PIPELINE_PATTERN", "graph_api", "graph_page"]

GRAPH_FORMATS = ("json", "dot", "mermaid")
#: a pipeline's name (config.schema.PIPELINE_NAME), or empty: the whole host
PIPELINE_PATTERN = r"^(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?$"
_TEXT_TYPES = {"dot": "text/vnd.graphviz", "mermaid": "text/plain"}


async def graph_api(request: web.Request) -> web.StreamResponse:
    """JSON (the command's reply) for ``?format=json``, the text itself for ``dot`` and ``mermaid``; 400 for another
    format or a ``?pipeline=`` that is no pipeline name, 404 for a pipeline that is not configured."""
    fmt = request.query.get("format", "json")
    if fmt not in GRAPH_FORMATS:
        raise web.HTTPBadRequest(text=f"format must be one of {', '.join(GRAPH_FORMATS)}\n")
    pipeline = request.query.get("pipeline", "")
    if not re.fullmatch(PIPELINE_PATTERN, pipeline):
        raise web.HTTPBadRequest(text="pipeline must be a pipeline's name (letters, digits, '_', '.', '-')\n")
    try:
        reply = await request.app[CORE].call("graph", {"pipeline": pipeline, "format": fmt})
    except CommandError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    if fmt == "json":
        return web.json_response(reply)
    return web.Response(text=reply["text"], content_type=_TEXT_TYPES[fmt])


async def graph_page(request: web.Request) -> web.StreamResponse:
    """``/graph``: the graph drawn left to right (laid out in the browser by the vendored dagre), nodes coloured
    by layer with their live state, each a link to its page; ``?pipeline=`` one pipeline and its neighbours.
    The JSON twin: ``{"graph": the command's nodes, edges and lineage_error, "pipeline", "pipelines"}``."""
    pipeline = request.query.get("pipeline", "")
    if not re.fullmatch(PIPELINE_PATTERN, pipeline):
        raise web.HTTPBadRequest(text="pipeline must be a pipeline's name (letters, digits, '_', '.', '-')\n")
    core = request.app[CORE]
    try:
        reply = await core.call("graph", {"pipeline": pipeline})
    except CommandError as exc:
        raise web.HTTPNotFound(text=f"{exc}\n") from None
    graph = {k: reply[k] for k in ("nodes", "edges", "lineage_error")}
    names = [p["name"] for p in await configured_pipelines(core)]
    return await respond(request, "graph.html", {"graph": graph, "pipeline": pipeline, "pipelines": names})
