"""HTML pages rendered with jinja2 (autoescape on) from ``ui_templates/``; each has a JSON twin."""

from __future__ import annotations

import os
import time
from typing import Any

import jinja2
import psutil
from aiohttp import web

from foss_supervisor import __version__
from foss_supervisor.commands import CommandContext, dispatch
from foss_supervisor.errors import SupervisorError
from foss_supervisor.resources import data_dir
from foss_supervisor.web.keys import CTX, JINJA

__all__ = ["STATE_ICONS", "render", "setup", "system_resources"]

# One icon per state, for process, health, daemon, run and step states; the page script reads the same map.
STATE_ICONS = {
    "RUNNING": "▶", "STARTING": "◔", "BACKOFF": "↻", "STOPPING": "◕", "STOPPED": "■", "EXITED": "⏏", "FATAL": "✖",
    "healthy": "♥", "unhealthy": "✖", "unknown": "?", "ready": "●", "starting": "◔", "reloading": "↻",
    "stopping": "◕", "pending": "○", "queued": "…", "running": "▶", "retrying": "↻", "succeeded": "✔",
    "succeeded_with_warnings": "⚠", "failed": "✖", "crashed": "☠", "upstream_failed": "⤓", "skipped": "⤼",
    "cancelled": "⊘",
}  # fmt: skip



def system_resources(state_dir: str) -> dict[str, Any]:
    """CPU, memory, disk and load of this host, for the overview page and its JSON twin."""
    vm = psutil.virtual_memory()
    disk = psutil.disk_usage(state_dir if os.path.exists(state_dir) else "/")
    load1, load5, load15 = os.getloadavg()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "cpus": psutil.cpu_count(),
        "memory_percent": vm.percent,
        "memory_used_mb": round((vm.total - vm.available) / 2**20),
        "memory_total_mb": round(vm.total / 2**20),
        "disk_percent": disk.percent,
        "disk_free_gb": round(disk.free / 2**30, 1),
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
        "daemon_rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    }


async def render(request: web.Request, template: str, context: dict[str, Any], status: int = 200) -> web.Response:
    env = request.app[JINJA]
    html = env.get_template(template).render(version=__version__, path=request.path, **context)
    return web.Response(text=html, content_type="text/html", status=status)


async def overview(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    status = await dispatch(ctx, "status", {})
    data = {"status": status, "resources": system_resources(str(ctx.config.state_dir)), "generated_at": time.time(),
            "pipelines": await _pipelines(ctx)}  # fmt: skip
    if request.query.get("format") == "json":
        return web.json_response(data)
    return await render(request, "index.html", data)


async def _pipelines(ctx: CommandContext) -> list[dict[str, Any]]:
    """Pipelines with their recent runs, or an empty list when none are configured."""
    if ctx.pipelines is None:
        return []
    out = await dispatch(ctx, "pipelines", {})
    for p in out:
        p["recent_runs"] = await dispatch(ctx, "pipeline_runs", {"name": p["name"], "limit": 10})
    return out  # type: ignore[no-any-return]


async def pipeline_management(request: web.Request) -> web.StreamResponse:
    data = {"pipelines": await _pipelines(request.app[CTX])}
    if request.query.get("format") == "json":
        return web.json_response(data)
    return await render(request, "pipelines.html", data)


TABLES_SQL = ("SELECT table_schema, table_name FROM information_schema.tables "
              "WHERE table_schema IN ('bronze', 'silver', 'gold') "
              "ORDER BY array_position(['bronze', 'silver', 'gold'], table_schema), table_name")  # fmt: skip


async def data_browser(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    tables: dict[str, list[str]] = {}
    error = ""
    if ctx.pipelines is None:
        error = "No pipelines are configured, so there is no warehouse to browse."
    else:
        try:
            result = await dispatch(ctx, "query", {"sql": TABLES_SQL, "max_rows": 1000, "timeout_s": 5.0})
            for schema, table in result["rows"]:
                tables.setdefault(schema, []).append(table)
        except SupervisorError as exc:
            error = str(exc)
    data = {"tables": tables, "error": error}
    if request.query.get("format") == "json":
        return web.json_response(data)
    return await render(request, "data_browser.html", data)


async def report(request: web.Request) -> web.StreamResponse:
    """The latest run report of a pipeline (only these two files, so no path can escape the reports folder)."""
    ctx = request.app[CTX]
    filename = request.match_info["file"]
    if ctx.pipelines is None or filename not in ("latest.html", "latest.json"):
        raise web.HTTPNotFound()
    try:
        path = ctx.pipelines.report_path(request.match_info["name"], filename)
    except SupervisorError:
        raise web.HTTPNotFound() from None
    if not path.is_file():
        raise web.HTTPNotFound(text="no report yet: the pipeline has not finished a run")
    return web.FileResponse(path)


async def api_reference(request: web.Request) -> web.StreamResponse:
    reference = await dispatch(request.app[CTX], "help", {})
    if request.query.get("format") == "json":
        return web.json_response(reference)
    return await render(request, "chat.html", {"commands": reference})


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(data_dir("ui_templates") / "static" / "favicon.svg",
                            headers={"Content-Type": "image/svg+xml"})  # fmt: skip


def setup(app: web.Application) -> None:
    templates = data_dir("ui_templates")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(templates), autoescape=True,
                             undefined=jinja2.StrictUndefined)  # fmt: skip
    env.globals["state_icons"] = STATE_ICONS
    app[JINJA] = env
    app.router.add_get("/", overview)
    app.router.add_get("/chat", api_reference)
    app.router.add_get("/pipeline-management", pipeline_management)
    app.router.add_get("/data-browser", data_browser)
    app.router.add_get("/reports/{name}/{file}", report)
    app.router.add_get("/favicon.ico", favicon)
    app.router.add_static("/static", templates / "static")
